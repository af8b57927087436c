//! File identity: device and inode, plus a fingerprint of the file's first bytes.
//!
//! Device and inode say which file a path points at now; the fingerprint (xxh3 of the first
//! `min(size, FINGERPRINT_MAX)` bytes) tells a reused inode from the file that had it before, and
//! finds a `copytruncate` copy (same first bytes, another inode). There is no minimum size: an
//! empty file has an empty fingerprint that grows with the file up to [`FINGERPRINT_MAX`], so a
//! file of one short line is tailed and checkpointed like any other.
//!
//! A [`tail`] (xxh3 of the up to [`TAIL_MAX`] bytes just before an offset) says whether the
//! bytes read up to that offset are still there: it is kept with each checkpoint, so a new file
//! on a reused inode that starts with the same bytes (a banner, a CSV header) is not taken for
//! the old one, and with each batch read, so a file cut to a shorter length is noticed even when
//! it has grown back past the read position before tailcar looks. What can still fool it: a new
//! file (or a rewritten part) whose bytes are identical to the old ones both in its first KiB and
//! in the KiB before the checkpoint, at the same offsets. (The window is a KiB, not a few
//! bytes, because log lines often end alike: a user agent, a status, a common suffix.)

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How many leading bytes the fingerprint covers once the file is that large.
pub const FINGERPRINT_MAX: u32 = 1024;

/// Device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DevIno {
    pub dev: u64,
    pub inode: u64,
}

impl DevIno {
    pub fn of(meta: &Metadata) -> Self {
        DevIno {
            dev: meta.dev(),
            inode: meta.ino(),
        }
    }
}

/// The hash of the first `len` bytes of `file`, or `None` if the file is shorter than `len`.
pub fn fingerprint(file: &File, len: u32) -> io::Result<Option<u64>> {
    let mut buf = [0u8; FINGERPRINT_MAX as usize];
    let want = (len.min(FINGERPRINT_MAX)) as usize;
    let mut got = 0;
    while got < want {
        let n = file.read_at(&mut buf[got..want], got as u64)?;
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    Ok(Some(xxhash_rust::xxh3::xxh3_64(&buf[..want])))
}

/// A number for this file's whole life and no other's: its device, inode and birth time
/// (`statx`'s `btime`) hashed. `None` where the filesystem keeps no birth time: a reused inode
/// could not be told apart by it.
pub fn life_id(file: &File, di: DevIno) -> Option<u64> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let st = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::BTIME).ok()?;
    if st.stx_mask & StatxFlags::BTIME.bits() == 0 {
        return None;
    }
    let mut bytes = [0u8; 28];
    bytes[..8].copy_from_slice(&di.dev.to_le_bytes());
    bytes[8..16].copy_from_slice(&di.inode.to_le_bytes());
    bytes[16..24].copy_from_slice(&st.stx_btime.tv_sec.to_le_bytes());
    bytes[24..].copy_from_slice(&st.stx_btime.tv_nsec.to_le_bytes());
    Some(xxhash_rust::xxh3::xxh3_64(&bytes))
}

/// How many bytes before an offset its [`tail`] covers.
pub const TAIL_MAX: u32 = 1024;

/// The hash of the up to [`TAIL_MAX`] bytes just before `offset`, as `(hash, len)` (`len` 0
/// at offset 0), or `None` when the file is now shorter than `offset`.
pub fn tail(file: &File, offset: u64) -> io::Result<Option<(u64, u32)>> {
    let len = offset.min(TAIL_MAX as u64) as u32;
    let mut buf = [0u8; TAIL_MAX as usize];
    let want = len as usize;
    let mut got = 0;
    while got < want {
        let n = file.read_at(&mut buf[got..want], offset - len as u64 + got as u64)?;
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    Ok(Some((xxhash_rust::xxh3::xxh3_64(&buf[..want]), len)))
}

/// The fingerprint length to use for a file of `size` bytes.
pub fn fingerprint_len(size: u64) -> u32 {
    size.min(FINGERPRINT_MAX as u64) as u32
}

/// Computes the fingerprint of `file` at its current size: `(hash, len)`.
pub fn current_fingerprint(file: &File, size: u64) -> io::Result<(u64, u32)> {
    // The file may shrink between the stat and the read: retry with the new size.
    let mut len = fingerprint_len(size);
    loop {
        match fingerprint(file, len)? {
            Some(h) => return Ok((h, len)),
            None => len = fingerprint_len(file.metadata()?.len()),
        }
    }
}

/// Whether `file` still starts with the bytes fingerprinted as `(hash, len)`.
pub fn matches(file: &File, hash: u64, len: u32) -> io::Result<bool> {
    Ok(fingerprint(file, len)? == Some(hash))
}

/// The directories where the file at `path` may have been rotated to: the path's own
/// directory and, when the path is a symlink (the kubelet's `/var/log/containers/*.log` point
/// into `/var/log/pods/.../0.log`), the directory of the file it points at, where the kubelet
/// and logrotate rename and copy it.
pub fn homes(path: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![path.parent().unwrap_or(Path::new(".")).to_path_buf()];
    if let Ok(real) = std::fs::canonicalize(path)
        && let Some(dir) = real.parent()
        && !dirs.iter().any(|d| d == dir)
    {
        dirs.push(dir.to_path_buf());
    }
    dirs
}

/// [`find_in_dir`] over each of `dirs`: the file with inode `id` wherever it is, else the first
/// copy found.
pub fn find_in_dirs(
    dirs: &[PathBuf],
    id: Option<DevIno>,
    hash: u64,
    len: u32,
    min_size: u64,
    skip: Option<DevIno>,
) -> Option<(PathBuf, File)> {
    let mut copy = None;
    for dir in dirs {
        let Some((path, file)) = find_in_dir(dir, id, hash, len, min_size, skip) else {
            continue;
        };
        let same = file.metadata().is_ok_and(|m| Some(DevIno::of(&m)) == id);
        if same {
            return Some((path, file));
        }
        copy.get_or_insert((path, file));
    }
    copy
}

/// Looks in `dir` for the file a checkpoint entry describes: first the same device and inode
/// with the same fingerprint (a renamed file), else another file with the same fingerprint and
/// at least `min_size` bytes (a `copytruncate` copy), the most recently modified first.
/// `skip` excludes one inode (the truncated original when looking for its copy).
pub fn find_in_dir(
    dir: &Path,
    id: Option<DevIno>,
    hash: u64,
    len: u32,
    min_size: u64,
    skip: Option<DevIno>,
) -> Option<(PathBuf, File)> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut copies: Vec<(std::time::SystemTime, PathBuf, File)> = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || Some(DevIno::of(&meta)) == skip {
            continue;
        }
        let same_inode = Some(DevIno::of(&meta)) == id;
        if !same_inode && meta.len() < min_size.max(len as u64) {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if !matches(&file, hash, len).unwrap_or(false) {
            continue;
        }
        if same_inode {
            return Some((path, file));
        }
        copies.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), path, file));
    }
    copies.sort_by_key(|c| std::cmp::Reverse(c.0));
    copies.into_iter().next().map(|(_, p, f)| (p, f))
}

/// Endings of compressed rotations: their bytes are not lines (and were read before they were
/// compressed).
const COMPRESSED: [&str; 6] = [".gz", ".zst", ".bz2", ".xz", ".lz4", ".zip"];

/// Rotated siblings of `path` modified at or after `since`: in each of its [`homes`], the
/// regular files named like it plus a `.` or `-` suffix (`app.log.1`, `app.log-20250101`,
/// `0.log.20250101-120000` beside a symlink's target), not compressed, oldest first.
pub fn rotated_since(path: &Path, since: std::time::SystemTime) -> Vec<(PathBuf, DevIno)> {
    let real = std::fs::canonicalize(path).ok();
    let mut names: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for p in std::iter::once(path).chain(real.as_deref()) {
        use std::os::unix::ffi::OsStrExt;
        if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
            let pair = (dir.to_path_buf(), name.as_bytes().to_vec());
            if !names.contains(&pair) {
                names.push(pair);
            }
        }
    }
    let mut found: Vec<(std::time::SystemTime, PathBuf, DevIno)> = Vec::new();
    for (dir, name) in names {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            use std::os::unix::ffi::OsStrExt;
            let file_name = entry.file_name();
            let bytes = file_name.as_bytes();
            let sibling = bytes.len() > name.len() + 1
                && bytes.starts_with(&name)
                && matches!(bytes[name.len()], b'.' | b'-')
                && !COMPRESSED.iter().any(|c| bytes.ends_with(c.as_bytes()));
            if !sibling {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let Ok(modified) = meta.modified() else {
                continue;
            };
            let di = DevIno::of(&meta);
            if meta.is_file() && modified >= since && !found.iter().any(|f| f.2 == di) {
                found.push((modified, entry.path(), di));
            }
        }
    }
    found.sort_by_key(|f| f.0);
    found.into_iter().map(|(_, p, di)| (p, di)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rotated_siblings_since_a_time_skip_older_compressed_and_other_files() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        std::fs::write(p("app.log.3"), "old\n").unwrap();
        let old = std::fs::File::options()
            .write(true)
            .open(p("app.log.3"))
            .unwrap();
        old.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000))
            .unwrap();
        let since = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for n in [
            "app.log",
            "app.log.1",
            "app.log-2",
            "app.log.2.gz",
            "app.logger",
            "other.log.1",
        ] {
            std::fs::write(p(n), "x\n").unwrap();
        }
        let found: Vec<String> = rotated_since(&p("app.log"), since)
            .into_iter()
            .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut sorted = found.clone();
        sorted.sort();
        assert_eq!(sorted, ["app.log-2", "app.log.1"], "{found:?}");
    }

    #[test]
    fn fingerprint_covers_short_files_and_grows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"x\n").unwrap();
        let f = File::open(&p).unwrap();
        let (h, len) = current_fingerprint(&f, 2).unwrap();
        assert_eq!(len, 2, "a one-line file is fingerprinted, no minimum size");
        assert!(matches(&f, h, len).unwrap());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&[b'y'; 5000])
            .unwrap();
        assert!(
            matches(&f, h, len).unwrap(),
            "appending keeps the short fingerprint valid"
        );
        let (h2, len2) = current_fingerprint(&f, 5002).unwrap();
        assert_eq!(len2, FINGERPRINT_MAX);
        assert_ne!(h, h2);
    }

    #[test]
    fn fingerprint_detects_rewritten_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"line 1\nline 2\n").unwrap();
        let f = File::open(&p).unwrap();
        let (h, len) = current_fingerprint(&f, 14).unwrap();
        std::fs::write(&p, b"line 9\nline 2\n").unwrap(); // same size, other bytes
        assert!(!matches(&f, h, len).unwrap());
        std::fs::write(&p, b"line").unwrap(); // shorter than the fingerprint
        assert_eq!(fingerprint(&f, len).unwrap(), None);
    }

    #[test]
    fn finds_renamed_file_and_copies() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("app.log");
        std::fs::write(&live, b"first line\nsecond line\n").unwrap();
        let f = File::open(&live).unwrap();
        let id = DevIno::of(&f.metadata().unwrap());
        let (h, len) = current_fingerprint(&f, 23).unwrap();
        std::fs::rename(&live, dir.path().join("app.log.1")).unwrap();
        let (found, _) = find_in_dir(dir.path(), Some(id), h, len, 0, None).unwrap();
        assert_eq!(found, dir.path().join("app.log.1"));
        // copytruncate: a copy with the same first bytes, the original emptied.
        std::fs::rename(dir.path().join("app.log.1"), &live).unwrap();
        std::fs::copy(&live, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&live, b"").unwrap();
        let (found, _) = find_in_dir(dir.path(), None, h, len, 23, Some(id)).unwrap();
        assert_eq!(found, dir.path().join("app.log.1"));
        assert!(
            find_in_dir(dir.path(), None, h, len, 24, Some(id)).is_none(),
            "copy too short"
        );
    }
}
