//! The typed fields of every record of a batch, in columns: one store per batch instead of one
//! map per record.
//!
//! A field is a kind byte, a key and a value. Keys and text values live in one string buffer,
//! integers and floats in their own columns; a record owns a span of consecutive field entries.
//! Writing a record's fields appends to the columns (no allocation per field or per record once
//! the columns have grown), and a sink reads them as borrowed [`Value`]s.
//!
//! The columns are those of `wit/plugin.wit`'s `fields` (kinds, key ends, value ends, ints,
//! floats, strings) plus what the host needs for random access: where each key starts (it is the
//! previous value's end in the WIT layout) and which `ints`/`floats` entry a number uses. As long
//! as fields were only appended in record order, [`FieldStore::into_columns`] hands the columns
//! over as they are (moves) and [`FieldStore::from_columns`] takes a plugin's answer back after
//! checking it; edits that break the layout (a replaced value, a removal, a field added to an earlier
//! record, records dropped) leave the columns valid for the host, and the next hand-over to a
//! plugin compacts them once.
//!
//! Fields that every record of the batch has (`fields:`, `enrich`) are kept once, in a shared
//! section ([`FieldStore::shared_writer`]), and read as if each record had them: after its own
//! fields, a record field of the same name taking the shared value in its place (as writing them
//! into each record would). Sinks render them per record as they write; the first edit of a
//! record's own fields, or a hand-over to a plugin, writes them into every record once.
//!
//! Nested values (JSON objects and arrays) are kept as their JSON text, which sinks writing JSON
//! copy as they are; templates that reach into them (`{kubernetes.pod_name}`) parse that text.

use std::fmt;

/// Kinds of a field value (the WIT `kinds` column), as the plugin boundary numbers them.
pub use tailcar_wire::kind::{FALSE, FLOAT, INT, JSON, NULL, TEXT, TRUE};
/// A removed field: skipped by every reader, dropped by the next compaction.
const GONE: u8 = u8::MAX;

/// What follows the backslash when a byte must be escaped in a JSON string (`u`: as `\u00XX`),
/// or 0 when it is written as it is. The same escapes as `serde_json` writes.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any byte of `w` is below 0x20, `"` or `\` (exact for the word as a whole).
#[inline]
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    below_space | zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64)) != 0
}

/// `s` as a JSON string (quoted and escaped) appended to `out`. Runs without an escape are
/// found eight bytes at a time and copied whole: most text needs no escaping at all.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc = ESCAPE[b as usize];
        if esc != 0 {
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\\');
            out.push(esc);
            if esc == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// One field value, borrowed from its store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
    /// A JSON object or array (or, from a plugin, any JSON value) as its valid JSON text.
    Json(&'a str),
}

impl<'a> Value<'a> {
    /// The text of a text value.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A number as a float (integers converted).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as JSON text appended to `out` (a float that is not finite is `null`, as
    /// `serde_json` writes it).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Writing JSON into a Vec cannot fail.
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Int(i) => {
                let _ = serde_json::to_writer(&mut *out, i);
            }
            Value::Float(f) if f.is_finite() => {
                let _ = serde_json::to_writer(&mut *out, f);
            }
            Value::Float(_) => out.extend_from_slice(b"null"),
            Value::Text(s) => write_json_str(out, s),
            Value::Json(j) => out.extend_from_slice(j.as_bytes()),
        }
    }

    /// The value as a template shows it: text as it is, anything else as its JSON text.
    pub fn write_text(&self, out: &mut String) {
        match self {
            Value::Text(s) => out.push_str(s),
            Value::Json(j) => out.push_str(j),
            other => {
                let mut b = Vec::new();
                other.write_json(&mut b);
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
    }

    /// The value as a `serde_json::Value` (a copy; for code off the hot path).
    pub fn to_json(&self) -> serde_json::Value {
        match *self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => b.into(),
            Value::Int(i) => i.into(),
            Value::Float(f) => serde_json::Number::from_f64(f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(s) => s.into(),
            // The text was checked (or written by serde_json) when it was stored.
            Value::Json(j) => serde_json::from_str(j).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl fmt::Display for Value<'_> {
    /// As [`Value::write_text`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_text(&mut s);
        f.write_str(&s)
    }
}

/// The columns as they cross to a plugin (`wit/plugin.wit`'s `fields`). Field `i` belongs to
/// record `owners[i]`; its key is `strings[value_ends[i - 1]..key_ends[i]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    pub owners: Vec<u32>,
    pub kinds: Vec<u8>,
    pub key_ends: Vec<u32>,
    pub value_ends: Vec<u32>,
    pub ints: Vec<i64>,
    pub floats: Vec<f64>,
    pub strings: Vec<u8>,
}

/// What the host keeps of a store while its [`Columns`] are with a plugin.
#[derive(Debug, Default)]
pub struct Parts {
    key_starts: Vec<u32>,
    slots: Vec<u32>,
    spans: Vec<(u32, u32)>,
}

/// Every record's fields for one batch. Record `i`'s fields are the entries `spans[i]`; a store
/// covers either no record (no record has any field) or every record of its batch.
#[derive(Debug, Clone, Default)]
pub struct FieldStore {
    kinds: Vec<u8>,
    key_starts: Vec<u32>,
    key_ends: Vec<u32>,
    /// A text or JSON value is `strings[key_ends[i]..value_ends[i]]`; other kinds have
    /// `value_ends[i] == key_ends[i]`.
    value_ends: Vec<u32>,
    /// For an integer or a float, its index in `ints` or `floats`.
    slots: Vec<u32>,
    ints: Vec<i64>,
    floats: Vec<f64>,
    strings: String,
    /// Per record, its first entry and one past its last.
    spans: Vec<(u32, u32)>,
    /// Fields every record has, stored once: a store of one record (see the module comment).
    shared: Option<Box<FieldStore>>,
}

impl FieldStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of records the store covers (0 when no record has fields).
    pub fn records(&self) -> usize {
        self.spans.len()
    }

    /// Whether no record has any field.
    pub fn is_empty(&self) -> bool {
        if !self.spans.is_empty() && self.shared.as_ref().is_some_and(|s| !s.is_empty_at(0)) {
            return false;
        }
        self.spans.iter().all(|&(s, e)| {
            self.kinds[s as usize..e as usize]
                .iter()
                .all(|&k| k == GONE)
        })
    }

    /// Makes the store cover `n` records (new ones without fields).
    pub fn cover(&mut self, n: usize) {
        if n > self.spans.len() {
            let end = self.kinds.len() as u32;
            self.spans.resize(n, (end, end));
        }
    }

    /// Room for `fields` more fields and `bytes` more key and value bytes.
    pub fn reserve(&mut self, fields: usize, bytes: usize) {
        self.kinds.reserve(fields);
        self.key_starts.reserve(fields);
        self.key_ends.reserve(fields);
        self.value_ends.reserve(fields);
        self.slots.reserve(fields);
        self.strings.reserve(bytes);
    }

    /// The fields of `record`, in the order they were set (its own, then the shared ones it
    /// does not have itself).
    pub fn iter(&self, record: usize) -> Iter<'_> {
        let (start, end) = self.spans.get(record).copied().unwrap_or((0, 0));
        let shared = self.shared.as_deref().filter(|_| record < self.spans.len());
        Iter {
            store: self,
            at: start as usize,
            end: end as usize,
            shared,
            record,
            shared_at: 0,
        }
    }

    /// A writer of the fields every record has (`fields:`, `enrich`), kept once for the whole
    /// batch: a key set here wins over a record's own field of that name. The store must cover
    /// the batch's records already ([`FieldStore::cover`]).
    pub fn shared_writer(&mut self) -> Writer<'_> {
        self.shared
            .get_or_insert_with(|| {
                let mut one = FieldStore::new();
                one.cover(1);
                Box::new(one)
            })
            .writer(0)
    }

    /// Whether some fields are kept once for every record.
    pub fn has_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Writes the shared fields into every record (before a record's own fields are edited).
    fn materialize(&mut self) {
        if self.shared.is_some() {
            *self = self.compacted();
        }
    }

    /// The number of fields of `record`.
    pub fn count(&self, record: usize) -> usize {
        self.iter(record).count()
    }

    /// Whether `record` has no field.
    pub fn is_empty_at(&self, record: usize) -> bool {
        self.iter(record).next().is_none()
    }

    /// Field `key` of `record`.
    pub fn get(&self, record: usize, key: &str) -> Option<Value<'_>> {
        if let Some(sh) = &self.shared
            && record < self.spans.len()
            && let Some(i) = sh.find(0, key)
        {
            return Some(sh.value(i));
        }
        self.find(record, key).map(|i| self.value(i))
    }

    /// Field `key` of `record`, or the value at its dotted path inside nested objects
    /// (`kubernetes.pod_name`) when no field is named `key` itself. A value found inside a
    /// nested object is returned as an owned `serde_json::Value`.
    pub fn lookup(&self, record: usize, key: &str) -> Option<Found<'_>> {
        if let Some(v) = self.get(record, key) {
            return Some(Found::Field(v));
        }
        let (first, rest) = key.split_once('.')?;
        let Value::Json(text) = self.get(record, first)? else {
            return None;
        };
        let parts: Vec<&str> = rest.split('.').collect();
        nested_value(text, &parts).map(Found::Nested)
    }

    fn find(&self, record: usize, key: &str) -> Option<usize> {
        let (start, end) = *self.spans.get(record)?;
        (start as usize..end as usize).find(|&i| self.kinds[i] != GONE && self.key(i) == key)
    }

    fn key(&self, i: usize) -> &str {
        &self.strings[self.key_starts[i] as usize..self.key_ends[i] as usize]
    }

    fn value(&self, i: usize) -> Value<'_> {
        match self.kinds[i] {
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => Value::Int(self.ints[self.slots[i] as usize]),
            FLOAT => Value::Float(self.floats[self.slots[i] as usize]),
            TEXT => {
                Value::Text(&self.strings[self.key_ends[i] as usize..self.value_ends[i] as usize])
            }
            JSON => {
                Value::Json(&self.strings[self.key_ends[i] as usize..self.value_ends[i] as usize])
            }
            _ => Value::Null,
        }
    }

    /// A writer adding fields to `record` (growing the store to cover it). Setting a key the
    /// record already has replaces that field's value in place, as a map would.
    pub fn writer(&mut self, record: usize) -> Writer<'_> {
        self.materialize();
        if self.spans.len() <= record {
            self.cover(record + 1);
        }
        let end = self.kinds.len() as u32;
        let (start, stop) = self.spans[record];
        if stop != end {
            // Not the last entries: move the record's entries to the end (the key and value
            // bytes stay where they are).
            for i in start as usize..stop as usize {
                self.kinds.push(self.kinds[i]);
                self.key_starts.push(self.key_starts[i]);
                self.key_ends.push(self.key_ends[i]);
                self.value_ends.push(self.value_ends[i]);
                self.slots.push(self.slots[i]);
                self.kinds[i] = GONE;
            }
            self.spans[record] = (end, self.kinds.len() as u32);
        }
        Writer {
            prior: self.spans[record],
            store: self,
            record,
            own_twice: true,
        }
    }

    /// Removes the fields of `record` for which `drop(key)` is true.
    pub fn remove_where(&mut self, record: usize, mut drop: impl FnMut(&str) -> bool) {
        self.materialize();
        let Some(&(start, end)) = self.spans.get(record) else {
            return;
        };
        for i in start as usize..end as usize {
            if self.kinds[i] != GONE && drop(self.key(i)) {
                self.kinds[i] = GONE;
            }
        }
    }

    /// Removes field `key` of `record`, returning whether it had one.
    pub fn remove(&mut self, record: usize, key: &str) -> bool {
        self.materialize();
        match self.find(record, key) {
            Some(i) => {
                self.kinds[i] = GONE;
                true
            }
            None => false,
        }
    }

    /// Renames field `from` of `record` to `to`, returning whether it had one. As a map does it
    /// (remove, then insert): the field goes last under its new name, or takes the place of a
    /// field already named `to` (renaming a field to its own name moves it last). Numbers keep their slot; only a text value's bytes are copied.
    pub fn rename(&mut self, record: usize, from: &str, to: &str) -> bool {
        self.materialize();
        let Some(i) = self.find(record, from) else {
            return false;
        };
        let (kind, slot) = (self.kinds[i], self.slots[i]);
        let text = matches!(kind, TEXT | JSON).then(|| {
            self.strings[self.key_ends[i] as usize..self.value_ends[i] as usize].to_owned()
        });
        self.kinds[i] = GONE;
        let mut w = self.writer(record);
        let j = w.entry(to, kind, slot);
        if let Some(text) = text {
            w.store.strings.push_str(&text);
            w.store.value_ends[j] = w.store.strings.len() as u32;
        }
        true
    }

    /// Removes every field of `record`.
    pub fn clear(&mut self, record: usize) {
        self.remove_where(record, |_| true);
    }

    /// Keeps the records whose entry in `keep` is true (one per record), with their fields.
    pub fn retain(&mut self, keep: &[bool]) {
        if self.spans.is_empty() {
            return;
        }
        let mut i = 0;
        self.spans.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }

    /// Copies `record` of `other` (its fields) to the end of this store as its next record.
    pub fn push_from(&mut self, other: &FieldStore, record: usize) {
        let r = self.spans.len();
        self.cover(r + 1);
        // A store's record never holds one key twice.
        let mut w = self.writer(r).unique_keys();
        for (k, v) in other.iter(record) {
            w.value(k, v);
        }
    }

    /// Appends the fields of `record` of `other` to `record` of this store (the key already
    /// there is replaced).
    pub fn copy_record(&mut self, record: usize, other: &FieldStore, from: usize) {
        let mut w = self.writer(record);
        for (k, v) in other.iter(from) {
            w.value(k, v);
        }
    }

    /// Whether the columns are exactly the WIT layout of the live fields, in record order.
    fn is_compact(&self) -> bool {
        if self.shared.is_some() {
            return false;
        }
        let n = self.kinds.len();
        let mut at = 0u32;
        for &(s, e) in self.spans.iter().filter(|(s, e)| s != e) {
            if s != at {
                return false;
            }
            at = e;
        }
        if at as usize != n {
            return false;
        }
        let (mut ints, mut floats, mut pos) = (0u32, 0u32, 0u32);
        for i in 0..n {
            match self.kinds[i] {
                GONE => return false,
                INT if self.slots[i] != ints => return false,
                FLOAT if self.slots[i] != floats => return false,
                INT => ints += 1,
                FLOAT => floats += 1,
                _ => {}
            }
            if self.key_starts[i] != pos {
                return false;
            }
            pos = self.value_ends[i];
        }
        ints as usize == self.ints.len()
            && floats as usize == self.floats.len()
            && pos as usize == self.strings.len()
    }

    /// The store rebuilt in WIT layout: live fields only (shared ones written into every
    /// record), in record order.
    fn compacted(&self) -> FieldStore {
        let mut out = FieldStore::new();
        out.reserve(self.kinds.len(), self.strings.len());
        for r in 0..self.spans.len() {
            out.push_from(self, r);
        }
        out
    }

    /// The columns for a plugin: moved out when the layout already is WIT's, else rebuilt once.
    /// [`FieldStore::rejoin`] with the returned [`Parts`] gives the store back unchanged.
    pub fn into_columns(mut self) -> (Columns, Parts) {
        if !self.is_compact() {
            self = self.compacted();
        }
        let mut owners = Vec::with_capacity(self.kinds.len());
        for (r, &(s, e)) in self.spans.iter().enumerate() {
            owners.extend(std::iter::repeat_n(r as u32, (e - s) as usize));
        }
        let columns = Columns {
            owners,
            kinds: self.kinds,
            key_ends: self.key_ends,
            value_ends: self.value_ends,
            ints: self.ints,
            floats: self.floats,
            strings: self.strings.into_bytes(),
        };
        let parts = Parts {
            key_starts: self.key_starts,
            slots: self.slots,
            spans: self.spans,
        };
        (columns, parts)
    }

    /// The store that [`into_columns`](Self::into_columns) took apart, from its own columns
    /// (which nothing changed: no check is needed; a mismatch gives an empty store).
    pub fn rejoin(c: Columns, p: Parts) -> FieldStore {
        let n = c.kinds.len();
        let fits = c.key_ends.len() == n
            && c.value_ends.len() == n
            && p.key_starts.len() == n
            && p.slots.len() == n;
        match String::from_utf8(c.strings) {
            Ok(strings) if fits => FieldStore {
                kinds: c.kinds,
                key_starts: p.key_starts,
                key_ends: c.key_ends,
                value_ends: c.value_ends,
                slots: p.slots,
                ints: c.ints,
                floats: c.floats,
                strings,
                spans: p.spans,
                shared: None,
            },
            _ => FieldStore::new(),
        }
    }

    /// Takes columns back (from a plugin, or as [`into_columns`](Self::into_columns) gave them)
    /// for `records` records, after checking every index, kind, count and text. On error the
    /// reason names the field; nothing is kept.
    pub fn from_columns(c: Columns, records: usize) -> Result<FieldStore, String> {
        let n = c.owners.len();
        if c.kinds.len() != n || c.key_ends.len() != n || c.value_ends.len() != n {
            return Err(format!(
                "the field columns differ in length (owners {n}, kinds {}, key ends {}, value ends {})",
                c.kinds.len(),
                c.key_ends.len(),
                c.value_ends.len()
            ));
        }
        let strings = match String::from_utf8(c.strings) {
            Ok(s) => s,
            Err(e) => {
                // Name the field whose key or value holds the bad byte.
                let bad = e.utf8_error().valid_up_to() as u32;
                let i = c.value_ends.partition_point(|&end| end <= bad);
                let what = if c.key_ends.get(i).is_some_and(|&k| bad < k) {
                    "key"
                } else {
                    "value"
                };
                return Err(format!("field {i}'s {what} is not UTF-8"));
            }
        };
        let mut key_starts = Vec::with_capacity(n);
        let mut slots = Vec::with_capacity(n);
        let mut spans = vec![(u32::MAX, u32::MAX); records];
        let (mut ints, mut floats) = (0usize, 0usize);
        let mut pos = 0usize;
        let mut prev_owner = 0usize;
        for i in 0..n {
            let owner = c.owners[i] as usize;
            if owner >= records {
                return Err(format!(
                    "field {i} belongs to record {owner}, but there are {records} records"
                ));
            }
            if owner < prev_owner {
                return Err(format!(
                    "field {i} belongs to record {owner} but comes after record {prev_owner}'s (fields must be grouped by record, in order)"
                ));
            }
            if spans[owner].0 == u32::MAX {
                spans[owner].0 = i as u32;
            }
            spans[owner].1 = i as u32 + 1;
            prev_owner = owner;
            let (key_end, value_end) = (c.key_ends[i] as usize, c.value_ends[i] as usize);
            if key_end < pos || value_end < key_end || value_end > strings.len() {
                return Err(format!("field {i}'s key or value is out of bounds"));
            }
            for (at, what) in [(key_end, "key"), (value_end, "value")] {
                if !strings.is_char_boundary(at) {
                    return Err(format!("field {i}'s {what} is not UTF-8"));
                }
            }
            let kind = c.kinds[i];
            if !matches!(kind, TEXT | JSON) && value_end != key_end {
                return Err(format!("field {i} has kind {kind} but a text value"));
            }
            let slot = match kind {
                NULL | FALSE | TRUE | TEXT => 0,
                INT => {
                    ints += 1;
                    if ints > c.ints.len() {
                        return Err(format!("field {i} is an integer past the end of `ints`"));
                    }
                    ints - 1
                }
                FLOAT => {
                    floats += 1;
                    if floats > c.floats.len() {
                        return Err(format!("field {i} is a float past the end of `floats`"));
                    }
                    floats - 1
                }
                JSON => match serde_json::from_str::<serde::de::IgnoredAny>(
                    &strings[key_end..value_end],
                ) {
                    Ok(_) => 0,
                    Err(e) => return Err(format!("field {i}'s json value does not parse: {e}")),
                },
                other => return Err(format!("field {i} has an unknown kind {other}")),
            };
            key_starts.push(pos as u32);
            slots.push(slot as u32);
            pos = value_end;
        }
        if ints != c.ints.len() || floats != c.floats.len() {
            return Err("`ints` or `floats` hold more values than the fields use".into());
        }
        // Records without fields get an empty span where their fields would be.
        let mut at = 0u32;
        for span in &mut spans {
            if span.0 == u32::MAX {
                *span = (at, at);
            }
            at = span.1;
        }
        Ok(FieldStore {
            kinds: c.kinds,
            key_starts,
            key_ends: c.key_ends,
            value_ends: c.value_ends,
            slots,
            ints: c.ints,
            floats: c.floats,
            strings,
            spans,
            shared: None,
        })
    }

    /// Record `record`'s fields as a JSON object appended to `out` (`{}` when it has none).
    pub fn write_json(&self, record: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        for (n, (k, v)) in self.iter(record).enumerate() {
            if n > 0 {
                out.push(b',');
            }
            Value::Text(k).write_json(out);
            out.push(b':');
            v.write_json(out);
        }
        out.push(b'}');
    }

    /// Record `record`'s fields as a map (a copy; for code off the hot path and for tests).
    pub fn to_map(&self, record: usize) -> serde_json::Map<String, serde_json::Value> {
        self.iter(record)
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect()
    }

    /// Sets `record`'s fields from a map (added to those it has).
    pub fn set_map(&mut self, record: usize, map: &serde_json::Map<String, serde_json::Value>) {
        let mut w = self.writer(record);
        for (k, v) in map {
            w.json(k, v);
        }
    }

    /// The bytes the store holds (columns and text), as counted against limits.
    pub fn size(&self) -> usize {
        self.strings.len()
            + self.kinds.len() * 21
            + 8 * (self.ints.len() + self.floats.len())
            + self.shared.as_ref().map_or(0, |s| s.size())
    }
}

/// What [`FieldStore::lookup`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Found<'a> {
    Field(Value<'a>),
    Nested(serde_json::Value),
}

impl Found<'_> {
    /// Appends the value as a template shows it (text as it is, anything else as JSON).
    pub fn write_text(&self, out: &mut String) {
        match self {
            Found::Field(v) => v.write_text(out),
            Found::Nested(serde_json::Value::String(s)) => out.push_str(s),
            Found::Nested(v) => out.push_str(&v.to_string()),
        }
    }
}

/// The value at `path` inside the JSON object `text` (a member of a member ...), or `None` when
/// a step is missing or not an object. The text is read once, and only the value found is built:
/// the members off the path are skipped, not turned into a tree. A key given twice counts by its
/// last value, as a parsed map would keep it.
fn nested_value(text: &str, path: &[&str]) -> Option<serde_json::Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(PathSeed(path), &mut de).ok()?
}

/// Reads the value at a path (the rest of the path still to go).
struct PathSeed<'p>(&'p [&'p str]);

impl<'de> serde::de::DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<serde_json::Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.0.is_empty() {
            return serde::Deserialize::deserialize(d).map(Some);
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PathSeed<'_> {
    type Value = Option<serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (want, rest) = (self.0[0], &self.0[1..]);
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(want))? {
            if hit {
                found = map.next_value_seed(PathSeed(rest))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Reads an object key and says whether it is the one wanted (without keeping it).
struct KeyIs<'k>(&'k str);

impl<'de> serde::de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// The fields of one record.
pub struct Iter<'a> {
    store: &'a FieldStore,
    at: usize,
    end: usize,
    /// The shared fields, read after the record's own.
    shared: Option<&'a FieldStore>,
    record: usize,
    shared_at: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        while self.at < self.end {
            let i = self.at;
            self.at += 1;
            if self.store.kinds[i] != GONE {
                let key = self.store.key(i);
                // A shared field takes the place of the record's own of the same name.
                if let Some(sh) = self.shared
                    && let Some(j) = sh.find(0, key)
                {
                    return Some((key, sh.value(j)));
                }
                return Some((key, self.store.value(i)));
            }
        }
        let sh = self.shared?;
        let (start, end) = sh.spans[0];
        while (start as usize + self.shared_at) < end as usize {
            let j = start as usize + self.shared_at;
            self.shared_at += 1;
            if sh.kinds[j] != GONE {
                let key = sh.key(j);
                if self.store.find(self.record, key).is_none() {
                    return Some((key, sh.value(j)));
                }
            }
        }
        None
    }
}

/// Adds fields to one record (see [`FieldStore::writer`]).
pub struct Writer<'a> {
    store: &'a mut FieldStore,
    record: usize,
    /// The record's entries when the writer opened.
    prior: (u32, u32),
    /// Whether this writer may set one key twice (checked against its own fields too).
    own_twice: bool,
}

impl Writer<'_> {
    /// A writer whose caller never sets one key twice (a parser with a fixed set of field
    /// names): each key is then looked for only among the fields the record had before.
    pub fn unique_keys(mut self) -> Self {
        self.own_twice = false;
        self
    }

    /// Starts entry for `key`: replaces the record's field of that name in place, or appends one.
    /// Returns its index; the key bytes are written, the value's are to follow.
    fn entry(&mut self, key: &str, kind: u8, slot: u32) -> usize {
        let s = &mut *self.store;
        let (start, end) = if self.own_twice {
            s.spans[self.record]
        } else {
            self.prior
        };
        let existing =
            (start as usize..end as usize).find(|&i| s.kinds[i] != GONE && s.key(i) == key);
        let start = s.strings.len() as u32;
        s.strings.push_str(key);
        let key_end = s.strings.len() as u32;
        match existing {
            Some(i) => {
                s.kinds[i] = kind;
                s.key_starts[i] = start;
                s.key_ends[i] = key_end;
                s.value_ends[i] = key_end;
                s.slots[i] = slot;
                i
            }
            None => {
                s.kinds.push(kind);
                s.key_starts.push(start);
                s.key_ends.push(key_end);
                s.value_ends.push(key_end);
                s.slots.push(slot);
                s.spans[self.record].1 = s.kinds.len() as u32;
                s.kinds.len() - 1
            }
        }
    }

    pub fn null(&mut self, key: &str) {
        self.entry(key, NULL, 0);
    }

    pub fn bool(&mut self, key: &str, v: bool) {
        self.entry(key, if v { TRUE } else { FALSE }, 0);
    }

    pub fn int(&mut self, key: &str, v: i64) {
        let slot = self.store.ints.len() as u32;
        self.store.ints.push(v);
        self.entry(key, INT, slot);
    }

    pub fn float(&mut self, key: &str, v: f64) {
        let slot = self.store.floats.len() as u32;
        self.store.floats.push(v);
        self.entry(key, FLOAT, slot);
    }

    pub fn text(&mut self, key: &str, v: &str) {
        let i = self.entry(key, TEXT, 0);
        self.store.strings.push_str(v);
        self.store.value_ends[i] = self.store.strings.len() as u32;
    }

    /// A text value written by `write` straight into the store's buffer.
    pub fn text_with(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        let i = self.entry(key, TEXT, 0);
        write(&mut self.store.strings);
        self.store.value_ends[i] = self.store.strings.len() as u32;
    }

    /// A nested object or array given as JSON text the caller guarantees is valid.
    fn json_text(&mut self, key: &str, v: &str) {
        let i = self.entry(key, JSON, 0);
        self.store.strings.push_str(v);
        self.store.value_ends[i] = self.store.strings.len() as u32;
    }

    /// Any JSON value: scalars get their own kind, objects and arrays are kept as JSON text.
    pub fn json(&mut self, key: &str, v: &serde_json::Value) {
        match v {
            serde_json::Value::Null => self.null(key),
            serde_json::Value::Bool(b) => self.bool(key, *b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => self.int(key, i),
                None if n.is_f64() => self.float(key, n.as_f64().unwrap_or(f64::NAN)),
                // An integer above i64::MAX keeps its digits as JSON text.
                None => self.json_text(key, &n.to_string()),
            },
            serde_json::Value::String(s) => self.text(key, s),
            nested => {
                // Objects and arrays serialise to valid JSON text.
                let text = nested.to_string();
                self.json_text(key, &text);
            }
        }
    }

    /// A value borrowed from another store (or this one, copied first).
    pub fn value(&mut self, key: &str, v: Value<'_>) {
        match v {
            Value::Null => self.null(key),
            Value::Bool(b) => self.bool(key, b),
            Value::Int(i) => self.int(key, i),
            Value::Float(f) => self.float(key, f),
            Value::Text(s) => self.text(key, s),
            Value::Json(j) => self.json_text(key, j),
        }
    }
}

/// Where a parser writes a record's fields: the batch's store (through a [`Writer`]) on the
/// pipeline, or a map in tests and tools. Setting a key twice keeps the last value.
pub trait FieldSink {
    fn null(&mut self, key: &str);
    fn bool(&mut self, key: &str, v: bool);
    fn int(&mut self, key: &str, v: i64);
    fn float(&mut self, key: &str, v: f64);
    fn text(&mut self, key: &str, v: &str);
    /// Text from bytes that may not be UTF-8 (invalid sequences become U+FFFD).
    fn text_lossy(&mut self, key: &str, v: &[u8]) {
        self.text(key, &super::text(v));
    }
    /// Any JSON value (objects and arrays nested).
    fn json(&mut self, key: &str, v: serde_json::Value);
    /// Removes every field of the record.
    fn clear(&mut self);
}

impl FieldSink for Writer<'_> {
    fn null(&mut self, key: &str) {
        Writer::null(self, key)
    }
    fn bool(&mut self, key: &str, v: bool) {
        Writer::bool(self, key, v)
    }
    fn int(&mut self, key: &str, v: i64) {
        Writer::int(self, key, v)
    }
    fn float(&mut self, key: &str, v: f64) {
        Writer::float(self, key, v)
    }
    fn text(&mut self, key: &str, v: &str) {
        Writer::text(self, key, v)
    }
    fn json(&mut self, key: &str, v: serde_json::Value) {
        Writer::json(self, key, &v)
    }
    fn clear(&mut self) {
        self.store.clear(self.record);
    }
}

impl FieldSink for serde_json::Map<String, serde_json::Value> {
    fn null(&mut self, key: &str) {
        self.insert(key.into(), serde_json::Value::Null);
    }
    fn bool(&mut self, key: &str, v: bool) {
        self.insert(key.into(), v.into());
    }
    fn int(&mut self, key: &str, v: i64) {
        self.insert(key.into(), v.into());
    }
    fn float(&mut self, key: &str, v: f64) {
        self.insert(key.into(), v.into());
    }
    fn text(&mut self, key: &str, v: &str) {
        self.insert(key.into(), v.into());
    }
    fn json(&mut self, key: &str, v: serde_json::Value) {
        self.insert(key.into(), v);
    }
    fn clear(&mut self) {
        serde_json::Map::clear(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `store()` with `status` and `pod` shared, and the same written into each record.
    fn shared_and_written() -> (FieldStore, FieldStore) {
        let shared_fields = |w: &mut Writer<'_>| {
            w.int("status", 500);
            w.json("pod", &serde_json::json!({"name": "web-1"}));
        };
        let mut shared = store();
        shared_fields(&mut shared.shared_writer());
        let mut written = store();
        for r in 0..3 {
            shared_fields(&mut written.writer(r));
        }
        (shared, written)
    }

    fn json_of(s: &FieldStore, r: usize) -> String {
        let mut out = Vec::new();
        s.write_json(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn shared_fields_read_per_record_as_if_written_into_each() {
        let (shared, written) = shared_and_written();
        assert!(shared.has_shared());
        for r in 0..3 {
            assert_eq!(json_of(&shared, r), json_of(&written, r), "record {r}");
            assert_eq!(shared.get(r, "status"), Some(Value::Int(500)));
            assert_eq!(shared.count(r), written.count(r));
            assert!(!shared.is_empty_at(r));
        }
        assert_eq!(
            json_of(&shared, 0),
            r#"{"method":"GET","status":500,"ratio":0.5,"ok":true,"none":null,"pod":{"name":"web-1"}}"#,
            "a record's own field takes the shared value in its place"
        );
        assert_eq!(
            shared.lookup(1, "pod.name"),
            Some(Found::Nested(serde_json::json!("web-1")))
        );
        assert!(shared.size() > store().size());
    }

    #[test]
    fn editing_one_record_writes_the_shared_fields_into_every_record_first() {
        let (mut shared, mut written) = shared_and_written();
        shared.remove(1, "pod");
        written.remove(1, "pod");
        shared.writer(2).text("extra", "x");
        written.writer(2).text("extra", "x");
        assert!(!shared.has_shared());
        for r in 0..3 {
            assert_eq!(json_of(&shared, r), json_of(&written, r), "record {r}");
        }
        assert_eq!(
            shared.get(0, "pod"),
            Some(Value::Json(r#"{"name":"web-1"}"#))
        );
        assert_eq!(shared.get(1, "pod"), None);
    }

    #[test]
    fn shared_fields_survive_retain_and_cross_to_a_plugin_in_every_record() {
        let (mut shared, written) = shared_and_written();
        shared.retain(&[false, true, true]);
        assert_eq!(json_of(&shared, 0), json_of(&written, 1));
        let (columns, _) = shared.into_columns();
        let back = FieldStore::from_columns(columns, 2).unwrap();
        assert!(!back.has_shared());
        assert_eq!(json_of(&back, 0), json_of(&written, 1));
        assert_eq!(json_of(&back, 1), json_of(&written, 2));
    }

    /// Three records: typed fields, none, and a nested object.
    fn store() -> FieldStore {
        let mut s = FieldStore::new();
        s.cover(3);
        let mut w = s.writer(0);
        w.text("method", "GET");
        w.int("status", 200);
        w.float("ratio", 0.5);
        w.bool("ok", true);
        w.null("none");
        let mut w = s.writer(2);
        w.text("é", "ünï");
        w.json(
            "k8s",
            &serde_json::json!({"pod": {"name": "web-1"}, "n": [1, 2]}),
        );
        s
    }

    fn fields(s: &FieldStore, r: usize) -> Vec<(String, String)> {
        s.iter(r)
            .map(|(k, v)| {
                let mut j = Vec::new();
                v.write_json(&mut j);
                (k.to_string(), String::from_utf8(j).unwrap())
            })
            .collect()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = (0u8..=0x7f).map(|b| (b as char).to_string()).collect();
        cases.extend(
            [
                "",
                "plain text longer than eight bytes",
                "quote \" in the middle of a long run of text",
                "back\\slash",
                "é 日本 😀 \u{7}\n\t\"\\/",
                "1234567\"",
                "12345678\n",
                "\u{1f}\u{0}\u{7f}\u{80}",
            ]
            .map(String::from),
        );
        for s in cases {
            let mut ours = Vec::new();
            write_json_str(&mut ours, &s);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&s).unwrap(),
                "{s:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(s in "\\PC*|[\\x00-\\x7f]{0,40}") {
            let mut ours = Vec::new();
            write_json_str(&mut ours, &s);
            proptest::prop_assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
        }
    }

    #[test]
    fn typed_fields_read_back_per_record_in_order() {
        let s = store();
        assert_eq!(s.records(), 3);
        assert_eq!(
            fields(&s, 0),
            [
                ("method", "\"GET\""),
                ("status", "200"),
                ("ratio", "0.5"),
                ("ok", "true"),
                ("none", "null")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(s.is_empty_at(1));
        assert_eq!(s.get(0, "status"), Some(Value::Int(200)));
        assert_eq!(s.get(2, "é").and_then(|v| v.as_str()), Some("ünï"));
        assert_eq!(s.get(1, "status"), None);
        let mut t = String::new();
        s.lookup(2, "k8s.pod.name").unwrap().write_text(&mut t);
        assert_eq!(t, "web-1");
        assert!(s.lookup(2, "k8s.pod.none").is_none());
        assert_eq!(s.to_map(2)["k8s"]["n"], serde_json::json!([1, 2]));
    }

    #[test]
    fn rename_behaves_as_remove_then_insert_on_a_map() {
        let mut s = store();
        let mut m = s.to_map(0);
        for (from, to) in [
            ("method", "verb"),
            ("ratio", "status"),
            ("ok", "ok"),
            ("gone", "x"),
        ] {
            let had = s.rename(0, from, to);
            assert_eq!(had, m.contains_key(from), "{from} -> {to}");
            if let Some(v) = m.shift_remove(from) {
                m.insert(to.to_string(), v);
            }
            assert_eq!(s.to_map(0), m, "after {from} -> {to}");
            assert_eq!(
                s.iter(0).map(|(k, _)| k).collect::<Vec<_>>(),
                m.keys().map(String::as_str).collect::<Vec<_>>()
            );
        }
        assert_eq!(s.get(0, "verb"), Some(Value::Text("GET")));
        assert_eq!(s.get(0, "status"), Some(Value::Float(0.5)));
        // Other records are untouched; a rename in a batch with shared fields sees them.
        assert_eq!(s.get(2, "é").and_then(|v| v.as_str()), Some("ünï"));
        let (mut shared, mut written) = shared_and_written();
        assert!(shared.rename(1, "pod", "owner"));
        written.rename(1, "pod", "owner");
        for r in 0..3 {
            assert_eq!(json_of(&shared, r), json_of(&written, r), "record {r}");
        }
    }

    #[test]
    fn nested_lookups_read_only_the_path_and_agree_with_a_parsed_tree() {
        let text = r#"{"pod_name":"web-1","labels":{"app":"web","a.b":"dotted","t\u0069er":"1"},
            "n":{"m":{"x":[1,{"y":2}],"z":null}},"dup":{"k":1},"dup":{"k":2},"list":[{"k":3}]}"#;
        // What a full parse and walk gives, the old way.
        let walk = |path: &[&str]| {
            let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
            for p in path {
                v = v.as_object_mut()?.remove(*p)?;
            }
            Some(v)
        };
        for path in [
            &["pod_name"][..],
            &["labels"],
            &["labels", "app"],
            &["labels", "tier"],
            &["n", "m", "x"],
            &["n", "m", "z"],
            &["n", "m", "x", "y"],
            &["dup", "k"],
            &["list", "k"],
            &["pod_name", "x"],
            &["missing"],
            &["labels", "missing"],
        ] {
            assert_eq!(nested_value(text, path), walk(path), "{path:?}");
        }
        assert_eq!(
            nested_value(text, &["dup", "k"]),
            Some(2.into()),
            "the last of a repeated key"
        );
        assert_eq!(
            nested_value(text, &["n", "m", "z"]),
            Some(serde_json::Value::Null)
        );
        // Through the store: a field's dotted path, shared or own.
        let mut s = store();
        s.shared_writer()
            .json("kubernetes", &serde_json::from_str(text).unwrap());
        let mut t = String::new();
        s.lookup(1, "kubernetes.labels.app")
            .unwrap()
            .write_text(&mut t);
        assert_eq!(t, "web");
        assert!(s.lookup(1, "kubernetes.labels.nope").is_none());
    }

    #[test]
    fn setting_a_key_twice_replaces_it_in_place() {
        let mut s = store();
        let mut w = s.writer(0);
        w.int("method", 3);
        w.text("new", "x");
        let keys: Vec<_> = s.iter(0).map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, ["method", "status", "ratio", "ok", "none", "new"]);
        assert_eq!(s.get(0, "method"), Some(Value::Int(3)));
        // Record 0 moved behind record 2: record 2 keeps its own fields.
        assert_eq!(s.get(2, "é").and_then(|v| v.as_str()), Some("ünï"));
        assert_eq!(s.count(2), 2);
    }

    #[test]
    fn a_writer_of_unique_keys_still_replaces_the_records_earlier_fields() {
        let mut s = store();
        let mut w = s.writer(0).unique_keys();
        w.int("status", 404);
        w.text("extra", "x");
        assert_eq!(s.get(0, "status"), Some(Value::Int(404)));
        assert_eq!(s.count(0), 6);
        let mut w = s.writer(1).unique_keys();
        w.int("a", 1);
        w.int("b", 2);
        assert_eq!(s.count(1), 2);
    }

    #[test]
    fn retain_keeps_records_and_their_fields_aligned() {
        let mut s = store();
        s.retain(&[false, true, true]);
        assert_eq!(s.records(), 2);
        assert!(s.is_empty_at(0));
        assert_eq!(s.count(1), 2);
        // And across a hand-over to a plugin, which compacts.
        let (c, _) = s.into_columns();
        assert_eq!(c.owners, [1, 1]);
        let back = FieldStore::from_columns(c, 2).unwrap();
        assert_eq!(
            fields(&back, 1)[0],
            ("é".to_string(), "\"ünï\"".to_string())
        );
    }

    #[test]
    fn removing_and_adding_keep_other_fields() {
        let mut s = store();
        assert!(s.remove(0, "ratio"));
        s.writer(0).text("code", "200");
        assert!(s.remove(0, "none"));
        assert!(!s.remove(0, "none"));
        s.remove_where(2, |k| k == "k8s");
        assert_eq!(
            fields(&s, 0),
            [
                ("method", "\"GET\""),
                ("status", "200"),
                ("ok", "true"),
                ("code", "\"200\"")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(s.count(2), 1);
        s.clear(2);
        assert!(s.is_empty_at(2));
        let back = FieldStore::from_columns(s.clone().into_columns().0, 3).unwrap();
        assert_eq!(fields(&back, 0), fields(&s, 0));
    }

    #[test]
    fn every_kind_round_trips_through_the_plugin_layout_by_moving_when_compact() {
        let s = store();
        assert!(s.is_compact(), "appends in record order are the WIT layout");
        let strings = s.strings.as_ptr();
        let (c, parts) = s.into_columns();
        assert_eq!(
            c.strings.as_ptr(),
            strings,
            "a compact store's text is moved, not copied"
        );
        let rejoined = FieldStore::rejoin(c.clone(), parts);
        assert_eq!(fields(&rejoined, 2), fields(&store(), 2));
        assert_eq!(c.owners, [0, 0, 0, 0, 0, 2, 2]);
        assert_eq!(c.kinds, [TEXT, INT, FLOAT, TRUE, NULL, TEXT, JSON]);
        assert_eq!(c.ints, [200]);
        assert_eq!(c.floats, [0.5]);
        let back = FieldStore::from_columns(c.clone(), 3).unwrap();
        assert!(back.is_compact());
        for r in 0..3 {
            assert_eq!(fields(&back, r), fields(&store(), r));
        }
        assert_eq!(back.into_columns().0, c);
        // An edited store is compacted once on the way out, to the same layout.
        let mut edited = store();
        edited.writer(0).text("status", "x");
        assert!(!edited.is_compact());
        let again = FieldStore::from_columns(edited.into_columns().0, 3).unwrap();
        assert!(again.is_compact());
        assert_eq!(again.get(0, "status"), Some(Value::Text("x")));
    }

    #[test]
    fn malformed_columns_are_refused_naming_the_field() {
        let good = store().into_columns().0;
        let bad = |edit: &dyn Fn(&mut Columns), records: usize| {
            let mut c = good.clone();
            edit(&mut c);
            FieldStore::from_columns(c, records).unwrap_err()
        };
        assert!(bad(&|_| {}, 2).contains("belongs to record 2, but there are 2 records"));
        assert!(
            bad(&|c| c.owners[6] = 0, 3)
                .contains("field 6 belongs to record 0 but comes after record 2's")
        );
        assert!(bad(&|c| c.kinds.pop().map(drop).unwrap(), 3).contains("differ in length"));
        assert!(bad(&|c| c.kinds[4] = 9, 3).contains("field 4 has an unknown kind 9"));
        assert!(bad(&|c| c.kinds[0] = INT, 3).contains("field 0 has kind 3 but a text value"));
        assert!(bad(&|c| c.ints.push(1), 3).contains("more values"));
        assert!(bad(&|c| c.floats.clear(), 3).contains("float past the end"));
        assert!(bad(&|c| c.value_ends[6] += 1, 3).contains("out of bounds"));
        // `é` is two bytes: an end inside it is refused.
        assert!(bad(&|c| c.key_ends[5] -= 1, 3).contains("field 5's key is not UTF-8"));
        assert!(bad(&|c| c.strings[0] = 0xff, 3).contains("field 0's key is not UTF-8"));
        let json = bad(&|c| *c.strings.last_mut().unwrap() = b'x', 3);
        assert!(
            json.contains("field 6's json value does not parse"),
            "{json}"
        );
    }

    #[test]
    fn copies_between_stores_keep_kinds() {
        let s = store();
        let mut t = FieldStore::new();
        t.push_from(&s, 2);
        t.push_from(&s, 0);
        assert_eq!(fields(&t, 0), fields(&s, 2));
        assert_eq!(fields(&t, 1), fields(&s, 0));
        let mut m = FieldStore::new();
        m.set_map(1, &s.to_map(0));
        assert_eq!(fields(&m, 1), fields(&s, 0));
        assert!(m.is_empty_at(0));
    }
}
