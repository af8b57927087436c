//! Rotation with the real binary, during bursts of numbered lines: rename + create, copytruncate,
//! and rotations that happen while tailcar is stopped (one, or two so that a file is created and
//! rotated away unseen). Every line must arrive.

mod support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use support::*;

const LINES: u64 = 120_000;
const PER_FILE: u64 = 20_000;
const T: Duration = Duration::from_secs(120);

/// Writes `LINES` numbered lines to `log`, calling `rotate` every `PER_FILE` lines.
fn burst(log: &Path, rotate: impl Fn(&Path, u64)) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    for seq in 0..LINES {
        if seq > 0 && seq % PER_FILE == 0 {
            drop(f);
            rotate(log, seq / PER_FILE);
            f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap();
        }
        // Small writes, like an application logging line by line.
        writeln!(f, "{}", line("a", seq)).unwrap();
    }
}

#[test]
fn rename_and_create_rotation_during_a_burst_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    fs::write(&log, "").unwrap();
    let mut tc = Tailcar::start(
        dir.path(),
        &["tail", "--rotate-wait", "300ms", "access.log"],
    );
    tc.wait_stderr("tailing file", T);
    burst(&log, |log, n| {
        fs::rename(log, log.with_extension(format!("log.{n}"))).unwrap()
    });
    tc.wait_lines(LINES as usize, T);
    // Let the last rotated files be released, then stop cleanly.
    tc.wait_stderr("released file", T);
    tc.stop();
    let out = tc.stdout();
    let counts = seq_counts(&out, "a");
    let dups = assert_all_arrived(&counts, LINES);
    assert_eq!(dups, 0, "a rename rotation needs no re-reading");
    let order = seqs_in_order(&out, "a");
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "lines stay in order across rotations"
    );
    let err = tc.stderr();
    assert!(
        err.contains(&format!("rotations={}", LINES / PER_FILE - 1)),
        "rotations counted:\n{err}"
    );
}

#[test]
fn copytruncate_rotation_during_a_burst_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    fs::write(&log, "").unwrap();
    let mut tc = Tailcar::start(dir.path(), &["tail", "access.log"]);
    tc.wait_stderr("tailing file", T);
    burst(&log, |log, n| {
        // What logrotate's copytruncate does: copy, then truncate the original in place.
        fs::copy(log, log.with_extension(format!("log.{n}"))).unwrap();
        OpenOptions::new()
            .write(true)
            .open(log)
            .unwrap()
            .set_len(0)
            .unwrap();
    });
    tc.wait_lines(LINES as usize, T);
    std::thread::sleep(Duration::from_millis(500));
    tc.stop();
    let counts = seq_counts(&tc.stdout(), "a");
    let dups = assert_all_arrived(&counts, LINES);
    eprintln!("copytruncate: {dups} duplicates");
    assert_eq!(dups, 0);
    assert!(
        tc.stderr()
            .contains(&format!("truncations={}", LINES / PER_FILE - 1)),
        "{}",
        tc.stderr()
    );
}

/// Ships 100 lines and lets the checkpoint catch up, SIGKILLs tailcar, appends lines 100..150,
/// calls `rotate`, writes lines 150..200 to a new `app.log`, restarts tailcar and stops it once
/// 100 more lines arrived. Asserts all 200 arrived exactly once; returns the second run.
fn rotate_while_down(rotate: impl Fn(&Path, &Path)) -> Tailcar {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let ck = dir.path().join("ck");
    let args = [
        "tail",
        "--checkpoint-dir",
        "ck",
        "--checkpoint-interval",
        "50ms",
        "--rotate-wait",
        "200ms",
        "app.log",
    ];
    append(&log, "a", 0..100);
    let mut tc = Tailcar::start(dir.path(), &args);
    tc.wait_lines(100, T);
    assert!(wait_until(T, || checkpoint_offset(&ck, &log) == Some(file_len(&log))));
    tc.kill9();
    let first = tc.stdout();

    append(&log, "a", 100..150);
    rotate(&log, &dir.path().join("app.log.1"));
    append(&log, "a", 150..200);

    let mut tc = Tailcar::start(dir.path(), &args);
    tc.wait_lines(100, T);
    tc.stop();
    let mut all = first;
    all.extend_from_slice(&tc.stdout());
    let dups = assert_all_arrived(&seq_counts(&all, "a"), 200);
    assert_eq!(
        dups, 0,
        "the checkpoint was current when tailcar was killed"
    );
    tc
}

#[test]
fn a_file_rotated_while_tailcar_was_down_is_finished_from_its_checkpoint() {
    let tc = rotate_while_down(|log, rotated| fs::rename(log, rotated).unwrap());
    assert!(
        tc.stderr()
            .contains("resuming a file that was rotated while tailcar was stopped"),
        "{}",
        tc.stderr()
    );
    // The old file comes out before the new one.
    assert_eq!(
        seqs_in_order(&tc.stdout(), "a"),
        (100..200).collect::<Vec<_>>()
    );
}

#[test]
fn a_file_copytruncated_while_tailcar_was_down_is_finished_from_its_copy() {
    let tc = rotate_while_down(|log, copy| {
        fs::copy(log, copy).unwrap();
        OpenOptions::new()
            .write(true)
            .open(log)
            .unwrap()
            .set_len(0)
            .unwrap();
    });
    assert!(
        tc.stderr()
            .contains("resuming a file that was rotated while tailcar was stopped"),
        "{}",
        tc.stderr()
    );
}

#[test]
fn two_rotations_while_tailcar_was_down_lose_neither_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("app.log");
    // An old rotation, shipped by nobody's run: it must not be read.
    append(&d.join("app.log.3"), "old", 0..10);
    let old = fs::File::options()
        .write(true)
        .open(d.join("app.log.3"))
        .unwrap();
    old.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let args = [
        "tail",
        "--checkpoint-dir",
        "ck",
        "--checkpoint-interval",
        "50ms",
        "--rotate-wait",
        "200ms",
        "app.log",
    ];
    append(&log, "a", 0..100);
    let mut tc = Tailcar::start(d, &args);
    tc.wait_lines(100, T);
    assert!(wait_until(T, || checkpoint_offset(&d.join("ck"), &log)
        == Some(file_len(&log))));
    tc.stop();
    let first = tc.stdout();

    // logrotate twice, as `rotate 3` shifts: app.log -> .1, later .1 -> .2 and app.log -> .1.
    append(&log, "a", 100..150);
    fs::rename(&log, d.join("app.log.1")).unwrap();
    append(&log, "a", 150..200);
    fs::rename(d.join("app.log.1"), d.join("app.log.2")).unwrap();
    fs::rename(&log, d.join("app.log.1")).unwrap();
    append(&log, "a", 200..250);

    let mut tc = Tailcar::start(d, &args);
    tc.wait_lines(150, T);
    tc.stop();
    let second = tc.stdout();
    let mut all = first;
    all.extend_from_slice(&second);
    assert!(only(&all, "old").is_empty(), "{}", tc.stderr());
    let dups = assert_all_arrived(&seq_counts(&all, "a"), 250);
    assert_eq!(dups, 0, "{}", tc.stderr());
    assert!(
        tc.stderr()
            .contains("found a file written and rotated away while tailcar was stopped"),
        "{}",
        tc.stderr()
    );
    // The checkpointed file, then the one in between, then the current one.
    assert_eq!(seqs_in_order(&second, "a"), (100..250).collect::<Vec<_>>());
}

#[test]
fn a_new_file_on_a_reused_inode_with_the_same_first_kilobyte_is_read_whole() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    // A 1,100-byte banner every file of this application starts with: the first KiB (the
    // fingerprint) of the old and the new file are equal.
    let header = format!("{}\n", "#".repeat(1099));
    fs::write(&log, &header).unwrap();
    append(&log, "a", 0..1000);
    let args = ["tail", "--once", "--checkpoint-dir", "ck", "app.log"];
    let (code, out, err) = run(dir.path(), &args);
    assert_eq!(code, Some(0), "{err}");
    assert_all_arrived(&seq_counts(&only(&out, "a"), "a"), 1000);
    let old_inode = fs::metadata(&log).unwrap().ino();
    fs::remove_file(&log).unwrap();
    fs::write(&log, &header).unwrap();
    append(&log, "b", 0..2000);
    let reused = fs::metadata(&log).unwrap().ino() == old_inode;
    eprintln!("inode reused by the filesystem: {reused}");
    let (code, out, err) = run(dir.path(), &args);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        seqs_in_order(&only(&out, "b"), "b"),
        (0..2000).collect::<Vec<_>>(),
        "{err}"
    );
    if reused {
        assert!(err.contains("a new file on a reused inode"), "{err}");
    }
}

#[test]
fn a_file_cut_shorter_and_grown_back_before_tailcar_looks_loses_nothing() {
    use nix::sys::signal::Signal;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, "").unwrap();
    let mut tc = Tailcar::start(dir.path(), &["tail", "--checkpoint-dir", "ck", "app.log"]);
    tc.wait_stderr("tailing file", T);
    // Written in steps and shipped step by step, as an application's lines are.
    for step in 0..20 {
        append(&log, "a", step * 100..(step + 1) * 100);
        tc.wait_lines(((step + 1) * 100) as usize, T);
    }
    // Frozen, tailcar cannot look while the file is cut to its first 1,000 lines (at a line's
    // end) and written again well past where tailcar had read.
    tc.signal(Signal::SIGSTOP);
    let cut = (0..1000)
        .map(|i| line("a", i).len() as u64 + 1)
        .sum::<u64>();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(cut)
        .unwrap();
    append(&log, "a", 2000..6000);
    tc.signal(Signal::SIGCONT);
    let mut shipped = std::collections::BTreeMap::new();
    let all = wait_until(T, || {
        // Only complete lines: the collector may hold half of a write in progress.
        shipped = seq_counts(complete_lines(&tc.stdout()).0, "a");
        (0..6000).all(|i| shipped.contains_key(&i))
    });
    tc.stop();
    assert!(all, "lines lost; stderr:\n{}", tc.stderr());
    let dups = assert_all_arrived(&seq_counts(&tc.stdout(), "a"), 6000);
    // Reading resumed at a batch end before the cut, not at 0: fewer than the 1,000 lines kept.
    assert!(dups < 1000, "{dups} duplicates; stderr:\n{}", tc.stderr());
    assert!(tc.stderr().contains("file truncated"), "{}", tc.stderr());
}

/// The kubelet's layout: `containers/app.log` is a symlink to `pods/ns_pod_uid/app/0.log`,
/// which the kubelet rotates by renaming it beside itself and creating a new `0.log`.
fn kubelet_layout(d: &Path) -> std::path::PathBuf {
    let pod = d.join("pods/shop_web-0_1234/app");
    fs::create_dir_all(&pod).unwrap();
    fs::create_dir_all(d.join("containers")).unwrap();
    let target = pod.join("0.log");
    fs::write(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, d.join("containers/app.log")).unwrap();
    target
}

#[test]
fn a_symlinked_file_rotated_in_its_target_directory_while_tailcar_was_stopped_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = kubelet_layout(d);
    let args = ["tail", "--checkpoint-dir", "ck", "containers/*.log"];
    append(&target, "a", 0..1000);
    let mut tc = Tailcar::start(d, &args);
    tc.wait_lines(1000, T);
    tc.stop();
    let first = tc.stdout();
    // While tailcar is down: more lines, then the kubelet's rotation in the target directory.
    append(&target, "a", 1000..1100);
    fs::rename(&target, target.with_file_name("0.log.20250101-000000")).unwrap();
    append(&target, "a", 1100..1200);
    let mut tc = Tailcar::start(d, &args);
    tc.wait_lines(200, T);
    tc.stop();
    let mut all = first;
    all.extend(tc.stdout());
    assert_eq!(seqs_in_order(&all, "a"), (0..1200).collect::<Vec<_>>());
    assert!(
        tc.stderr()
            .contains("resuming a file that was rotated while tailcar was stopped"),
        "{}",
        tc.stderr()
    );
}

#[test]
fn a_symlinked_file_rotated_quickly_in_its_target_directory_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = kubelet_layout(d);
    let mut tc = Tailcar::start(d, &["tail", "--checkpoint-dir", "ck", "containers/*.log"]);
    tc.wait_stderr("tailing file", T);
    // Rotations far faster than the 1 s rescan, most files renamed away before tailcar could
    // open them: only the target directory's rename events say where they went.
    let (rotations, per_file) = (20u64, 2000u64);
    for r in 0..rotations {
        append(&target, "a", r * per_file..(r + 1) * per_file);
        fs::rename(&target, target.with_file_name(format!("0.log.{r:03}"))).unwrap();
        fs::write(&target, "").unwrap();
    }
    let n = rotations * per_file;
    tc.wait_lines(n as usize, T);
    tc.stop();
    assert_all_arrived(&seq_counts(&tc.stdout(), "a"), n);
}
