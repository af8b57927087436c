//! Encodings of records as bytes: `raw` (the line exactly as read, plus `\n`) and `json` (one
//! object per line). Raw is byte-faithful (invalid UTF-8 and NUL bytes are written as they are);
//! JSON needs text, so invalid UTF-8 is replaced there with U+FFFD.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::event::{Batch, FLAG_MULTILINE, FLAG_SPLIT, FLAG_UNTERMINATED, Value};

/// How records are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The line's bytes and a newline.
    #[default]
    Raw,
    /// `{"timestamp":..,"stream":..,"file":..,"offset":..,"line":..}` and a newline.
    Json,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Raw => "raw",
            Format::Json => "json",
        })
    }
}

/// Writes every record of `batch` to `out` in `format`.
pub fn encode_batch(batch: &Batch, format: Format, out: &mut impl Write) -> io::Result<()> {
    encode_range(batch, 0..batch.len(), format, out)
}

/// Writes the records `range` of `batch` to `out` in `format`.
pub fn encode_range(
    batch: &Batch,
    range: std::ops::Range<usize>,
    format: Format,
    out: &mut impl Write,
) -> io::Result<()> {
    match format {
        Format::Raw => {
            for r in &batch.records()[range.clone()] {
                out.write_all(batch.line(r))?;
                out.write_all(b"\n")?;
            }
        }
        Format::Json => {
            let read_at = jiff::Timestamp::try_from(batch.read_at()).ok();
            // The constant middle of every object: stream and file, escaped once.
            let mut source = Vec::new();
            source.extend_from_slice(b"\",\"stream\":");
            Value::Text(&batch.source().stream).write_json(&mut source);
            source.extend_from_slice(b",\"file\":");
            Value::Text(&batch.source().path.to_string_lossy()).write_json(&mut source);
            source.extend_from_slice(b",\"offset\":");
            let mut buf = Vec::with_capacity(1024);
            for i in range {
                let r = &batch.records()[i];
                buf.clear();
                buf.extend_from_slice(b"{\"timestamp\":\"");
                // A timestamp's text needs no escaping.
                if let Some(t) = batch.time(i).or(read_at) {
                    write!(buf, "{t}")?;
                }
                buf.extend_from_slice(&source);
                Value::Int(r.offset as i64).write_json(&mut buf);
                buf.extend_from_slice(b",\"line\":");
                Value::Text(&crate::event::text(batch.line(r))).write_json(&mut buf);
                for (flag, name) in [
                    (FLAG_SPLIT, &b",\"split\":true"[..]),
                    (FLAG_UNTERMINATED, b",\"unterminated\":true"),
                    (FLAG_MULTILINE, b",\"multiline\":true"),
                ] {
                    if r.flags & flag != 0 {
                        buf.extend_from_slice(name);
                    }
                }
                if batch.has_fields(i) {
                    buf.extend_from_slice(b",\"fields\":");
                    batch.fields().write_json(i, &mut buf);
                }
                buf.extend_from_slice(b"}\n");
                out.write_all(&buf)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    fn batch() -> Batch {
        let src = Arc::new(Source {
            stream: "access".into(),
            path: "/var/log/app/access.log".into(),
            file_id: None,
        });
        let mut b = Batch::new(
            src,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        );
        b.push_line(b"GET / 200", 10, 0);
        b.push_line(b"bad \xff utf8 \0 nul", 27, FLAG_UNTERMINATED);
        b
    }

    #[test]
    fn json_carries_fields_when_a_parser_set_them() {
        let mut b = batch();
        b.fields_mut().writer(1).int("status", 200);
        let mut out = Vec::new();
        encode_batch(&b, Format::Json, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines[0].get("fields").is_none(), "no empty fields object");
        assert_eq!(lines[1]["fields"], serde_json::json!({"status": 200}));
    }

    #[test]
    fn raw_is_byte_faithful() {
        let mut out = Vec::new();
        encode_batch(&batch(), Format::Raw, &mut out).unwrap();
        assert_eq!(out, b"GET / 200\nbad \xff utf8 \0 nul\n");
    }

    #[test]
    fn json_has_one_object_per_line_with_lossy_text() {
        let mut out = Vec::new();
        encode_batch(&batch(), Format::Json, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"timestamp":"2023-11-14T22:13:20.123Z","stream":"access","file":"/var/log/app/access.log","offset":10,"line":"GET / 200"}"#
        );
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["line"], "bad \u{fffd} utf8 \u{0} nul");
        assert_eq!(v["unterminated"], true);
    }
}
