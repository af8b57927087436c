//! The `loki` sink against a real HTTP server on 127.0.0.1 that decodes pushes the way Loki
//! does: snappy, then `logproto.PushRequest`; and the JSON push format.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use prost::Message;
use support::http_server::TestServer;
use support::*;
use tailcar::sinks::loki::PushRequest;

const T: Duration = Duration::from_secs(60);

fn write_config(dir: &Path, url: &str, extra: &str) {
    let text = format!(
        "admin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n    parser: {{ type: json, time_key: ts }}\n    sinks: [loki]\nsinks:\n  loki:\n    type: loki\n    url: {url}\n    tenant: team-a\n    labels: {{ app: demo, stream: '{{stream}}', level: '{{level}}' }}\n    batch: {{ timeout: 200ms }}\n{extra}",
        d = dir.display()
    );
    fs::write(dir.join("tailcar.yaml"), text).unwrap();
}

/// (labels, [(unix nanos, line)]) of every stream of every push.
fn decoded(server: &TestServer) -> Vec<(String, Vec<(i128, String)>)> {
    let mut out = Vec::new();
    for r in server.received() {
        assert_eq!(r.headers["content-type"], "application/x-protobuf");
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&r.body)
            .expect("snappy");
        let push = PushRequest::decode(&raw[..]).expect("logproto.PushRequest");
        for s in push.streams {
            let entries = s
                .entries
                .into_iter()
                .map(|e| {
                    let t = e.timestamp.unwrap();
                    (t.seconds as i128 * 1_000_000_000 + t.nanos as i128, e.line)
                })
                .collect();
            out.push((s.labels, entries));
        }
    }
    out
}

#[test]
fn protobuf_pushes_group_by_labels_sort_by_time_and_cap_cardinality() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![]);
    // Out of order in the file; four levels but room for three label sets.
    fs::write(
        d.join("app.log"),
        "{\"level\":\"info\",\"ts\":\"2026-11-22T10:00:02Z\",\"n\":1}\n\
         {\"level\":\"info\",\"ts\":\"2026-11-22T10:00:01Z\",\"n\":2}\n\
         {\"level\":\"warn\",\"ts\":\"2026-11-22T10:00:03Z\",\"n\":3}\n\
         {\"level\":\"error\",\"ts\":\"2026-11-22T10:00:04Z\",\"n\":4}\n\
         {\"level\":\"debug\",\"ts\":\"2026-11-22T10:00:05Z\",\"n\":5}\n",
    )
    .unwrap();
    write_config(d, &server.url(""), "    max_label_sets: 3\n");
    let mut tc = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    assert!(
        wait_until(T, || decoded(&server)
            .iter()
            .map(|s| s.1.len())
            .sum::<usize>()
            == 5),
        "{}",
        tc.stderr()
    );
    tc.stop();
    let r = &server.received()[0];
    assert_eq!(r.path, "/loki/api/v1/push");
    assert_eq!(r.headers["x-scope-orgid"], "team-a");
    let streams = decoded(&server);
    let labels: Vec<&str> = streams.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        labels,
        vec![
            r#"{app="demo", level="info", stream="app"}"#,
            r#"{app="demo", level="warn", stream="app"}"#,
            r#"{app="demo", level="error", stream="app"}"#,
            r#"{app="demo", level="_other_", stream="app"}"#,
        ]
    );
    let info = &streams[0].1;
    assert_eq!(info.len(), 2);
    assert!(
        info[0].0 < info[1].0,
        "entries sorted by time within a stream"
    );
    assert!(info[0].1.contains("\"n\":2"));
    let t = jiff::Timestamp::from_nanosecond(info[0].0).unwrap();
    assert_eq!(t.to_string(), "2026-11-22T10:00:01Z");
    assert!(tc.stderr().contains("label_overflow=1"), "{}", tc.stderr());
}

#[test]
fn json_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![]);
    fs::write(
        d.join("app.log"),
        "{\"level\":\"info\",\"ts\":\"2026-11-22T10:00:00.5Z\"}\n",
    )
    .unwrap();
    write_config(d, &server.url(""), "    encoding: json\n");
    let mut tc = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    assert!(
        wait_until(T, || !server.received().is_empty()),
        "{}",
        tc.stderr()
    );
    tc.stop();
    let r = &server.received()[0];
    assert_eq!(r.headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"streams": [{
            "stream": {"app": "demo", "level": "info", "stream": "app"},
            "values": [["1795341600500000000", "{\"level\":\"info\",\"ts\":\"2026-11-22T10:00:00.5Z\"}"]]
        }]})
    );
}
