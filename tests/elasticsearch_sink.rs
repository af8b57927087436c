//! The `elasticsearch` sink against a real HTTP server on 127.0.0.1 that reads the bulk body as
//! Elasticsearch does (action and source lines) and answers item by item.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::http_server::{Reply, TestServer};
use support::*;

const T: Duration = Duration::from_secs(60);

/// The (action, document) pairs of the requests, with the status each item was given.
fn items(server: &TestServer) -> Vec<(serde_json::Value, serde_json::Value, u16)> {
    let mut out = Vec::new();
    for r in server.received() {
        let lines: Vec<serde_json::Value> = r
            .body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        for (i, pair) in lines.chunks(2).enumerate() {
            out.push((
                pair[0].clone(),
                pair[1].clone(),
                r.items.get(i).copied().unwrap_or(0),
            ));
        }
    }
    out
}

fn write_config(dir: &Path, url: &str, extra: &str) {
    let text = format!(
        "checkpoint_dir: {d}/ck\nadmin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n    parser: {{ type: json, time_key: ts }}\n    sinks: [es]\nsinks:\n  es:\n    type: elasticsearch\n    url: {url}\n    index: 'app-logs-%Y.%m.%d'\n    batch: {{ timeout: 100ms }}\n    retry: {{ initial_backoff: 50ms, max_backoff: 200ms }}\n{extra}",
        d = dir.display()
    );
    fs::write(dir.join("tailcar.yaml"), text).unwrap();
}

#[test]
fn documents_index_names_ids_and_pipeline_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![]);
    fs::write(
        d.join("app.log"),
        "{\"id\":\"a1\",\"ts\":\"2026-11-21T23:59:59Z\",\"level\":\"info\",\"message\":\"field wins\"}\n{\"id\":\"a2\",\"ts\":\"2026-11-22T00:00:01Z\",\"status\":500}\n",
    )
    .unwrap();
    write_config(
        d,
        &server.url(""),
        "    id_field: id\n    pipeline: geoip\n",
    );
    let mut tc = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    assert!(
        wait_until(T, || items(&server).len() == 2),
        "{}",
        tc.stderr()
    );
    tc.stop();
    let r = &server.received()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/_bulk"));
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    let got = items(&server);
    assert_eq!(
        got[0].0,
        serde_json::json!({"index": {"_index": "app-logs-2026.11.21", "_id": "a1", "pipeline": "geoip"}})
    );
    assert_eq!(
        got[1].0["index"]["_index"], "app-logs-2026.11.22",
        "the date comes from each record's own time"
    );
    let doc = &got[1].1;
    assert_eq!(doc["@timestamp"], "2026-11-22T00:00:01Z");
    assert_eq!(
        doc["message"],
        "{\"id\":\"a2\",\"ts\":\"2026-11-22T00:00:01Z\",\"status\":500}"
    );
    assert_eq!(doc["stream"], "app");
    assert_eq!(doc["status"], 500);
    assert_eq!(
        got[0].1["message"], "field wins",
        "a parsed field wins over the line"
    );
}

#[test]
fn only_retriable_items_are_resent_and_rejected_ones_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // First bulk: item 1 is throttled (429), item 2 has a mapping error (400).
    let server = TestServer::start(vec![Reply::Bulk(vec![201, 429, 400])]);
    let mut lines = String::new();
    for i in 0..10 {
        lines.push_str(&format!(
            "{{\"seq\":{i},\"ts\":\"2026-11-22T10:00:0{i}Z\"}}\n"
        ));
    }
    fs::write(d.join("app.log"), lines).unwrap();
    let extra = format!(
        "    dead_letter: rejected\n  rejected: {{ type: file, path: {}/rejected.json, format: json }}\n",
        d.display()
    );
    write_config(d, &server.url(""), &extra);
    let mut tc = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    let accepted = |s: &TestServer| -> Vec<u64> {
        items(s)
            .iter()
            .filter(|i| (200..300).contains(&i.2))
            .map(|i| i.1["seq"].as_u64().unwrap())
            .collect()
    };
    assert!(
        wait_until(T, || accepted(&server).len() == 9),
        "{}",
        tc.stderr()
    );
    assert!(wait_until(T, || checkpoint_offset(
        &d.join("ck"),
        &d.join("app.log")
    ) == Some(file_len(&d.join("app.log")))));
    tc.stop();
    let mut got = accepted(&server);
    got.sort();
    assert_eq!(
        got,
        vec![0, 1, 3, 4, 5, 6, 7, 8, 9],
        "each accepted item exactly once"
    );
    let requests = server.received();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        items(&server)[10].1["seq"],
        1,
        "the second request carries only the throttled item"
    );
    let dead: Vec<serde_json::Value> = fs::read_to_string(d.join("rejected.json"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["fields"]["seq"], 2);
    let err = tc.stderr();
    assert!(
        err.contains("mapper_parsing_exception"),
        "the reason is logged:\n{err}"
    );
    assert!(
        err.contains("dead_lettered=1") && err.contains("delivered=9"),
        "{err}"
    );
}

#[test]
fn three_sigkills_leave_every_line_exactly_once_as_a_document_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![]);
    // Checkpoints written rarely: every restart sends again what it had sent.
    fs::write(
        d.join("tailcar.yaml"),
        format!(
            "checkpoint_dir: {d}/ck\ncheckpoint_interval: 1h\nadmin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n    sinks: [es]\nsinks:\n  es:\n    type: elasticsearch\n    url: {url}\n    batch: {{ max_records: 100, timeout: 50ms }}\n",
            d = d.display(),
            url = server.url("")
        ),
    )
    .unwrap();
    let log = d.join("app.log");
    let per_round = 2000;
    let mut written = 0;
    for _ in 0..3 {
        append(&log, "a", written..written + per_round);
        written += per_round;
        let mut tc = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
        // Killed once this round's lines have started to arrive, mid-stream.
        let before = items(&server).len();
        assert!(wait_until(T, || items(&server).len() > before + 500));
        tc.kill9();
    }
    append(&log, "a", written..written + per_round);
    written += per_round;
    let mut tc = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    let seq_of = |doc: &serde_json::Value| -> u64 {
        let line = doc["message"].as_str().unwrap();
        line[2..10].parse().unwrap()
    };
    assert!(wait_until(T, || {
        let seen: std::collections::BTreeSet<u64> = items(&server)
            .iter()
            .map(|(_, doc, _)| seq_of(doc))
            .collect();
        seen.len() as u64 == written
    }));
    tc.stop();
    let mut by_id: std::collections::BTreeMap<String, std::collections::BTreeSet<u64>> =
        Default::default();
    let docs = items(&server);
    for (action, doc, _) in &docs {
        let id = action["index"]["_id"]
            .as_str()
            .expect("every document has an _id")
            .to_string();
        by_id.entry(id).or_default().insert(seq_of(doc));
    }
    // As Elasticsearch stores them: one document per _id, each holding one line, every line
    // once; though the requests carried some lines more than once.
    assert!(
        by_id.values().all(|seqs| seqs.len() == 1),
        "an _id held two lines"
    );
    let stored: Vec<u64> = by_id.values().map(|s| *s.first().unwrap()).collect();
    let mut sorted = stored.clone();
    sorted.sort();
    assert_eq!(sorted, (0..written).collect::<Vec<_>>());
    assert!(
        docs.len() as u64 > written,
        "the kills should have made tailcar send some lines twice ({} documents sent)",
        docs.len()
    );
    eprintln!(
        "{} documents sent for {written} lines, {written} documents stored",
        docs.len()
    );
}

#[test]
fn the_index_is_a_template_of_fields_then_dates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![]);
    fs::write(
        d.join("app.log"),
        "{\"ts\":\"2026-11-21T23:59:59Z\",\"level\":\"info\"}\n{\"ts\":\"2026-12-01T00:00:01Z\",\"level\":\"error\"}\n{\"ts\":\"2026-12-01T00:00:02Z\"}\n",
    )
    .unwrap();
    write_config(d, &server.url(""), "");
    let text = fs::read_to_string(d.join("tailcar.yaml"))
        .unwrap()
        .replace("'app-logs-%Y.%m.%d'", "'{stream}-{level}-%Y.%m'");
    fs::write(d.join("tailcar.yaml"), text).unwrap();
    let (code, _, err) = run(d, &["run", "--once", "--config", "tailcar.yaml"]);
    assert_eq!(code, Some(0), "{err}");
    let indices: Vec<String> = items(&server)
        .iter()
        .map(|(action, _, _)| action["index"]["_index"].as_str().unwrap().to_string())
        .collect();
    // A missing field renders as nothing.
    assert_eq!(
        indices,
        vec!["app-info-2026.11", "app-error-2026.12", "app--2026.12"]
    );

    let text = fs::read_to_string(d.join("tailcar.yaml"))
        .unwrap()
        .replace("'{stream}-{level}-%Y.%m'", "'logs-%Y.%'");
    fs::write(d.join("tailcar.yaml"), text).unwrap();
    let (code, _, err) = run(d, &["check", "--config", "tailcar.yaml"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("sinks.es.index: `logs-%Y.%` is not a valid date format"),
        "{err}"
    );
}
