//! Native filters, listed under a stream's `filters:` and run in the order written:
//!
//! - `grep: { include: { KEY: REGEX, ... }, exclude: { KEY: REGEX, ... } }` keeps a record when
//!   every `include` pattern matches and no `exclude` pattern does. `KEY` is `line` (the raw line)
//!   or a field name (numbers and booleans are matched as text; a missing field never matches).
//! - `drop_fields: [a, b]`, `keep_fields: [a, b]`, `rename: { old: new }` edit fields.
//! - `throttle: { rate: N }` passes at most N records per second per stream (bursts up to N).
//!
//! Records dropped by `grep` and `throttle` are counted (`filtered`, `throttled`); their lines
//! are still acknowledged, so checkpoints move past them.

use std::time::Instant;

use indexmap::IndexMap;
use regex::bytes::Regex;
use serde::Deserialize;

use crate::event::{Batch, FieldStore, Value};
use crate::stats::StreamStats;
use crate::transforms::Transform;

/// One entry of `filters:`, written as a map with one key: `- grep: { ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct FilterSpec(#[serde(with = "serde_yaml::with::singleton_map")] pub FilterConfig);

/// What a filter entry says.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterConfig {
    Grep(GrepConfig),
    DropFields(Vec<String>),
    KeepFields(Vec<String>),
    Rename(IndexMap<String, String>),
    Throttle(ThrottleConfig),
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrepConfig {
    #[serde(default)]
    pub include: IndexMap<String, String>,
    #[serde(default)]
    pub exclude: IndexMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Records per second.
    pub rate: u32,
}

impl FilterConfig {
    /// Validates and compiles; the error is `(key, reason)`, the key relative to the filter.
    pub fn build(&self) -> Result<Filter, (String, String)> {
        Ok(match self {
            FilterConfig::Grep(g) => {
                if g.include.is_empty() && g.exclude.is_empty() {
                    return Err((
                        "grep".into(),
                        "needs `include` or `exclude` patterns".into(),
                    ));
                }
                let compile = |what: &str, m: &IndexMap<String, String>| {
                    m.iter()
                        .map(|(k, p)| {
                            Regex::new(p).map(|r| (k.clone(), r)).map_err(|e| {
                                (
                                    format!("grep.{what}.{k}"),
                                    format!("invalid regex: {}", one_line(&e.to_string())),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                Filter::Grep {
                    include: compile("include", &g.include)?,
                    exclude: compile("exclude", &g.exclude)?,
                }
            }
            FilterConfig::DropFields(f) => Filter::DropFields(f.clone()),
            FilterConfig::KeepFields(f) => Filter::KeepFields(f.clone()),
            FilterConfig::Rename(m) => {
                Filter::Rename(m.iter().map(|(a, b)| (a.clone(), b.clone())).collect())
            }
            FilterConfig::Throttle(t) => {
                if t.rate == 0 {
                    return Err(("throttle.rate".into(), "must be at least 1".into()));
                }
                Filter::Throttle {
                    rate: t.rate as f64,
                    tokens: t.rate as f64,
                    last: None,
                }
            }
        })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub enum Filter {
    Grep {
        include: Vec<(String, Regex)>,
        exclude: Vec<(String, Regex)>,
    },
    DropFields(Vec<String>),
    KeepFields(Vec<String>),
    Rename(Vec<(String, String)>),
    Throttle {
        rate: f64,
        tokens: f64,
        last: Option<Instant>,
    },
}

impl Filter {
    pub fn describe(&self) -> String {
        match self {
            Filter::Grep { include, exclude } => format!(
                "grep ({} include, {} exclude)",
                include.len(),
                exclude.len()
            ),
            Filter::DropFields(f) => format!("drop_fields {}", f.join(", ")),
            Filter::KeepFields(f) => format!("keep_fields {}", f.join(", ")),
            Filter::Rename(r) => format!(
                "rename {}",
                r.iter()
                    .map(|(a, b)| format!("{a}->{b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Filter::Throttle { rate, .. } => format!("throttle {rate}/s"),
        }
    }
}

/// Whether `re` matches the `key` of a record: its line, or a field as text.
fn matches(re: &Regex, key: &str, line: &[u8], fields: &FieldStore, record: usize) -> bool {
    if key == "line" {
        return re.is_match(line);
    }
    match fields.get(record, key) {
        None | Some(Value::Null) => false,
        Some(Value::Text(s)) => re.is_match(s.as_bytes()),
        Some(other) => re.is_match(other.to_string().as_bytes()),
    }
}

impl Transform for Filter {
    fn process(&mut self, batch: &mut Batch, stats: &StreamStats) {
        match self {
            Filter::Grep { include, exclude } => {
                let keep: Vec<bool> = (0..batch.len())
                    .map(|i| {
                        let line = batch.line_at(i);
                        let f = batch.fields();
                        include.iter().all(|(k, re)| matches(re, k, line, f, i))
                            && !exclude.iter().any(|(k, re)| matches(re, k, line, f, i))
                    })
                    .collect();
                let dropped = keep.iter().filter(|k| !**k).count();
                batch.retain(|i| keep[i]);
                StreamStats::add(&stats.filtered, dropped as u64);
            }
            Filter::DropFields(names) => {
                let fields = batch.fields_mut();
                for r in 0..fields.records() {
                    fields.remove_where(r, |k| names.iter().any(|n| n == k));
                }
            }
            Filter::KeepFields(names) => {
                let fields = batch.fields_mut();
                for r in 0..fields.records() {
                    fields.remove_where(r, |k| !names.iter().any(|n| n == k));
                }
            }
            Filter::Rename(pairs) => {
                let fields = batch.fields_mut();
                for r in 0..fields.records() {
                    for (from, to) in pairs.iter() {
                        // As a map does: the field goes last under its new name (or takes the
                        // place of a field already named so).
                        fields.rename(r, from, to);
                    }
                }
            }
            Filter::Throttle { rate, tokens, last } => {
                let now = Instant::now();
                if let Some(prev) = *last {
                    *tokens = (*tokens + now.duration_since(prev).as_secs_f64() * *rate).min(*rate);
                }
                *last = Some(now);
                let mut passed = 0usize;
                let available = tokens.floor() as usize;
                let n = batch.len();
                batch.retain(|_| {
                    passed += 1;
                    passed <= available
                });
                let kept = batch.len();
                *tokens -= kept as f64;
                StreamStats::add(&stats.throttled, (n - kept) as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn batch(lines: &[(&str, serde_json::Value)]) -> Batch {
        let mut b = Batch::new(
            Arc::new(Source {
                stream: "s".into(),
                path: "/p".into(),
                file_id: None,
            }),
            SystemTime::now(),
        );
        for (i, (l, _)) in lines.iter().enumerate() {
            b.push_line(l.as_bytes(), i as u64 + 1, 0);
        }
        for (i, (_, v)) in lines.iter().enumerate() {
            if let Some(m) = v.as_object() {
                b.fields_mut().set_map(i, m);
            }
        }
        b
    }

    fn lines(b: &Batch) -> Vec<String> {
        b.records()
            .iter()
            .map(|r| String::from_utf8_lossy(b.line(r)).into_owned())
            .collect()
    }

    fn build(yaml: &str) -> Filter {
        serde_yaml::from_str::<FilterSpec>(yaml)
            .unwrap()
            .0
            .build()
            .unwrap()
    }

    #[test]
    fn grep_includes_and_excludes_by_line_or_field() {
        let stats = StreamStats::default();
        let mut b = batch(&[
            (
                "GET /healthz",
                serde_json::json!({"path": "/healthz", "status": 200}),
            ),
            (
                "GET /api",
                serde_json::json!({"path": "/api", "status": 500}),
            ),
            (
                "GET /readyz",
                serde_json::json!({"path": "/readyz", "status": 200}),
            ),
            (
                "POST /api",
                serde_json::json!({"path": "/api", "status": 201}),
            ),
            ("no fields", serde_json::Value::Null),
        ]);
        build("grep: { exclude: { path: '^/(healthz|readyz)$' } }").process(&mut b, &stats);
        assert_eq!(lines(&b), vec!["GET /api", "POST /api", "no fields"]);
        build("grep: { include: { line: '^(GET|POST)', status: '^[45]' } }")
            .process(&mut b, &stats);
        assert_eq!(
            lines(&b),
            vec!["GET /api"],
            "every include must match; numbers match as text"
        );
        assert_eq!(
            b.fields().get(0, "status"),
            Some(Value::Int(500)),
            "fields stay aligned"
        );
        assert_eq!(stats.filtered.load(std::sync::atomic::Ordering::Relaxed), 4);
    }

    #[test]
    fn field_edits() {
        let stats = StreamStats::default();
        let mut b = batch(&[("x", serde_json::json!({"a": 1, "b": 2, "c": 3}))]);
        build("rename: { a: alpha, missing: nothing }").process(&mut b, &stats);
        assert_eq!(
            serde_json::Value::Object(b.fields().to_map(0)),
            serde_json::json!({"b": 2, "c": 3, "alpha": 1})
        );
        build("drop_fields: [b]").process(&mut b, &stats);
        build("keep_fields: [alpha, zzz]").process(&mut b, &stats);
        assert_eq!(
            serde_json::Value::Object(b.fields().to_map(0)),
            serde_json::json!({"alpha": 1})
        );
    }

    #[test]
    fn throttle_passes_the_rate_and_counts_the_rest() {
        let stats = StreamStats::default();
        let mut t = build("throttle: { rate: 3 }");
        let mut b = batch(&[
            ("1", serde_json::Value::Null),
            ("2", serde_json::Value::Null),
            ("3", serde_json::Value::Null),
            ("4", serde_json::Value::Null),
            ("5", serde_json::Value::Null),
        ]);
        t.process(&mut b, &stats);
        assert_eq!(lines(&b), vec!["1", "2", "3"]);
        let mut b2 = batch(&[("6", serde_json::Value::Null)]);
        t.process(&mut b2, &stats);
        assert!(b2.is_empty(), "the bucket is empty until time passes");
        assert_eq!(
            stats.throttled.load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = |y: &str| {
            serde_yaml::from_str::<FilterSpec>(y)
                .unwrap()
                .0
                .build()
                .unwrap_err()
        };
        assert_eq!(err("grep: {}").0, "grep");
        assert_eq!(
            err("grep: { include: { line: '(' } }").0,
            "grep.include.line"
        );
        assert_eq!(err("throttle: { rate: 0 }").0, "throttle.rate");
        let e = serde_yaml::from_str::<FilterSpec>("grepp: {}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown variant `grepp`, expected one of `grep`"),
            "{e}"
        );
    }
}
