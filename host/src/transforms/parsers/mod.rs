//! Parsers: fill a record's fields from its line. Chosen per stream with `parser: NAME` or
//! `parser: { type: NAME, ... }`. A line that does not parse keeps its bytes and gets a
//! `parse_error` field (the reason), and the stream's `parse_errors` counter goes up.

pub mod access;
pub mod container;
pub mod delimited;
pub mod json;
pub mod logfmt;
pub mod regexp;
pub mod syslog;

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use indexmap::IndexMap;

use crate::event::Batch;
use crate::event::fields::Writer;
use crate::stats::StreamStats;
use crate::transforms::Transform;
use crate::transforms::time::{TimeFrom, TimeOptions, parse_zone};

/// The field a parser sets when a line does not parse.
pub const PARSE_ERROR: &str = "parse_error";

/// The parser names, for error messages.
const NAMES: &[&str] = &[
    "none",
    "json",
    "regexp",
    "nginx",
    "apache2",
    "apache_error",
    "syslog",
    "logfmt",
    "csv",
    "tsv",
    "cri",
    "docker",
];

/// A parser's configuration as written in the YAML.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ParserConfig {
    /// No parsing: the line is shipped as it is.
    None(NoOptions),
    /// The line is a JSON object; its members become fields (nested objects kept).
    Json(JsonConfig),
    /// Named captures of a regex become fields.
    Regexp(regexp::RegexpConfig),
    /// nginx's combined (or common) access log.
    Nginx(NoOptions),
    /// Apache's combined (or common) access log: the same format and fields as `nginx`.
    Apache2(NoOptions),
    /// Apache's error log; its times have no offset and are read in `time_zone` (default UTC).
    ApacheError(ZoneOptions),
    /// RFC 5424 or RFC 3164 syslog lines; `time_zone` must be a fixed offset here.
    Syslog(ZoneOptions),
    /// `key=value` pairs.
    Logfmt(logfmt::LogfmtConfig),
    /// Comma-separated values (RFC 4180 quoting), columns named by `fields`.
    Csv(delimited::DelimitedConfig),
    /// Tab-separated values (no quoting), columns named by `fields`.
    Tsv(delimited::DelimitedConfig),
    /// containerd / CRI-O log files (`TIME STREAM P|F LOG`), partial lines merged.
    Cri(NoOptions),
    /// Docker json-file logs, entries split at 16 KiB merged.
    Docker(NoOptions),
}

/// Options of parsers whose times carry no offset.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneOptions {
    pub time_zone: Option<String>,
}

/// Options of `parser: { type: json, ... }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    /// The field holding the event time (see [`TimeOptions`]).
    pub time_key: Option<String>,
    pub time_format: Option<String>,
    pub time_zone: Option<String>,
}

impl ParserConfig {
    /// Validates and compiles; the error is `(key, reason)`, the key relative to the parser.
    pub fn build(&self) -> Result<Option<Parser>, (String, String)> {
        let (kind, time) = match self {
            ParserConfig::None(_) => return Ok(None),
            ParserConfig::Json(c) => (
                ParserKind::Json,
                TimeOptions {
                    time_key: c.time_key.clone(),
                    time_format: c.time_format.clone(),
                    time_zone: c.time_zone.clone(),
                },
            ),
            ParserConfig::Regexp(c) => (ParserKind::Regexp(c.build()?), c.time_options()),
            ParserConfig::Nginx(_) | ParserConfig::Apache2(_) => (
                ParserKind::Access(Default::default()),
                TimeOptions::default(),
            ),
            ParserConfig::ApacheError(z) => {
                let zone = parse_zone(z.time_zone.as_deref())?;
                (ParserKind::ApacheError(zone), TimeOptions::default())
            }
            ParserConfig::Syslog(z) => {
                let offset = parse_zone(z.time_zone.as_deref())?
                    .to_fixed_offset()
                    .ok()
                    .and_then(|o| chrono::FixedOffset::east_opt(o.seconds()))
                    .ok_or((
                        "time_zone".to_string(),
                        "must be a fixed offset such as +02:00 for syslog".to_string(),
                    ))?;
                (ParserKind::Syslog(offset), TimeOptions::default())
            }
            ParserConfig::Cri(_) => (ParserKind::Cri, TimeOptions::default()),
            ParserConfig::Docker(_) => (ParserKind::Docker, TimeOptions::default()),
            ParserConfig::Logfmt(c) => (ParserKind::Logfmt(c.types.clone()), c.time_options()),
            ParserConfig::Csv(c) => (
                ParserKind::Delimited(Box::new(c.build(b',', true)?)),
                c.time_options(),
            ),
            ParserConfig::Tsv(c) => (
                ParserKind::Delimited(Box::new(c.build(b'\t', false)?)),
                c.time_options(),
            ),
        };
        Ok(Some(Parser {
            kind,
            time: time.build()?,
        }))
    }
}

/// Parsers without options (a struct, so that unknown keys are still refused).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// `parser: json` or `parser: { type: regexp, pattern: ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParserSpec(pub ParserConfig);

impl<'de> Deserialize<'de> for ParserSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ParserSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a parser name (none, json) or a map with `type`")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<ParserSpec, E> {
                match name {
                    "none" => Ok(ParserSpec(ParserConfig::None(NoOptions {}))),
                    "json" => Ok(ParserSpec(ParserConfig::Json(JsonConfig::default()))),
                    "nginx" => Ok(ParserSpec(ParserConfig::Nginx(NoOptions {}))),
                    "apache2" => Ok(ParserSpec(ParserConfig::Apache2(NoOptions {}))),
                    "apache_error" => Ok(ParserSpec(ParserConfig::ApacheError(
                        ZoneOptions::default(),
                    ))),
                    "syslog" => Ok(ParserSpec(ParserConfig::Syslog(ZoneOptions::default()))),
                    "logfmt" => Ok(ParserSpec(ParserConfig::Logfmt(Default::default()))),
                    "cri" => Ok(ParserSpec(ParserConfig::Cri(NoOptions {}))),
                    "docker" => Ok(ParserSpec(ParserConfig::Docker(NoOptions {}))),
                    "csv" | "tsv" => Err(E::custom(format!(
                        "parser `{name}` needs its columns: write {{ type: {name}, fields: [a, b] }}"
                    ))),
                    "regexp" => Err(E::custom(
                        "parser `regexp` needs options: write { type: regexp, pattern: '...' }",
                    )),
                    other => Err(E::unknown_variant(other, NAMES)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ParserSpec, A::Error> {
                ParserConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ParserSpec)
            }
        }
        d.deserialize_any(V)
    }
}

/// A compiled parser: how to read fields from a line, and optionally the event time from them.
#[derive(Debug, Clone)]
pub struct Parser {
    kind: ParserKind,
    time: Option<TimeFrom>,
}

#[derive(Debug, Clone)]
enum ParserKind {
    Json,
    Regexp(regexp::Regexp),
    Access(access::TimeCache),
    ApacheError(jiff::tz::TimeZone),
    Syslog(chrono::FixedOffset),
    Logfmt(IndexMap<String, regexp::FieldType>),
    Delimited(Box<delimited::Delimited>),
    Cri,
    Docker,
}

impl Parser {
    pub fn describe(&self) -> String {
        let what = match &self.kind {
            ParserKind::Json => "json".to_string(),
            ParserKind::Regexp(r) => format!("regexp {}", r.pattern()),
            ParserKind::Access(_) => "access log (combined or common)".to_string(),
            ParserKind::ApacheError(_) => "apache error log".to_string(),
            ParserKind::Syslog(_) => "syslog (RFC 5424 or 3164)".to_string(),
            ParserKind::Logfmt(_) => "logfmt".to_string(),
            ParserKind::Delimited(_) => "delimited values".to_string(),
            ParserKind::Cri => "cri".to_string(),
            ParserKind::Docker => "docker json-file".to_string(),
        };
        match &self.time {
            Some(t) => format!("{what}, time from {}", t.key()),
            None => what,
        }
    }

    /// The top-level fields this parser can set (besides `parse_error`) and a family of names
    /// (a prefix) it may add; `None` when the line decides (`json`, `logfmt`).
    pub fn field_names(&self) -> Option<(Vec<&str>, Option<&'static str>)> {
        Some(match &self.kind {
            ParserKind::Json | ParserKind::Logfmt(_) => return None,
            ParserKind::Regexp(r) => (r.field_names().collect(), None),
            ParserKind::Access(_) => (access::ACCESS_FIELDS.to_vec(), None),
            ParserKind::ApacheError(_) => (access::APACHE_ERROR_FIELDS.to_vec(), None),
            ParserKind::Syslog(_) => (syslog::FIELDS.to_vec(), None),
            ParserKind::Delimited(d) => (d.field_names().collect(), Some(delimited::EXTRA_PREFIX)),
            ParserKind::Cri => (container::CRI_FIELDS.to_vec(), None),
            ParserKind::Docker => (container::DOCKER_FIELDS.to_vec(), None),
        })
    }

    /// Parses one line into `fields`, returning the event time when the format carries one;
    /// `Err` is the reason the line did not parse. Every parser writes into the store directly,
    /// through the one `FieldSink` interface.
    fn parse(
        &mut self,
        line: &[u8],
        fields: &mut Writer<'_>,
        stats: &StreamStats,
    ) -> Result<Option<jiff::Timestamp>, String> {
        match &mut self.kind {
            ParserKind::Access(times) => access::parse_access_with(line, fields, times),
            ParserKind::ApacheError(zone) => access::parse_apache_error(line, fields, zone),
            ParserKind::Json => json::parse(line, fields).map(|()| None),
            ParserKind::Regexp(r) => r.parse(line, fields, stats).map(|()| None),
            ParserKind::Syslog(offset) => syslog::parse(line, fields, *offset),
            ParserKind::Logfmt(types) => logfmt::parse(line, types, fields, stats).map(|()| None),
            ParserKind::Delimited(d) => d.parse(line, fields, stats).map(|()| None),
            ParserKind::Cri => container::parse_cri(line, fields),
            ParserKind::Docker => container::parse_docker(line, fields),
        }
    }

    /// Whether a line can never give one key twice: fixed names, a regex's distinct captures,
    /// a JSON object's members (its parser keeps the last of a repeated one). A logfmt line may
    /// repeat a key, and delimited columns may share a name.
    fn sets_each_key_once(&self) -> bool {
        !matches!(self.kind, ParserKind::Logfmt(_) | ParserKind::Delimited(_))
    }

    /// Whether the format itself carries the event time.
    fn own_time(&self) -> bool {
        matches!(
            self.kind,
            ParserKind::Access(_)
                | ParserKind::ApacheError(_)
                | ParserKind::Syslog(_)
                | ParserKind::Cri
                | ParserKind::Docker
        )
    }
}

impl Transform for Parser {
    fn process(&mut self, batch: &mut Batch, stats: &StreamStats) {
        if self.time.is_some() || self.own_time() {
            batch.times_mut();
        }
        let (mut errors, mut time_errors) = (0, 0);
        let crate::event::PartsMut {
            data,
            records,
            fields,
            times,
        } = batch.parts_mut();
        // Room for a typical record's fields at once, instead of growing 1, 2, 4, 8, 16.
        fields.reserve(records.len() * 12, data.len());
        let once = self.sets_each_key_once();
        for (i, r) in records.iter().enumerate() {
            let start = r.start as usize;
            let line = &data[start..start + r.len as usize];
            // A parser that never sets one key twice has a key looked for only among the fields
            // the record had before.
            let mut w = fields.writer(i);
            if once {
                w = w.unique_keys();
            }
            let own_time = match self.parse(line, &mut w, stats) {
                Ok(t) => t,
                Err(reason) => {
                    // Checked against what the parser set before it gave up, too.
                    fields.writer(i).text(PARSE_ERROR, &reason);
                    errors += 1;
                    continue;
                }
            };
            if self.own_time() {
                match own_time {
                    Some(ts) => times[i] = Some(ts),
                    None => time_errors += 1,
                }
            } else if let Some(t) = &self.time {
                match t.extract(fields, i) {
                    Ok(ts) => times[i] = Some(ts),
                    Err(_) => time_errors += 1,
                }
            }
        }
        StreamStats::add(&stats.parse_errors, errors);
        StreamStats::add(&stats.time_errors, time_errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a parser declares (for `check`'s template warnings) are the names it sets, on
    /// lines that fill every field its format has.
    #[test]
    fn declared_field_names_cover_what_parsers_set() {
        let cases: &[(&str, &str)] = &[
            (
                "nginx",
                r#"1.2.3.4 - bob [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 2326 "http://r/" "agent""#,
            ),
            (
                "apache_error",
                "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:1234] AH00037: File does not exist: /x",
            ),
            (
                "syslog",
                r#"<165>1 2003-10-11T22:14:15.003Z host app 77 ID47 [ex@32473 iut="3"] message"#,
            ),
            ("cri", "2023-10-06T00:17:09.669794202Z stdout F hello"),
            (
                "docker",
                r#"{"log":"hi\n","stream":"stdout","time":"2019-01-01T11:11:11.111111111Z","attrs":{"a":"b"}}"#,
            ),
        ];
        for (name, line) in cases {
            let spec: ParserSpec = serde_yaml::from_str(name).unwrap();
            let mut parser = spec.0.build().unwrap().unwrap();
            let mut store = crate::event::FieldStore::new();
            parser
                .parse(
                    line.as_bytes(),
                    &mut store.writer(0),
                    &StreamStats::default(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let (declared, _) = parser.field_names().unwrap();
            let set: Vec<&str> = store.iter(0).map(|(k, _)| k).collect();
            for k in &set {
                assert!(declared.contains(k), "{name} sets `{k}`, not declared");
            }
            assert_eq!(set.len(), declared.len(), "{name}: {set:?} vs {declared:?}");
        }
        let csv: ParserSpec = serde_yaml::from_str("{ type: csv, fields: [a, b] }").unwrap();
        let csv = csv.0.build().unwrap().unwrap();
        assert_eq!(csv.field_names(), Some((vec!["a", "b"], Some("column_"))));
        let json: ParserSpec = serde_yaml::from_str("json").unwrap();
        assert_eq!(json.0.build().unwrap().unwrap().field_names(), None);
    }

    /// Parsers write into the batch's store: a key a line gives twice (logfmt, columns sharing
    /// a name) is one field with the last value, as a map would keep it; typed values keep
    /// their kinds.
    #[test]
    fn a_key_given_twice_is_one_field_with_the_last_value() {
        use crate::event::{Source, Value};
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, Value<'a>)]);
        let cases: &[Case] = &[
            (
                "{ type: logfmt, types: { n: int } }",
                "a=1 n=7 a=2 flag",
                &[
                    ("a", Value::Text("2")),
                    ("n", Value::Int(7)),
                    ("flag", Value::Bool(true)),
                ],
            ),
            (
                "{ type: csv, fields: [x, x, y], types: { y: float } }",
                "1,2,0.5",
                &[("x", Value::Text("2")), ("y", Value::Float(0.5))],
            ),
            (
                "json",
                r#"{"k":1,"k":"last","o":{"p":[1]}}"#,
                &[
                    ("k", Value::Text("last")),
                    ("o", Value::Json(r#"{"p":[1]}"#)),
                ],
            ),
        ];
        for (spec, line, want) in cases {
            let spec: ParserSpec = serde_yaml::from_str(spec).unwrap();
            let mut parser = spec.0.build().unwrap().unwrap();
            let source = std::sync::Arc::new(Source {
                stream: "s".into(),
                path: "/p".into(),
                file_id: None,
            });
            let mut b = Batch::new(source, std::time::SystemTime::now());
            b.push_line(line.as_bytes(), line.len() as u64 + 1, 0);
            parser.process(&mut b, &StreamStats::default());
            let got: Vec<(&str, Value)> = b.fields().iter(0).collect();
            assert_eq!(got, *want, "{line}");
        }
    }

    #[test]
    fn parser_spec_takes_a_name_or_a_map() {
        let p: ParserSpec = serde_yaml::from_str("json").unwrap();
        assert_eq!(p.0, ParserConfig::Json(JsonConfig::default()));
        let p: ParserSpec = serde_yaml::from_str("{ type: regexp, pattern: '(?P<a>.)' }").unwrap();
        assert!(matches!(p.0, ParserConfig::Regexp(_)));
        let e = serde_yaml::from_str::<ParserSpec>("nginks")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "unknown variant `nginks`, expected one of `none`, `json`, `regexp`, `nginx`"
            ),
            "{e}"
        );
        let e = serde_yaml::from_str::<ParserSpec>("{ type: json, extra: 1 }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
    }
}

/// No parser panics, whatever the line: arbitrary bytes, and real lines of each format with
/// bytes changed, cut or inserted. `PROPTEST_CASES` raises the number of cases (CI runs the
/// default; a long run is in the closing note of the parsers work).
#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    const SAMPLES: &[&[u8]] = &[
        br#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /a.png HTTP/1.1" 200 203023 "http://x/" "Mozilla/5.0 (X11)""#,
        b"[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:51234] AH00037: x",
        b"<165>1 2003-10-11T22:14:15.003Z host app - ID47 [ex@32473 iut=\"3\"] msg",
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
        br#"{"level":"info","n":1,"nested":{"a":[1,2,{"b":null}]}}"#,
        b"ts=2026-11-22T10:00:00Z level=info msg=\"quoted \\\" value\" bare",
        b"1,\"a, b\",\"c \"\"d\"\"\"",
        b"2026-11-22T10:00:00.000000001Z stdout P partial",
        br#"{"log":"x\n","stream":"stdout","time":"2019-01-01T11:11:11Z"}"#,
    ];

    static PARSERS: std::sync::LazyLock<Vec<Parser>> = std::sync::LazyLock::new(parsers);

    fn parsers() -> Vec<Parser> {
        let specs = [
            "json",
            "nginx",
            "apache_error",
            "syslog",
            "logfmt",
            "cri",
            "docker",
            "{ type: csv, fields: [a, b, c], types: { a: int } }",
            "{ type: tsv, fields: [a, b] }",
            "{ type: regexp, pattern: '^(?P<a>\\S+) (?P<b>\\d+)', types: { b: int }, time_key: a, time_format: '%Y-%m-%d' }",
            "{ type: json, time_key: ts, time_format: unix_ms }",
        ];
        specs
            .iter()
            .map(|s| {
                serde_yaml::from_str::<ParserSpec>(s)
                    .unwrap()
                    .0
                    .build()
                    .unwrap()
                    .unwrap()
            })
            .collect()
    }

    fn run_all(line: &[u8]) {
        let stats = StreamStats::default();
        for p in PARSERS.iter() {
            let mut p = p.clone();
            let mut store = crate::event::FieldStore::new();
            let _ = p.parse(line, &mut store.writer(0), &stats);
            if let Some(t) = &p.time {
                let _ = t.extract(&store, 0);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes(line in proptest::collection::vec(any::<u8>(), 0..512)) {
            run_all(&line);
        }

        #[test]
        fn mutated_real_lines(sample in 0..SAMPLES.len(), edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8)) {
            let mut line = SAMPLES[sample].to_vec();
            for (at, byte, op) in edits {
                let i = if line.is_empty() { 0 } else { at % line.len() };
                match op {
                    0 if !line.is_empty() => line[i] = byte,
                    1 => line.insert(i.min(line.len()), byte),
                    _ => line.truncate(i),
                }
            }
            run_all(&line);
        }
    }
}
