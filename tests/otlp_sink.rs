//! The `otlp` sink against a real HTTP server on 127.0.0.1, decoding what tailcar sends with
//! the official OTLP definitions (the `opentelemetry-proto` crate): protobuf through prost, and
//! OTLP/JSON through the crate's serde mapping.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use support::http_server::{Reply, TestServer};
use support::*;

const T: Duration = Duration::from_secs(60);

fn write_config(dir: &Path, url: &str, streams: &str, sink: &str) {
    let text = format!(
        "checkpoint_dir: {d}/ck\nadmin: {{ enabled: false }}\nstreams:\n{streams}sinks:\n  otel:\n    type: otlp\n    url: {url}\n    batch: {{ max_records: 100, timeout: 200ms }}\n    retry: {{ initial_backoff: 100ms, max_backoff: 1s }}\n{sink}",
        d = dir.display()
    );
    fs::write(dir.join("tailcar.yaml"), text).unwrap();
}

/// Every (resource attributes, log record) of the protobuf requests the server answered 2xx.
fn decoded(server: &TestServer) -> Vec<(BTreeMap<String, String>, LogRecord)> {
    let mut out = Vec::new();
    for r in server.received() {
        if !(200..300).contains(&r.status) {
            continue;
        }
        assert_eq!(r.headers["content-type"], "application/x-protobuf");
        let export = ExportLogsServiceRequest::decode(&r.body[..]).expect("an OTLP request");
        flatten(export, &mut out);
    }
    out
}

fn flatten(export: ExportLogsServiceRequest, out: &mut Vec<(BTreeMap<String, String>, LogRecord)>) {
    for rl in export.resource_logs {
        let resource: BTreeMap<String, String> = rl
            .resource
            .unwrap_or_default()
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), string(kv.value.as_ref())))
            .collect();
        for sl in rl.scope_logs {
            assert_eq!(sl.scope.as_ref().unwrap().name, "tailcar");
            for lr in sl.log_records {
                out.push((resource.clone(), lr));
            }
        }
    }
}

fn string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

#[test]
fn protobuf_records_carry_time_severity_body_attributes_and_pod_resources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![]);
    fs::create_dir(d.join("podinfo")).unwrap();
    fs::write(d.join("podinfo/labels"), "app=\"shop\"\n").unwrap();
    let levels = ["info", "warn", "ERROR", "debug"];
    let mut app = String::new();
    for n in 0..300usize {
        let trace = if n.is_multiple_of(10) {
            format!(
                ",\"trace_id\":\"{:032x}\",\"span_id\":\"{:016x}\"",
                n + 1,
                n + 2
            )
        } else {
            String::new()
        };
        app.push_str(&format!(
            "{{\"ts\":\"2026-11-22T10:00:{:02}.{n:03}Z\",\"level\":\"{}\",\"message\":\"req {n}\",\"n\":{n},\"user\":{{\"id\":\"u{n}\",\"admin\":{}}}{trace}}}\n",
            n % 60,
            levels[n % 4],
            n.is_multiple_of(7)
        ));
    }
    fs::write(d.join("app.log"), &app).unwrap();
    let mut err = Vec::new();
    for n in 0..100 {
        err.extend_from_slice(format!("panic {n}: ünïcode\n").as_bytes());
    }
    err.extend_from_slice(b"bad byte \xff here\n");
    fs::write(d.join("err.log"), &err).unwrap();
    write_config(
        d,
        &server.url(""),
        &format!(
            "  app:\n    paths: [{d}/app.log]\n    parser: {{ type: json, time_key: ts }}\n    enrich: {{ pod: true, labels: {d}/podinfo/labels }}\n    sinks: [otel]\n  err:\n    paths: [{d}/err.log]\n    sinks: [otel]\n",
            d = d.display()
        ),
        "    resource: { service.name: '{stream}', deployment.environment: prod }\n",
    );
    let env = [
        ("POD_NAME", "shop-7d9f"),
        ("POD_NAMESPACE", "shop"),
        ("NODE_NAME", "node-a"),
        ("CONTAINER_NAME", "app"),
    ];
    let mut tc = Tailcar::start_env(d, &["run", "--config", "tailcar.yaml"], &env);
    assert!(
        wait_until(T, || decoded(&server).len() >= 401),
        "{}",
        tc.stderr()
    );
    tc.stop();
    let r = &server.received()[0];
    assert_eq!(r.path, "/v1/logs");
    assert_eq!(r.headers["content-encoding"], "gzip");

    let records = decoded(&server);
    assert_eq!(records.len(), 401, "each line once");
    let mut seen = vec![0; 300];
    for (resource, lr) in records.iter().filter(|(r, _)| r["service.name"] == "app") {
        let Some(Value::IntValue(n)) = attr(&lr.attributes, "n") else {
            panic!("no n: {lr:?}")
        };
        let n = *n as usize;
        seen[n] += 1;
        assert_eq!(string(lr.body.as_ref()), format!("req {n}"));
        assert_eq!(lr.severity_text, levels[n % 4]);
        assert_eq!(lr.severity_number, [9, 13, 17, 5][n % 4]);
        let t = jiff::Timestamp::from_nanosecond(lr.time_unix_nano as i128).unwrap();
        let want: jiff::Timestamp = format!("2026-11-22T10:00:{:02}.{n:03}Z", n % 60)
            .parse()
            .unwrap();
        assert_eq!(t, want);
        assert!(lr.observed_time_unix_nano > lr.time_unix_nano);
        match attr(&lr.attributes, "user") {
            Some(Value::KvlistValue(kv)) => {
                assert_eq!(string(kv.values[0].value.as_ref()), format!("u{n}"));
                assert_eq!(
                    kv.values[1].value.as_ref().unwrap().value,
                    Some(Value::BoolValue(n.is_multiple_of(7)))
                );
            }
            other => panic!("user is {other:?}"),
        }
        for gone in ["level", "message", "kubernetes", "trace_id"] {
            assert!(attr(&lr.attributes, gone).is_none(), "{gone} in {lr:?}");
        }
        assert_eq!(
            attr(&lr.attributes, "log.file.path"),
            Some(&Value::StringValue(d.join("app.log").display().to_string()))
        );
        if n.is_multiple_of(10) {
            assert_eq!(hex(&lr.trace_id), format!("{:032x}", n + 1));
            assert_eq!(hex(&lr.span_id), format!("{:016x}", n + 2));
        } else {
            assert!(lr.trace_id.is_empty());
        }
        // The pod's identity comes from the enrich transform's `kubernetes` object.
        assert_eq!(resource["k8s.pod.name"], "shop-7d9f");
        assert_eq!(resource["k8s.namespace.name"], "shop");
        assert_eq!(resource["k8s.node.name"], "node-a");
        assert_eq!(resource["k8s.container.name"], "app");
        assert_eq!(resource["k8s.pod.label.app"], "shop");
        assert_eq!(resource["deployment.environment"], "prod");
    }
    assert!(seen.iter().all(|&c| c == 1), "{seen:?}");

    let errs: Vec<_> = records
        .iter()
        .filter(|(r, _)| r["service.name"] == "err")
        .collect();
    assert_eq!(errs.len(), 101);
    // Requests may be in flight together (max_in_flight 4): match records by content.
    let mut bodies = BTreeMap::new();
    for (resource, lr) in &errs {
        match lr.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::StringValue(s)) => *bodies.entry(s.clone()).or_insert(0) += 1,
            Some(Value::BytesValue(b)) => assert_eq!(
                b, b"bad byte \xff here",
                "a line that is not UTF-8 is sent as bytes, unchanged"
            ),
            other => panic!("body {other:?}"),
        }
        assert_eq!(lr.time_unix_nano, 0, "no parser, no event time");
        assert_eq!(lr.severity_number, 0);
        // No enrich on this stream: the Downward API variables fill the resource.
        assert_eq!(resource["k8s.pod.name"], "shop-7d9f");
        assert!(!resource.contains_key("k8s.pod.label.app"));
        assert_eq!(
            attr(&lr.attributes, "tailcar.stream"),
            Some(&Value::StringValue("err".into()))
        );
    }
    let want: BTreeMap<String, i32> = (0..100)
        .map(|i| (format!("panic {i}: ünïcode"), 1))
        .collect();
    assert_eq!(bodies, want);
    assert_eq!(
        checkpoint_offset(&d.join("ck"), &d.join("app.log")),
        Some(app.len() as u64)
    );
    assert_eq!(
        checkpoint_offset(&d.join("ck"), &d.join("err.log")),
        Some(err.len() as u64)
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn json_requests_retry_and_count_a_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![
        Reply::Status(503),
        Reply::Body(
            200,
            "application/json",
            br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"2 records too old"}}"#
                .to_vec(),
        ),
    ]);
    let mut text = String::new();
    for n in 0..50 {
        text.push_str(&format!(
            "{{\"level\":30,\"msg\":\"m{n}\",\"n\":{n},\"big\":9007199254740993}}\n"
        ));
    }
    fs::write(d.join("app.log"), &text).unwrap();
    write_config(
        d,
        &format!("{}/v1/logs", server.url("")),
        &format!(
            "  app:\n    paths: [{}/app.log]\n    parser: json\n    sinks: [otel]\n",
            d.display()
        ),
        "    encoding: json\n    compression: none\n    body_field: msg\n    kubernetes: false\n",
    );
    let mut tc = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    assert!(
        wait_until(T, || server.received().iter().any(|r| r.status == 200)),
        "{}",
        tc.stderr()
    );
    // The receiver refused two records: the run says so in its summary and its exit code.
    tc.signal(nix::sys::signal::Signal::SIGTERM);
    let status = tc.wait(T);
    let log = tc.stderr();
    assert_eq!(status.code(), Some(65), "{log}");
    assert!(
        log.contains("summary: sink otel: delivered 50, rejected 2"),
        "{log}"
    );
    let received = server.received();
    assert_eq!(received[0].status, 503);
    assert_eq!(
        received[1].body, received[0].body,
        "the retry sends the same body"
    );
    assert!(received[1].headers.get("content-encoding").is_none());
    assert_eq!(received[1].headers["content-type"], "application/json");
    assert_eq!(received[1].path, "/v1/logs");
    let mut records = Vec::new();
    for r in received.iter().filter(|r| r.status == 200) {
        let export: ExportLogsServiceRequest =
            serde_json::from_slice(&r.body).expect("OTLP/JSON the official mapping reads");
        flatten(export, &mut records);
    }
    let mut ns: Vec<i64> = Vec::new();
    for (resource, lr) in &records {
        assert!(!resource.contains_key("k8s.pod.name"), "kubernetes: false");
        let Some(Value::IntValue(n)) = attr(&lr.attributes, "n") else {
            panic!("{lr:?}")
        };
        ns.push(*n);
        assert_eq!(string(lr.body.as_ref()), format!("m{n}"));
        assert_eq!((lr.severity_number, lr.severity_text.as_str()), (9, "30"));
        assert_eq!(
            attr(&lr.attributes, "big"),
            Some(&Value::IntValue(9_007_199_254_740_993)),
            "64-bit integers survive JSON as strings"
        );
    }
    ns.sort();
    assert_eq!(ns, (0..50).collect::<Vec<_>>());
    assert!(log.contains("2 records too old"), "{log}");
    assert_eq!(stat(&log, "sink statistics", "server_rejected"), Some(2));
    assert!(stat(&log, "sink statistics", "retries").unwrap() >= 1);
    assert_eq!(
        checkpoint_offset(&d.join("ck"), &d.join("app.log")),
        Some(text.len() as u64)
    );
}

#[test]
fn a_bad_url_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log"), "x\n").unwrap();
    write_config(
        d,
        "otel-collector:4318",
        &format!(
            "  app:\n    paths: [{}/app.log]\n    sinks: [otel]\n",
            d.display()
        ),
        "",
    );
    let (code, _, err) = run(d, &["check", "--config", "tailcar.yaml"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("sinks.otel.url"), "{err}");
    assert!(err.contains("tailcar.yaml"), "{err}");
}
