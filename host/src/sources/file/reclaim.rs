//! The disk budget of the shared `emptyDir`. A streaming sidecar keeps a second copy of the logs
//! on the node only as long as the files stay; the kubelet evicts a pod whose `emptyDir` passes
//! its `sizeLimit`. Two ways to give the space back, each only for bytes every sink has
//! acknowledged:
//!
//! - `remove_rotated_after_ship`: a rotated file (renamed away from the stream's paths, or the
//!   copy a copytruncate left) is deleted once tailcar has released it (read to its end and quiet
//!   for `rotate_wait`) and its whole size is acknowledged. It is found again by inode and
//!   fingerprint before anything is deleted, and a path the stream still tails is never deleted.
//! - `reclaim: punch_holes`: for files the application only appends to, the disk blocks of the
//!   acknowledged prefix are freed with `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`
//!   (tmpfs, ext4, xfs, btrfs): the file keeps its size and the application its offset; reading
//!   the prefix gives zeros. The first 4 KiB are kept, so the file's fingerprint (its first
//!   1 KiB) and with it tailcar's rotation and truncation detection are unaffected.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::discover::PathSet;
use super::identity::{self, DevIno};
use super::tailed::TailedFile;
use crate::checkpoint::{FileId, Ledger};
use crate::stats::StreamStats;

/// How a stream gives disk space back while files stay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reclaim {
    /// Leave files as they are.
    #[default]
    None,
    /// Free the blocks of the acknowledged prefix of each file.
    PunchHoles,
}

/// Bytes at the start of a file never punched: they hold the fingerprint.
const KEEP: u64 = 4096;
/// Punch only when at least this much more can be freed (few syscalls, whole blocks).
const MIN_PUNCH: u64 = 1 << 20;

/// One stream's reclaiming state.
#[derive(Debug)]
pub struct Reclaimer {
    remove_rotated: bool,
    punch: bool,
    /// How far each file has been punched.
    punched: HashMap<FileId, u64>,
    /// Files that could not be removed (not tried again).
    unremovable: std::collections::HashSet<FileId>,
}

impl Reclaimer {
    pub fn new(remove_rotated: bool, reclaim: Reclaim) -> Self {
        Reclaimer {
            remove_rotated,
            punch: reclaim == Reclaim::PunchHoles,
            punched: HashMap::new(),
            unremovable: Default::default(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.remove_rotated || self.punch
    }

    /// Frees what can be freed now.
    pub fn run(
        &mut self,
        stream: &Arc<str>,
        paths: &PathSet,
        files: &[TailedFile],
        ledger: &Ledger,
        stats: &StreamStats,
    ) {
        if self.punch {
            self.punch_holes(stream, files, ledger, stats);
        }
        if self.remove_rotated {
            self.remove_shipped(stream, paths, files, ledger, stats);
        }
    }

    fn punch_holes(
        &mut self,
        stream: &Arc<str>,
        files: &[TailedFile],
        ledger: &Ledger,
        stats: &StreamStats,
    ) {
        self.punched
            .retain(|id, _| files.iter().any(|f| f.id == *id));
        for f in files {
            let Some(committed) = ledger.committed(f.id) else {
                continue;
            };
            let from = *self.punched.get(&f.id).unwrap_or(&KEEP);
            let to = committed / KEEP * KEEP;
            if to < from + MIN_PUNCH {
                continue;
            }
            match punch(f, from, to) {
                Ok(()) => {
                    self.punched.insert(f.id, to);
                    StreamStats::add(&stats.bytes_reclaimed, to - from);
                }
                Err(e) => {
                    tracing::warn!(
                        %stream,
                        path = %f.source.path.display(),
                        "cannot punch holes ({e}); reclaim: punch_holes is off for this stream"
                    );
                    self.punch = false;
                    return;
                }
            }
        }
    }

    /// Deletes released files whose whole size is acknowledged.
    fn remove_shipped(
        &mut self,
        stream: &Arc<str>,
        paths: &PathSet,
        files: &[TailedFile],
        ledger: &Ledger,
        stats: &StreamStats,
    ) {
        for (id, key, path, committed) in ledger.released(stream) {
            if files.iter().any(|f| f.id == id) || self.unremovable.contains(&id) {
                continue;
            }
            let dir = path.parent().unwrap_or(Path::new("."));
            let di = DevIno {
                dev: key.dev,
                inode: key.inode,
            };
            let Some((found, file)) =
                identity::find_in_dir(dir, Some(di), key.fingerprint, key.fingerprint_len, 0, None)
            else {
                continue; // Gone already (pruned later) or not found: nothing to do.
            };
            let Ok(meta) = file.metadata() else { continue };
            if meta.len() != committed || paths.matches_path(&found) {
                continue; // Not all acknowledged yet, or a path the stream tails.
            }
            match std::fs::remove_file(&found) {
                Ok(()) => {
                    tracing::info!(%stream, path = %found.display(), bytes = meta.len(), "removed a rotated file: every line of it was shipped and acknowledged");
                    StreamStats::add(&stats.files_removed, 1);
                    ledger.forget(id);
                }
                Err(e) => {
                    tracing::warn!(%stream, path = %found.display(), "cannot remove a shipped rotated file: {e}");
                    self.unremovable.insert(id);
                }
            }
        }
    }
}

/// Frees the blocks of `[from, to)` of `f`, through a write descriptor opened on the same inode
/// (the tailer's own is read-only; `/proc/self/fd` reaches the file even after a rename).
fn punch(f: &TailedFile, from: u64, to: u64) -> std::io::Result<()> {
    let proc_path = format!("/proc/self/fd/{}", f.file().as_raw_fd());
    let w = std::fs::OpenOptions::new().write(true).open(proc_path)?;
    rustix::fs::fallocate(
        &w,
        rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
        from,
        to - from,
    )?;
    Ok(())
}
