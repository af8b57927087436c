//! One open file being tailed: reads new bytes, frames them into batches, and watches for
//! truncation and for its fingerprint to grow.
//!
//! Reading uses `pread` at the file's own position, so a truncation never leaves a stale kernel
//! file offset behind. The bytes of a partial last line are kept between reads; on the plain
//! (non-multiline) path the read buffer itself becomes the batch's data, so a line is copied once
//! (from the page cache into the buffer) on its way to the sinks.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::framer::frame;
use super::identity::{self, DevIno, FINGERPRINT_MAX};
use super::multiline::Multiline;
use crate::checkpoint::{FileId, Tail};
use crate::event::{Batch, FLAG_SPLIT, FLAG_UNTERMINATED, Source};

/// Where a tailed file stands with respect to its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// A watched path points at it.
    Live,
    /// No watched path points at it any more (renamed away or deleted): read it to its end and
    /// let it go once it has been quiet for the rotate wait.
    Rotated { deleted: bool },
    /// A `copytruncate` copy, read from where the truncated original stopped: let go at its end.
    Copy,
}

/// What a stat of the open file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Unchanged,
    /// The file is shorter than what was read, or its first bytes changed: it was truncated
    /// (and maybe written again).
    Truncated,
    /// The fingerprint covers more bytes now; the ledger should learn the new one.
    FingerprintGrew,
}

/// Most anchors kept per file (older ones are thinned out, so they reach back far).
const MAX_ANCHORS: usize = 16;

/// Counts of what reading did, for the stream's statistics.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadCounts {
    pub bytes: u64,
    pub splits: u64,
}

pub struct TailedFile {
    pub id: FileId,
    pub dev_ino: DevIno,
    pub source: Arc<Source>,
    pub state: FileState,
    /// Order of discovery: older files are read first, so a rotated file's last lines come out
    /// before the new file's first ones.
    pub order: u64,
    file: File,
    /// Fingerprint `(hash, len)` the ledger knows this file by.
    pub fingerprint: (u64, u32),
    /// File offset of the end of `buf`.
    pos: u64,
    /// Unconsumed bytes: the partial last line.
    buf: Vec<u8>,
    /// Leading bytes of `buf` known to hold no newline.
    scanned: usize,
    multiline: Option<Multiline>,
    /// Last time a read returned bytes (or the file changed state).
    pub last_activity: Instant,
    /// Size at the last check, to skip fingerprint reads when nothing changed.
    last_size: u64,
    /// The last read hit the end of the file.
    pub at_eof: bool,
    /// Seen by the current discovery scan.
    pub seen: bool,
    /// Ends of batches read, with the tail of the bytes before each, oldest first: the last one
    /// tells a truncation that grew back past the read position; all of them tell where
    /// reading can resume after one.
    anchors: Vec<(u64, Tail)>,
}

impl TailedFile {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: FileId,
        dev_ino: DevIno,
        source: Arc<Source>,
        file: File,
        fingerprint: (u64, u32),
        offset: u64,
        multiline: Option<Multiline>,
        order: u64,
    ) -> Self {
        TailedFile {
            id,
            dev_ino,
            source,
            state: FileState::Live,
            order,
            file,
            fingerprint,
            pos: offset,
            buf: Vec::new(),
            scanned: 0,
            multiline,
            last_activity: Instant::now(),
            last_size: u64::MAX,
            at_eof: false,
            seen: true,
            anchors: Vec::new(),
        }
    }

    /// Records that reading emitted everything up to `offset` (a batch's end): returns the tail
    /// of the bytes before it, for the batch's ack, and keeps it as an anchor.
    pub fn anchor(&mut self, offset: u64) -> Tail {
        let Ok(Some((hash, len))) = identity::tail(&self.file, offset) else {
            return Tail::default();
        };
        let tail = Tail { hash, len };
        if len == 0 || self.anchors.last().is_some_and(|a| a.0 >= offset) {
            return tail;
        }
        if self.anchors.len() == MAX_ANCHORS {
            // Drop every other one of the older half: the anchors reach back further and further.
            let half = MAX_ANCHORS / 2;
            let mut i = 0;
            self.anchors.retain(|_| {
                i += 1;
                i > half || i % 2 == 0
            });
        }
        self.anchors.push((offset, tail));
        tail
    }

    /// Where reading can resume after the file was cut to `size` bytes (and perhaps written
    /// again): the furthest anchor at or below `size` whose bytes are still the ones read, so
    /// nothing after it is lost and as little as possible before it is read again; 0 if none.
    pub fn resume_offset(&self, size: u64) -> u64 {
        self.anchors
            .iter()
            .rev()
            .filter(|(off, _)| *off <= size)
            .find(|(off, t)| {
                identity::tail(&self.file, *off).ok().flatten() == Some((t.hash, t.len))
            })
            .map(|(off, _)| *off)
            .unwrap_or(0)
    }

    /// The offset reading has reached (including a partial line not yet emitted).
    pub fn read_pos(&self) -> u64 {
        self.pos
    }

    /// Reads up to `chunk` new bytes and frames them. Returns `None` at the end of the file,
    /// else the batch of completed records (possibly empty: a partial line, or multiline lines
    /// still being assembled).
    pub fn read_chunk(
        &mut self,
        chunk: usize,
        max_line: usize,
        counts: &mut ReadCounts,
    ) -> io::Result<Option<Batch>> {
        let len = self.buf.len();
        // Read into the spare capacity: zero-filling 128 KiB before every read cost a tenth of
        // a raw tail. It reads at most the spare capacity (`chunk`, or more once a long line
        // grew the buffer).
        self.buf.reserve(chunk);
        let n = loop {
            match rustix::io::pread(
                &self.file,
                rustix::buffer::spare_capacity(&mut self.buf),
                self.pos,
            ) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            self.at_eof = true;
            // An idle file holds no read buffer: only its partial line, if any (2,000 quiet
            // files would otherwise keep 128 KiB each).
            if self.buf.is_empty() {
                self.buf = Vec::new();
            } else {
                self.buf.shrink_to_fit();
            }
            return Ok(None);
        }
        self.at_eof = false;
        self.last_activity = Instant::now();
        let base = self.pos - len as u64;
        self.pos += n as u64;
        counts.bytes += n as u64;
        let mut batch = Batch::new(Arc::clone(&self.source), SystemTime::now());

        if let Some(ml) = self.multiline.as_mut() {
            let now = Instant::now();
            let buf = &self.buf;
            let consumed = frame(buf, self.scanned, base, max_line, |f| {
                counts.splits += u64::from(f.flags & FLAG_SPLIT != 0);
                counts.splits += ml.push(
                    &buf[f.start..f.start + f.len],
                    f.offset,
                    f.flags,
                    now,
                    &mut batch,
                );
            });
            self.buf.drain(..consumed);
            self.scanned = self.buf.len();
            return Ok(Some(batch));
        }

        let mut records = Vec::new();
        let consumed = frame(&self.buf, self.scanned, base, max_line, |f| {
            counts.splits += u64::from(f.flags & FLAG_SPLIT != 0);
            records.push(crate::event::Record {
                start: f.start as u32,
                len: f.len as u32,
                offset: f.offset,
                flags: f.flags,
            });
        });
        if consumed == 0 {
            // Still inside one long partial line: keep accumulating in the same buffer.
            self.scanned = self.buf.len();
            return Ok(Some(batch));
        }
        // Only the partial line is carried: the next read grows the buffer it needs.
        let rest = self.buf[consumed..].to_vec();
        let data = std::mem::replace(&mut self.buf, rest);
        self.scanned = self.buf.len();
        Ok(Some(Batch::framed(batch, data, records)))
    }

    /// Emits whatever is pending into `out`: the partial last line (flagged unterminated) and the
    /// multiline record being built. Used when the file is let go, at shutdown and with `--once`.
    pub fn flush_pending(&mut self, out: &mut Batch) {
        let partial = std::mem::take(&mut self.buf);
        self.scanned = 0;
        match self.multiline.as_mut() {
            Some(ml) => {
                if !partial.is_empty() {
                    ml.push(&partial, self.pos, FLAG_UNTERMINATED, Instant::now(), out);
                }
                ml.flush(out);
            }
            None if !partial.is_empty() => out.push_line(&partial, self.pos, FLAG_UNTERMINATED),
            None => {}
        }
    }

    /// Flushes a multiline record whose timeout has passed.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Batch) {
        if let Some(ml) = self.multiline.as_mut() {
            ml.flush_expired(now, out);
        }
    }

    /// When a pending multiline record times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.multiline.as_ref().and_then(|m| m.deadline())
    }

    /// Stats the open file: truncation, deletion, fingerprint growth.
    pub fn check(&mut self) -> io::Result<Check> {
        let meta = self.file.metadata()?;
        if let FileState::Rotated { deleted } = &mut self.state {
            *deleted = meta.nlink() == 0;
        }
        let size = meta.len();
        if size < self.pos {
            return Ok(Check::Truncated);
        }
        if size == self.last_size {
            return Ok(Check::Unchanged);
        }
        self.last_size = size;
        let (hash, len) = self.fingerprint;
        if len > 0 && !identity::matches(&self.file, hash, len)? {
            return Ok(Check::Truncated);
        }
        // Cut shorter and grown back past the read position before this look: the bytes
        // before the last batch's end are not the ones read there any more.
        if let Some(&(off, t)) = self.anchors.last()
            && identity::tail(&self.file, off)? != Some((t.hash, t.len))
        {
            return Ok(Check::Truncated);
        }
        if len < FINGERPRINT_MAX && size > len as u64 {
            self.fingerprint = identity::current_fingerprint(&self.file, size)?;
            return Ok(Check::FingerprintGrew);
        }
        Ok(Check::Unchanged)
    }

    /// Splits off the reading state (position, partial line, multiline record) onto `copy`, the
    /// `copytruncate` copy of this file, which holds the bytes this file had before it was
    /// truncated. This file then starts again from offset 0 under a new ledger entry.
    pub fn hand_over_to_copy(
        &mut self,
        copy: File,
        new_id: FileId,
        new_fp: (u64, u32),
        order: u64,
    ) -> TailedFile {
        let mut drained = TailedFile {
            id: self.id,
            dev_ino: self.dev_ino,
            source: Arc::clone(&self.source),
            state: FileState::Copy,
            order: self.order,
            file: copy,
            fingerprint: self.fingerprint,
            pos: self.pos,
            buf: std::mem::take(&mut self.buf),
            scanned: self.scanned,
            multiline: None,
            last_activity: Instant::now(),
            last_size: u64::MAX,
            at_eof: false,
            seen: true,
            anchors: std::mem::take(&mut self.anchors),
        };
        drained.multiline = self.multiline.as_ref().map(|m| m.fresh());
        std::mem::swap(&mut drained.multiline, &mut self.multiline);
        self.restart(new_id, new_fp, order, 0);
        drained
    }

    /// Starts this file again from `offset` under a new ledger entry (after a truncation whose
    /// copy could not be found; the caller has flushed what was pending).
    pub fn restart(&mut self, new_id: FileId, new_fp: (u64, u32), order: u64, offset: u64) {
        self.id = new_id;
        self.fingerprint = new_fp;
        self.pos = offset;
        self.anchors.retain(|(off, _)| *off <= offset);
        self.buf.clear();
        self.scanned = 0;
        self.last_size = u64::MAX;
        self.at_eof = false;
        self.order = order;
        self.last_activity = Instant::now();
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}
