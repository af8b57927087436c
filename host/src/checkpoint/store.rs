//! The checkpoint file: where committed offsets survive restarts.
//!
//! One JSON file, `checkpoints.json`, in the checkpoint directory, holding one [`Entry`] per
//! known file. It is replaced atomically: written to a temporary file in the same directory,
//! fsynced, renamed over the old one, and the directory fsynced, so a crash at any point leaves
//! either the old or the new file whole. A file that cannot be parsed is reported with its path,
//! moved aside (kept for inspection) and treated as empty, so tailcar starts from the configured
//! start position rather than crash-looping.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "checkpoints.json";
const FORMAT_VERSION: u32 = 1;

/// The persisted position of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub stream: String,
    /// The path the file was last seen at (informational; identity is device, inode and
    /// fingerprint). A path that is not UTF-8 is kept as its bytes (a JSON array).
    #[serde(with = "path_bytes")]
    pub path: PathBuf,
    pub dev: u64,
    pub inode: u64,
    #[serde(with = "hex_u64")]
    pub fingerprint: u64,
    pub fingerprint_len: u32,
    /// Offset just past the last acknowledged line.
    pub offset: u64,
    /// xxh3 of the up to 1 KiB before `offset` (`tail_len` 0: not known, as in checkpoints
    /// written before it was kept): a file whose bytes there differ is not this one.
    #[serde(default, with = "hex_u64")]
    pub tail_hash: u64,
    #[serde(default)]
    pub tail_len: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    files: Vec<Entry>,
}

/// Reads and writes `checkpoints.json` in one directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// A store in `dir`, creating the directory if needed.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating checkpoint directory {}", dir.display()))?;
        Ok(CheckpointStore {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// When the checkpoint file was last written: anything written to a watched file after it
    /// may not be shipped yet.
    pub fn written_at(&self) -> Option<std::time::SystemTime> {
        fs::metadata(self.path()).and_then(|m| m.modified()).ok()
    }

    /// The stored entries. A missing file is an empty store; a corrupt one is logged with its
    /// path, renamed to `checkpoints.json.corrupt-<unix seconds>`, and treated as empty.
    pub fn load(&self) -> Vec<Entry> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e,
                    "cannot read the checkpoint file; starting every file from its configured start position");
                return Vec::new();
            }
        };
        match parse(&bytes) {
            Ok(entries) => entries,
            Err(reason) => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let aside = self.dir.join(format!("{FILE_NAME}.corrupt-{secs}"));
                let moved = fs::rename(&path, &aside).is_ok();
                tracing::error!(
                    path = %path.display(),
                    %reason,
                    kept_as = %if moved { aside.display().to_string() } else { "(could not move it)".into() },
                    "corrupt checkpoint file; starting every file from its configured start position"
                );
                Vec::new()
            }
        }
    }

    /// Replaces the stored entries atomically.
    pub fn write(&self, entries: &[Entry]) -> Result<()> {
        let path = self.path();
        let tmp = self.dir.join(format!(".{FILE_NAME}.tmp"));
        let doc = FileFormat {
            version: FORMAT_VERSION,
            files: entries.to_vec(),
        };
        let mut body = serde_json::to_vec_pretty(&doc).context("encoding checkpoints")?;
        body.push(b'\n');
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            // Make the rename itself durable.
            File::open(&self.dir)?.sync_all()
        };
        write().with_context(|| format!("writing checkpoint file {}", path.display()))
    }
}

fn parse(bytes: &[u8]) -> std::result::Result<Vec<Entry>, String> {
    let doc: FileFormat = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if doc.version != FORMAT_VERSION {
        return Err(format!(
            "unsupported checkpoint format version {}",
            doc.version
        ));
    }
    Ok(doc.files)
}

/// A path as a JSON string when it is UTF-8, else as the array of its bytes: file names are
/// bytes, and a checkpoint must not fail (or lie) because one is not text.
mod path_bytes {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        match p.to_str() {
            Some(text) => s.serialize_str(text),
            None => s.collect_seq(p.as_os_str().as_bytes()),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        Ok(match Form::deserialize(d)? {
            Form::Text(t) => PathBuf::from(t),
            Form::Bytes(b) => PathBuf::from(OsString::from_vec(b)),
        })
    }
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_is_not_utf8_round_trips_as_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let mut odd = entry(7);
        odd.path = PathBuf::from(std::ffi::OsStr::from_bytes(b"/logs/caf\xe9.log"));
        store.write(&[entry(5), odd.clone()]).unwrap();
        assert_eq!(store.load(), vec![entry(5), odd]);
    }

    fn entry(offset: u64) -> Entry {
        Entry {
            stream: "access".into(),
            path: "/var/log/app/access.log".into(),
            dev: 2049,
            inode: 1234,
            fingerprint: u64::MAX - 3,
            fingerprint_len: 1024,
            offset,
            tail_hash: 0,
            tail_len: 0,
        }
    }

    #[test]
    fn round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(&dir.path().join("nested/.tailcar")).unwrap();
        assert!(store.load().is_empty());
        store.write(&[entry(10)]).unwrap();
        store.write(&[entry(20), entry(30)]).unwrap();
        assert_eq!(store.load(), vec![entry(20), entry(30)]);
        let names: Vec<_> = fs::read_dir(store.dir.clone())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(FILE_NAME)],
            "no temporary file left behind"
        );
    }

    #[test]
    fn corrupt_file_is_moved_aside_and_treated_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.write(&[entry(10)]).unwrap();
        let body = fs::read(store.path()).unwrap();
        fs::write(store.path(), &body[..body.len() / 2]).unwrap(); // truncated mid-write
        assert!(store.load().is_empty());
        assert!(!store.path().exists());
        let aside = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.starts_with("checkpoints.json.corrupt-"));
        assert!(aside.is_some(), "the corrupt file is kept for inspection");
    }

    #[test]
    fn rejects_unknown_version() {
        let err = parse(br#"{"version": 99, "files": []}"#).unwrap_err();
        assert!(err.contains("version 99"), "{err}");
    }
}
