//! Rotation with the real binary, during bursts of numbered lines: rename + create, copytruncate,
//! and a rotation that happens while tailcar is stopped. Every line must arrive.

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
