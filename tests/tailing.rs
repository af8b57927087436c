//! Tailing and framing with the real binary: appends, new files, short and huge lines, bytes
//! that are not UTF-8, multiline records, start positions, and releasing deleted files.

mod support;

use std::fs;
use std::io::Write;
use std::time::Duration;

use support::*;

const T: Duration = Duration::from_secs(30);

#[test]
fn follows_appends_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "a", 0..100);
    let tc = Tailcar::start(dir.path(), &["tail", "access.log"]);
    tc.wait_lines(100, T);
    for round in 1..10u64 {
        append(&log, "a", round * 100..(round + 1) * 100);
        std::thread::sleep(Duration::from_millis(20));
    }
    tc.wait_lines(1000, T);
    let out = tc.stdout();
    let expected: String = (0..1000).map(|s| line("a", s) + "\n").collect();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        expected,
        "every line once, in order"
    );
}

#[test]
fn follows_appends_when_polling() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let tc = Tailcar::start(
        dir.path(),
        &[
            "tail",
            "--watch",
            "poll",
            "--poll-interval",
            "50ms",
            "access.log",
        ],
    );
    append(&log, "a", 0..10);
    tc.wait_lines(10, T);
    append(&log, "a", 10..20);
    tc.wait_lines(20, T);
    assert_all_arrived(&seq_counts(&tc.stdout(), "a"), 20);
    assert_eq!(seq_counts(&tc.stdout(), "a").values().sum::<usize>(), 20);
}

#[test]
fn picks_up_files_that_appear_later_through_a_glob() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let pattern = format!("{}/*.log", logs.display());
    // Neither the directory nor the file exists yet.
    let tc = Tailcar::start(dir.path(), &["tail", &pattern]);
    // Its first scan found nothing: what follows appears after it.
    tc.wait_stderr("no file matches the stream's paths yet", T);
    fs::create_dir(&logs).unwrap();
    append(&logs.join("late.log"), "a", 0..5);
    fs::write(logs.join("ignored.txt"), "not matched\n").unwrap();
    tc.wait_lines(5, Duration::from_secs(5));
    append(&logs.join("later.log"), "a", 5..10);
    tc.wait_lines(10, Duration::from_secs(5));
    assert_eq!(assert_all_arrived(&seq_counts(&tc.stdout(), "a"), 10), 0);
}

#[test]
fn a_one_line_file_is_shipped() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("error.log"), "FATAL: out of memory\n").unwrap();
    let tc = Tailcar::start(dir.path(), &["tail", "error.log"]);
    tc.wait_lines(1, T);
    assert_eq!(tc.stdout(), b"FATAL: out of memory\n");
    // Even a file of one short line without its newline, with --once.
    fs::write(dir.path().join("tiny.log"), "x").unwrap();
    let (code, out, err) = run(dir.path(), &["tail", "--once", "tiny.log"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, b"x\n");
}

#[test]
fn a_10_mib_line_is_split_by_default_and_whole_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let mut content = b"before\n".to_vec();
    content.extend_from_slice(&big);
    content.extend_from_slice(b"\nafter\n");
    fs::write(dir.path().join("big.log"), &content).unwrap();

    let (code, out, err) = run(dir.path(), &["tail", "--once", "big.log"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
    // before + 10 pieces of 1 MiB + after + the empty tail after the last newline
    assert_eq!(lines.len(), 13);
    assert_eq!(lines[0], b"before");
    assert!(
        lines[1..11].iter().all(|l| l.len() == 1024 * 1024),
        "pieces of max_line_bytes"
    );
    assert_eq!(
        lines[1..11].concat(),
        big,
        "no byte of the long line is lost"
    );
    assert_eq!(lines[11], b"after");
    assert!(
        err.contains("split_lines=9"),
        "the split is counted:\n{err}"
    );

    let (code, out, err) = run(
        dir.path(),
        &["tail", "--once", "--max-line-bytes", "16MiB", "big.log"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out, content,
        "with a larger limit the line comes through whole"
    );
}

#[test]
fn invalid_utf8_and_nul_bytes_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let content: &[u8] =
        b"ok line\nlatin1 caf\xe9\n\0\0nul inside\0\ntruncated \xe2\x82\nwindows\r\n";
    fs::write(dir.path().join("bin.log"), content).unwrap();
    let (code, out, err) = run(dir.path(), &["tail", "--once", "bin.log"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out, b"ok line\nlatin1 caf\xe9\n\0\0nul inside\0\ntruncated \xe2\x82\nwindows\n",
        "raw is byte-faithful"
    );

    let (code, out, err) = run(
        dir.path(),
        &["tail", "--once", "--format", "json", "bin.log"],
    );
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[1]["line"], "latin1 caf\u{fffd}");
    assert_eq!(lines[2]["line"], "\0\0nul inside\0");
    assert_eq!(lines[3]["line"], "truncated \u{fffd}");
    assert_eq!(lines[0]["stream"], "bin");
    assert_eq!(lines[0]["offset"], 8);
    assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_java_stack_trace_becomes_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    let trace = "2026-11-22 10:00:01 ERROR [main] request failed\n\
        java.lang.IllegalStateException: connection pool exhausted\n\
        \tat com.example.db.Pool.acquire(Pool.java:88)\n\
        \tat com.example.api.Handler.handle(Handler.java:42)\n\
        Caused by: java.net.SocketTimeoutException: connect timed out\n\
        \t... 12 more\n";
    let mut f = fs::File::create(&log).unwrap();
    f.write_all(b"2026-11-22 10:00:00 INFO started\n").unwrap();
    f.write_all(trace.as_bytes()).unwrap();
    f.write_all(b"2026-11-22 10:00:02 INFO recovered\n")
        .unwrap();
    drop(f);
    let tc = Tailcar::start(
        dir.path(),
        &[
            "tail",
            "--format",
            "json",
            "--multiline-start",
            r"^\d{4}-\d{2}-\d{2} ",
            "--multiline-timeout",
            "300ms",
            "error.log",
        ],
    );
    // The last record has no successor: it is flushed by the timeout.
    tc.wait_lines(3, T);
    let records: Vec<serde_json::Value> = String::from_utf8(tc.stdout())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["line"], "2026-11-22 10:00:00 INFO started");
    assert_eq!(records[1]["line"], trace.trim_end_matches('\n'));
    assert_eq!(records[1]["multiline"], true);
    assert_eq!(records[2]["line"], "2026-11-22 10:00:02 INFO recovered");
}

#[test]
fn from_end_skips_existing_lines_but_not_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, "a", 0..10);
    let tc = Tailcar::start(
        dir.path(),
        &["tail", "--from-end", "--rotate-wait", "100ms", "a.log"],
    );
    tc.wait_stderr("tailing file", T);
    append(&log, "a", 10..15);
    tc.wait_lines(5, T);
    // A file that appears after start (here: after a rotation) is read from its beginning.
    fs::rename(&log, dir.path().join("a.log.1")).unwrap();
    append(&log, "a", 15..20);
    tc.wait_lines(10, T);
    let counts = seq_counts(&tc.stdout(), "a");
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
}

#[test]
fn deleted_files_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gone.log");
    append(&log, "a", 0..100);
    let tc = Tailcar::start(dir.path(), &["tail", "gone.log"]);
    tc.wait_lines(100, T);
    let fd_dir = format!("/proc/{}/fd", tc.pid());
    let holds = || {
        fs::read_dir(&fd_dir)
            .unwrap()
            .filter_map(|e| fs::read_link(e.unwrap().path()).ok())
            .any(|target| target.to_string_lossy().contains("gone.log"))
    };
    assert!(holds(), "the file is open while tailed");
    fs::remove_file(&log).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !holds()),
        "the deleted file's descriptor was not released"
    );
    assert_eq!(tc.stdout_lines(), 100);
}

#[test]
fn sigterm_emits_a_pending_multiline_record() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("error.log"),
        "2026-11-22 10:00:00 ERROR first\n\tat a.B(B.java:1)\n2026-11-22 10:00:01 ERROR second\n\tat c.D(D.java:2)\n",
    )
    .unwrap();
    let mut tc = Tailcar::start(
        dir.path(),
        &[
            "tail",
            "--multiline-start",
            r"^\d{4}-",
            "--multiline-timeout",
            "1h",
            "error.log",
        ],
    );
    // The first record is complete (the second started); the second waits for its successor.
    tc.wait_lines(2, T);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        tc.stdout(),
        b"2026-11-22 10:00:00 ERROR first\n\tat a.B(B.java:1)\n"
    );
    tc.stop();
    assert_eq!(
        String::from_utf8(tc.stdout()).unwrap(),
        "2026-11-22 10:00:00 ERROR first\n\tat a.B(B.java:1)\n2026-11-22 10:00:01 ERROR second\n\tat c.D(D.java:2)\n"
    );
}
