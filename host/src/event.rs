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
///
/// The members are private so that the type keeps them aligned: the field store covers no
/// record or every one, and the event times and route masks are empty or one per record,
/// through every push, filter and plugin answer.
#[derive(Debug)]
pub struct Batch {
    source: Arc<Source>,
    /// When the bytes were read from the file.
    read_at: SystemTime,
    /// The records' bytes, packed; records index into it.
    data: Vec<u8>,
    records: Vec<Record>,
    /// The records' fields: covering no record, or every one (see [`Batch::fields_mut`]).
    fields: FieldStore,
    /// Empty, or one event time per record, set by a parser's `time_key` (see
    /// [`Batch::event_time`]).
    times: Vec<Option<jiff::Timestamp>>,
    /// Empty (every record goes to all the stream's sinks), or one route mask per record set by
    /// a plugin: bit `i` is the router's output `i`; 0 means the stream's sinks.
    routes: Vec<u64>,
}

/// A batch's lines borrowed beside its writable fields and times (see [`Batch::parts_mut`]).
pub struct PartsMut<'a> {
    pub data: &'a [u8],
    pub records: &'a [Record],
    pub fields: &'a mut FieldStore,
    pub times: &'a mut [Option<jiff::Timestamp>],
}

/// A batch's records as a plugin's answer replaces them (see [`Batch::replace`]).
#[derive(Debug)]
pub struct Replacement {
    /// Bytes appended to the batch's data; the new records may point into the old data too.
    pub data: Vec<u8>,
    pub records: Vec<Record>,
    /// Covering no record or every new one.
    pub fields: FieldStore,
    /// One per new record (all unset: none).
    pub times: Vec<Option<jiff::Timestamp>>,
    /// One per new record (all 0: the stream's sinks).
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

    /// `empty` (a new batch, for its source and read time) with `records` framed in `data`.
    ///
    /// # Panics
    /// If `empty` has records, or a record points outside `data`.
    pub fn framed(empty: Batch, data: Vec<u8>, records: Vec<Record>) -> Batch {
        assert!(
            empty.records.is_empty(),
            "framing into a batch with records"
        );
        debug_assert!(
            records
                .iter()
                .all(|r| r.start as usize + r.len as usize <= data.len())
        );
        assert!(
            records
                .last()
                .is_none_or(|r| r.start as usize + r.len as usize <= data.len()),
            "a framed record outside its data"
        );
        Batch {
            data,
            records,
            ..empty
        }
    }

    /// Where the records come from.
    #[inline]
    pub fn source(&self) -> &Arc<Source> {
        &self.source
    }

    /// When the bytes were read from the file.
    #[inline]
    pub fn read_at(&self) -> SystemTime {
        self.read_at
    }

    /// The packed bytes the records point into (dropped records' bytes included).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The records, in file order.
    #[inline]
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The bytes of record `i`.
    #[inline]
    pub fn line_at(&self, i: usize) -> &[u8] {
        self.line(&self.records[i])
    }

    /// The records' fields (covering no record, or every one).
    #[inline]
    pub fn fields(&self) -> &FieldStore {
        &self.fields
    }

    /// Record `i`'s parsed event time, if a parser or plugin set one.
    #[inline]
    pub fn time(&self, i: usize) -> Option<jiff::Timestamp> {
        self.times.get(i).copied().flatten()
    }

    /// Whether any record has a parsed event time.
    pub fn has_times(&self) -> bool {
        self.times.iter().any(Option::is_some)
    }

    /// Record `i`'s route mask: bit `k` is the router's output `k`; 0 means the stream's sinks.
    #[inline]
    pub fn route(&self, i: usize) -> u64 {
        self.routes.get(i).copied().unwrap_or(0)
    }

    /// Whether some record is routed somewhere other than the stream's sinks.
    pub fn is_routed(&self) -> bool {
        self.routes.iter().any(|&m| m != 0)
    }

    /// Sets one route mask per record (see [`Batch::route`]).
    ///
    /// # Panics
    /// If there is not one mask per record.
    pub fn set_routes(&mut self, masks: Vec<u64>) {
        assert_eq!(masks.len(), self.records.len(), "one route mask per record");
        self.routes = if masks.iter().any(|&m| m != 0) {
            masks
        } else {
            Vec::new()
        };
    }

    /// Sends every record to the outputs in `mask` (0: the stream's sinks).
    pub fn route_all(&mut self, mask: u64) {
        self.routes = if mask == 0 {
            Vec::new()
        } else {
            vec![mask; self.records.len()]
        };
    }

    /// Takes the data buffer out, for a plugin call when it holds exactly the records' lines
    /// back to back; give it back with [`Batch::restore_data`] before using the batch again.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// Puts back what [`Batch::take_data`] took.
    pub fn restore_data(&mut self, data: Vec<u8>) {
        self.data = data;
    }

    /// Takes the field store out (the batch has none until [`Batch::set_fields`]).
    pub fn take_fields(&mut self) -> FieldStore {
        std::mem::take(&mut self.fields)
    }

    /// Sets the records' fields.
    ///
    /// # Panics
    /// If `fields` covers some records but not every one: a bug in the caller.
    pub fn set_fields(&mut self, fields: FieldStore) {
        assert!(
            fields.records() == 0 || fields.records() == self.records.len(),
            "a field store for {} records given to a batch of {}",
            fields.records(),
            self.records.len()
        );
        self.fields = fields;
    }

    /// Replaces the records by `new` (a plugin's answer), appending its bytes to the data.
    ///
    /// # Panics
    /// If `new`'s parts are not aligned with its records or a record points outside the data:
    /// the caller checks a plugin's answer before building a replacement.
    pub fn replace(&mut self, new: Replacement) {
        let n = new.records.len();
        assert!(
            new.fields.records() == 0 || new.fields.records() == n,
            "replacement fields cover {} of {n} records",
            new.fields.records()
        );
        assert!(
            new.times.is_empty() || new.times.len() == n,
            "replacement times"
        );
        assert!(
            new.routes.is_empty() || new.routes.len() == n,
            "replacement routes"
        );
        self.data.extend_from_slice(&new.data);
        assert!(
            new.records
                .iter()
                .all(|r| r.start as usize + r.len as usize <= self.data.len()),
            "a replacement record outside the batch's data"
        );
        self.records = new.records;
        self.fields = new.fields;
        self.times = if new.times.iter().any(Option::is_some) {
            new.times
        } else {
            Vec::new()
        };
        self.routes = if new.routes.iter().any(|&m| m != 0) {
            new.routes
        } else {
            Vec::new()
        };
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

    /// The lines to read and the fields and times to write at once, for a parser: the field
    /// store covers every record; `times` is empty unless [`Batch::times_mut`] made it.
    pub fn parts_mut(&mut self) -> PartsMut<'_> {
        self.fields.cover(self.records.len());
        PartsMut {
            data: &self.data,
            records: &self.records,
            fields: &mut self.fields,
            times: &mut self.times,
        }
    }

    /// The event times, one per record, creating them (unset) if needed.
    pub fn times_mut(&mut self) -> &mut [Option<jiff::Timestamp>] {
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

    fn three() -> Batch {
        let src = Arc::new(Source {
            stream: "s".into(),
            path: "/x".into(),
            file_id: None,
        });
        let mut b = Batch::new(src, SystemTime::UNIX_EPOCH);
        for (i, l) in ["a", "b", "c"].iter().enumerate() {
            b.push_line(l.as_bytes(), i as u64 + 1, 0);
        }
        b
    }

    #[test]
    #[should_panic(expected = "a field store for 2 records given to a batch of 3")]
    fn a_field_store_that_does_not_cover_every_record_is_refused() {
        let mut b = three();
        let mut other = three();
        other.retain(|i| i > 0);
        other.fields_mut().writer(0).int("n", 1);
        b.set_fields(other.take_fields());
    }

    #[test]
    fn a_replacement_keeps_records_fields_times_and_routes_aligned() {
        let mut b = three();
        b.fields_mut().writer(2).int("n", 2);
        b.set_routes(vec![0, 1, 0]);
        let mut fields = FieldStore::new();
        fields.cover(2);
        fields.writer(1).text("k", "v");
        let t = jiff::Timestamp::new(7, 0).unwrap();
        b.replace(Replacement {
            data: b"new".to_vec(),
            records: vec![
                Record {
                    start: 3,
                    len: 3,
                    offset: 3,
                    flags: 0,
                },
                b.records()[0],
            ],
            fields,
            times: vec![None, Some(t)],
            routes: vec![0, 0],
        });
        assert_eq!(b.len(), 2);
        assert_eq!(b.line_at(0), b"new");
        assert_eq!(b.line_at(1), b"a");
        assert_eq!(b.fields().get(1, "k"), Some(Value::Text("v")));
        assert_eq!((b.time(0), b.time(1)), (None, Some(t)));
        assert!(!b.is_routed(), "all-zero masks are no routes");
        b.retain(|i| i == 1);
        assert_eq!(b.line_at(0), b"a");
        assert_eq!(b.time(0), Some(t));
    }
}
