//! Testing plugins natively: `cargo test` runs a [`Plugin`] through the same packing and
//! unpacking code as in tailcar, without wasm.
//!
//! ```ignore
//! let mut h = Harness::<MyPlugin>::new(r#"{"paths": "/healthz"}"#).unwrap();
//! let out = h.run(&["GET /healthz", "GET /"]);
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].line, "GET /");
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::record::{decode_value, text};
use crate::{Config, Plugin, Timestamp, wit};

thread_local! {
    static COUNTS: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn record_count(name: &str, delta: u32) {
    COUNTS.with(|c| *c.borrow_mut().entry(name.to_string()).or_default() += u64::from(delta));
}

/// The counters [`crate::count`] added to on this thread (in native tests).
pub fn counts() -> BTreeMap<String, u64> {
    COUNTS.with(|c| c.borrow().clone())
}

/// One output record, unpacked.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    /// Index of the input record it comes from.
    pub source: usize,
    /// The line (lossily decoded as UTF-8).
    pub line: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub time: Option<Timestamp>,
    pub route: Option<Vec<String>>,
}

/// Runs a plugin over lines, as tailcar would.
pub struct Harness<P: Plugin> {
    plugin: P,
    _p: PhantomData<P>,
}

impl<P: Plugin> Harness<P> {
    /// Initializes the plugin with `config` (JSON text); an error is the plugin's refusal.
    pub fn new(config: &str) -> Result<Self, String> {
        let text = if config.trim().is_empty() {
            "{}"
        } else {
            config
        };
        Ok(Harness {
            plugin: P::init(Config::parse(text)?)?,
            _p: PhantomData,
        })
    }

    /// One batch of lines without fields. Panics if the plugin fails the batch.
    pub fn run(&mut self, lines: &[&str]) -> Vec<Out> {
        let input: Vec<(&[u8], serde_json::Value)> = lines
            .iter()
            .map(|l| (l.as_bytes(), serde_json::Value::Null))
            .collect();
        self.run_records(&input)
    }

    /// One batch of lines (bytes) with fields (a JSON object each, or null). Panics if the
    /// plugin fails the batch.
    pub fn run_records(&mut self, input: &[(&[u8], serde_json::Value)]) -> Vec<Out> {
        self.try_run_records(input)
            .unwrap_or_else(|e| panic!("the plugin failed the batch: {e}"))
    }

    /// Like [`Harness::run_records`], returning the plugin's failure.
    pub fn try_run_records(
        &mut self,
        input: &[(&[u8], serde_json::Value)],
    ) -> Result<Vec<Out>, String> {
        let batch = pack(input);
        let output = crate::output::run(&mut self.plugin, &batch)?;
        Ok(unpack(&batch, &output))
    }
}

fn pack(input: &[(&[u8], serde_json::Value)]) -> wit::Batch {
    let mut batch = wit::Batch {
        stream: "test".into(),
        path: "/var/log/test.log".into(),
        read_at: wit::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        },
        data: Vec::new(),
        records: Vec::new(),
        fields: Vec::new(),
        strings: Vec::new(),
    };
    for (i, (line, fields)) in input.iter().enumerate() {
        let line_span = wit::Span {
            start: batch.data.len() as u32,
            len: line.len() as u32,
        };
        batch.data.extend_from_slice(line);
        batch.records.push(wit::Entry {
            line: line_span,
            time: None,
        });
        if let serde_json::Value::Object(map) = fields {
            for (k, v) in map {
                let key = push(&mut batch.strings, k);
                let value = match v {
                    serde_json::Value::Null => wit::Value::Null,
                    serde_json::Value::Bool(b) => wit::Value::Boolean(*b),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => wit::Value::Integer(i),
                        None => wit::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    serde_json::Value::String(s) => wit::Value::Text(push(&mut batch.strings, s)),
                    other => wit::Value::Json(push(&mut batch.strings, &other.to_string())),
                };
                batch.fields.push(wit::Field {
                    owner: i as u32,
                    key,
                    value,
                });
            }
        }
    }
    batch
}

fn push(buf: &mut Vec<u8>, s: &str) -> wit::Span {
    let span = wit::Span {
        start: buf.len() as u32,
        len: s.len() as u32,
    };
    buf.extend_from_slice(s.as_bytes());
    span
}

fn fields_of(
    fields: &[wit::Field],
    strings: &[u8],
    owner: usize,
) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .filter(|f| f.owner as usize == owner)
        .map(|f| {
            (
                text(strings, f.key).to_string(),
                decode_value(strings, &f.value).to_json(),
            )
        })
        .collect()
}

fn unpack(batch: &wit::Batch, output: &wit::Output) -> Vec<Out> {
    if output.keep_all {
        let kept: Vec<wit::Emitted> = (0..batch.records.len())
            .map(|i| wit::Emitted {
                source: i as u32,
                line: None,
                time: None,
                fields: wit::FieldsFrom::Input,
                route: None,
            })
            .collect();
        return unpack(
            batch,
            &wit::Output {
                keep_all: false,
                records: kept,
                data: Vec::new(),
                fields: Vec::new(),
                strings: Vec::new(),
            },
        );
    }
    output
        .records
        .iter()
        .enumerate()
        .map(|(j, e)| {
            let source = e.source as usize;
            let entry = &batch.records[source];
            let line = match e.line {
                Some(s) => &output.data[s.start as usize..(s.start + s.len) as usize],
                None => {
                    &batch.data
                        [entry.line.start as usize..(entry.line.start + entry.line.len) as usize]
                }
            };
            let fields = match e.fields {
                wit::FieldsFrom::Input => fields_of(&batch.fields, &batch.strings, source),
                wit::FieldsFrom::Output => fields_of(&output.fields, &output.strings, j),
            };
            Out {
                source,
                line: String::from_utf8_lossy(line).into_owned(),
                fields,
                time: e.time.or(entry.time).map(|t| Timestamp {
                    seconds: t.seconds,
                    nanos: t.nanos,
                }),
                route: e.route.map(|s| {
                    text(&output.strings, s)
                        .split(',')
                        .map(String::from)
                        .collect()
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Emit, Record, Verdict};

    /// Exercises every path of the packing: drop, keep unchanged, change line and fields, split,
    /// route.
    struct Sampler;

    impl Plugin for Sampler {
        fn init(config: Config) -> Result<Self, String> {
            config.deny_unknown(&[])?;
            Ok(Sampler)
        }
        fn process(&mut self, rec: &mut Record<'_>) -> Verdict {
            match rec.input_str() {
                Some("drop") => Verdict::Drop,
                Some("keep") => Verdict::Keep,
                Some("change") => {
                    let n = rec.field("n").and_then(|v| v.as_i64()).unwrap_or(0);
                    rec.set_line("changed");
                    rec.set_field("n", n + 1);
                    rec.set_field("word", "x");
                    rec.remove_field("gone");
                    crate::count("changed", 1);
                    Verdict::Keep
                }
                Some("split") => Verdict::Split(vec![
                    Emit::line("a").field("part", 1),
                    Emit::line("b").field("part", 2),
                ]),
                _ => {
                    rec.route_to(&["errors", "archive"]);
                    Verdict::Keep
                }
            }
        }
    }

    #[test]
    fn packs_every_verdict() {
        let mut h = Harness::<Sampler>::new("").unwrap();
        let out = h.run_records(&[
            (b"drop", serde_json::Value::Null),
            (b"keep", serde_json::json!({"k": "v"})),
            (b"change", serde_json::json!({"n": 41, "gone": true})),
            (b"split", serde_json::json!({"k": "v"})),
            (b"other", serde_json::Value::Null),
        ]);
        let lines: Vec<&str> = out.iter().map(|o| o.line.as_str()).collect();
        assert_eq!(lines, ["keep", "changed", "a", "b", "other"]);
        let sources: Vec<usize> = out.iter().map(|o| o.source).collect();
        assert_eq!(sources, [1, 2, 3, 3, 4]);
        assert_eq!(
            out[0].fields,
            serde_json::json!({"k": "v"}).as_object().unwrap().clone()
        );
        assert_eq!(
            out[1].fields,
            serde_json::json!({"n": 42, "word": "x"})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(
            out[3].fields,
            serde_json::json!({"k": "v", "part": 2})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(
            out[4].route.as_deref(),
            Some(&["errors".to_string(), "archive".to_string()][..])
        );
        assert_eq!(counts().get("changed"), Some(&1));
    }

    /// Drops only records saying `drop`, keeps the rest unchanged.
    struct DropWord;

    impl Plugin for DropWord {
        fn init(_config: Config) -> Result<Self, String> {
            Ok(DropWord)
        }
        fn process(&mut self, rec: &mut Record<'_>) -> Verdict {
            if rec.line() == b"drop" {
                Verdict::Drop
            } else {
                Verdict::Keep
            }
        }
    }

    #[test]
    fn a_batch_kept_as_it_came_crosses_back_as_keep_all() {
        let mut h = Harness::<DropWord>::new("").unwrap();
        let input: Vec<(&[u8], serde_json::Value)> = vec![
            (b"a", serde_json::Value::Null),
            (b"b", serde_json::Value::Null),
        ];
        let batch = pack(&input);
        let out = crate::output::run(&mut h.plugin, &batch).unwrap();
        assert!(out.keep_all && out.records.is_empty());
        // A change after unchanged records writes those out first, then goes on per record.
        let input: Vec<(&[u8], serde_json::Value)> = ["a", "b", "drop", "c"]
            .iter()
            .map(|l| (l.as_bytes(), serde_json::Value::Null))
            .collect();
        let batch = pack(&input);
        let out = crate::output::run(&mut h.plugin, &batch).unwrap();
        assert!(!out.keep_all);
        let sources: Vec<u32> = out.records.iter().map(|e| e.source).collect();
        assert_eq!(sources, [0, 1, 3]);
        assert_eq!(
            h.run(&["x", "drop", "y"])
                .iter()
                .map(|o| o.line.as_str())
                .collect::<Vec<_>>(),
            ["x", "y"]
        );
    }

    #[test]
    fn config_refusals_name_the_option() {
        let err = Harness::<Sampler>::new(r#"{"typo": 1}"#).err().unwrap();
        assert_eq!(err, "unknown option `typo` (known: )");
        let err = Harness::<Sampler>::new("not json").err().unwrap();
        assert!(err.starts_with("config is not JSON"), "{err}");
    }
}
