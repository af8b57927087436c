//! Parser throughput, native, one core: the Apache access sample (tests/fixtures) repeated to
//! 1,000,000 lines, rewritten into each format, parsed in batches of 600 lines (about what one
//! 128 KiB read yields). Prints lines/s and ns/line per parser.
//!
//!     cargo bench -p tailcar --bench parsers

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tailcar::event::{Batch, Source};
use tailcar::stats::StreamStats;
use tailcar::transforms::Transform;
use tailcar::transforms::parsers::ParserSpec;

const LINES: usize = 1_000_000;
const BATCH: usize = 600;
const SAMPLE: &[u8] = include_bytes!("../../tests/fixtures/apache_access_10k.log");

/// The access sample's fields, parsed once with the nginx parser.
fn access_fields() -> Vec<(Vec<u8>, serde_json::Map<String, serde_json::Value>)> {
    let parser = build("nginx");
    let stats = StreamStats::default();
    let lines: Vec<&[u8]> = SAMPLE
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut batch = batch_of(lines.iter().map(|l| l.to_vec()));
    let mut parser = parser;
    parser.process(&mut batch, &stats);
    assert_eq!(
        stats
            .parse_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "every sample line parses"
    );
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.to_vec(), batch.fields().to_map(i)))
        .collect()
}

fn build(spec: &str) -> Box<dyn Transform> {
    let parser = serde_yaml::from_str::<ParserSpec>(spec)
        .unwrap()
        .0
        .build()
        .unwrap()
        .unwrap();
    Box::new(parser)
}

fn batch_of(lines: impl Iterator<Item = Vec<u8>>) -> Batch {
    let src = Arc::new(Source {
        stream: "bench".into(),
        path: "/bench".into(),
        file_id: None,
    });
    let mut b = Batch::new(src, SystemTime::now());
    for (i, l) in lines.enumerate() {
        b.push_line(&l, i as u64, 0);
    }
    b
}

fn s(f: &serde_json::Map<String, serde_json::Value>, k: &str) -> String {
    match f.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn main() {
    let base = access_fields();
    type Convert = fn(&[u8], &serde_json::Map<String, serde_json::Value>) -> Vec<u8>;
    let cases: Vec<(&str, &str, Convert)> = vec![
        ("nginx", "nginx", |l, _| l.to_vec()),
        (
            "regexp (combined, typed)",
            r#"{ type: regexp, pattern: '^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S*) (?P<protocol>[^"]*)" (?P<status>\d{3}) (?P<bytes>\S+) "(?P<referrer>[^"]*)" "(?P<agent>[^"]*)"$', types: { status: int, bytes: int } }"#,
            |l, _| l.to_vec(),
        ),
        ("json", "json", |_, f| serde_json::to_vec(f).unwrap()),
        ("logfmt", "logfmt", |_, f| {
            f.iter()
                .map(|(k, v)| format!("{k}={}", serde_json::to_string(&s_of(v)).unwrap()))
                .collect::<Vec<_>>()
                .join(" ")
                .into_bytes()
        }),
        (
            "csv",
            "{ type: csv, fields: [remote_addr, time, method, path, status, bytes, user_agent], types: { status: int, bytes: int } }",
            |_, f| {
                [
                    "remote_addr",
                    "time",
                    "method",
                    "path",
                    "status",
                    "bytes",
                    "user_agent",
                ]
                .iter()
                .map(|k| format!("\"{}\"", s(f, k).replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes()
            },
        ),
        ("syslog (RFC 5424)", "syslog", |l, _| {
            [
                b"<134>1 2015-05-17T10:05:03Z web-1 nginx 4711 - - ".as_slice(),
                l,
            ]
            .concat()
        }),
        ("cri", "cri", |l, _| {
            [b"2015-05-17T10:05:03.000000001Z stdout F ".as_slice(), l].concat()
        }),
        ("docker", "docker", |l, _| {
            let log = String::from_utf8_lossy(l).into_owned() + "\n";
            serde_json::to_vec(&serde_json::json!({"log": log, "stream": "stdout", "time": "2015-05-17T10:05:03.000000001Z"})).unwrap()
        }),
        ("apache_error", "apache_error", |_, f| {
            format!("[Sun May 17 10:05:03.123456 2015] [core:error] [pid 35708:tid 4328] [client {}:51234] AH00037: {} {}", s(f, "remote_addr"), s(f, "method"), s(f, "path")).into_bytes()
        }),
    ];
    println!("{LINES} lines per parser, batches of {BATCH}, one core");
    println!(
        "{:<34} {:>12} {:>10} {:>8}",
        "parser", "lines/s", "ns/line", "errors"
    );
    for (name, spec, convert) in cases {
        let converted: Vec<Vec<u8>> = base.iter().map(|(l, f)| convert(l, f)).collect();
        let mut parser = (!spec.is_empty()).then(|| build(spec));
        let stats = StreamStats::default();
        let mut batches: Vec<Batch> = (0..LINES / BATCH)
            .map(|b| {
                batch_of((0..BATCH).map(|i| converted[(b * BATCH + i) % converted.len()].clone()))
            })
            .collect();
        let start = Instant::now();
        for batch in &mut batches {
            if let Some(p) = parser.as_mut() {
                p.process(batch, &stats);
            }
            // The pipeline frees a batch's fields once its sink wrote it: so does the bench.
            std::hint::black_box(batch.take_fields());
        }
        let elapsed = start.elapsed();
        drop(batches);
        let n = (LINES / BATCH * BATCH) as f64;
        let errors = stats
            .parse_errors
            .load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{:<34} {:>12.0} {:>10.0} {:>8}",
            name,
            n / elapsed.as_secs_f64(),
            elapsed.as_nanos() as f64 / n,
            errors
        );
    }
}

fn s_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
