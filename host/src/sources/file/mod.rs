//! The file source: tails the files of one stream and hands their lines, framed into batches,
//! each with its ack, to the [`Downstream`] it is given (the stream's pipeline, see
//! [`crate::stream`]). It knows files, frames and the ledger; nothing of transforms or sinks.
//!
//! One thread per stream runs [`FileSource::run`], so a stream whose sinks push back (the
//! downstream's send blocks) stops reading its own files and no one else's: the file on disk is
//! the buffer. The loop: rescan the paths (new files within [`SCAN_INTERVAL`]), check each open
//! file (truncation, fingerprint), read what is new in chunks, frame it, issue an ack per batch
//! and hand it on; let go of rotated files once read to their end and quiet for the rotate wait; then
//! sleep until a watcher wake-up, a poll tick, a multiline timeout or the next scan.
//!
//! Rotation, restart and truncation, with no line lost:
//! - rename + create: the old file stays open (the descriptor follows the inode) and is read to
//!   its end before it is released; a file rotated while tailcar was down is found again by its
//!   inode and fingerprint in the same directory and read from its checkpoint ([`recover`]).
//! - copytruncate: a shrunk file, or one whose first bytes changed, was truncated; the unread
//!   rest is read from the copy (found by fingerprint), then the file is read again from 0.
//! - deleted: read to its end, then released promptly so its disk space is freed.

pub mod discover;
pub mod framer;
pub mod identity;
pub mod multiline;
pub mod reclaim;
pub mod tailed;
pub mod watcher;

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::discover::PathSet;
use self::identity::DevIno;
use self::multiline::{Multiline, MultilineRule};
use self::tailed::{Check, FileState, ReadCounts, TailedFile};
use self::watcher::{Wake, Watcher};
use crate::checkpoint::{FileKey, Ledger};
use crate::event::{Batch, Source};
use crate::shutdown::Shutdown;
use crate::sources::Downstream;
use crate::stats::StreamStats;

/// How often the paths are expanded again to find new files.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// How often checkpoint entries of files that no longer exist are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(30);
/// A deleted file is released this long after its last byte at most.
const DELETED_WAIT: Duration = Duration::from_secs(1);
/// Shortest sleep between two rounds waiting for a rotated file to be released.
const MIN_WAIT: Duration = Duration::from_millis(10);
/// How often a stream whose paths match nothing says it is still waiting.
const WAITING_EVERY: Duration = Duration::from_secs(60);
/// Longest a tailer waits for a new file's identity to reach the checkpoint file before it
/// reads the file anyway (the write is normally a few milliseconds away).
const PERSIST_WAIT: Duration = Duration::from_secs(2);
/// Chunks read from one file before the others get a turn.
const CHUNKS_PER_TURN: usize = 32;

/// Where reading starts in a file that has no checkpoint and was there when tailcar started.
/// Files that appear later are always read from their beginning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// From the first byte, like `tail -n+1` (the sidecar default).
    #[default]
    Beginning,
    /// From the current end, like `tail -n0`.
    End,
}

/// Everything the tailer of one stream needs, validated.
#[derive(Debug, Clone)]
pub struct TailerSettings {
    pub stream: Arc<str>,
    pub paths: PathSet,
    pub start_at: StartAt,
    pub max_line_bytes: usize,
    pub multiline: Option<MultilineRule>,
    pub poll_interval: Duration,
    pub rotate_wait: Duration,
    pub read_chunk: usize,
    /// Delete rotated files once every line of them is acknowledged.
    pub remove_rotated_after_ship: bool,
    /// Free the disk blocks of acknowledged prefixes.
    pub reclaim: reclaim::Reclaim,
}

pub struct FileSource {
    settings: TailerSettings,
    ledger: Arc<Ledger>,
    /// Where each batch goes, with its ack.
    downstream: Box<dyn Downstream>,
    watcher: Arc<Watcher>,
    wake: Arc<Wake>,
    shutdown: Shutdown,
    stats: Arc<StreamStats>,
    reclaimer: reclaim::Reclaimer,
    files: Vec<TailedFile>,
    next_order: u64,
    /// Some directory is not watched by inotify: poll.
    polling: bool,
    /// Paths that failed to open, to warn once each.
    failed: HashSet<PathBuf>,
    /// When the stream last said its paths match nothing (`None`: it has files, or never said).
    waiting_said: Option<Instant>,
    /// Directories of the files matched paths point at through symlinks (the kubelet's
    /// layout): watched too, so a rotation there is seen at once, not at the next scan.
    link_dirs: Vec<PathBuf>,
    /// The files matched symlinks point at: a rename of one of them is a rotation.
    link_targets: HashSet<PathBuf>,
    /// A ledger version holding identities not yet known to be on disk: reading waits for it.
    unpersisted: Option<u64>,
}

impl FileSource {
    pub fn new(
        settings: TailerSettings,
        ledger: Arc<Ledger>,
        downstream: Box<dyn Downstream>,
        watcher: Arc<Watcher>,
        shutdown: Shutdown,
        stats: Arc<StreamStats>,
    ) -> Self {
        FileSource {
            reclaimer: reclaim::Reclaimer::new(
                settings.remove_rotated_after_ship,
                settings.reclaim,
            ),
            settings,
            ledger,
            downstream,
            watcher,
            wake: Wake::new(),
            shutdown,
            stats,
            files: Vec::new(),
            next_order: 0,
            polling: true,
            failed: HashSet::new(),
            waiting_said: None,
            link_dirs: Vec::new(),
            link_targets: HashSet::new(),
            unpersisted: None,
        }
    }

    /// What wakes the source's loop (used at shutdown).
    pub fn waker(&self) -> Arc<Wake> {
        Arc::clone(&self.wake)
    }

    /// Tails until shutdown, or with `once` until every file has been read to its end; then
    /// emits what is pending and returns (dropping the downstream closes this stream's sink inputs).
    pub fn run(mut self, once: bool) {
        self.subscribe();
        self.scan(true);
        self.recover();
        self.stats
            .started
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut next_scan = Instant::now() + SCAN_INTERVAL;
        let mut next_prune = Instant::now() + PRUNE_INTERVAL;
        let mut next_reclaim = Instant::now() + SCAN_INTERVAL;
        loop {
            self.stats.beat();
            if self.shutdown.is_set() {
                break;
            }
            let now = Instant::now();
            if !once && (self.wake.take_rescan() || now >= next_scan) {
                self.subscribe();
                self.scan(false);
                next_scan = now + SCAN_INTERVAL;
            }
            if !once && now >= next_prune {
                self.prune();
                next_prune = now + PRUNE_INTERVAL;
            }
            if !once && now >= next_reclaim && self.reclaimer.is_active() {
                self.reclaimer.run(
                    &self.settings.stream,
                    &self.settings.paths,
                    &self.files,
                    &self.ledger,
                    &self.stats,
                );
                next_reclaim = now + SCAN_INTERVAL;
            }
            let busy = self.poll_all(once);
            if busy {
                continue;
            }
            if once {
                break;
            }
            let mut deadline = next_scan;
            if self.polling {
                deadline = deadline.min(now + self.settings.poll_interval);
            }
            for f in &self.files {
                if let Some(d) = f.deadline() {
                    deadline = deadline.min(d);
                }
                if let Some(w) = self.release_wait(f) {
                    // Never in the past: a file that cannot be released yet (a read error kept
                    // it from its end) must not turn this loop into a spin.
                    deadline = deadline.min((f.last_activity + w).max(now + MIN_WAIT));
                }
            }
            self.wake
                .wait(deadline.saturating_duration_since(Instant::now()));
        }
        self.finish();
    }

    fn subscribe(&mut self) {
        let mut all = true;
        for w in self.settings.paths.watch_dirs() {
            all &= self.watcher.subscribe(&w.dir, w.recursive, &self.wake);
        }
        for dir in &self.link_dirs {
            all &= self.watcher.subscribe(dir, false, &self.wake);
        }
        self.polling = !all;
    }

    /// Expands the paths: opens new files, marks files no path points at any more as rotated.
    fn scan(&mut self, startup: bool) {
        self.follow_renames();
        for f in &mut self.files {
            f.seen = false;
        }
        let mut new_links = false;
        for (path, meta) in self.settings.paths.matches() {
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
                && let Ok(target) = std::fs::canonicalize(&path)
            {
                if let Some(dir) = target.parent()
                    && !self.link_dirs.iter().any(|d| d == dir)
                {
                    self.link_dirs.push(dir.to_path_buf());
                    new_links = true;
                }
                self.link_targets.insert(target);
            }
            let di = DevIno::of(&meta);
            if let Some(f) = self
                .files
                .iter_mut()
                .find(|f| f.dev_ino == di && f.state != FileState::Copy)
            {
                f.seen = true;
                if matches!(f.state, FileState::Rotated { .. }) {
                    f.state = FileState::Live;
                }
                continue;
            }
            self.open(&path, startup);
        }
        if new_links {
            self.subscribe();
        }
        let now = Instant::now();
        self.stats.files.store(
            self.files.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if self.files.is_empty() {
            // A typo in a path gives a sidecar that ships nothing: say so, and keep saying it.
            if self
                .waiting_said
                .is_none_or(|t| now.duration_since(t) >= WAITING_EVERY)
            {
                self.waiting_said = Some(now);
                let missing: Vec<String> = self
                    .settings
                    .paths
                    .watch_dirs()
                    .into_iter()
                    .filter(|w| !w.dir.is_dir())
                    .map(|w| w.dir.display().to_string())
                    .collect();
                tracing::warn!(
                    stream = %self.settings.stream,
                    paths = ?self.settings.paths.patterns(),
                    missing_directories = ?missing,
                    "no file matches the stream's paths yet; waiting for one to appear"
                );
            }
        } else if self.waiting_said.take().is_some() {
            tracing::info!(stream = %self.settings.stream, "a file matches the stream's paths now");
        }
        for f in &mut self.files {
            if !f.seen && f.state == FileState::Live {
                tracing::info!(stream = %self.settings.stream, path = %f.source.path.display(),
                    "file rotated away or deleted; reading it to its end");
                StreamStats::add(&self.stats.rotations, 1);
                f.state = FileState::Rotated { deleted: false };
                f.last_activity = now;
            }
        }
    }

    /// Files renamed from a watched path to one that is not watched, that this stream never
    /// opened (created and rotated between two looks): open them under their new name and read
    /// them to their end like any rotated file.
    fn follow_renames(&mut self) {
        for (from, to) in self.wake.take_renames() {
            let ours = self.settings.paths.matches_path(&from) || self.link_targets.contains(&from);
            if !ours || self.settings.paths.matches_path(&to) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&to) else {
                continue;
            };
            if !meta.is_file() || self.files.iter().any(|f| f.dev_ino == DevIno::of(&meta)) {
                continue;
            }
            if self.open(&to, false) {
                let f = self.files.last_mut().expect("just opened");
                f.state = FileState::Rotated { deleted: false };
                tracing::info!(stream = %self.settings.stream, path = %to.display(), from = %from.display(),
                    "found a file rotated away before it was opened; reading it to its end");
            }
        }
    }

    /// Opens `path` and starts tailing it; returns whether it was added to the files.
    fn open(&mut self, path: &Path, startup: bool) -> bool {
        let opened = File::open(path).and_then(|f| {
            let m = f.metadata()?;
            Ok((f, m))
        });
        let (file, meta) = match opened {
            Ok(x) => x,
            Err(e) => {
                if self.failed.insert(path.to_path_buf()) {
                    tracing::warn!(stream = %self.settings.stream, path = %path.display(), error = %e, "cannot open file");
                }
                return false;
            }
        };
        self.failed.remove(path);
        let di = DevIno::of(&meta);
        if self.files.iter().any(|f| f.dev_ino == di) {
            return false; // renamed between the scan and the open: already tailed
        }
        let size = meta.len();
        let stream = Arc::clone(&self.settings.stream);
        let claimed = self
            .ledger
            .candidates(&stream, di.dev, di.inode)
            .into_iter()
            .find(|(id, key, committed)| {
                if *committed > size
                    || !identity::matches(&file, key.fingerprint, key.fingerprint_len)
                        .unwrap_or(false)
                {
                    return false;
                }
                // Same inode, same first bytes: is it still the file the checkpoint read? The
                // bytes before the checkpoint tell (a header shared by every file would not).
                let t = self.ledger.committed_tail(*id);
                let same = t.len == 0
                    || identity::tail(&file, *committed).ok().flatten() == Some((t.hash, t.len));
                if !same {
                    tracing::info!(stream = %stream, path = %path.display(), checkpoint = *committed,
                        "same inode and first bytes as a checkpointed file, but not the bytes before \
                         its checkpoint: a new file on a reused inode; reading it from the start");
                }
                same
            });
        let (id, fingerprint, offset, how) = match claimed {
            Some((id, key, _)) => {
                let offset = self.ledger.claim(id, path);
                (
                    id,
                    (key.fingerprint, key.fingerprint_len),
                    offset,
                    "checkpoint",
                )
            }
            None => {
                let fp = match identity::current_fingerprint(&file, size) {
                    Ok(fp) => fp,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot read file");
                        return false;
                    }
                };
                let from_end = startup && self.settings.start_at == StartAt::End;
                let offset = if from_end { size } else { 0 };
                let key = self.key(di, fp);
                let (id, version) = self.ledger.register(key, path, offset);
                self.must_persist(version);
                (id, fp, offset, if from_end { "end" } else { "beginning" })
            }
        };
        tracing::info!(stream = %stream, path = %path.display(), offset, from = how, "tailing file");
        StreamStats::add(&self.stats.files_opened, 1);
        let tf = self.tailed(id, di, path, file, fingerprint, offset);
        self.files.push(tf);
        true
    }

    fn key(&self, di: DevIno, fp: (u64, u32)) -> FileKey {
        FileKey {
            stream: Arc::clone(&self.settings.stream),
            dev: di.dev,
            inode: di.inode,
            fingerprint: fp.0,
            fingerprint_len: fp.1,
        }
    }

    fn tailed(
        &mut self,
        id: crate::checkpoint::FileId,
        di: DevIno,
        path: &Path,
        file: File,
        fp: (u64, u32),
        offset: u64,
    ) -> TailedFile {
        let source = Arc::new(Source {
            stream: Arc::clone(&self.settings.stream),
            path: path.to_path_buf(),
            file_id: identity::life_id(&file, di),
        });
        let ml = self.settings.multiline.clone().map(Multiline::new);
        self.next_order += 1;
        TailedFile::new(id, di, source, file, fp, offset, ml, self.next_order)
    }

    /// After the first scan: files the checkpoint knows that no path matches any more were
    /// rotated while tailcar was down. Find them (renamed: same inode; copytruncate: a copy with
    /// the same first bytes) and read them from their checkpoint to their end.
    fn recover(&mut self) {
        let mut recovered = Vec::new();
        for (id, key, path, offset) in self.ledger.released(&self.settings.stream) {
            let dirs = identity::homes(&path);
            let di = DevIno {
                dev: key.dev,
                inode: key.inode,
            };
            let Some((found, file)) = identity::find_in_dirs(
                &dirs,
                Some(di),
                key.fingerprint,
                key.fingerprint_len,
                offset,
                None,
            ) else {
                self.ledger.forget(id);
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            let found_di = DevIno::of(&meta);
            if meta.len() <= offset || self.files.iter().any(|f| f.dev_ino == found_di) {
                continue; // fully shipped: keep the entry so it is not read again
            }
            let offset = self.ledger.claim(id, &found);
            tracing::info!(stream = %self.settings.stream, path = %found.display(), offset,
                "resuming a file that was rotated while tailcar was stopped");
            let mut tf = self.tailed(
                id,
                found_di,
                &found,
                file,
                (key.fingerprint, key.fingerprint_len),
                offset,
            );
            tf.state = if found_di == di {
                FileState::Rotated { deleted: false }
            } else {
                FileState::Copy
            };
            recovered.push(tf);
        }
        self.recover_unseen(&mut recovered);
        // Their lines were written before those of the files the first scan found: read them
        // first (in checkpoint order), so lines stay in order across the restart.
        let n = recovered.len() as u64;
        for f in &mut self.files {
            f.order += n;
        }
        self.next_order += n;
        for (i, f) in recovered.iter_mut().enumerate() {
            f.order = i as u64;
        }
        self.files.extend(recovered);
        self.files.sort_by_key(|f| f.order);
    }

    /// Files rotated while tailcar was down that no checkpoint names: rotated twice (logrotate
    /// shifting `app.log.1` to `app.log.2`), the file in between was created and rotated away
    /// unseen. Any rotated sibling of a stream's file (see [`identity::rotated_since`]) written
    /// since the checkpoint was and not tailed yet is read after the checkpointed files, oldest
    /// first: from its checkpoint if an entry knows it, else from its start. Duplicates are possible (a copy of a shipped file made
    /// after the checkpoint, by hand), losses are not.
    fn recover_unseen(&mut self, recovered: &mut Vec<TailedFile>) {
        let Some(since) = self.ledger.checkpoint_time() else {
            return;
        };
        let mut paths: Vec<PathBuf> = self
            .ledger
            .released(&self.settings.stream)
            .into_iter()
            .map(|(_, _, path, _)| path)
            .chain(self.files.iter().map(|f| f.source.path.clone()))
            .collect();
        paths.sort();
        paths.dedup();
        let mut unseen: Vec<PathBuf> = Vec::new();
        for path in &paths {
            for (sibling, di) in identity::rotated_since(path, since) {
                // An inode an entry knows is claimed by `open` at its checkpoint if its bytes
                // are the ones read; else it is a new file and read whole.
                let open = self
                    .files
                    .iter()
                    .chain(recovered.iter())
                    .any(|f| f.dev_ino == di);
                if !open
                    && !self.settings.paths.matches_path(&sibling)
                    && !unseen.contains(&sibling)
                {
                    unseen.push(sibling);
                }
            }
        }
        for path in unseen {
            if self.open(&path, false) {
                let mut f = self.files.pop().expect("just opened");
                f.state = FileState::Rotated { deleted: false };
                tracing::info!(stream = %self.settings.stream, path = %path.display(),
                    "found a file written and rotated away while tailcar was stopped; reading it");
                recovered.push(f);
            }
        }
    }

    /// Forgets checkpoint entries whose file is gone.
    fn prune(&mut self) {
        for (id, key, path, _) in self.ledger.released(&self.settings.stream) {
            if self.files.iter().any(|f| f.id == id) {
                continue;
            }
            let dirs = identity::homes(&path);
            let di = DevIno {
                dev: key.dev,
                inode: key.inode,
            };
            if identity::find_in_dirs(
                &dirs,
                Some(di),
                key.fingerprint,
                key.fingerprint_len,
                0,
                None,
            )
            .is_none()
            {
                self.ledger.forget(id);
            }
        }
    }

    /// Remembers that `version` of the ledger must be on disk before reading on.
    fn must_persist(&mut self, version: Option<u64>) {
        if let Some(v) = version {
            self.unpersisted = Some(self.unpersisted.map_or(v, |u| u.max(v)));
        }
    }

    /// Waits until the identities registered so far are in the checkpoint file: a file whose
    /// identity is not there could be rotated away while tailcar is dead and never be found.
    fn persist(&mut self) {
        if let Some(v) = self.unpersisted.take()
            && !self.ledger.wait_persisted(Some(v), PERSIST_WAIT)
        {
            tracing::warn!(stream = %self.settings.stream,
                "the checkpoint file was not written in time; reading on (a file rotated away \
                 while tailcar is down before the next write may not be found)");
        }
    }

    /// Reads every file; returns whether some file still has bytes waiting (its turn ran out).
    fn poll_all(&mut self, once: bool) -> bool {
        self.persist();
        let mut busy = false;
        let mut i = 0;
        while i < self.files.len() {
            if self.shutdown.is_set() {
                return false;
            }
            match self.files[i].check() {
                Ok(Check::Unchanged) => {}
                Ok(Check::FingerprintGrew) => {
                    let (h, l) = self.files[i].fingerprint;
                    let version = self.ledger.update_fingerprint(self.files[i].id, h, l);
                    self.must_persist(version);
                    self.persist();
                }
                Ok(Check::Truncated) => self.truncated(i),
                Err(e) => {
                    tracing::error!(path = %self.files[i].source.path.display(), error = %e, "cannot stat file; letting it go");
                    self.release(i);
                    continue;
                }
            }
            let more = self.read_turn(i);
            busy |= more;
            let now = Instant::now();
            if self.files[i].deadline().is_some_and(|d| now >= d) {
                let f = &mut self.files[i];
                let mut expired = Batch::new(Arc::clone(&f.source), std::time::SystemTime::now());
                f.flush_expired(now, &mut expired);
                let id = f.id;
                self.emit(id, expired);
            }
            let f = &self.files[i];
            if more && f.state != FileState::Live {
                // Files are in discovery order: finish a rotated file before reading the newer
                // ones, so lines stay in order across a rotation.
                return true;
            }
            let done = match self.release_wait(f) {
                Some(wait) => f.at_eof && now.duration_since(f.last_activity) >= wait,
                None => false,
            };
            if done && !once {
                self.release(i);
                continue;
            }
            i += 1;
        }
        busy
    }

    /// How long a file must be quiet at its end before it is released (`None`: never, it is live).
    fn release_wait(&self, f: &TailedFile) -> Option<Duration> {
        match f.state {
            FileState::Live => None,
            FileState::Copy => Some(Duration::ZERO),
            FileState::Rotated { deleted: true } => {
                Some(self.settings.rotate_wait.min(DELETED_WAIT))
            }
            FileState::Rotated { deleted: false } => Some(self.settings.rotate_wait),
        }
    }

    /// Reads file `i` for one turn; returns whether it has more to read.
    fn read_turn(&mut self, i: usize) -> bool {
        let mut counts = ReadCounts::default();
        let mut more = false;
        for _ in 0..CHUNKS_PER_TURN {
            if self.shutdown.is_set() {
                break;
            }
            let f = &mut self.files[i];
            match f.read_chunk(
                self.settings.read_chunk,
                self.settings.max_line_bytes,
                &mut counts,
            ) {
                Ok(Some(batch)) => {
                    let id = f.id;
                    self.emit(id, batch);
                    more = true;
                }
                Ok(None) => {
                    more = false;
                    break;
                }
                Err(e) => {
                    tracing::error!(path = %f.source.path.display(), error = %e, "read failed; will retry");
                    more = false;
                    break;
                }
            }
        }
        StreamStats::add(&self.stats.bytes, counts.bytes);
        StreamStats::add(&self.stats.split, counts.splits);
        more
    }

    /// Handles a truncation of file `i` (copytruncate, or a file emptied and rewritten).
    fn truncated(&mut self, i: usize) {
        StreamStats::add(&self.stats.truncations, 1);
        self.next_order += 1;
        let order = self.next_order;
        let f = &self.files[i];
        let path = f.source.path.clone();
        let pos = f.read_pos();
        let (hash, len) = f.fingerprint;
        let dirs = identity::homes(&path);
        let copy = if pos > 0 && len > 0 {
            identity::find_in_dirs(&dirs, None, hash, len, pos, Some(f.dev_ino))
        } else {
            None
        };
        let size = f.file().metadata().map(|m| m.len()).unwrap_or(0);
        let new_fp = identity::current_fingerprint(f.file(), size).unwrap_or((0, 0));
        // Without a copy, the file was cut in place (`truncate -s`, or emptied): what is still
        // as it was read need not be read again.
        let resume = if copy.is_some() {
            0
        } else {
            f.resume_offset(size)
        };
        let (new_id, version) = self
            .ledger
            .register(self.key(f.dev_ino, new_fp), &path, resume);
        self.must_persist(version);
        match copy {
            Some((copy_path, copy_file)) => {
                tracing::info!(stream = %self.settings.stream, path = %path.display(), copy = %copy_path.display(),
                    offset = pos, "file truncated (copytruncate); reading the rest of it from its copy");
                let drained = self.files[i].hand_over_to_copy(copy_file, new_id, new_fp, order);
                self.files.insert(i, drained);
            }
            None => {
                if pos > 0 {
                    tracing::warn!(stream = %self.settings.stream, path = %path.display(), offset = pos,
                        resume_at = resume,
                        "file truncated and no copy of it found; reading it again from the last \
                         position whose bytes are unchanged (lines written after the read position \
                         and before the truncation could not be read)");
                }
                let f = &mut self.files[i];
                let mut pending = Batch::new(Arc::clone(&f.source), std::time::SystemTime::now());
                f.flush_pending(&mut pending);
                let old = f.id;
                f.restart(new_id, new_fp, order, resume);
                self.emit(old, pending);
                self.ledger.release(old);
            }
        }
        self.files.sort_by_key(|f| f.order);
    }

    /// Lets go of file `i`: emits its pending partial line, closes it, releases its entry.
    fn release(&mut self, i: usize) {
        let mut f = self.files.remove(i);
        self.stats.files.store(
            self.files.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut pending = Batch::new(Arc::clone(&f.source), std::time::SystemTime::now());
        f.flush_pending(&mut pending);
        self.emit(f.id, pending);
        self.ledger.release(f.id);
        tracing::info!(stream = %self.settings.stream, path = %f.source.path.display(), offset = f.read_pos(),
            "released file");
    }

    /// Issues an ack for a non-empty batch and hands both on. The ack is for the offset the
    /// batch was read up to, whatever the transforms downstream keep of it.
    fn emit(&mut self, id: crate::checkpoint::FileId, batch: Batch) {
        let Some(end) = batch.end_offset() else {
            return;
        };
        StreamStats::add(&self.stats.lines, batch.len() as u64);
        let tail = match self.files.iter_mut().find(|f| f.id == id) {
            Some(f) => f.anchor(end),
            None => crate::checkpoint::Tail::default(),
        };
        let ack = self.ledger.issue_with_tail(id, end, tail);
        self.downstream.send(batch, ack);
    }

    /// Emits every file's pending partial line and multiline record.
    fn finish(mut self) {
        for i in 0..self.files.len() {
            let f = &mut self.files[i];
            let mut pending = Batch::new(Arc::clone(&f.source), std::time::SystemTime::now());
            f.flush_pending(&mut pending);
            let id = f.id;
            self.emit(id, pending);
        }
    }
}
