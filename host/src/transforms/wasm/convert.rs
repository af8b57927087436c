//! Packing a [`Batch`] into the WIT `batch` shape and applying a plugin's `output` back to it.
//!
//! The batch's data buffer is moved into the WIT batch, not copied, and moved back afterwards;
//! lines a plugin keeps unchanged are not copied either (their records keep pointing at the
//! same bytes). Replaced lines are appended after the original data. Everything a plugin returns
//! is checked (indices, spans, order, UTF-8) before it touches the batch: a bad output fails the
//! batch like a trap does, it never corrupts it.

use std::time::UNIX_EPOCH;

use super::runtime::wit;
use crate::event::{Batch, Fields, Record};

fn span(start: u32, len: u32) -> wit::Span {
    wit::Span { start, len }
}

fn timestamp(t: jiff::Timestamp) -> wit::Timestamp {
    wit::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond().max(0) as u32,
    }
}

fn push_str(strings: &mut Vec<u8>, s: &str) -> wit::Span {
    let sp = span(strings.len() as u32, s.len() as u32);
    strings.extend_from_slice(s.as_bytes());
    sp
}

/// The batch as a plugin sees it. Takes `batch.data`; give it back with [`restore`] or
/// [`apply`].
pub fn pack(batch: &mut Batch) -> wit::Batch {
    let read_at = batch.read_at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let records = batch
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| wit::Entry {
            line: span(r.start, r.len),
            time: batch.times.get(i).copied().flatten().map(timestamp),
        })
        .collect();
    let mut fields = Vec::new();
    let mut strings = Vec::new();
    for (i, map) in batch.fields.iter().enumerate() {
        for (k, v) in map {
            let key = push_str(&mut strings, k);
            let value = match v {
                serde_json::Value::Null => wit::Value::Null,
                serde_json::Value::Bool(b) => wit::Value::Boolean(*b),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => wit::Value::Integer(i),
                    None => wit::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                serde_json::Value::String(s) => wit::Value::Text(push_str(&mut strings, s)),
                other => wit::Value::Json(push_str(&mut strings, &other.to_string())),
            };
            fields.push(wit::Field {
                owner: i as u32,
                key,
                value,
            });
        }
    }
    wit::Batch {
        stream: batch.source.stream.to_string(),
        path: batch.source.path.to_string_lossy().into_owned(),
        read_at: wit::Timestamp {
            seconds: read_at.as_secs() as i64,
            nanos: read_at.subsec_nanos(),
        },
        data: std::mem::take(&mut batch.data),
        records,
        fields,
        strings,
    }
}

/// Gives the batch its data back, unchanged (the plugin failed).
pub fn restore(batch: &mut Batch, input: wit::Batch) {
    batch.data = input.data;
}

/// The size of an output, as counted against `max_output`.
pub fn output_size(out: &wit::Output) -> usize {
    if out.keep_all {
        return 0;
    }
    out.data.len()
        + out.strings.len()
        + out.records.len() * std::mem::size_of::<wit::Emitted>()
        + out.fields.len() * std::mem::size_of::<wit::Field>()
}

fn slice(buf: &[u8], s: wit::Span) -> Option<&[u8]> {
    buf.get(s.start as usize..(s.start as usize).checked_add(s.len as usize)?)
}

fn text<'a>(buf: &'a [u8], s: wit::Span, what: &str) -> Result<&'a str, String> {
    let bytes = slice(buf, s).ok_or_else(|| format!("{what} is out of bounds"))?;
    std::str::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8"))
}

fn value(strings: &[u8], v: &wit::Value) -> Result<serde_json::Value, String> {
    Ok(match v {
        wit::Value::Null => serde_json::Value::Null,
        wit::Value::Boolean(b) => (*b).into(),
        wit::Value::Integer(n) => (*n).into(),
        wit::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        wit::Value::Text(s) => text(strings, *s, "a text value")?.into(),
        wit::Value::Json(s) => serde_json::from_str(text(strings, *s, "a json value")?)
            .map_err(|e| format!("a json value does not parse: {e}"))?,
    })
}

/// Where routed records may go: the stream's sinks first (bits `0..defaults`), then the extra
/// outputs a plugin may route to (its dead-letter sink).
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub names: Vec<std::sync::Arc<str>>,
    pub defaults: usize,
}

impl RouteTable {
    /// The mask for a comma-separated list of sink names; unknown names are returned.
    pub fn mask(&self, list: &str) -> (u64, Vec<String>) {
        let mut mask = 0u64;
        let mut unknown = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match self.names.iter().position(|n| &**n == name) {
                Some(i) if i < 64 => mask |= 1 << i,
                _ => unknown.push(name.to_string()),
            }
        }
        (mask, unknown)
    }

    pub fn bit(&self, name: &str) -> Option<u64> {
        self.names
            .iter()
            .position(|n| &**n == name)
            .filter(|&i| i < 64)
            .map(|i| 1 << i)
    }
}

/// What [`apply`] noticed without failing the batch.
#[derive(Debug, Default)]
pub struct Applied {
    /// Sink names in routes that are not among the stream's (those records go to the stream's
    /// sinks).
    pub unknown_routes: Vec<String>,
}

/// Replaces the batch's records by the plugin's output. On error the batch is left as it was
/// (with its data restored).
pub fn apply(
    batch: &mut Batch,
    input: wit::Batch,
    out: wit::Output,
    routes: &RouteTable,
) -> Result<Applied, String> {
    if out.keep_all {
        batch.data = input.data;
        return Ok(Applied::default());
    }
    let mut data = input.data;
    let base = data.len();
    if base + out.data.len() > u32::MAX as usize {
        batch.data = data;
        return Err("the output's lines do not fit in a batch (4 GiB)".into());
    }
    let n = batch.records.len();
    let built = build(batch, &out, routes, base as u32, n);
    match built {
        Ok((records, fields, times, masks, applied)) => {
            data.extend_from_slice(&out.data);
            batch.data = data;
            batch.records = records;
            batch.fields = fields;
            batch.times = if times.iter().any(Option::is_some) {
                times
            } else {
                Vec::new()
            };
            batch.routes = if masks.iter().any(|&m| m != 0) {
                masks
            } else {
                Vec::new()
            };
            Ok(applied)
        }
        Err(e) => {
            batch.data = data;
            Err(format!("invalid output: {e}"))
        }
    }
}

type Built = (
    Vec<Record>,
    Vec<Fields>,
    Vec<Option<jiff::Timestamp>>,
    Vec<u64>,
    Applied,
);

fn build(
    batch: &mut Batch,
    out: &wit::Output,
    routes: &RouteTable,
    base: u32,
    n: usize,
) -> Result<Built, String> {
    // Check everything before moving any input fields out, so that a refused output leaves the
    // batch as it was.
    let mut prev = 0usize;
    let mut route_masks = Vec::new();
    let mut applied = Applied::default();
    for (j, e) in out.records.iter().enumerate() {
        let src = e.source as usize;
        if src >= n {
            return Err(format!(
                "record {j} comes from input {src}, but the batch has {n} records"
            ));
        }
        if src < prev {
            return Err(format!(
                "record {j} comes from input {src}, after a record from input {prev} (outputs must keep the input order)"
            ));
        }
        prev = src;
        if let Some(s) = e.line
            && slice(&out.data, s).is_none()
        {
            return Err(format!("record {j}'s line is out of bounds"));
        }
        if let Some(t) = e.time
            && jiff::Timestamp::new(t.seconds, t.nanos.min(999_999_999) as i32).is_err()
        {
            return Err(format!("record {j}'s time is out of range"));
        }
        if let Some(s) = e.route {
            let (mask, unknown) = routes.mask(text(&out.strings, s, "a route")?);
            applied.unknown_routes.extend(unknown);
            route_masks.push((j, mask));
        }
    }
    let mut parsed: Vec<(usize, String, serde_json::Value)> = Vec::with_capacity(out.fields.len());
    let mut last_owner = 0usize;
    for (i, field) in out.fields.iter().enumerate() {
        let owner = field.owner as usize;
        if owner < last_owner {
            return Err(format!(
                "field {i} belongs to record {owner} but comes after record {last_owner}'s (fields must be grouped by record, in order)"
            ));
        }
        last_owner = owner;
        match out.records.get(owner) {
            Some(e) if e.fields == wit::FieldsFrom::Output => {}
            _ => {
                return Err(format!(
                    "field {i} belongs to record {owner}, which is not an output record with `fields: output`"
                ));
            }
        }
        let key = text(&out.strings, field.key, "a field key")?;
        parsed.push((owner, key.to_string(), value(&out.strings, &field.value)?));
    }

    let mut records = Vec::with_capacity(out.records.len());
    // Fields only when some record has any: a filter over unparsed lines allocates none.
    let any_fields = !parsed.is_empty()
        || batch.fields.iter().any(|f| !f.is_empty())
            && out
                .records
                .iter()
                .any(|e| e.fields == wit::FieldsFrom::Input);
    let mut fields: Vec<Fields> =
        Vec::with_capacity(if any_fields { out.records.len() } else { 0 });
    let mut times = Vec::with_capacity(out.records.len());
    let mut masks = Vec::with_capacity(out.records.len());
    let mut taken: Option<usize> = None;
    let mut parsed = parsed.into_iter().peekable();
    let mut route_masks = route_masks.into_iter().peekable();
    for (j, e) in out.records.iter().enumerate() {
        let src = e.source as usize;
        let r = batch.records[src];
        let (start, len) = match e.line {
            None => (r.start, r.len),
            Some(s) => (base + s.start, s.len),
        };
        records.push(Record { start, len, ..r });
        if !any_fields {
            // No fields anywhere: nothing to carry.
        } else {
            let map = match e.fields {
                wit::FieldsFrom::Input => {
                    let map = if taken == Some(src) {
                        fields.last().cloned().unwrap_or_default()
                    } else {
                        batch
                            .fields
                            .get_mut(src)
                            .map(std::mem::take)
                            .unwrap_or_default()
                    };
                    taken = Some(src);
                    map
                }
                wit::FieldsFrom::Output => {
                    let mut map = Fields::new();
                    while let Some((_, k, v)) = parsed.next_if(|(owner, _, _)| *owner == j) {
                        map.insert(k, v);
                    }
                    map
                }
            };
            fields.push(map);
        }
        times.push(match e.time {
            Some(t) => jiff::Timestamp::new(t.seconds, t.nanos.min(999_999_999) as i32).ok(),
            None => batch.times.get(src).copied().flatten(),
        });
        masks.push(match route_masks.next_if(|(k, _)| *k == j) {
            Some((_, mask)) => mask,
            None => batch.routes.get(src).copied().unwrap_or(0),
        });
    }
    Ok((records, fields, times, masks, applied))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn batch() -> Batch {
        let src = Arc::new(Source {
            stream: "s".into(),
            path: "/x.log".into(),
        });
        let mut b = Batch::new(src, SystemTime::UNIX_EPOCH);
        b.push_line(b"one", 4, 0);
        b.push_line(b"two", 8, 0);
        b.push_line(b"three", 14, 0);
        b.fields_mut()[1].insert("k".into(), "v".into());
        b
    }

    fn routes() -> RouteTable {
        RouteTable {
            names: vec!["out".into(), "dlq".into()],
            defaults: 1,
        }
    }

    fn emitted(source: u32, line: Option<wit::Span>, fields: wit::FieldsFrom) -> wit::Emitted {
        wit::Emitted {
            source,
            line,
            time: None,
            fields,
            route: None,
        }
    }

    #[test]
    fn applies_keep_replace_split_and_route() {
        let mut b = batch();
        let input = pack(&mut b);
        assert!(b.data.is_empty(), "data moved, not copied");
        assert_eq!(input.fields.len(), 1);
        let out = wit::Output {
            keep_all: false,
            records: vec![
                emitted(0, None, wit::FieldsFrom::Input),
                emitted(1, None, wit::FieldsFrom::Input),
                emitted(2, Some(span(0, 1)), wit::FieldsFrom::Output),
                wit::Emitted {
                    route: Some(span(1, 3)),
                    ..emitted(2, Some(span(1, 1)), wit::FieldsFrom::Output)
                },
            ],
            data: b"ab".to_vec(),
            fields: vec![wit::Field {
                owner: 3,
                key: span(0, 1),
                value: wit::Value::Integer(7),
            }],
            strings: b"ndlq".to_vec(),
        };
        apply(&mut b, input, out, &routes()).unwrap();
        let lines: Vec<&[u8]> = b.records.iter().map(|r| b.line(r)).collect();
        assert_eq!(lines, [&b"one"[..], b"two", b"a", b"b"]);
        assert_eq!(b.fields(1).unwrap()["k"], "v");
        assert_eq!(b.fields(3).unwrap()["n"], 7);
        assert!(b.fields(2).is_none());
        assert_eq!(b.records[3].offset, 14);
        assert_eq!(b.routes, vec![0, 0, 0, 2]);
    }

    #[test]
    fn keep_all_gives_the_batch_back_untouched() {
        let mut b = batch();
        let input = pack(&mut b);
        let out = wit::Output {
            keep_all: true,
            records: vec![],
            data: vec![],
            fields: vec![],
            strings: vec![],
        };
        assert_eq!(output_size(&out), 0);
        apply(&mut b, input, out, &routes()).unwrap();
        let lines: Vec<&[u8]> = b.records.iter().map(|r| b.line(r)).collect();
        assert_eq!(lines, [&b"one"[..], b"two", b"three"]);
        assert_eq!(b.fields(1).unwrap()["k"], "v");
    }

    #[test]
    fn bad_outputs_are_refused_and_leave_the_batch_intact() {
        for (out, expected) in [
            (
                wit::Output {
                    keep_all: false,
                    records: vec![emitted(5, None, wit::FieldsFrom::Input)],
                    data: vec![],
                    fields: vec![],
                    strings: vec![],
                },
                "invalid output: record 0 comes from input 5, but the batch has 3 records",
            ),
            (
                wit::Output {
                    keep_all: false,
                    records: vec![
                        emitted(1, None, wit::FieldsFrom::Input),
                        emitted(0, None, wit::FieldsFrom::Input),
                    ],
                    data: vec![],
                    fields: vec![],
                    strings: vec![],
                },
                "invalid output: record 1 comes from input 0, after a record from input 1 (outputs must keep the input order)",
            ),
            (
                wit::Output {
                    keep_all: false,
                    records: vec![emitted(0, Some(span(2, 9)), wit::FieldsFrom::Input)],
                    data: vec![1, 2, 3],
                    fields: vec![],
                    strings: vec![],
                },
                "invalid output: record 0's line is out of bounds",
            ),
            (
                wit::Output {
                    keep_all: false,
                    records: vec![emitted(0, None, wit::FieldsFrom::Output)],
                    data: vec![],
                    fields: vec![wit::Field {
                        owner: 0,
                        key: span(0, 1),
                        value: wit::Value::Null,
                    }],
                    strings: vec![0xff],
                },
                "invalid output: a field key is not UTF-8",
            ),
        ] {
            let mut b = batch();
            let input = pack(&mut b);
            let err = apply(&mut b, input, out, &routes()).unwrap_err();
            assert_eq!(err, expected);
            let lines: Vec<&[u8]> = b.records.iter().map(|r| b.line(r)).collect();
            assert_eq!(lines, [&b"one"[..], b"two", b"three"]);
            assert_eq!(b.fields(1).unwrap()["k"], "v");
        }
    }
}
