//! Runs a [`Plugin`] over a batch's columns and builds the output columns from what it decided.

use crate::columns::{
    FIELDS, FieldCursor, LINE, ROUTE, TIME, empty_fields, empty_times, push_end, push_field,
};
use crate::record::{BatchInfo, Record, Verdict};
use crate::{Plugin, Timestamp, wit};

struct Builder {
    out: wit::Output,
}

impl Builder {
    fn new() -> Self {
        Builder {
            out: wit::Output {
                keep_all: false,
                sources: Vec::new(),
                changes: Vec::new(),
                data: Vec::new(),
                line_ends: Vec::new(),
                times: empty_times(),
                fields: empty_fields(),
                routes: Vec::new(),
                route_ends: Vec::new(),
            },
        }
    }

    fn push(
        &mut self,
        source: u32,
        line: Option<&[u8]>,
        time: Option<Timestamp>,
        fields: Option<&[(impl AsRef<str>, crate::Value<'_>)]>,
        route: &Option<Vec<String>>,
    ) {
        let o = &mut self.out;
        let owner = o.sources.len() as u32;
        let mut changes = 0;
        if let Some(line) = line {
            push_end(&mut o.data, &mut o.line_ends, line);
            changes |= LINE;
        }
        if let Some(t) = time {
            o.times.seconds.push(t.seconds);
            o.times.nanos.push(t.nanos);
            changes |= TIME;
        }
        if let Some(list) = fields {
            for (k, v) in list {
                push_field(&mut o.fields, owner, k.as_ref(), v);
            }
            changes |= FIELDS;
        }
        if let Some(sinks) = route {
            push_end(&mut o.routes, &mut o.route_ends, sinks.join(",").as_bytes());
            changes |= ROUTE;
        }
        o.sources.push(source);
        o.changes.push(changes);
    }

    /// A kept record: only what changed crosses back.
    fn keep(&mut self, source: u32, rec: &Record<'_>) {
        self.push(
            source,
            rec.line.as_deref(),
            rec.time,
            rec.fields.as_deref(),
            &rec.route,
        );
    }

    /// One piece of a split record: its own line, the record's fields plus its own.
    fn piece(&mut self, source: u32, rec: &Record<'_>, piece: crate::Emit) {
        let mut fields = rec.current_fields();
        for (k, v) in piece.fields {
            match fields.iter_mut().find(|(fk, _)| *fk == k) {
                Some(slot) => slot.1 = v,
                None => fields.push((k, v)),
            }
        }
        self.push(
            source,
            Some(&piece.line),
            piece.time.or(rec.time),
            Some(&fields[..]),
            &rec.route,
        );
    }
}

pub(crate) fn run<P: Plugin>(plugin: &mut P, batch: &wit::Batch) -> Result<wit::Output, String> {
    let n = batch.line_ends.len();
    plugin.begin_batch(&BatchInfo {
        stream: &batch.stream,
        path: &batch.path,
        read_at: Timestamp {
            seconds: batch.read_at.seconds,
            nanos: batch.read_at.nanos,
        },
        len: n,
    });
    let mut out = Builder::new();
    let mut fields = FieldCursor::new(&batch.fields);
    // Records kept unchanged so far, not yet written out: while every record is, nothing is.
    let mut unchanged = 0usize;
    let mut spare = Vec::new();
    for i in 0..n {
        let mut rec = Record::reusing(batch, i, fields.next_record(i), spare);
        let verdict = plugin.process(&mut rec);
        if verdict == Verdict::Keep && rec.is_unchanged() && unchanged == i {
            unchanged += 1;
            spare = rec.into_spare();
            continue;
        }
        if unchanged != usize::MAX {
            // The first record not kept as it came: write out the ones before it, and make
            // room for the rest once (by what this record's changes take, times the records
            // left), instead of doubling each column a dozen times.
            let o = &mut out.out;
            o.sources.reserve(n);
            o.changes.reserve(n);
            o.sources.extend(0..unchanged as u32);
            o.changes.resize(unchanged, 0);
            let left = n - i;
            if let Some(list) = &rec.fields {
                // Capped, so one odd record cannot make a huge reservation.
                let count = (list.len() * left).min(32 * n);
                let bytes: usize = list.iter().map(|(k, v)| k.len() + v.text_len()).sum();
                let bytes = (bytes * left).min(2 * batch.data.len() + bytes);
                let f = &mut o.fields;
                f.owners.reserve(count);
                f.kinds.reserve(count);
                f.key_ends.reserve(count);
                f.value_ends.reserve(count);
                f.strings.reserve(bytes);
            }
            if rec.time.is_some() {
                o.times.seconds.reserve(left);
                o.times.nanos.reserve(left);
            }
            unchanged = usize::MAX;
        }
        match verdict {
            Verdict::Keep => out.keep(i as u32, &rec),
            Verdict::Drop => {}
            Verdict::Fail(message) => {
                crate::flush_counts();
                return Err(message);
            }
            Verdict::Split(pieces) => {
                for p in pieces {
                    out.piece(i as u32, &rec, p);
                }
            }
        }
        spare = rec.into_spare();
    }
    crate::flush_counts();
    if unchanged == n {
        let mut all = Builder::new().out;
        all.keep_all = true;
        return Ok(all);
    }
    Ok(out.out)
}
