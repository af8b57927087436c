//! One tailcar per checkpoint directory: an exclusive `flock` on `tailcar.lock` inside it, held
//! for the life of the process. Two tailcars sharing a directory would each overwrite the
//! other's `checkpoints.json`, and the loser would re-send everything at its next start; the
//! second one is refused instead, with the holder's pid. The kernel releases the lock when the
//! process dies, however it dies (SIGKILL included), so a stale lock file never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

const LOCK_FILE: &str = "tailcar.lock";

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Creates `dir` if needed and takes its lock, writing this process's pid into the lock
    /// file. The error says who holds it, or why the file could not be locked.
    pub fn acquire(dir: &Path) -> Result<DirLock, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("another tailcar (pid {holder})")
                };
                return Err(format!(
                    "{} is in use by {who}: every tailcar needs its own checkpoint_dir, or the \
                     two overwrite each other's positions",
                    dir.display()
                ));
            }
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
        // Ours now: say who holds it.
        let pid = std::process::id();
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{pid}"));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "cannot write the pid into the lock file: {e}");
        }
        Ok(DirLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// The directory this lock holds.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(d.path()).unwrap();
        // A second open file description in the same process conflicts like another process.
        let e = DirLock::acquire(d.path()).unwrap_err();
        assert!(
            e.contains(&format!("another tailcar (pid {})", std::process::id())),
            "{e}"
        );
        drop(first);
        assert!(DirLock::acquire(d.path()).is_ok());
    }
}
