//! The per-record view a plugin works with, and what it decides.

use std::borrow::Cow;

use crate::columns::{FieldRange, NO_TIME, slice};
use crate::value::Value;
use crate::{Timestamp, wit};

/// What every record of a batch shares.
#[derive(Debug, Clone, Copy)]
pub struct BatchInfo<'a> {
    /// The stream's name in tailcar's configuration.
    pub stream: &'a str,
    /// The file the lines were read from.
    pub path: &'a str,
    /// When tailcar read them.
    pub read_at: Timestamp,
    /// How many records the batch holds.
    pub len: usize,
}

/// What becomes of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Keep the record, with the changes made to it.
    Keep,
    /// Drop it.
    Drop,
    /// Replace it by these records (in this order). Each starts with the record's fields.
    Split(Vec<Emit>),
    /// Fail the whole batch with this message: tailcar logs it with the plugin's name, counts
    /// it, and applies the plugin's `on_error` policy to every record of the batch.
    Fail(String),
}

/// One record of a [`Verdict::Split`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Emit {
    pub line: Vec<u8>,
    pub fields: Vec<(String, Value<'static>)>,
    pub time: Option<Timestamp>,
}

impl Emit {
    pub fn line(line: impl Into<Vec<u8>>) -> Self {
        Emit {
            line: line.into(),
            ..Emit::default()
        }
    }

    /// Adds (or replaces) a field.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value<'static>>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }

    pub fn time(mut self, time: Timestamp) -> Self {
        self.time = Some(time);
        self
    }
}

pub(crate) type FieldList<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

/// One input record: its line, time and fields, which a plugin reads and changes.
///
/// Reading is free of copies: the line and field values point into the batch. Changes are kept
/// aside and only they cross back to tailcar.
pub struct Record<'a> {
    batch: &'a wit::Batch,
    index: usize,
    input_line: &'a [u8],
    input_time: Option<Timestamp>,
    input_fields: FieldRange<'a>,
    pub(crate) line: Option<Vec<u8>>,
    pub(crate) time: Option<Timestamp>,
    pub(crate) fields: Option<FieldList<'a>>,
    pub(crate) route: Option<Vec<String>>,
    /// An empty list to take when the fields are first changed.
    spare: FieldList<'a>,
}

fn reborrow<'s>(v: &'s Value<'_>) -> Value<'s> {
    match v {
        Value::Str(s) => Value::Str(Cow::Borrowed(s)),
        Value::Json(s) => Value::Json(Cow::Borrowed(s)),
        Value::Null => Value::Null,
        Value::Bool(b) => Value::Bool(*b),
        Value::Int(n) => Value::Int(*n),
        Value::Float(f) => Value::Float(*f),
    }
}

/// Record `index`'s line in a batch.
pub(crate) fn input_line(batch: &wit::Batch, index: usize) -> &[u8] {
    let start = if index == 0 {
        0
    } else {
        batch.line_ends[index - 1]
    };
    slice(&batch.data, start, batch.line_ends[index])
}

/// Record `index`'s event time in a batch.
pub(crate) fn input_time(batch: &wit::Batch, index: usize) -> Option<Timestamp> {
    let t = &batch.times;
    match (t.seconds.get(index), t.nanos.get(index)) {
        (Some(&seconds), Some(&nanos)) if nanos != NO_TIME => Some(Timestamp { seconds, nanos }),
        _ => None,
    }
}

impl<'a> Record<'a> {
    /// A record that reuses `spare` (empty) as its field list if its fields are changed.
    pub(crate) fn reusing(
        batch: &'a wit::Batch,
        index: usize,
        fields: FieldRange<'a>,
        spare: FieldList<'a>,
    ) -> Self {
        Record {
            spare,
            batch,
            index,
            input_line: input_line(batch, index),
            input_time: input_time(batch, index),
            input_fields: fields,
            line: None,
            time: None,
            fields: None,
            route: None,
        }
    }

    /// The record's position in its batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The stream's name.
    pub fn stream(&self) -> &'a str {
        &self.batch.stream
    }

    /// The file the line was read from.
    pub fn path(&self) -> &'a str {
        &self.batch.path
    }

    /// The line as it is now (replaced by [`Record::set_line`], or as read).
    pub fn line(&self) -> &[u8] {
        self.line.as_deref().unwrap_or(self.input_line)
    }

    /// The line as it is now, if it is UTF-8.
    pub fn line_str(&self) -> Option<&str> {
        std::str::from_utf8(self.line()).ok()
    }

    /// The line as read, borrowed from the batch: field values taken from it need no copy.
    pub fn input_line(&self) -> &'a [u8] {
        self.input_line
    }

    /// The line as read, if it is UTF-8.
    pub fn input_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.input_line).ok()
    }

    pub fn set_line(&mut self, line: impl Into<Vec<u8>>) {
        self.line = Some(line.into());
    }

    /// The event time, when a parser set one.
    pub fn time(&self) -> Option<Timestamp> {
        self.time.or(self.input_time)
    }

    pub fn set_time(&mut self, time: Timestamp) {
        self.time = Some(time);
    }

    /// The value of field `key`.
    pub fn field(&self, key: &str) -> Option<Value<'_>> {
        match &self.fields {
            Some(list) => list
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| reborrow(v)),
            None => self
                .input_fields
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v),
        }
    }

    /// All fields, in order.
    pub fn fields(&self) -> Vec<(&str, Value<'_>)> {
        match &self.fields {
            Some(list) => list.iter().map(|(k, v)| (&**k, reborrow(v))).collect(),
            None => self.input_fields.iter().collect(),
        }
    }

    /// True when the record has at least one field.
    pub fn has_fields(&self) -> bool {
        match &self.fields {
            Some(list) => !list.is_empty(),
            None => !self.input_fields.is_empty(),
        }
    }

    fn fields_mut(&mut self) -> &mut FieldList<'a> {
        if self.fields.is_none() {
            // The list an earlier record of the batch left (emptied), so a parser does not
            // allocate and grow one per record.
            let mut list = std::mem::take(&mut self.spare);
            list.extend(self.input_fields.iter().map(|(k, v)| (Cow::Borrowed(k), v)));
            self.fields = Some(list);
        }
        self.fields.get_or_insert_with(Vec::new)
    }

    /// The record's field list, emptied, for the next record to reuse.
    pub(crate) fn into_spare(self) -> FieldList<'a> {
        let mut list = self.fields.unwrap_or(self.spare);
        list.clear();
        list
    }

    /// Sets field `key` (replacing its value if it exists, else appending it).
    pub fn set_field(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Value<'a>>) {
        let key = key.into();
        let value = value.into();
        let list = self.fields_mut();
        match list.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => list.push((key, value)),
        }
    }

    /// Removes field `key`; true if it was there.
    pub fn remove_field(&mut self, key: &str) -> bool {
        let list = self.fields_mut();
        let before = list.len();
        list.retain(|(k, _)| k != key);
        list.len() != before
    }

    /// Sends the record to these sinks only (they must be among the stream's sinks, or the
    /// plugin's dead-letter sink), instead of all the stream's sinks.
    pub fn route_to(&mut self, sinks: &[&str]) {
        self.route = Some(sinks.iter().map(|s| s.to_string()).collect());
    }

    /// True when nothing about the record was changed.
    pub(crate) fn is_unchanged(&self) -> bool {
        self.line.is_none() && self.time.is_none() && self.fields.is_none() && self.route.is_none()
    }

    pub(crate) fn current_fields(&self) -> Vec<(String, Value<'static>)> {
        self.fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_owned()))
            .collect()
    }
}
