//! Packing a [`Batch`] into the WIT `batch` columns and applying a plugin's `output` back to it.
//!
//! The plugin sees the lines back to back: when the batch's records already are (no newlines
//! between them), its data buffer is moved into the WIT batch, not copied, and moved back
//! afterwards; otherwise the lines are copied once into a new buffer and the batch keeps its own.
//! Lines a plugin keeps unchanged are never copied back: their records keep pointing at the same
//! bytes. Replaced lines are appended after the original data. Everything a plugin returns is
//! checked (indices, ends, counts, order, UTF-8) before it touches the batch: a bad output fails
//! the batch like a trap does, it never corrupts it.

use std::time::UNIX_EPOCH;

use super::runtime::wit;
use crate::event::fields::{Columns, Parts};
use crate::event::{Batch, FieldStore, Record, Replacement};

use tailcar_wire::NO_TIME;
use tailcar_wire::changes::{FIELDS, LINE, ROUTE, TIME};

/// A batch packed for a plugin, whether its data buffer was moved out of the [`Batch`], and
/// what the batch's field store keeps while its columns are in the WIT batch.
pub struct Packed {
    pub batch: wit::Batch,
    moved: bool,
    parts: Parts,
}

fn empty_fields() -> wit::Fields {
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

fn empty_times() -> wit::Times {
    wit::Times {
        seconds: Vec::new(),
        nanos: Vec::new(),
    }
}

fn to_wit(c: Columns) -> wit::Fields {
    wit::Fields {
        owners: c.owners,
        kinds: c.kinds,
        key_ends: c.key_ends,
        value_ends: c.value_ends,
        ints: c.ints,
        floats: c.floats,
        strings: c.strings,
    }
}

fn from_wit(f: wit::Fields) -> Columns {
    Columns {
        owners: f.owners,
        kinds: f.kinds,
        key_ends: f.key_ends,
        value_ends: f.value_ends,
        ints: f.ints,
        floats: f.floats,
        strings: f.strings,
    }
}

/// The batch as a plugin sees it. May take `batch.data`; give it back with [`restore`] or
/// [`apply`].
pub fn pack(batch: &mut Batch) -> Packed {
    let read_at = batch
        .read_at()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut line_ends = Vec::with_capacity(batch.records().len());
    let mut end = 0u32;
    let contiguous = batch.records().iter().all(|r| {
        let ok = r.start == end;
        end = r.start + r.len;
        line_ends.push(end);
        ok
    }) && end as usize == batch.data().len();
    let data = if contiguous {
        batch.take_data()
    } else {
        line_ends.clear();
        let mut data = Vec::with_capacity(batch.line_bytes());
        for r in batch.records() {
            data.extend_from_slice(batch.line(r));
            line_ends.push(data.len() as u32);
        }
        data
    };
    let mut times = empty_times();
    if batch.has_times() {
        for i in 0..batch.records().len() {
            match batch.time(i) {
                Some(t) => {
                    times.seconds.push(t.as_second());
                    times.nanos.push(t.subsec_nanosecond().max(0) as u32);
                }
                None => {
                    times.seconds.push(0);
                    times.nanos.push(NO_TIME);
                }
            }
        }
    }
    // The field columns are moved, not converted (rebuilt once if edits left gaps).
    let (fields, parts) = batch.take_fields().into_columns();
    Packed {
        batch: wit::Batch {
            stream: batch.source().stream.to_string(),
            path: batch.source().path.to_string_lossy().into_owned(),
            read_at: wit::Timestamp {
                seconds: read_at.as_secs() as i64,
                nanos: read_at.subsec_nanos(),
            },
            data,
            line_ends,
            times,
            fields: to_wit(fields),
        },
        moved: contiguous,
        parts,
    }
}

/// Gives the batch its data and fields back, unchanged (the plugin failed).
pub fn restore(batch: &mut Batch, input: Packed) {
    if input.moved {
        batch.restore_data(input.batch.data);
    }
    batch.set_fields(FieldStore::rejoin(
        from_wit(input.batch.fields),
        input.parts,
    ));
}

fn fields_size(f: &wit::Fields) -> usize {
    f.strings.len()
        + f.kinds.len()
        + 4 * (f.owners.len() + f.key_ends.len() + f.value_ends.len())
        + 8 * (f.ints.len() + f.floats.len())
}

/// The size of an output, as counted against `max_output`.
pub fn output_size(out: &wit::Output) -> usize {
    if out.keep_all {
        return 0;
    }
    out.data.len()
        + out.routes.len()
        + out.changes.len()
        + 4 * (out.sources.len() + out.line_ends.len() + out.route_ends.len())
        + 12 * out.times.seconds.len()
        + fields_size(&out.fields)
}

/// Checks that `ends` are `count` non-decreasing positions within a buffer of `len` bytes.
fn check_ends(ends: &[u32], count: usize, len: usize, what: &str) -> Result<(), String> {
    if ends.len() != count {
        return Err(format!(
            "{count} records have the {what} bit but there are {} {what} ends",
            ends.len()
        ));
    }
    let mut prev = 0;
    for (i, &e) in ends.iter().enumerate() {
        if e < prev || e as usize > len {
            return Err(format!("{what} end {i} ({e}) is out of bounds"));
        }
        prev = e;
    }
    Ok(())
}

fn timestamp(seconds: i64, nanos: u32) -> Option<jiff::Timestamp> {
    if nanos > 999_999_999 {
        return None;
    }
    jiff::Timestamp::new(seconds, nanos as i32).ok()
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8"))
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
    input: Packed,
    mut out: wit::Output,
    routes: &RouteTable,
) -> Result<Applied, String> {
    restore(batch, input);
    if out.keep_all {
        return Ok(Applied::default());
    }
    let base = batch.data().len();
    if base + out.data.len() > u32::MAX as usize {
        return Err("the output's lines do not fit in a batch (4 GiB)".into());
    }
    let out_fields = from_wit(std::mem::replace(&mut out.fields, empty_fields()));
    let (records, fields, times, masks, applied) =
        build(batch, &out, out_fields, routes, base as u32)
            .map_err(|e| format!("invalid output: {e}"))?;
    batch.replace(Replacement {
        data: std::mem::take(&mut out.data),
        records,
        fields,
        times,
        routes: masks,
    });
    Ok(applied)
}

type Built = (
    Vec<Record>,
    FieldStore,
    Vec<Option<jiff::Timestamp>>,
    Vec<u64>,
    Applied,
);

fn build(
    batch: &mut Batch,
    out: &wit::Output,
    out_fields: Columns,
    routes: &RouteTable,
    base: u32,
) -> Result<Built, String> {
    // Check everything before moving any input fields out, so that a refused output leaves the
    // batch as it was.
    let n = batch.records().len();
    let m = out.sources.len();
    if out.changes.len() != m {
        return Err(format!(
            "{m} sources but {} changes (one each per output record)",
            out.changes.len()
        ));
    }
    let mut prev = 0usize;
    let (mut lines, mut timed, mut routed) = (0, 0, 0);
    for (j, (&src, &ch)) in out.sources.iter().zip(&out.changes).enumerate() {
        let src = src as usize;
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
        if ch & !(LINE | TIME | FIELDS | ROUTE) != 0 {
            return Err(format!("record {j} has unknown change bits {ch:#x}"));
        }
        prev = src;
        lines += usize::from(ch & LINE != 0);
        timed += usize::from(ch & TIME != 0);
        routed += usize::from(ch & ROUTE != 0);
    }
    check_ends(&out.line_ends, lines, out.data.len(), "line")?;
    check_ends(&out.route_ends, routed, out.routes.len(), "route")?;
    if out.times.seconds.len() != timed || out.times.nanos.len() != timed {
        return Err(format!(
            "{timed} records have the time bit but there are {} seconds and {} nanos",
            out.times.seconds.len(),
            out.times.nanos.len()
        ));
    }
    let mut new_times = Vec::with_capacity(timed);
    for (k, (&s, &ns)) in out.times.seconds.iter().zip(&out.times.nanos).enumerate() {
        new_times.push(timestamp(s, ns).ok_or_else(|| format!("time {k} is out of range"))?);
    }
    let mut applied = Applied::default();
    let mut route_masks = Vec::with_capacity(routed);
    let mut start = 0;
    for &end in &out.route_ends {
        let list = utf8(&out.routes[start..end as usize], "a route")?;
        let (mask, unknown) = routes.mask(list);
        applied.unknown_routes.extend(unknown);
        route_masks.push(mask);
        start = end as usize;
    }
    let parsed = FieldStore::from_columns(out_fields, m)?;
    if let Some(j) = (0..m).find(|&j| out.changes[j] & FIELDS == 0 && !parsed.is_empty_at(j)) {
        return Err(format!(
            "a field belongs to record {j}, which does not have the fields bit"
        ));
    }

    // The output's fields: the plugin's own when every record has the fields bit (moved), the
    // input's when the records are the input's, one for one, without it; otherwise each record
    // copies its fields from the one or the other. None when no record has any: a filter over
    // unparsed lines allocates none.
    let all_set = out.changes.iter().all(|&c| c & FIELDS != 0);
    let none_set = out.changes.iter().all(|&c| c & FIELDS == 0);
    let same_records = m == n
        && out
            .sources
            .iter()
            .enumerate()
            .all(|(j, &s)| s as usize == j);
    let fields = if all_set {
        parsed
    } else if none_set && same_records {
        batch.take_fields()
    } else if parsed.is_empty() && batch.fields().is_empty() {
        FieldStore::new()
    } else {
        let mut fields = FieldStore::new();
        for (j, (&src, &ch)) in out.sources.iter().zip(&out.changes).enumerate() {
            if ch & FIELDS != 0 {
                fields.push_from(&parsed, j);
            } else {
                fields.push_from(batch.fields(), src as usize);
            }
        }
        fields
    };
    let mut records = Vec::with_capacity(m);
    let mut times = Vec::with_capacity(m);
    let mut masks = Vec::with_capacity(m);
    let (mut line_ends, mut new_times, mut route_masks) = (
        out.line_ends.iter(),
        new_times.into_iter(),
        route_masks.into_iter(),
    );
    let mut line_start = 0u32;
    for (&src, &ch) in out.sources.iter().zip(&out.changes) {
        let src = src as usize;
        let r = batch.records()[src];
        // The counts were checked above: every `next()` below has a value.
        let (start, len) = match (ch & LINE != 0).then(|| line_ends.next()).flatten() {
            None => (r.start, r.len),
            Some(&end) => {
                let s = line_start;
                line_start = end;
                (base + s, end - s)
            }
        };
        records.push(Record { start, len, ..r });
        times.push(match (ch & TIME != 0).then(|| new_times.next()).flatten() {
            Some(t) => Some(t),
            None => batch.time(src),
        });
        masks.push(
            match (ch & ROUTE != 0).then(|| route_masks.next()).flatten() {
                Some(mask) => mask,
                None => batch.route(src),
            },
        );
    }
    Ok((records, fields, times, masks, applied))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use crate::event::fields::{FLOAT, INT, JSON, NULL, TEXT};
    use std::sync::Arc;
    use std::time::SystemTime;

    /// Three lines read with their newlines (as the tailer does), the second with fields and a
    /// time.
    fn batch() -> Batch {
        let src = Arc::new(Source {
            stream: "s".into(),
            path: "/x.log".into(),
            file_id: None,
        });
        let record = |start, len, offset| Record {
            start,
            len,
            offset,
            flags: 0,
        };
        let mut b = Batch::framed(
            Batch::new(src, SystemTime::UNIX_EPOCH),
            b"one\ntwo\nthree\n".to_vec(),
            vec![record(0, 3, 4), record(4, 3, 8), record(8, 5, 14)],
        );
        let mut w = b.fields_mut().writer(1);
        w.text("k", "v");
        w.int("n", 5);
        w.json("o", &serde_json::json!({"a": [1.5, null]}));
        b.times_mut()[1] = Some(jiff::Timestamp::new(1_700_000_000, 5).unwrap());
        b
    }

    fn routes() -> RouteTable {
        RouteTable {
            names: vec!["out".into(), "dlq".into()],
            defaults: 1,
        }
    }

    fn output(sources: &[u32], changes: &[u8]) -> wit::Output {
        wit::Output {
            keep_all: false,
            sources: sources.to_vec(),
            changes: changes.to_vec(),
            data: Vec::new(),
            line_ends: Vec::new(),
            times: empty_times(),
            fields: empty_fields(),
            routes: Vec::new(),
            route_ends: Vec::new(),
        }
    }

    fn get(b: &Batch, record: usize, key: &str) -> Option<serde_json::Value> {
        b.fields().get(record, key).map(|v| v.to_json())
    }

    fn lines(b: &Batch) -> Vec<&[u8]> {
        b.records().iter().map(|r| b.line(r)).collect()
    }

    #[test]
    fn packs_lines_back_to_back_with_times_and_typed_fields() {
        let mut b = batch();
        let p = pack(&mut b);
        assert!(!p.moved, "lines with newlines between them are copied");
        assert_eq!(b.data(), b"one\ntwo\nthree\n", "the batch keeps its buffer");
        let w = &p.batch;
        assert_eq!(w.data, b"onetwothree");
        assert_eq!(w.line_ends, [3, 6, 11]);
        assert_eq!(w.times.seconds, [0, 1_700_000_000, 0]);
        assert_eq!(w.times.nanos, [NO_TIME, 5, NO_TIME]);
        let f = &w.fields;
        assert_eq!(f.owners, [1, 1, 1]);
        assert_eq!(f.kinds, [TEXT, INT, JSON]);
        assert_eq!(f.strings, br#"kvno{"a":[1.5,null]}"#);
        assert_eq!(f.key_ends, [1, 3, 4]);
        assert_eq!(f.value_ends, [2, 3, 20]);
        assert_eq!(f.ints, [5]);
        assert!(f.floats.is_empty());
        // Decoding what was packed gives the fields back.
        let decoded = FieldStore::from_columns(from_wit(f.clone()), 3).unwrap();
        assert_eq!(decoded.to_map(1), batch().fields().to_map(1));
        assert!(
            b.fields().is_empty(),
            "the fields were moved into the plugin's batch"
        );
        restore(&mut b, p);
        assert_eq!(b.fields().to_map(1), batch().fields().to_map(1));
    }

    #[test]
    fn contiguous_lines_are_moved_not_copied() {
        let src = Arc::new(Source {
            stream: "s".into(),
            path: "/x.log".into(),
            file_id: None,
        });
        let mut b = Batch::new(src, SystemTime::UNIX_EPOCH);
        b.push_line(b"ab", 3, 0);
        b.push_line(b"c", 5, 0);
        let p = pack(&mut b);
        assert!(p.moved);
        assert!(b.data().is_empty());
        assert_eq!(p.batch.line_ends, [2, 3]);
        assert!(p.batch.times.seconds.is_empty(), "no times: empty columns");
        restore(&mut b, p);
        assert_eq!(lines(&b), [&b"ab"[..], b"c"]);
    }

    #[test]
    fn applies_keep_replace_split_time_fields_and_route() {
        let mut b = batch();
        let input = pack(&mut b);
        let mut out = output(
            &[0, 1, 1, 2, 2],
            &[0, 0, 0, LINE | FIELDS, LINE | FIELDS | ROUTE | TIME],
        );
        out.data = b"ab".to_vec();
        out.line_ends = vec![1, 2];
        out.fields.owners = vec![4, 4];
        out.fields.kinds = vec![INT, FLOAT];
        out.fields.strings = b"nf".to_vec();
        out.fields.key_ends = vec![1, 2];
        out.fields.value_ends = vec![1, 2];
        out.fields.ints = vec![7];
        out.fields.floats = vec![0.5];
        out.times.seconds = vec![42];
        out.times.nanos = vec![9];
        out.routes = b"dlq".to_vec();
        out.route_ends = vec![3];
        apply(&mut b, input, out, &routes()).unwrap();
        assert_eq!(lines(&b), [&b"one"[..], b"two", b"two", b"a", b"b"]);
        assert_eq!(get(&b, 1, "k").unwrap(), "v");
        assert_eq!(
            b.fields().to_map(2),
            b.fields().to_map(1),
            "both pieces of a split keep the fields"
        );
        assert!(
            !b.has_fields(3),
            "the fields bit with no fields clears them"
        );
        assert_eq!(get(&b, 4, "n").unwrap(), 7);
        assert_eq!(get(&b, 4, "f").unwrap(), 0.5);
        assert_eq!(b.records()[4].offset, 14);
        assert_eq!(b.time(1).unwrap().as_second(), 1_700_000_000);
        assert_eq!(b.time(4), Some(jiff::Timestamp::new(42, 9).unwrap()));
        assert_eq!(
            (0..5).map(|i| b.route(i)).collect::<Vec<_>>(),
            vec![0, 0, 0, 0, 2]
        );
    }

    #[test]
    fn keep_all_gives_the_batch_back_untouched() {
        let mut b = batch();
        let input = pack(&mut b);
        let out = wit::Output {
            keep_all: true,
            ..output(&[], &[])
        };
        assert_eq!(output_size(&out), 0);
        apply(&mut b, input, out, &routes()).unwrap();
        assert_eq!(lines(&b), [&b"one"[..], b"two", b"three"]);
        assert_eq!(get(&b, 1, "k").unwrap(), "v");
    }

    #[test]
    fn bad_outputs_are_refused_and_leave_the_batch_intact() {
        let with = |f: fn(&mut wit::Output)| {
            let mut o = output(&[0], &[0]);
            f(&mut o);
            o
        };
        for (out, expected) in [
            (
                output(&[5], &[0]),
                "record 0 comes from input 5, but the batch has 3 records",
            ),
            (
                output(&[1, 0], &[0, 0]),
                "record 1 comes from input 0, after a record from input 1 (outputs must keep the input order)",
            ),
            (
                output(&[0, 1], &[0]),
                "2 sources but 1 changes (one each per output record)",
            ),
            (output(&[0], &[16]), "record 0 has unknown change bits 0x10"),
            (
                with(|o| {
                    o.changes = vec![LINE];
                    o.data = vec![1, 2, 3];
                    o.line_ends = vec![9];
                }),
                "line end 0 (9) is out of bounds",
            ),
            (
                with(|o| o.changes = vec![LINE]),
                "1 records have the line bit but there are 0 line ends",
            ),
            (
                with(|o| {
                    o.changes = vec![TIME];
                    o.times.seconds = vec![0];
                    o.times.nanos = vec![NO_TIME];
                }),
                "time 0 is out of range",
            ),
            (
                with(|o| {
                    o.changes = vec![FIELDS];
                    o.fields.owners = vec![0];
                    o.fields.kinds = vec![NULL];
                    o.fields.strings = vec![0xff];
                    o.fields.key_ends = vec![1];
                    o.fields.value_ends = vec![1];
                }),
                "field 0's key is not UTF-8",
            ),
            (
                with(|o| {
                    o.fields.owners = vec![0];
                    o.fields.kinds = vec![NULL];
                    o.fields.strings = b"k".to_vec();
                    o.fields.key_ends = vec![1];
                    o.fields.value_ends = vec![1];
                }),
                "a field belongs to record 0, which does not have the fields bit",
            ),
            (
                with(|o| {
                    o.changes = vec![FIELDS];
                    o.fields.owners = vec![0];
                    o.fields.kinds = vec![INT];
                    o.fields.strings = b"k".to_vec();
                    o.fields.key_ends = vec![1];
                    o.fields.value_ends = vec![1];
                }),
                "field 0 is an integer past the end of `ints`",
            ),
        ] {
            let mut b = batch();
            let input = pack(&mut b);
            let err = apply(&mut b, input, out, &routes()).unwrap_err();
            assert_eq!(err, format!("invalid output: {expected}"));
            assert_eq!(lines(&b), [&b"one"[..], b"two", b"three"]);
            assert_eq!(get(&b, 1, "k").unwrap(), "v");
        }
    }
}
