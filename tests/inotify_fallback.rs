//! When inotify cannot be had (here: every inotify instance of the user is taken, as in a
//! crowded node), `--watch auto` falls back to polling and still ships every line, while
//! `--watch inotify` refuses to start with a clear error.

mod support;

use std::time::Duration;

use nix::sys::inotify::{InitFlags, Inotify};
use support::*;

/// Takes inotify instances until the kernel refuses one; returns them (dropping frees them).
fn exhaust_inotify() -> Vec<Inotify> {
    let mut held = Vec::new();
    while let Ok(i) = Inotify::init(InitFlags::IN_CLOEXEC) {
        held.push(i);
        assert!(held.len() < 100_000, "no inotify limit to reach");
    }
    held
}

#[test]
fn without_inotify_auto_mode_polls_and_inotify_mode_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "a", 0..10);

    let held = exhaust_inotify();
    let (code, _, err) = run(
        dir.path(),
        &["tail", "--once", "--watch", "inotify", "app.log"],
    );
    let tc = Tailcar::start(dir.path(), &["tail", "--poll-interval", "50ms", "app.log"]);
    tc.wait_stderr(
        "inotify is unavailable; polling for changes instead",
        Duration::from_secs(10),
    );
    drop(held);

    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot set up inotify (watch: inotify was asked for)"),
        "{err}"
    );

    tc.wait_lines(10, Duration::from_secs(10));
    append(&log, "a", 10..20);
    tc.wait_lines(20, Duration::from_secs(10));
    assert_eq!(assert_all_arrived(&seq_counts(&tc.stdout(), "a"), 20), 0);
}
