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

use crate::columns::{
    FIELDS, FieldCursor, FieldRange, LINE, ROUTE, TIME, empty_fields, empty_times, push_end,
    push_field, slice,
};
use crate::record::{input_line, input_time};
use crate::{Config, Plugin, Timestamp, Value, wit};

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
        line_ends: Vec::new(),
        times: empty_times(),
        fields: empty_fields(),
    };
    for (i, (line, fields)) in input.iter().enumerate() {
        push_end(&mut batch.data, &mut batch.line_ends, line);
        if let serde_json::Value::Object(map) = fields {
            for (k, v) in map {
                let value = match v {
                    serde_json::Value::Null => Value::Null,
                    serde_json::Value::Bool(b) => Value::Bool(*b),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => Value::Int(i),
                        None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    serde_json::Value::String(s) => Value::Str(s.as_str().into()),
                    other => Value::Json(other.to_string().into()),
                };
                push_field(&mut batch.fields, i as u32, k, &value);
            }
        }
    }
    batch
}

fn to_map(range: FieldRange<'_>) -> serde_json::Map<String, serde_json::Value> {
    range
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_json()))
        .collect()
}

/// The `n`th item of a buffer of items back to back.
fn nth<'b>(buf: &'b [u8], ends: &[u32], n: usize) -> &'b [u8] {
    let start = if n == 0 { 0 } else { ends[n - 1] };
    slice(buf, start, ends[n])
}

fn unpack(batch: &wit::Batch, output: &wit::Output) -> Vec<Out> {
    let n = batch.line_ends.len();
    let (sources, changes): (Vec<u32>, Vec<u8>) = if output.keep_all {
        ((0..n as u32).collect(), vec![0; n])
    } else {
        (output.sources.clone(), output.changes.clone())
    };
    let mut input_fields = FieldCursor::new(&batch.fields);
    let mut output_fields = FieldCursor::new(&output.fields);
    let (mut lines, mut times, mut routes) = (0, 0, 0);
    let mut out = Vec::with_capacity(sources.len());
    let mut last_source = None;
    let mut source_fields = serde_json::Map::new();
    for (j, (&source, &ch)) in sources.iter().zip(&changes).enumerate() {
        let source = source as usize;
        if last_source != Some(source) {
            source_fields = to_map(input_fields.next_record(source));
            last_source = Some(source);
        }
        let line = if ch & LINE != 0 {
            lines += 1;
            nth(&output.data, &output.line_ends, lines - 1)
        } else {
            input_line(batch, source)
        };
        let fields = if ch & FIELDS != 0 {
            to_map(output_fields.next_record(j))
        } else {
            source_fields.clone()
        };
        let time = if ch & TIME != 0 {
            times += 1;
            Some(Timestamp {
                seconds: output.times.seconds[times - 1],
                nanos: output.times.nanos[times - 1],
            })
        } else {
            input_time(batch, source)
        };
        let route = (ch & ROUTE != 0).then(|| {
            routes += 1;
            String::from_utf8_lossy(nth(&output.routes, &output.route_ends, routes - 1))
                .split(',')
                .map(String::from)
                .collect()
        });
        out.push(Out {
            source,
            line: String::from_utf8_lossy(line).into_owned(),
            fields,
            time,
            route,
        });
    }
    out
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
            // A second changed record reuses the first's field list: none of it may remain.
            (b"change", serde_json::json!({"n": 1})),
            (b"split", serde_json::json!({"k": "v"})),
            (b"other", serde_json::Value::Null),
        ]);
        let lines: Vec<&str> = out.iter().map(|o| o.line.as_str()).collect();
        assert_eq!(lines, ["keep", "changed", "changed", "a", "b", "other"]);
        let sources: Vec<usize> = out.iter().map(|o| o.source).collect();
        assert_eq!(sources, [1, 2, 3, 4, 4, 5]);
        let second = serde_json::json!({"n": 2, "word": "x"});
        assert_eq!(out[2].fields, second.as_object().unwrap().clone());
        assert!(out[5].fields.is_empty());
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
            out[4].fields,
            serde_json::json!({"k": "v", "part": 2})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(
            out[5].route.as_deref(),
            Some(&["errors".to_string(), "archive".to_string()][..])
        );
        assert_eq!(counts().get("changed"), Some(&2));
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
        assert!(out.keep_all && out.sources.is_empty());
        // A change after unchanged records writes those out first, then goes on per record.
        let input: Vec<(&[u8], serde_json::Value)> = ["a", "b", "drop", "c"]
            .iter()
            .map(|l| (l.as_bytes(), serde_json::Value::Null))
            .collect();
        let batch = pack(&input);
        let out = crate::output::run(&mut h.plugin, &batch).unwrap();
        assert!(!out.keep_all);
        assert_eq!(out.sources, [0, 1, 3]);
        assert_eq!(out.changes, [0, 0, 0], "only the drop crosses back");
        assert_eq!(
            h.run(&["x", "drop", "y"])
                .iter()
                .map(|o| o.line.as_str())
                .collect::<Vec<_>>(),
            ["x", "y"]
        );
    }

    /// Writes each record's fields into its line.
    struct Echo;

    impl Plugin for Echo {
        fn init(_config: Config) -> Result<Self, String> {
            Ok(Echo)
        }
        fn process(&mut self, rec: &mut Record<'_>) -> Verdict {
            let text: Vec<String> = rec
                .fields()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.to_json()))
                .collect();
            let has = rec.has_fields();
            rec.set_line(format!("{has} {}", text.join(" ")));
            Verdict::Keep
        }
    }

    #[test]
    fn each_record_reads_its_own_typed_fields() {
        let mut h = Harness::<Echo>::new("").unwrap();
        let out = h.run_records(&[
            (b"", serde_json::json!({"a": 1, "b": 2.5, "s": "x"})),
            (b"", serde_json::Value::Null),
            (
                b"",
                // Keys in sorted order: serde_json keeps insertion order when another crate of
                // the workspace enables `preserve_order`, and sorts keys otherwise.
                serde_json::json!({"c": -3, "d": 4.5, "f": false, "o": {"k": [true, null]}}),
            ),
        ]);
        let lines: Vec<&str> = out.iter().map(|o| o.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                r#"true a=1 b=2.5 s="x""#,
                "false ",
                r#"true c=-3 d=4.5 f=false o={"k":[true,null]}"#
            ]
        );
        assert_eq!(out[2].fields["c"], -3, "fields kept as they came");
    }

    #[test]
    fn config_refusals_name_the_option() {
        let err = Harness::<Sampler>::new(r#"{"typo": 1}"#).err().unwrap();
        assert_eq!(err, "unknown option `typo` (known: )");
        let err = Harness::<Sampler>::new("not json").err().unwrap();
        assert!(err.starts_with("config is not JSON"), "{err}");
    }
}
