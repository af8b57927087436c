//! The disk budget in the emptyDir, on real filesystems (the temp dir's, ext4 here, and tmpfs
//! at /dev/shm when there is one): `reclaim: punch_holes` frees the blocks of the acknowledged
//! prefix of a live file (its size and fingerprint kept, no line lost, a restart resumes
//! exactly), and `remove_rotated_after_ship` deletes a rotated file once all of it is
//! acknowledged.

mod support;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use support::*;

fn config(dir: &Path, extra: &str) {
    let d = dir.display();
    fs::write(
        dir.join("tailcar.yaml"),
        format!(
            "checkpoint_dir: {d}/state\nadmin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n    rotate_wait: 200ms\n{extra}\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {d}/out.log }}\n"
        ),
    )
    .unwrap();
}

fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

fn punch_holes_in(dir: &Path) {
    let log = dir.join("app.log");
    // ~8 MiB of numbered lines.
    append(&log, "app", 0..55_000);
    let size = fs::metadata(&log).unwrap().len();
    let before = allocated(&log);
    assert!(before >= size / 2, "the file is not sparse to begin with");
    let mut head = vec![0u8; 4096];
    fs::File::open(&log).unwrap().read_exact(&mut head).unwrap();

    config(dir, "    reclaim: punch_holes");
    let mut t = Tailcar::start(dir, &["run", "--config", "tailcar.yaml"]);
    let freed = wait_until(Duration::from_secs(20), || allocated(&log) < size / 4);
    assert!(
        freed,
        "blocks still allocated: {} of {size} bytes\n{}",
        allocated(&log),
        t.stderr()
    );
    // Same size, same first 4 KiB (the fingerprint), zeros after them in the punched prefix.
    assert_eq!(fs::metadata(&log).unwrap().len(), size);
    let content = fs::read(&log).unwrap();
    assert_eq!(&content[..4096], &head[..]);
    assert!(content[4096..1 << 20].iter().all(|&b| b == 0));
    // The application goes on appending; tailcar goes on shipping.
    append(&log, "app", 55_000..60_000);
    let out = dir.join("out.log");
    assert!(wait_until(Duration::from_secs(20), || {
        seq_counts(&fs::read(&out).unwrap_or_default(), "app").len() == 60_000
    }));
    t.stop();
    assert!(!t.stderr().contains("file truncated"), "{}", t.stderr());
    assert!(stat(&t.stderr(), "stream statistics", "rotations") == Some(0));
    // A restart resumes at its checkpoint: the punched file is still the same file to it.
    append(&log, "app", 60_000..61_000);
    let mut t = Tailcar::start(dir, &["run", "--config", "tailcar.yaml"]);
    assert!(wait_until(Duration::from_secs(20), || {
        seq_counts(&fs::read(&out).unwrap_or_default(), "app").len() == 61_000
    }));
    t.stop();
    let counts = seq_counts(&fs::read(&out).unwrap(), "app");
    assert_eq!(
        assert_all_arrived(&counts, 61_000),
        0,
        "no duplicates, no loss"
    );
    let err = t.stderr();
    assert!(err.contains("from=\"checkpoint\""), "{err}");
    assert!(!err.contains("file truncated"), "{err}");
    assert_eq!(stat(&err, "stream statistics", "truncations"), Some(0));
}

#[test]
fn punch_holes_frees_the_acknowledged_prefix_on_the_temp_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    punch_holes_in(dir.path());
}

#[test]
fn punch_holes_frees_the_acknowledged_prefix_on_tmpfs() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("no /dev/shm here: the temp-filesystem test covers punch_holes");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    punch_holes_in(dir.path());
}

#[test]
fn a_rotated_file_is_removed_once_every_line_of_it_is_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("app.log");
    append(&log, "app", 0..1000);
    config(d, "    remove_rotated_after_ship: true");
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    let out = d.join("out.log");
    assert!(wait_until(Duration::from_secs(10), || {
        seq_counts(&fs::read(&out).unwrap_or_default(), "app").len() == 1000
    }));
    fs::rename(&log, d.join("app.log.1")).unwrap();
    append(&log, "app", 1000..2000);
    assert!(
        wait_until(Duration::from_secs(15), || !d.join("app.log.1").exists()),
        "{}",
        t.stderr()
    );
    // The live file stays.
    append(&log, "app", 2000..2100);
    assert!(wait_until(Duration::from_secs(10), || {
        seq_counts(&fs::read(&out).unwrap_or_default(), "app").len() == 2100
    }));
    t.stop();
    assert!(log.exists());
    let counts = seq_counts(&fs::read(&out).unwrap(), "app");
    assert_eq!(assert_all_arrived(&counts, 2100), 0);
    assert!(
        t.stderr().contains("removed a rotated file"),
        "{}",
        t.stderr()
    );
}

#[test]
fn without_the_option_rotated_files_stay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("app.log");
    append(&log, "app", 0..100);
    config(d, "");
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    let out = d.join("out.log");
    assert!(wait_until(Duration::from_secs(10), || {
        seq_counts(&fs::read(&out).unwrap_or_default(), "app").len() == 100
    }));
    fs::rename(&log, d.join("app.log.1")).unwrap();
    append(&log, "app", 100..200);
    t.wait_stderr("released file", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    t.stop();
    assert!(d.join("app.log.1").exists());
}
