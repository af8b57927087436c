//! The WIT interface's columns: reading one record's fields out of a batch's `fields`, and
//! writing fields into an output's. The layout is described in `wit/plugin.wit`.

use std::borrow::Cow;

use crate::value::Value;
use crate::wit;

pub(crate) use tailcar_wire::NO_TIME;
pub(crate) use tailcar_wire::changes::{FIELDS, LINE, ROUTE, TIME};
use tailcar_wire::kind::{FALSE, FLOAT, INT, JSON, NULL, TEXT, TRUE};

pub(crate) fn empty_fields() -> wit::Fields {
    wit::Fields {
        owners: Vec::new(),
        kinds: Vec::new(),
        key_ends: Vec::new(),
        value_ends: Vec::new(),
        ints: Vec::new(),
        floats: Vec::new(),
        strings: Vec::new(),
    }
}

pub(crate) fn empty_times() -> wit::Times {
    wit::Times {
        seconds: Vec::new(),
        nanos: Vec::new(),
    }
}

/// Text the host wrote (always UTF-8; anything else reads as empty).
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// Bytes `[start, end)` of `buf`, empty when out of bounds.
pub(crate) fn slice(buf: &[u8], start: u32, end: u32) -> &[u8] {
    buf.get(start as usize..end as usize).unwrap_or_default()
}

/// One record's fields: a range of a `fields` column set, with where its numbers start.
#[derive(Clone, Copy)]
pub(crate) struct FieldRange<'a> {
    cols: &'a wit::Fields,
    start: usize,
    end: usize,
    ints: usize,
    floats: usize,
}

impl<'a> FieldRange<'a> {
    /// The fields, decoded in order. Values borrow from the columns.
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'a str, Value<'a>)> {
        let c = self.cols;
        let (mut ints, mut floats) = (self.ints, self.floats);
        (self.start..self.end).map(move |i| {
            let key_start = if i == 0 { 0 } else { c.value_ends[i - 1] };
            let key = text(slice(&c.strings, key_start, c.key_ends[i]));
            let raw = slice(&c.strings, c.key_ends[i], c.value_ends[i]);
            let value = match c.kinds[i] {
                FALSE => Value::Bool(false),
                TRUE => Value::Bool(true),
                INT => {
                    ints += 1;
                    c.ints.get(ints - 1).map_or(Value::Null, |&n| Value::Int(n))
                }
                FLOAT => {
                    floats += 1;
                    c.floats
                        .get(floats - 1)
                        .map_or(Value::Null, |&f| Value::Float(f))
                }
                TEXT => Value::Str(Cow::Borrowed(text(raw))),
                JSON => Value::Json(Cow::Borrowed(text(raw))),
                _ => Value::Null,
            };
            (key, value)
        })
    }

    pub(crate) fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// Walks a `fields` column set record by record, in order.
pub(crate) struct FieldCursor<'a> {
    cols: &'a wit::Fields,
    at: usize,
    ints: usize,
    floats: usize,
}

impl<'a> FieldCursor<'a> {
    pub(crate) fn new(cols: &'a wit::Fields) -> Self {
        FieldCursor {
            cols,
            at: 0,
            ints: 0,
            floats: 0,
        }
    }

    /// Moves past the fields whose owner satisfies `pred`, counting their numbers.
    fn advance_while(&mut self, pred: impl Fn(usize) -> bool) {
        let c = self.cols;
        let n = c.owners.len().min(c.kinds.len());
        while self.at < n && pred(c.owners[self.at] as usize) {
            match c.kinds[self.at] {
                INT => self.ints += 1,
                FLOAT => self.floats += 1,
                _ => {}
            }
            self.at += 1;
        }
    }

    /// The fields of record `owner`; records must be asked for in increasing order.
    pub(crate) fn next_record(&mut self, owner: usize) -> FieldRange<'a> {
        self.advance_while(|o| o < owner);
        let (start, ints, floats) = (self.at, self.ints, self.floats);
        self.advance_while(|o| o == owner);
        FieldRange {
            cols: self.cols,
            start,
            end: self.at,
            ints,
            floats,
        }
    }
}

/// Appends field `key` of record `owner` to `out`.
pub(crate) fn push_field(out: &mut wit::Fields, owner: u32, key: &str, value: &Value<'_>) {
    out.owners.push(owner);
    out.strings.extend_from_slice(key.as_bytes());
    out.key_ends.push(out.strings.len() as u32);
    let kind = match value {
        Value::Null => NULL,
        Value::Bool(false) => FALSE,
        Value::Bool(true) => TRUE,
        Value::Int(n) => {
            out.ints.push(*n);
            INT
        }
        Value::Float(f) => {
            out.floats.push(*f);
            FLOAT
        }
        Value::Str(s) => {
            out.strings.extend_from_slice(s.as_bytes());
            TEXT
        }
        Value::Json(s) => {
            out.strings.extend_from_slice(s.as_bytes());
            JSON
        }
    };
    out.kinds.push(kind);
    out.value_ends.push(out.strings.len() as u32);
}

/// Appends `item` to a buffer of items back to back and its end to `ends`.
pub(crate) fn push_end(buf: &mut Vec<u8>, ends: &mut Vec<u32>, item: &[u8]) {
    buf.extend_from_slice(item);
    ends.push(buf.len() as u32);
}
