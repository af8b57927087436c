//! `json_kv_parse`: a parser. A line that is a JSON object becomes its fields; any other line is
//! read as `key=value` pairs (logfmt: values may be "quoted" with `\"` escapes; a bare key is
//! `true`). Numbers become integers or floats, `true`/`false` booleans.
//!
//! Config: `time_key` (optional): a field holding an RFC 3339 time or Unix seconds, which becomes
//! the record's event time. `prefix` (optional): put every field under this name instead of at
//! the top level. A line that is neither (no `=` at all, or broken JSON) is kept with a
//! `parse_error` field and counted as `parse_errors`: never dropped.
//!
//! The same plugin as `plugins/python/examples/json_kv_parse` and
//! `plugins/javascript/examples/json_kv_parse`, for the benchmark across languages.

use std::borrow::Cow;

use tailcar_plugin::{Config, Plugin, Record, Timestamp, Value, Verdict};

pub struct JsonKvParse {
    time_key: Option<String>,
    prefix: Option<String>,
}

fn json_value(v: serde_json::Value) -> Value<'static> {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Int(i),
            // Integers beyond 64 bits stay exact as JSON text.
            (None, _) if n.is_u64() => Value::Json(Cow::Owned(n.to_string())),
            (None, Some(f)) => Value::Float(f),
            (None, None) => Value::Json(Cow::Owned(n.to_string())),
        },
        serde_json::Value::String(s) => Value::Str(Cow::Owned(s)),
        other => Value::Json(Cow::Owned(other.to_string())),
    }
}

fn is_int(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

fn is_float(v: &str) -> bool {
    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?
    let s = v.strip_prefix('-').unwrap_or(v);
    let int_end = s.find(['.', 'e', 'E']).unwrap_or(s.len());
    if !is_int(&s[..int_end]) || s[..int_end].starts_with('-') {
        return false;
    }
    let mut rest = &s[int_end..];
    if let Some(frac) = rest.strip_prefix('.') {
        let end = frac.find(['e', 'E']).unwrap_or(frac.len());
        if end == 0 || !frac[..end].bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        rest = &frac[end..];
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        return !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit());
    }
    rest.is_empty()
}

fn typed(v: &str) -> Value<'static> {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ if is_int(v) => v
            .parse::<i64>()
            .map(Value::Int)
            .unwrap_or_else(|_| Value::Str(Cow::Owned(v.to_string()))),
        _ if is_float(v) => v
            .parse::<f64>()
            .map(Value::Float)
            .unwrap_or_else(|_| Value::Str(Cow::Owned(v.to_string()))),
        _ => Value::Str(Cow::Owned(v.to_string())),
    }
}

/// The end of a `"..."` value starting at `s[0]`, with `\` escapes, if it is closed.
fn quoted_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// `key=value` pairs, or `None` when the line has none.
fn logfmt(text: &str) -> Option<Vec<(String, Value<'static>)>> {
    let mut fields: Vec<(String, Value<'static>)> = Vec::new();
    let mut saw_pair = false;
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        if key_end == 0 {
            return None;
        }
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let value = match rest.strip_prefix('=') {
            None => Value::Bool(true),
            Some(after) => {
                saw_pair = true;
                let quoted = after
                    .starts_with('"')
                    .then(|| quoted_end(after))
                    .flatten()
                    .and_then(|end| {
                        serde_json::from_str::<String>(&after[..end])
                            .ok()
                            .map(|s| (s, end))
                    });
                let (value, end) = match quoted {
                    Some((s, end)) => (Value::Str(Cow::Owned(s)), end),
                    None => {
                        let end = after.find(char::is_whitespace).unwrap_or(after.len());
                        (typed(&after[..end]), end)
                    }
                };
                rest = &after[end..];
                value
            }
        };
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => fields.push((key.to_string(), value)),
        }
        rest = rest.trim_start();
    }
    saw_pair.then_some(fields)
}

/// The event time from an RFC 3339 string or Unix seconds.
fn event_time(v: &Value<'_>) -> Option<Timestamp> {
    match v {
        Value::Int(n) => Some(Timestamp {
            seconds: *n,
            nanos: 0,
        }),
        Value::Float(f) if f.is_finite() => Some(Timestamp {
            seconds: f.floor() as i64,
            nanos: ((f - f.floor()) * 1e9).round().min(999_999_999.0) as u32,
        }),
        Value::Str(s) => {
            let t: jiff::Timestamp = s.parse().ok()?;
            Some(Timestamp {
                seconds: t.as_second(),
                nanos: t.subsec_nanosecond().max(0) as u32,
            })
        }
        _ => None,
    }
}

impl Plugin for JsonKvParse {
    fn init(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["time_key", "prefix"])?;
        Ok(JsonKvParse {
            time_key: config.str("time_key")?.map(String::from),
            prefix: config.str("prefix")?.map(String::from),
        })
    }

    fn process(&mut self, record: &mut Record<'_>) -> Verdict {
        let text = String::from_utf8_lossy(record.input_line());
        let fields = if text.trim_start().starts_with('{') {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text) {
                Ok(map) => Some(map.into_iter().map(|(k, v)| (k, json_value(v))).collect()),
                Err(e) => {
                    record.set_field("parse_error", format!("invalid JSON: {e}"));
                    tailcar_plugin::count("parse_errors", 1);
                    return Verdict::Keep;
                }
            }
        } else {
            logfmt(&text)
        };
        let Some(fields) = fields else {
            record.set_field("parse_error", "neither a JSON object nor key=value pairs");
            tailcar_plugin::count("parse_errors", 1);
            return Verdict::Keep;
        };
        if let Some(key) = &self.time_key
            && let Some(t) = fields
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| event_time(v))
        {
            record.set_time(t);
        }
        match &self.prefix {
            Some(prefix) => {
                let object: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                record.set_field(
                    prefix.clone(),
                    Value::Json(Cow::Owned(serde_json::Value::Object(object).to_string())),
                );
            }
            None => {
                for (k, v) in fields {
                    record.set_field(k, v);
                }
            }
        }
        Verdict::Keep
    }
}

tailcar_plugin::export!(JsonKvParse);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tailcar_plugin::testing::Harness;

    #[test]
    fn parses_json_logfmt_and_times_and_keeps_what_it_cannot_parse() {
        let mut h = Harness::<JsonKvParse>::new(r#"{"time_key": "ts"}"#).unwrap();
        let out = h.run(&[
            r#"{"msg":"boom","n":5,"f":1.5,"big":18446744073709551615,"o":{"a":[1]},"ts":"2026-11-22T10:00:01.5+01:00"}"#,
            r#"level=warn msg="disk \"full\"" ts=1700000000.25 retry n=-42 v=1e3 s=007"#,
            "no pairs here",
            "{broken",
        ]);
        assert_eq!(
            serde_json::Value::Object(out[0].fields.clone()),
            json!({"msg":"boom","n":5,"f":1.5,"big":18446744073709551615u64,"o":{"a":[1]},"ts":"2026-11-22T10:00:01.5+01:00"})
        );
        assert_eq!(
            out[0].time,
            Some(Timestamp {
                seconds: 1_795_338_001,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            serde_json::Value::Object(out[1].fields.clone()),
            json!({"level":"warn","msg":"disk \"full\"","ts":1700000000.25,"retry":true,"n":-42,"v":1000.0,"s":"007"})
        );
        assert_eq!(
            out[1].time,
            Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 250_000_000
            })
        );
        assert_eq!(
            out[2].fields["parse_error"],
            "neither a JSON object nor key=value pairs"
        );
        assert!(
            out[3].fields["parse_error"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON: ")
        );
        assert_eq!(tailcar_plugin::testing::counts()["parse_errors"], 2);
    }

    #[test]
    fn a_prefix_nests_the_fields() {
        let mut h = Harness::<JsonKvParse>::new(r#"{"prefix": "app"}"#).unwrap();
        let out = h.run(&["a=1 b=x"]);
        assert_eq!(out[0].fields["app"], json!({"a": 1, "b": "x"}));
    }
}
