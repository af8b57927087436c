//! Golden outputs: one fixed batch (parsed access-log fields, every kind of value, escapes,
//! invalid UTF-8, event times, fields named like the sinks' own keys) encoded by every sink's
//! encoder and compared byte for byte with `tests/fixtures/sinks/`. The fixtures were written by
//! the encoders as they were before the columnar field store, so a change of representation
//! that alters any sink's output fails here. `TAILCAR_BLESS=1 cargo test -p tailcar --lib
//! golden` rewrites them, for a change that means to alter an output (say why in the commit).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::SinkConfig;
use super::util::batcher::{Part, Request};
use super::util::delivery::Encoder;
use super::util::encode::{Format, encode_range};
use crate::checkpoint::{FileKey, Ledger};
use crate::event::{Batch, FLAG_MULTILINE, FLAG_SPLIT, FLAG_UNTERMINATED, Source};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sinks")
}

/// The batch every sink encodes.
fn batch() -> Batch {
    let source = Arc::new(Source {
        stream: "web".into(),
        path: "/var/log/app/access.log".into(),
        file_id: Some(0x1234_5678_9abc_def0),
    });
    let read_at = SystemTime::UNIX_EPOCH + Duration::new(1_764_000_000, 123_456_789);
    let mut b = Batch::new(source, read_at);
    let lines: [(&[u8], u8); 6] = [
        (
            b"203.0.113.7 - alice [22/Nov/2026:10:00:00 +0000] \"GET /a?b=1&c=%22q%22 HTTP/1.1\" 200 5120 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
            0,
        ),
        ("unicode é 日本 😀 and a bell \u{7}".as_bytes(), 0),
        (b"error: something \"quoted\" \\ went wrong", FLAG_MULTILINE),
        (b"bad \xff\xfe bytes", FLAG_UNTERMINATED),
        (b"first piece of a long line", FLAG_SPLIT),
        (b"", 0),
    ];
    let mut offset = 1000;
    for (line, flags) in lines {
        offset += line.len() as u64 + 1;
        b.push_line(line, offset, flags);
    }
    let fields = [
        json!({
            "remote_addr": "203.0.113.7", "remote_user": "alice",
            "time_local": "22/Nov/2026:10:00:00 +0000", "method": "GET",
            "path": "/a?b=1&c=\"q\"", "protocol": "HTTP/1.1", "status": 200,
            "body_bytes_sent": 5120, "http_referer": "-",
            "http_user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "request_time": 0.012,
            "level": "info"
        }),
        json!({
            "text": "é 日本 😀 \u{7}\n\t\"\\/", "nested": { "a": { "b": [1, 2.5, null, true] } },
            "nothing": null, "no": false, "negative": -42, "huge": 18_446_744_073_709_551_615_u64,
            "big_float": 1e300, "neg_zero": -0.0, "empty": "", "list": ["x", 1, { "y": [] }]
        }),
        json!({
            "message": "overridden", "stream": "other", "file": "elsewhere",
            "level": "error", "kubernetes": { "pod_name": "p-1", "namespace_name": "ns" },
            "@timestamp": "not a time", "id": "doc-7", "status": "500"
        }),
        json!({}),
        json!({ "id": 9, "level": "warn" }),
        json!({ "level": "debug", "severity_text": "x" }),
    ];
    for (i, f) in fields.into_iter().enumerate() {
        let serde_json::Value::Object(m) = f else {
            unreachable!()
        };
        b.fields_mut().set_map(i, &m);
    }
    let t = |s, n| Some(jiff::Timestamp::new(s, n).unwrap());
    let times = b.times_mut();
    times[0] = t(1_764_064_800, 0);
    times[2] = t(1_764_064_801, 500_000_000);
    times[4] = t(-1, 999_999_999);
    b
}

/// One request holding the batch in two parts (records 0..2 and 2..6), as a batcher cuts them.
fn request(batch: Batch) -> Request {
    let ledger = Ledger::new(vec![]);
    let key = FileKey {
        stream: "web".into(),
        dev: 1,
        inode: 1,
        fingerprint: 0,
        fingerprint_len: 0,
    };
    let (id, _) = ledger.register(key, Path::new("/var/log/app/access.log"), 0);
    let batch = Arc::new(batch);
    let end = batch.end_offset().unwrap();
    let part = |range| Part {
        batch: Arc::clone(&batch),
        range,
        ack: ledger.issue(id, end),
    };
    Request {
        parts: vec![part(0..2), part(2..batch.len())],
        records: batch.len(),
        bytes: batch.line_bytes(),
    }
}

fn sink(yaml: &str) -> SinkConfig {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

/// Compares `got` with the fixture `name` (or writes it, under `TAILCAR_BLESS=1`).
fn golden(name: &str, got: &[u8]) -> Option<String> {
    let path = fixtures().join(name);
    if std::env::var_os("TAILCAR_BLESS").is_some() {
        std::fs::create_dir_all(fixtures()).unwrap();
        std::fs::write(&path, got).unwrap();
        return None;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if want == got {
        return None;
    }
    let at = want.iter().zip(got).take_while(|(a, b)| a == b).count();
    Some(format!(
        "{name}: differs from {} at byte {at}:\n want …{}\n  got …{}",
        path.display(),
        String::from_utf8_lossy(&want[at.saturating_sub(60)..(at + 60).min(want.len())]),
        String::from_utf8_lossy(&got[at.saturating_sub(60)..(at + 60).min(got.len())]),
    ))
}

fn encoded(encoder: &impl Encoder) -> Vec<u8> {
    let mut out = Vec::new();
    encoder.encode(&request(batch()), &mut out);
    out
}

#[test]
fn every_sink_writes_exactly_what_it_wrote_before() {
    let mut diffs = Vec::new();
    let mut check = |name: &str, got: Vec<u8>| diffs.extend(golden(name, &got));

    let b = batch();
    let mut lines = Vec::new();
    encode_range(&b, 0..b.len(), Format::Json, &mut lines).unwrap();
    check("json_lines.ndjson", lines);

    for (name, yaml) in [
        (
            "elasticsearch_templated.ndjson",
            "{ type: elasticsearch, url: 'http://127.0.0.1:9200', index: 'logs-{stream}-{level}-%Y.%m.%d' }",
        ),
        (
            "elasticsearch_plain.ndjson",
            "{ type: elasticsearch, url: 'http://127.0.0.1:9200', index: logs, pipeline: p1, id_field: id, include_timestamp: false, message_field: msg }",
        ),
        (
            "elasticsearch_dated.ndjson",
            "{ type: elasticsearch, url: 'http://127.0.0.1:9200', index: 'app-%Y.%m.%d', timestamp_field: ts }",
        ),
        (
            "http.ndjson",
            "{ type: http, url: 'http://127.0.0.1:8080' }",
        ),
        (
            "http_array.json",
            "{ type: http, url: 'http://127.0.0.1:8080', format: json_array }",
        ),
    ] {
        let got = match sink(yaml) {
            SinkConfig::Elasticsearch(c) => encoded(&c.encoder()),
            SinkConfig::Http(c) => encoded(&c.encoder()),
            other => unreachable!("{other:?}"),
        };
        check(name, got);
    }
    for (name, yaml) in [
        (
            "loki.pb",
            "{ type: loki, url: 'http://127.0.0.1:3100', labels: { job: '{stream}', level: '{level}' } }",
        ),
        (
            "loki.json",
            "{ type: loki, url: 'http://127.0.0.1:3100', encoding: json, labels: { job: '{stream}', level: '{level}' } }",
        ),
        (
            "otlp.pb",
            "{ type: otlp, url: 'http://127.0.0.1:4318', kubernetes: false, resource: { service.name: '{stream}' } }",
        ),
        (
            "otlp.json",
            "{ type: otlp, url: 'http://127.0.0.1:4318', kubernetes: false, encoding: json, resource: { service.name: '{stream}', pod: '{kubernetes.pod_name}' } }",
        ),
    ] {
        let got = match sink(yaml) {
            SinkConfig::Loki(c) => encoded(&c.encoder(Arc::default())),
            SinkConfig::Otlp(c) => encoded(&c.encoder(Vec::new(), Arc::default())),
            other => unreachable!("{other:?}"),
        };
        check(name, got);
    }
    for (name, yaml) in [
        (
            "syslog_5424.txt",
            "{ type: syslog, address: '127.0.0.1:514', protocol: tcp, hostname: host-1, app_name: '{stream}', severity: '{level}', msg_id: '{method}' }",
        ),
        (
            "syslog_3164.txt",
            "{ type: syslog, address: '127.0.0.1:514', protocol: udp, format: rfc3164, hostname: host-1 }",
        ),
    ] {
        let SinkConfig::Syslog(c) = sink(yaml) else {
            unreachable!()
        };
        let mut out = Vec::new();
        c.write_all(&batch(), &mut out);
        check(name, out);
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n\n"));
}
