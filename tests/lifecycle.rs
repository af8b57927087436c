//! Process life with the real binary: SIGKILL and restart, SIGTERM drain, a drain that runs out
//! of time, corrupt checkpoints, configuration errors, `run` with routing to two sinks, `check`,
//! and a closed stdout.

mod support;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use support::*;

const T: Duration = Duration::from_secs(60);

#[test]
fn sigkill_mid_stream_and_restart_never_loses_a_line() {
    const LINES: u64 = 100_000;
    const KILLS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let ck = dir.path().join("ck");
    fs::write(&log, "").unwrap();
    let args = [
        "tail",
        "--checkpoint-dir",
        "ck",
        "--checkpoint-interval",
        "100ms",
        "access.log",
    ];

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, done) = (log.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            // 100k lines in about 2.5 s, in small bursts.
            for chunk in 0..(LINES / 1000) {
                append(&log, "a", chunk * 1000..(chunk + 1) * 1000);
                std::thread::sleep(Duration::from_millis(25));
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let mut outputs = Vec::new();
    // Lines cut by a kill in the middle of a write to the pipe (each is sent again whole).
    let mut torn = 0;
    for _ in 0..KILLS {
        let mut tc = Tailcar::start(dir.path(), &args);
        // Let it ship something, then kill it mid-stream.
        let before = tc.stdout_lines();
        assert!(
            wait_until(T, || tc.stdout_lines() > before + 2000),
            "no progress:\n{}",
            tc.stderr()
        );
        std::thread::sleep(Duration::from_millis(150));
        tc.kill9();
        let out = tc.stdout();
        let (complete, cut) = complete_lines(&out);
        torn += usize::from(cut);
        outputs.push(complete.to_vec());
    }
    writer.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    let mut tc = Tailcar::start(dir.path(), &args);
    let shipped_before: Vec<u8> = outputs.concat();
    let unique_before = seq_counts(&shipped_before, "a").len();
    assert!(
        wait_until(T, || {
            // The output is still arriving: its last line may be only partly read yet.
            let mut all = shipped_before.clone();
            all.extend_from_slice(complete_lines(&tc.stdout()).0);
            seq_counts(&all, "a").len() as u64 == LINES
        }),
        "not every line arrived ({unique_before} before the last start)"
    );
    tc.stop();
    outputs.push(tc.stdout());
    let all = outputs.concat();
    let dups = assert_all_arrived(&seq_counts(&all, "a"), LINES);
    eprintln!(
        "{KILLS} SIGKILLs: {dups} duplicate lines ({:.1} per kill), {torn} lines cut by a kill mid-write",
        dups as f64 / KILLS as f64
    );
    // Each restart re-sends at most what was delivered after the last checkpoint write (100 ms
    // of traffic) plus what was in flight: far less than a restart from the beginning would.
    assert!(
        dups < 20_000 * KILLS,
        "{dups} duplicates: checkpoints are not being used"
    );
    assert_eq!(checkpoint_offset(&ck, &log), Some(file_len(&log)));
}

#[test]
fn sigterm_emits_the_partial_line_drains_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "a", 0..1000);
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all_str("last words without newline");
    let mut tc = Tailcar::start(dir.path(), &["tail", "--checkpoint-dir", "ck", "app.log"]);
    tc.wait_lines(1000, T);
    tc.stop();
    let out = String::from_utf8(tc.stdout()).unwrap();
    assert_eq!(out.lines().count(), 1001);
    assert_eq!(out.lines().last(), Some("last words without newline"));
    assert!(
        tc.stderr()
            .contains("summary: everything read was delivered"),
        "{}",
        tc.stderr()
    );
    assert_eq!(
        checkpoint_offset(&dir.path().join("ck"), &log),
        Some(file_len(&log))
    );
}

trait WriteStr {
    fn write_all_str(&mut self, s: &str);
}
impl WriteStr for fs::File {
    fn write_all_str(&mut self, s: &str) {
        std::io::Write::write_all(self, s.as_bytes()).unwrap();
    }
}

#[test]
fn a_drain_that_runs_out_of_time_is_reported_and_checkpoints_only_acknowledged_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    append(&log, "a", 0..200_000); // ~30 MB: far more than a pipe holds
    // Nobody reads tailcar's stdout: the stdout sink blocks once the pipe is full.
    let admin = support::http_server::free_port();
    let admin_arg = admin.to_string();
    let mut tc = Tailcar::start_with(
        dir.path(),
        &[
            "tail",
            "--checkpoint-dir",
            "ck",
            "--grace-period",
            "1s",
            "--admin",
            &admin_arg,
            "big.log",
        ],
        false,
    );
    tc.wait_stderr("tailing file", T);
    assert!(
        wait_backpressured(admin.port(), "big", T),
        "the stream never waited on stdout:\n{}",
        tc.stderr()
    );
    // Backpressure reached the tailer: it stopped reading instead of buffering the file.
    let rss_kib = rss_kib(tc.pid());
    assert!(
        rss_kib < 24 * 1024,
        "RSS {rss_kib} KiB with a 30 MB file behind a stuck stdout"
    );
    tc.signal(Signal::SIGTERM);
    let status = tc.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(75), "{}", tc.stderr());
    assert!(
        tc.stderr()
            .contains("grace period over before everything was delivered"),
        "{}",
        tc.stderr()
    );
    let committed = checkpoint_offset(&dir.path().join("ck"), &log).unwrap_or(0);
    assert!(
        committed < file_len(&log),
        "only what reached the pipe may be checkpointed"
    );
    // What was not acknowledged is read again on the next start.
    let (code, out, err) = run(
        dir.path(),
        &["tail", "--once", "--checkpoint-dir", "ck", "big.log"],
    );
    assert_eq!(code, Some(0), "{err}");
    let first_seq = seq_counts(&out, "a").keys().next().copied().unwrap();
    let resumed_at: u64 = (0..first_seq).map(|s| line("a", s).len() as u64 + 1).sum();
    assert_eq!(resumed_at, committed, "resumes at the committed offset");
}

#[test]
fn a_corrupt_checkpoint_file_is_reported_and_reading_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "a", 0..50);
    fs::create_dir(dir.path().join("ck")).unwrap();
    fs::write(
        dir.path().join("ck/checkpoints.json"),
        "{\"version\": 1, \"files\": [{\"stre",
    )
    .unwrap();
    let (code, out, err) = run(
        dir.path(),
        &["tail", "--once", "--checkpoint-dir", "ck", "app.log"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(assert_all_arrived(&seq_counts(&out, "a"), 50), 0);
    assert!(err.contains("corrupt checkpoint file"), "{err}");
    assert!(
        err.contains("ck/checkpoints.json"),
        "the path is named:\n{err}"
    );
    let kept = fs::read_dir(dir.path().join("ck")).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("checkpoints.json.corrupt-")
    });
    assert!(kept, "the corrupt file is kept aside");
    assert_eq!(
        checkpoint_offset(&dir.path().join("ck"), &log),
        Some(file_len(&log))
    );
    // And the next run starts from the new checkpoint: nothing again.
    let (code, out, _) = run(
        dir.path(),
        &["tail", "--once", "--checkpoint-dir", "ck", "app.log"],
    );
    assert_eq!((code, out.len()), (Some(0), 0));
}

#[test]
fn a_reused_inode_is_not_mistaken_for_the_file_that_had_it() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "a", 0..100);
    let args = ["tail", "--once", "--checkpoint-dir", "ck", "app.log"];
    let (code, out, err) = run(dir.path(), &args);
    assert_eq!((code, seq_counts(&out, "a").len()), (Some(0), 100), "{err}");
    let old_inode = fs::metadata(&log).unwrap().ino();
    // A new file at the same path, larger than the old one's checkpoint: without the fingerprint,
    // a reused inode would resume at the old offset and skip the new file's first lines.
    fs::remove_file(&log).unwrap();
    append(&log, "a", 1000..1300);
    let reused = fs::metadata(&log).unwrap().ino() == old_inode;
    eprintln!("inode reused by the filesystem: {reused}");
    let (code, out, err) = run(dir.path(), &args);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(seqs_in_order(&out, "a"), (1000..1300).collect::<Vec<_>>());
}

const CONFIG: &str = r#"
checkpoint_dir: ${DIR}/ck
admin: { enabled: false }
streams:
  access:
    paths: [${DIR}/access.log]
    sinks: [access_out]
  error:
    paths: [${DIR}/error.log]
    multiline: { start: '^\d{4}-\d{2}-\d{2}' }
    sinks: [error_out]
sinks:
  access_out: { type: stdout, format: raw }
  error_out: { type: file, path: ${DIR}/shipped-errors.log, format: json }
"#;

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("tailcar.yaml");
    fs::write(&path, text.replace("${DIR}", &dir.display().to_string())).unwrap();
    path.display().to_string()
}

#[test]
fn run_routes_each_stream_to_its_own_sink() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("access.log"), "access", 0..500);
    fs::write(
        d.join("error.log"),
        "2026-11-22 10:00:00 ERROR boom\n\tat a.B.c(B.java:1)\n2026-11-22 10:00:01 WARN slow\n",
    )
    .unwrap();
    let config = write_config(d, CONFIG);
    let (code, out, err) = run(d, &["run", "--config", &config, "--once"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        assert_all_arrived(&seq_counts(&out, "access"), 500),
        0,
        "stdout holds the access log alone"
    );
    let shipped = fs::read_to_string(d.join("shipped-errors.log")).unwrap();
    let records: Vec<serde_json::Value> = shipped
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0]["line"],
        "2026-11-22 10:00:00 ERROR boom\n\tat a.B.c(B.java:1)"
    );
    assert_eq!(records[0]["stream"], "error");
    assert_eq!(records[1]["line"], "2026-11-22 10:00:01 WARN slow");
    assert!(records[1]["file"].as_str().unwrap().ends_with("/error.log"));

    let (code, out, err) = run(d, &["check", "--config", &config]);
    assert_eq!(code, Some(0), "{err}");
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("stream error:")
            && out.contains("-> error_out")
            && out.ends_with("configuration OK\n"),
        "{out}"
    );
}

#[test]
fn bad_configurations_name_the_file_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            CONFIG.replace("multiline:", "multilne:"),
            "streams.error.multilne: unknown field `multilne`, expected one of `paths`, `exclude`, `sinks`, \
             `start_at`, `multiline`, `max_line_bytes`, `poll_interval`, `rotate_wait`, `parser`, `fields`, `filters`, `enrich`, `remove_rotated_after_ship`, `reclaim`, `plugins` at line 10 column 5",
        ),
        (
            CONFIG.replace("sinks: [error_out]", "sinks: [errors_out]"),
            "streams.error.sinks[0]: no sink named `errors_out` (sinks defined: access_out, error_out)",
        ),
        (
            CONFIG.replace(r"'^\d{4}-\d{2}-\d{2}'", "'^(2026'"),
            "streams.error.multiline.start: invalid regex: regex parse error: ^(2026 ^ error: unclosed group",
        ),
        (
            CONFIG.replace("type: stdout", "type: stdot"),
            "sinks.access_out.type: unknown variant `stdot`, expected one of `stdout`, `file`, `http`, `elasticsearch`, `loki`, `tcp`, `kafka`, `syslog`, `otlp` at line 13 column 23",
        ),
        (
            CONFIG.replace(
                "paths: [${DIR}/access.log]",
                "paths: [${DIR}/access.log]\n    max_line_bytes: huge",
            ),
            "streams.access.max_line_bytes: invalid size `huge`: invalid digit found in string at line 7 column 21",
        ),
        (
            CONFIG.replace("${DIR}/ck", "${TAILCAR_TEST_UNSET_VAR}"),
            "line 2: environment variable `TAILCAR_TEST_UNSET_VAR` is not set (write ${TAILCAR_TEST_UNSET_VAR:-default} for a default)",
        ),
    ];
    for (text, expected) in cases {
        let config = write_config(d, &text);
        for cmd in ["run", "check"] {
            let (code, out, err) = run(d, &[cmd, "--config", &config]);
            assert_eq!(code, Some(64), "{cmd}: {err}");
            assert!(out.is_empty());
            assert_eq!(
                err,
                format!("tailcar: configuration error: {config}: {expected}\n"),
                "{cmd}"
            );
        }
    }
    let (code, _, err) = run(d, &["run", "--config", "/nonexistent/tailcar.yaml"]);
    assert_eq!(code, Some(64));
    assert_eq!(
        err,
        "tailcar: configuration error: /nonexistent/tailcar.yaml: cannot read: No such file or directory (os error 2)\n"
    );
    let (code, _, err) = run(d, &["tail", "--multiline-start", "(", "x.log"]);
    assert_eq!(code, Some(64));
    assert!(
        err.contains("invalid value '(' for '--multiline-start <REGEX>'"),
        "{err}"
    );
}

#[test]
fn a_closed_stdout_ends_tailcar_cleanly_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "a", 0..10);
    let mut tc = Tailcar::start_with(dir.path(), &["tail", "app.log"], false);
    let mut stdout = tc.child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout); // the reader goes away, like `| head -1`
    append(&log, "a", 10..2000);
    let status = tc.wait(T);
    assert_eq!(status.code(), Some(1), "{}", tc.stderr());
    let err = tc.stderr();
    assert!(
        err.contains("tailcar: error: sink `stdout` failed: writing to stdout: Broken pipe"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
