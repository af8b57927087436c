//! The acknowledgement ledger: turns out-of-order batch completions into committed offsets.
//!
//! Every tailed file has an entry, keyed by stream and file identity ([`FileKey`]). The tailer
//! numbers the batches of a file in read order ([`Ledger::issue`]); completions may arrive in
//! any order (two sinks, retries), and the committed offset moves only across a contiguous run
//! of delivered batches. A batch whose ack was dropped without being resolved as delivered
//! (a sink gave up, the pipeline shut down before delivering it) stops its file's offset where
//! it is until the next start, when those lines are read again: at-least-once, never loss.
//!
//! Offsets may be persisted late (a stale offset only means lines sent again), but a file's
//! *identity* may not: a file the checkpoints do not know, rotated away while tailcar is dead,
//! is never found again. So a new entry or a longer fingerprint makes the ledger *urgent*: it
//! kicks the checkpoint writer, and the tailer waits ([`Ledger::wait_persisted`]) until the
//! identity is on disk before it reads the file further.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::store::Entry;

/// The identity of a file as the checkpoints know it: which stream reads it, its device and
/// inode, and a fingerprint of its first bytes (so that a reused inode is not mistaken for the
/// file that had it before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKey {
    pub stream: Arc<str>,
    pub dev: u64,
    pub inode: u64,
    /// xxh3 of the first `fingerprint_len` bytes.
    pub fingerprint: u64,
    pub fingerprint_len: u32,
}

/// The hash of the bytes just before an offset and how many there are (`len` 0: unknown);
/// see `sources::file::identity::tail`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tail {
    pub hash: u64,
    pub len: u32,
}

/// A handle on a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(u64);

#[derive(Debug)]
struct FileEntry {
    key: FileKey,
    path: PathBuf,
    /// Offset of the end of the last line every sink acknowledged.
    committed: u64,
    /// The bytes before `committed`, as the tailer read them.
    committed_tail: Tail,
    /// Sequence number of the next batch to be committed.
    next_seq: u64,
    /// Sequence number the next issued batch gets.
    issued: u64,
    /// Offset of the last issued batch (to report what is in flight).
    issued_offset: u64,
    /// Completed batches waiting for an earlier one: seq -> end offset and its tail.
    done: BTreeMap<u64, (u64, Tail)>,
    /// A batch was dropped undelivered: the offset cannot advance any more in this run.
    stalled: bool,
    /// The tailer let go of the file (rotated away and read, or not yet claimed after a start).
    released: bool,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<FileId, FileEntry>,
    next_id: u64,
    /// Bumped on every change that alters what would be persisted.
    version: u64,
}

/// What is still in flight for one file, for the shutdown report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub path: PathBuf,
    pub committed: u64,
    pub issued: u64,
}

/// Shared between the tailers (which issue acks), the sinks (which resolve them) and the
/// checkpoint writer (which persists snapshots).
#[derive(Debug, Default)]
pub struct Ledger {
    state: Mutex<State>,
    /// The checkpoint writer's wake-up, when one runs (identity changes kick it).
    kick: Mutex<Option<crossbeam_channel::Sender<()>>>,
    /// The last version written to disk, and its waiters.
    persisted: Mutex<u64>,
    persisted_cv: std::sync::Condvar,
    /// When the loaded checkpoint file was written (`None`: no file, nothing loaded).
    loaded_at: Option<std::time::SystemTime>,
}

impl Ledger {
    /// A ledger holding the entries loaded from a checkpoint file, all released (unclaimed) until
    /// a tailer finds their file again.
    pub fn new(loaded: Vec<Entry>) -> Arc<Self> {
        Self::loaded_at(loaded, None)
    }

    /// [`Ledger::new`], remembering when the checkpoint file was written (see
    /// [`Ledger::checkpoint_time`]).
    pub fn loaded_at(loaded: Vec<Entry>, written: Option<std::time::SystemTime>) -> Arc<Self> {
        let ledger = Ledger {
            loaded_at: written,
            ..Ledger::default()
        };
        {
            let mut st = ledger.lock();
            for e in loaded {
                let id = FileId(st.next_id);
                st.next_id += 1;
                let key = FileKey {
                    stream: e.stream.as_str().into(),
                    dev: e.dev,
                    inode: e.inode,
                    fingerprint: e.fingerprint,
                    fingerprint_len: e.fingerprint_len,
                };
                let mut entry = FileEntry::new(key, e.path, e.offset, true);
                entry.committed_tail = Tail {
                    hash: e.tail_hash,
                    len: e.tail_len,
                };
                st.files.insert(id, entry);
            }
        }
        Arc::new(ledger)
    }

    /// When the checkpoint this run started from was written: a file written after it that no
    /// entry names was never seen (created and rotated away while tailcar was stopped).
    pub fn checkpoint_time(&self) -> Option<std::time::SystemTime> {
        self.loaded_at
    }

    /// Attaches the checkpoint writer: identity changes wake it through `kick`.
    pub fn attach_writer(&self, kick: crossbeam_channel::Sender<()>) {
        *self.kick.lock().unwrap_or_else(|e| e.into_inner()) = Some(kick);
    }

    /// The writer persisted `version`.
    pub fn set_persisted(&self, version: u64) {
        let mut p = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        *p = (*p).max(version);
        self.persisted_cv.notify_all();
    }

    /// An identity changed (a new entry, a longer fingerprint): wake the writer now. Returns
    /// the version to wait for, `None` when no writer runs (nothing is persisted).
    fn urgent(&self, version: u64) -> Option<u64> {
        let kick = self.kick.lock().unwrap_or_else(|e| e.into_inner());
        let tx = kick.as_ref()?;
        let _ = tx.try_send(());
        Some(version)
    }

    /// Waits (at most `timeout`) until `version` is on disk; returns whether it is.
    pub fn wait_persisted(&self, version: Option<u64>, timeout: std::time::Duration) -> bool {
        let Some(version) = version else {
            return true;
        };
        let p = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        let (p, _) = self
            .persisted_cv
            .wait_timeout_while(p, timeout, |p| *p < version)
            .unwrap_or_else(|e| e.into_inner());
        *p >= version
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is one statement
        // group with no await points); keep going rather than cascade the panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries of `stream` for `(dev, inode)`: candidates for a file the tailer just found. The
    /// caller checks the fingerprint and then calls [`Ledger::claim`] or [`Ledger::register`].
    pub fn candidates(&self, stream: &str, dev: u64, inode: u64) -> Vec<(FileId, FileKey, u64)> {
        let st = self.lock();
        let mut v: Vec<_> = st
            .files
            .iter()
            .filter(|(_, f)| f.key.dev == dev && f.key.inode == inode && &*f.key.stream == stream)
            .map(|(id, f)| (*id, f.key.clone(), f.committed))
            .collect();
        v.sort_by_key(|(id, _, _)| *id);
        v
    }

    /// Released entries of `stream`: the files a previous run (or this one) let go of.
    pub fn released(&self, stream: &str) -> Vec<(FileId, FileKey, PathBuf, u64)> {
        let st = self.lock();
        let mut v: Vec<_> = st
            .files
            .iter()
            .filter(|(_, f)| f.released && &*f.key.stream == stream)
            .map(|(id, f)| (*id, f.key.clone(), f.path.clone(), f.committed))
            .collect();
        v.sort_by_key(|(id, _, _, _)| *id);
        v
    }

    /// The bytes before `id`'s committed offset, as read when they were (`len` 0: unknown).
    pub fn committed_tail(&self, id: FileId) -> Tail {
        self.lock()
            .files
            .get(&id)
            .map(|f| f.committed_tail)
            .unwrap_or_default()
    }

    /// Takes up an existing entry again (the tailer found its file): returns its committed offset.
    pub fn claim(&self, id: FileId, path: &Path) -> u64 {
        let mut st = self.lock();
        st.version += 1;
        let f = st.files.get_mut(&id).expect("claimed ledger entry exists");
        f.released = false;
        f.stalled = false;
        f.path = path.to_path_buf();
        // Batches still in flight from an earlier claim no longer count: reading restarts at the
        // committed offset, so they will be read (and delivered) again.
        f.next_seq = f.issued;
        f.done.clear();
        f.committed
    }

    /// Creates an entry for a file with no usable checkpoint, committed at `offset`. Other
    /// entries for the same inode are left alone: one may describe content that now lives in a
    /// `copytruncate` copy, which recovery still reads; recovery and pruning forget the rest.
    /// Returns the entry and the version to [`Ledger::wait_persisted`] for before reading.
    pub fn register(&self, key: FileKey, path: &Path, offset: u64) -> (FileId, Option<u64>) {
        let (id, version) = {
            let mut st = self.lock();
            let id = FileId(st.next_id);
            st.next_id += 1;
            st.version += 1;
            st.files
                .insert(id, FileEntry::new(key, path.to_path_buf(), offset, false));
            (id, st.version)
        };
        (id, self.urgent(version))
    }

    /// Records a longer fingerprint for a file that has grown past its first one; returns the
    /// version to [`Ledger::wait_persisted`] for.
    pub fn update_fingerprint(&self, id: FileId, fingerprint: u64, len: u32) -> Option<u64> {
        let version = {
            let mut st = self.lock();
            let f = st.files.get_mut(&id)?;
            f.key.fingerprint = fingerprint;
            f.key.fingerprint_len = len;
            st.version += 1;
            st.version
        };
        self.urgent(version)
    }

    /// The tailer let go of the file. Its entry stays (so a restart does not read it again) until
    /// [`Ledger::forget`].
    pub fn release(&self, id: FileId) {
        let mut st = self.lock();
        if let Some(f) = st.files.get_mut(&id) {
            f.released = true;
            st.version += 1;
        }
    }

    /// Removes an entry whose file no longer exists.
    pub fn forget(&self, id: FileId) {
        let mut st = self.lock();
        if st.files.remove(&id).is_some() {
            st.version += 1;
        }
    }

    /// An ack for the next batch of file `id`, which ends at `offset` (its tail unknown).
    pub fn issue(self: &Arc<Self>, id: FileId, offset: u64) -> Ack {
        self.issue_with_tail(id, offset, Tail::default())
    }

    /// An ack for the next batch of file `id`, which ends at `offset` preceded by `tail`.
    pub fn issue_with_tail(self: &Arc<Self>, id: FileId, offset: u64, tail: Tail) -> Ack {
        let seq = {
            let mut st = self.lock();
            let f = st
                .files
                .get_mut(&id)
                .expect("issuing for a registered file");
            let seq = f.issued;
            f.issued += 1;
            f.issued_offset = offset;
            seq
        };
        Ack {
            inner: Arc::new(AckInner {
                ledger: Arc::clone(self),
                file: id,
                seq,
                offset,
                tail,
                failed: AtomicBool::new(false),
            }),
            resolved: false,
        }
    }

    fn complete(&self, id: FileId, seq: u64, offset: u64, tail: Tail, delivered: bool) {
        let mut st = self.lock();
        let Some(f) = st.files.get_mut(&id) else {
            return;
        };
        if f.stalled || seq < f.next_seq {
            return;
        }
        if !delivered {
            f.stalled = true;
            tracing::error!(
                path = %f.path.display(),
                committed = f.committed,
                "a batch was not delivered; this file's checkpoint stays at the committed offset \
                 for the rest of this run, and the lines after it are read again on restart"
            );
            f.done.clear();
            return;
        }
        f.done.insert(seq, (offset, tail));
        let mut advanced = false;
        while let Some((off, tail)) = f.done.remove(&f.next_seq) {
            f.committed = off;
            f.committed_tail = tail;
            f.next_seq += 1;
            advanced = true;
        }
        if advanced {
            st.version += 1;
        }
    }

    /// The committed offset of `id`.
    pub fn committed(&self, id: FileId) -> Option<u64> {
        self.lock().files.get(&id).map(|f| f.committed)
    }

    /// A counter that changes whenever a snapshot would differ.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// Everything to persist, with the version it reflects.
    pub fn snapshot(&self) -> (u64, Vec<Entry>) {
        let st = self.lock();
        let mut ids: Vec<_> = st.files.keys().copied().collect();
        ids.sort();
        let entries = ids
            .iter()
            .map(|id| {
                let f = &st.files[id];
                Entry {
                    stream: f.key.stream.to_string(),
                    path: f.path.clone(),
                    dev: f.key.dev,
                    inode: f.key.inode,
                    fingerprint: f.key.fingerprint,
                    fingerprint_len: f.key.fingerprint_len,
                    offset: f.committed,
                    tail_hash: f.committed_tail.hash,
                    tail_len: f.committed_tail.len,
                }
            })
            .collect();
        (st.version, entries)
    }

    /// Files with batches issued but not yet committed.
    pub fn in_flight(&self) -> Vec<InFlight> {
        let st = self.lock();
        st.files
            .values()
            .filter(|f| f.next_seq < f.issued)
            .map(|f| InFlight {
                path: f.path.clone(),
                committed: f.committed,
                issued: f.issued_offset,
            })
            .collect()
    }
}

impl FileEntry {
    fn new(key: FileKey, path: PathBuf, offset: u64, released: bool) -> Self {
        FileEntry {
            key,
            path,
            committed: offset,
            committed_tail: Tail::default(),
            next_seq: 0,
            issued: 0,
            issued_offset: offset,
            done: BTreeMap::new(),
            stalled: false,
            released,
        }
    }
}

struct AckInner {
    ledger: Arc<Ledger>,
    file: FileId,
    seq: u64,
    offset: u64,
    tail: Tail,
    failed: AtomicBool,
}

impl Drop for AckInner {
    fn drop(&mut self) {
        let delivered = !self.failed.load(Ordering::Acquire);
        self.ledger
            .complete(self.file, self.seq, self.offset, self.tail, delivered);
    }
}

/// One share of a batch's acknowledgement. Every holder must call [`Ack::delivered`] once its
/// copy of the batch is safely delivered; dropping a share unresolved counts as a failure, so a
/// forgotten or abandoned batch can never advance a checkpoint. [`Ack::share`] makes a new
/// share for another holder (one per sink the batch is routed to).
pub struct Ack {
    inner: Arc<AckInner>,
    resolved: bool,
}

impl Ack {
    /// Another share of the same batch, to be resolved independently.
    pub fn share(&self) -> Ack {
        Ack {
            inner: Arc::clone(&self.inner),
            resolved: false,
        }
    }

    /// This holder's copy of the batch is delivered.
    pub fn delivered(mut self) {
        self.resolved = true;
    }

    /// The offset the batch ends at.
    pub fn offset(&self) -> u64 {
        self.inner.offset
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.resolved {
            self.inner.failed.store(true, Ordering::Release);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("seq", &self.inner.seq)
            .field("offset", &self.inner.offset)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(inode: u64) -> FileKey {
        FileKey {
            stream: "s".into(),
            dev: 1,
            inode,
            fingerprint: 7,
            fingerprint_len: 3,
        }
    }

    #[test]
    fn commits_only_contiguous_delivered_batches() {
        let l = Ledger::new(vec![]);
        let id = l.register(key(1), Path::new("/a"), 0).0;
        let a = l.issue(id, 10);
        let b = l.issue(id, 20);
        let c = l.issue(id, 30);
        c.delivered();
        assert_eq!(l.committed(id), Some(0), "batch 3 done but 1 and 2 are not");
        a.delivered();
        assert_eq!(l.committed(id), Some(10));
        b.delivered();
        assert_eq!(l.committed(id), Some(30));
        assert!(l.in_flight().is_empty());
    }

    #[test]
    fn every_share_must_be_delivered() {
        let l = Ledger::new(vec![]);
        let id = l.register(key(1), Path::new("/a"), 0).0;
        let a = l.issue(id, 10);
        let s1 = a.share();
        let s2 = a.share();
        a.delivered();
        s1.delivered();
        assert_eq!(l.committed(id), Some(0), "one sink has not delivered yet");
        assert_eq!(l.in_flight().len(), 1);
        s2.delivered();
        assert_eq!(l.committed(id), Some(10));
    }

    #[test]
    fn an_undelivered_batch_stalls_the_file() {
        let l = Ledger::new(vec![]);
        let id = l.register(key(1), Path::new("/a"), 0).0;
        let a = l.issue(id, 10);
        let b = l.issue(id, 20);
        let c = l.issue(id, 30);
        a.delivered();
        drop(b); // e.g. a sink gave up
        c.delivered();
        assert_eq!(l.committed(id), Some(10));
        l.issue(id, 40).delivered();
        assert_eq!(
            l.committed(id),
            Some(10),
            "nothing past the failed batch is committed"
        );
    }

    #[test]
    fn a_share_dropped_unresolved_is_a_failure_even_if_others_delivered() {
        let l = Ledger::new(vec![]);
        let id = l.register(key(1), Path::new("/a"), 5).0;
        let a = l.issue(id, 10);
        let s = a.share();
        a.delivered();
        drop(s);
        assert_eq!(l.committed(id), Some(5));
    }

    #[test]
    fn loaded_entries_are_candidates_until_claimed_or_forgotten() {
        let loaded = vec![Entry {
            stream: "s".into(),
            path: "/a".into(),
            dev: 1,
            inode: 9,
            fingerprint: 7,
            fingerprint_len: 3,
            tail_hash: 0,
            tail_len: 0,
            offset: 42,
        }];
        let l = Ledger::new(loaded);
        let c = l.candidates("s", 1, 9);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].2, 42);
        assert!(l.candidates("other", 1, 9).is_empty());
        assert_eq!(l.released("s").len(), 1);
        // Same inode, another fingerprint (inode reuse, or copytruncate while stopped): a new
        // entry; the old one stays for recovery to look for its copy.
        let mut k = key(9);
        k.fingerprint = 8;
        let id = l.register(k, Path::new("/a"), 0).0;
        assert_eq!(l.snapshot().1.len(), 2);
        assert_eq!(l.committed(id), Some(0));
        let (old, ..) = l.released("s")[0].clone();
        assert_eq!(l.claim(old, Path::new("/a.1")), 42);
        assert!(l.released("s").is_empty());
        l.forget(old);
        let (_, entries) = l.snapshot();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].fingerprint, 8);
    }

    #[test]
    fn a_reclaimed_entry_ignores_batches_of_its_earlier_claim() {
        let l = Ledger::new(vec![]);
        let id = l.register(key(1), Path::new("/a"), 0).0;
        let stale = l.issue(id, 10);
        drop(l.issue(id, 20)); // failed: the file stalls
        l.release(id);
        assert_eq!(l.claim(id, Path::new("/a")), 0);
        stale.delivered(); // from before the claim: ignored
        assert_eq!(l.committed(id), Some(0));
        l.issue(id, 10).delivered();
        assert_eq!(l.committed(id), Some(10), "the new claim commits again");
    }

    #[test]
    fn version_changes_when_offsets_move() {
        let l = Ledger::new(vec![]);
        let id = l.register(key(1), Path::new("/a"), 0).0;
        let v = l.version();
        let a = l.issue(id, 10);
        assert_eq!(l.version(), v, "issuing changes nothing persisted");
        a.delivered();
        assert!(l.version() > v);
    }
}
