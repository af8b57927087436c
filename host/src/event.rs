//! The unit of data that flows through the pipeline: a [`Batch`] of [`Record`]s.
//!
//! A batch holds the lines of one read of one file, packed back to back in one buffer, and a
//! small fixed-size [`Record`] per line pointing into it. Packing keeps the hot path free of
//! per-line allocations and reference counts (one `Arc` per batch, none per line), and it is the
//! same shape the WASM plugin boundary wants (one byte buffer plus offsets).
//!
//! What a record carries: its line bytes ([`Batch::line`]), the byte offset in the source file
//! just past the line's terminator ([`Record::offset`]), and flags. What every record of a batch
//! shares, and so is stored once per batch: the stream name and source path ([`Source`]) and the
//! time the bytes were read ([`Batch::read_at`]).
//!
//! Parsers fill typed fields per record into the batch's [`FieldStore`] (columns, not a map per
//! record; see [`fields`]); a batch without any parser has none (no allocation). When present,
//! the store covers every record; [`Batch::retain`] keeps the two aligned when filters drop
//! records.

pub mod fields;

pub use fields::{FieldStore, Value};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// `bytes` as text: borrowed when they are UTF-8 (checked with the fast validator), else with
/// each invalid sequence replaced by U+FFFD.
#[inline]
pub fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Where a batch's records come from: the stream that read them and the file they were read from.
#[derive(Debug)]
pub struct Source {
    /// The configured stream name (`access`, `error`, ...).
    pub stream: Arc<str>,
    /// The path the file had when it was opened (a rotated file keeps its original path here).
    pub path: PathBuf,
    /// A number naming this file for its whole life and no other file (device, inode and birth
    /// time hashed), where the filesystem records a birth time: with a record's offset, a stable
    /// document id (`None`: no birth time, no stable id).
    pub file_id: Option<u64>,
}

/// One line (or one multiline record, or one piece of a split over-long line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Start of the line's bytes in [`Batch::data`].
    pub start: u32,
    /// Length of the line in bytes, without its `\n` (or `\r\n`).
    pub len: u32,
    /// Byte offset in the source file just after this record's last byte (and its newline): the
    /// position a reader restarting after this record would resume at.
    pub offset: u64,
    /// What happened to the line on the way in; see the `FLAG_*` constants.
    pub flags: u8,
}

/// The line was longer than `max_line_bytes` and was split: this is one of its pieces (every piece
/// but the last carries this flag).
pub const FLAG_SPLIT: u8 = 1;
/// The line had no newline when it was emitted (end of a rotated file, shutdown, or `--once`).
pub const FLAG_UNTERMINATED: u8 = 2;
/// Several physical lines joined by the multiline start pattern.
pub const FLAG_MULTILINE: u8 = 4;

/// Structured fields as a map: names to typed values (string, integer, float, bool, and nested
/// objects or arrays), in the order they were set. What configuration (`fields:`, `enrich`)
/// holds; records keep theirs in the batch's [`FieldStore`].
pub type Fields = serde_json::Map<String, serde_json::Value>;

/// A group of records from one file, in file order.
#[derive(Debug)]
pub struct Batch {
    pub source: Arc<Source>,
    /// When the bytes were read from the file.
    pub read_at: SystemTime,
    /// The records' bytes, packed; records index into it.
    pub data: Vec<u8>,
    pub records: Vec<Record>,
    /// The records' fields: covering no record, or every one (see [`Batch::fields_mut`]).
    pub fields: FieldStore,
    /// Empty, or one event time per record, set by a parser's `time_key` (see
    /// [`Batch::event_time`]).
    pub times: Vec<Option<jiff::Timestamp>>,
    /// Empty (every record goes to all the stream's sinks), or one route mask per record set by
    /// a plugin: bit `i` is the router's output `i`; 0 means the stream's sinks.
    pub routes: Vec<u64>,
}

impl Batch {
    pub fn new(source: Arc<Source>, read_at: SystemTime) -> Self {
        Batch {
            source,
            read_at,
            data: Vec::new(),
            records: Vec::new(),
            fields: FieldStore::new(),
            times: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// The bytes of `record` (which must belong to this batch).
    #[inline]
    pub fn line(&self, record: &Record) -> &[u8] {
        let start = record.start as usize;
        &self.data[start..start + record.len as usize]
    }

    /// Appends `line` to the data buffer and a record for it.
    pub fn push_line(&mut self, line: &[u8], offset: u64, flags: u8) {
        let start = self.data.len();
        self.data.extend_from_slice(line);
        self.push_range(start, line.len(), offset, flags);
    }

    /// Adds a record for bytes already in `data` at `start..start + len`.
    #[inline]
    pub fn push_range(&mut self, start: usize, len: usize, offset: u64, flags: u8) {
        debug_assert!(start + len <= self.data.len());
        self.records.push(Record {
            start: start as u32,
            len: len as u32,
            offset,
            flags,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The offset just past the last record: how far this batch covers the file.
    pub fn end_offset(&self) -> Option<u64> {
        self.records.last().map(|r| r.offset)
    }

    /// The records' fields, covering every record.
    pub fn fields_mut(&mut self) -> &mut FieldStore {
        self.fields.cover(self.records.len());
        &mut self.fields
    }

    /// The event times, one per record, creating them (unset) if needed.
    pub fn times_mut(&mut self) -> &mut Vec<Option<jiff::Timestamp>> {
        if self.times.len() != self.records.len() {
            self.times.resize(self.records.len(), None);
        }
        &mut self.times
    }

    /// When record `i` happened: its parsed event time, else the time it was read.
    pub fn event_time(&self, i: usize) -> jiff::Timestamp {
        self.times
            .get(i)
            .copied()
            .flatten()
            .or_else(|| jiff::Timestamp::try_from(self.read_at).ok())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// Whether record `i` has any field.
    pub fn has_fields(&self, i: usize) -> bool {
        !self.fields.is_empty_at(i)
    }

    /// Keeps the records for which `keep(index)` is true (and their fields). The dropped
    /// records' bytes stay in `data`; the batch's acknowledgement still covers them.
    pub fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let flags: Vec<bool> = (0..self.records.len()).map(&mut keep).collect();
        let mut i = 0;
        self.records.retain(|_| {
            i += 1;
            flags[i - 1]
        });
        self.fields.retain(&flags);
        if !self.times.is_empty() {
            let mut i = 0;
            self.times.retain(|_| {
                i += 1;
                flags[i - 1]
            });
        }
        if !self.routes.is_empty() {
            let mut i = 0;
            self.routes.retain(|_| {
                i += 1;
                flags[i - 1]
            });
        }
    }

    /// A compact copy holding only the records for which `keep(index)` is true, with their
    /// fields and times (not their routes): what one sink gets when a plugin routed records,
    /// or one request's share of a batch.
    pub fn subset(&self, keep: impl Fn(usize) -> bool) -> Batch {
        let mut out = Batch::new(Arc::clone(&self.source), self.read_at);
        let fields = self.fields.records() > 0;
        for i in (0..self.records.len()).filter(|&i| keep(i)) {
            let r = self.records[i];
            out.push_line(self.line(&r), r.offset, r.flags);
            if fields {
                out.fields.push_from(&self.fields, i);
            }
            if let Some(Some(t)) = self.times.get(i) {
                let n = out.len();
                out.times_mut()[n - 1] = Some(*t);
            }
        }
        out
    }

    /// Total bytes of the records' lines.
    pub fn line_bytes(&self) -> usize {
        self.records.iter().map(|r| r.len as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_index_into_packed_data() {
        let src = Arc::new(Source {
            stream: "s".into(),
            path: "/x".into(),
            file_id: None,
        });
        let mut b = Batch::new(src, SystemTime::UNIX_EPOCH);
        b.push_line(b"first", 6, 0);
        b.push_line(b"", 7, 0);
        b.push_line(b"third\0", 14, FLAG_UNTERMINATED);
        assert_eq!(b.len(), 3);
        assert_eq!(b.line(&b.records[0]), b"first");
        assert_eq!(b.line(&b.records[1]), b"");
        assert_eq!(b.line(&b.records[2]), b"third\0");
        assert_eq!(b.end_offset(), Some(14));
        assert_eq!(b.line_bytes(), 11);
    }

    #[test]
    fn retain_keeps_records_and_fields_aligned() {
        let src = Arc::new(Source {
            stream: "s".into(),
            path: "/x".into(),
            file_id: None,
        });
        let mut b = Batch::new(src, SystemTime::UNIX_EPOCH);
        for (i, l) in ["a", "b", "c", "d"].iter().enumerate() {
            b.push_line(l.as_bytes(), i as u64 + 1, 0);
        }
        assert!(!b.has_fields(0));
        for i in 0..4 {
            b.fields_mut().writer(i).int("n", i as i64);
        }
        b.retain(|i| i % 2 == 1);
        let lines: Vec<&[u8]> = b.records.iter().map(|r| b.line(r)).collect();
        assert_eq!(lines, vec![b"b".as_slice(), b"d".as_slice()]);
        assert_eq!(b.fields.get(1, "n"), Some(Value::Int(3)));
        assert_eq!(b.fields.records(), 2);
        let s = b.subset(|i| i == 1);
        assert_eq!(s.fields.get(0, "n"), Some(Value::Int(3)));
        assert_eq!(s.fields.records(), 1);
    }
}
