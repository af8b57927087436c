//! Runs a [`Plugin`] over a packed batch and packs what it decided.

use crate::record::{BatchInfo, Record, Verdict};
use crate::value::Value;
use crate::{Plugin, Timestamp, wit};

#[derive(Default)]
struct Builder {
    records: Vec<wit::Emitted>,
    data: Vec<u8>,
    fields: Vec<wit::Field>,
    strings: Vec<u8>,
}

fn wit_time(t: Timestamp) -> wit::Timestamp {
    wit::Timestamp {
        seconds: t.seconds,
        nanos: t.nanos,
    }
}

impl Builder {
    fn string(&mut self, s: &str) -> wit::Span {
        let span = wit::Span {
            start: self.strings.len() as u32,
            len: s.len() as u32,
        };
        self.strings.extend_from_slice(s.as_bytes());
        span
    }

    fn line(&mut self, line: &[u8]) -> wit::Span {
        let span = wit::Span {
            start: self.data.len() as u32,
            len: line.len() as u32,
        };
        self.data.extend_from_slice(line);
        span
    }

    fn field(&mut self, key: &str, value: &Value<'_>) {
        let owner = self.records.len() as u32;
        let key = self.string(key);
        let value = match value {
            Value::Null => wit::Value::Null,
            Value::Bool(b) => wit::Value::Boolean(*b),
            Value::Int(n) => wit::Value::Integer(*n),
            Value::Float(f) => wit::Value::Float(*f),
            Value::Str(s) => wit::Value::Text(self.string(s)),
            Value::Json(s) => wit::Value::Json(self.string(s)),
        };
        self.fields.push(wit::Field { owner, key, value });
    }

    fn route(&mut self, route: &Option<Vec<String>>) -> Option<wit::Span> {
        route.as_ref().map(|sinks| self.string(&sinks.join(",")))
    }

    /// A kept record: only what changed crosses back.
    fn keep(&mut self, source: u32, rec: &Record<'_>) {
        let line = rec.line.as_deref().map(|l| self.line(l));
        let fields = match &rec.fields {
            Some(list) => {
                for (k, v) in list {
                    self.field(k, v);
                }
                wit::FieldsFrom::Output
            }
            None => wit::FieldsFrom::Input,
        };
        let route = self.route(&rec.route);
        self.records.push(wit::Emitted {
            source,
            line,
            time: rec.time.map(wit_time),
            fields,
            route,
        });
    }

    /// One piece of a split record: its own line, the record's fields plus its own.
    fn piece(&mut self, source: u32, rec: &Record<'_>, piece: crate::Emit) {
        let line = Some(self.line(&piece.line));
        let mut fields = rec.current_fields();
        for (k, v) in piece.fields {
            match fields.iter_mut().find(|(fk, _)| *fk == k) {
                Some(slot) => slot.1 = v,
                None => fields.push((k, v)),
            }
        }
        for (k, v) in &fields {
            self.field(k, v);
        }
        let route = self.route(&rec.route);
        self.records.push(wit::Emitted {
            source,
            line,
            time: piece.time.or(rec.time).map(wit_time),
            fields: wit::FieldsFrom::Output,
            route,
        });
    }
}

pub(crate) fn run<P: Plugin>(plugin: &mut P, batch: &wit::Batch) -> Result<wit::Output, String> {
    plugin.begin_batch(&BatchInfo {
        stream: &batch.stream,
        path: &batch.path,
        read_at: Timestamp {
            seconds: batch.read_at.seconds,
            nanos: batch.read_at.nanos,
        },
        len: batch.records.len(),
    });
    let mut out = Builder::default();
    let all = &batch.fields[..];
    let mut f = 0;
    // Records kept unchanged so far, not yet written out: while every record is, nothing is.
    let mut unchanged = 0usize;
    for i in 0..batch.records.len() {
        // Fields come grouped by owner, in record order.
        while f < all.len() && (all[f].owner as usize) < i {
            f += 1;
        }
        let start = f;
        while f < all.len() && all[f].owner as usize == i {
            f += 1;
        }
        let mut rec = Record::new(batch, i, &all[start..f]);
        let verdict = plugin.process(&mut rec);
        if verdict == Verdict::Keep && rec.is_unchanged() && unchanged == i {
            unchanged += 1;
            continue;
        }
        if unchanged != usize::MAX {
            // The first record not kept as it came: write out the ones before it.
            out.records.reserve(batch.records.len());
            for j in 0..unchanged {
                out.records.push(wit::Emitted {
                    source: j as u32,
                    line: None,
                    time: None,
                    fields: wit::FieldsFrom::Input,
                    route: None,
                });
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
    }
    crate::flush_counts();
    if unchanged == batch.records.len() {
        return Ok(wit::Output {
            keep_all: true,
            records: Vec::new(),
            data: Vec::new(),
            fields: Vec::new(),
            strings: Vec::new(),
        });
    }
    Ok(wit::Output {
        keep_all: false,
        records: out.records,
        data: out.data,
        fields: out.fields,
        strings: out.strings,
    })
}
