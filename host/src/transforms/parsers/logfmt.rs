//! The `logfmt` parser: `level=info msg="request done" status=200 cached` gives the fields
//! `level`, `msg`, `status` (all strings, as logfmt has no types; `types` converts) and
//! `cached: true` (a bare key). Quoted values understand `\"`, `\\`, `\n`, `\t`. A line with no
//! `key=value` pair is a parse error.

use indexmap::IndexMap;
use serde::Deserialize;

use super::regexp::{FieldType, set_typed};
#[cfg(test)]
use crate::event::Fields;
use crate::event::fields::FieldSink;
use crate::stats::StreamStats;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogfmtConfig {
    /// Types of keys that are not strings: `{ status: int, duration: float }`.
    #[serde(default)]
    pub types: IndexMap<String, FieldType>,
    /// The key holding the event time, and how to read it (see the time options).
    pub time_key: Option<String>,
    pub time_format: Option<String>,
    pub time_zone: Option<String>,
}

impl LogfmtConfig {
    pub fn time_options(&self) -> super::super::time::TimeOptions {
        super::super::time::TimeOptions {
            time_key: self.time_key.clone(),
            time_format: self.time_format.clone(),
            time_zone: self.time_zone.clone(),
        }
    }
}

pub fn parse(
    line: &[u8],
    types: &IndexMap<String, FieldType>,
    fields: &mut impl FieldSink,
    stats: &StreamStats,
) -> Result<(), String> {
    let text = String::from_utf8_lossy(line);
    let mut chars = text.char_indices().peekable();
    let mut pairs = 0;
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        // The key: up to '=' or whitespace.
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let key = &text[start..end];
        if chars.peek().map(|&(_, c)| c) != Some('=') {
            if !key.is_empty() {
                fields.bool(key, true);
            }
            continue;
        }
        chars.next(); // '='
        let value = if chars.peek().map(|&(_, c)| c) == Some('"') {
            chars.next();
            let mut v = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => v.push('\n'),
                        Some('t') => v.push('\t'),
                        Some(other) => v.push(other),
                        None => v.push('\\'),
                    },
                    c => v.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value for key `{key}`"));
            }
            v
        } else {
            let mut v = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                v.push(c);
                chars.next();
            }
            v
        };
        if key.is_empty() {
            continue;
        }
        pairs += 1;
        set_typed(fields, key, &value, types.get(key).copied(), stats);
    }
    if pairs == 0 {
        return Err("no key=value pairs".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Result<Fields, String> {
        let mut f = Fields::new();
        let mut types = IndexMap::new();
        types.insert("status".to_string(), FieldType::Int);
        parse(line.as_bytes(), &types, &mut f, &StreamStats::default()).map(|()| f)
    }

    #[test]
    fn pairs_quotes_bare_keys_and_types() {
        let f = run(r#"time=2026-11-22T10:00:00Z level=info msg="request \"done\"\tok" status=200 cached path=/a=b"#).unwrap();
        assert_eq!(f["level"], "info");
        assert_eq!(f["msg"], "request \"done\"\tok");
        assert_eq!(f["status"], 200);
        assert_eq!(f["cached"], true);
        assert_eq!(f["path"], "/a=b");
        assert_eq!(f["time"], "2026-11-22T10:00:00Z");
        let f = run("é=ü empty=").unwrap();
        assert_eq!(f["é"], "ü");
        assert_eq!(f["empty"], "");
    }

    #[test]
    fn errors() {
        assert_eq!(run("just words here").unwrap_err(), "no key=value pairs");
        assert_eq!(
            run(r#"msg="never closed"#).unwrap_err(),
            "unterminated quoted value for key `msg`"
        );
        assert!(run("").is_err());
    }
}
