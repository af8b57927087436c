//! The `http` sink against a real HTTP server on 127.0.0.1: exact NDJSON documents, gzip, auth
//! and headers; retries on 500s; `Retry-After` honoured (measured); a server that is down at
//! start; a server that never answers; a permanent rejection sent to a dead-letter file.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::http_server::{Default as ServerDefault, Reply, TestServer, free_port};
use support::*;

const T: Duration = Duration::from_secs(60);

fn config(dir: &Path, url: &str, extra: &str) -> String {
    let text = format!(
        "checkpoint_dir: {d}/ck\nadmin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n    parser: json\n    sinks: [remote]\nsinks:\n  remote:\n    type: http\n    url: {url}\n    batch: {{ max_records: 100, timeout: 200ms }}\n    retry: {{ initial_backoff: 50ms, max_backoff: 500ms }}\n{extra}",
        d = dir.display()
    );
    let path = dir.join("tailcar.yaml");
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn json_lines(path: &Path, range: std::ops::Range<u64>) {
    let mut s = String::new();
    for i in range {
        s.push_str(&format!("{{\"seq\":{i},\"msg\":\"event {i}\"}}\n"));
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all_str(&s);
}

trait WriteStr {
    fn write_all_str(self, s: &str);
}
impl WriteStr for fs::File {
    fn write_all_str(mut self, s: &str) {
        std::io::Write::write_all(&mut self, s.as_bytes()).unwrap();
    }
}

/// The `seq` fields of every accepted document, in arrival order.
fn accepted_seqs(server: &TestServer) -> Vec<u64> {
    server
        .accepted_bodies()
        .iter()
        .flat_map(|b| {
            b.split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| l.to_vec())
                .collect::<Vec<_>>()
        })
        .map(|l| {
            serde_json::from_slice::<serde_json::Value>(&l).unwrap()["fields"]["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn ships_exact_ndjson_documents_gzipped_with_auth_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![]);
    fs::write(d.join("token"), "t0ken\n").unwrap();
    json_lines(&d.join("app.log"), 0..250);
    let cfg = config(
        d,
        &server.url("/ingest"),
        &format!(
            "    auth: {{ bearer_file: {}/token }}\n    headers: {{ X-Tenant: team-a }}\n",
            d.display()
        ),
    );
    let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
    assert!(
        wait_until(T, || accepted_seqs(&server).len() == 250),
        "{}",
        tc.stderr()
    );
    tc.stop();
    // Up to max_in_flight (4) requests run at once, so they may arrive in any order.
    let mut seqs = accepted_seqs(&server);
    assert_eq!(seqs.len(), 250, "nothing sent twice");
    seqs.sort();
    assert_eq!(seqs, (0..250).collect::<Vec<_>>(), "every record once");
    let reqs = server.received();
    assert!(reqs.len() >= 3, "batches of at most 100 records");
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/ingest"));
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    assert_eq!(r.headers["authorization"], "Bearer t0ken");
    assert_eq!(r.headers["x-tenant"], "team-a");
    // Requests run concurrently: find the document of seq 0 wherever it is.
    let first: serde_json::Value = reqs
        .iter()
        .flat_map(|r| {
            r.body
                .split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect::<Vec<serde_json::Value>>()
        })
        .find(|d| d["fields"]["seq"] == 0)
        .unwrap();
    assert_eq!(first["line"], "{\"seq\":0,\"msg\":\"event 0\"}");
    assert_eq!(first["stream"], "app");
    assert_eq!(
        first["fields"],
        serde_json::json!({"seq": 0, "msg": "event 0"})
    );
    assert!(!tc.stderr().contains("t0ken"), "secrets are never logged");
}

#[test]
fn with_one_request_in_flight_records_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![Reply::Status(503)]);
    json_lines(&d.join("app.log"), 0..300);
    let cfg = config(
        d,
        &server.url("/"),
        "    max_in_flight: 1\n    compression: none\n    format: json_array\n",
    );
    let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
    let seqs = |server: &TestServer| -> Vec<u64> {
        server
            .accepted_bodies()
            .iter()
            .flat_map(|b| serde_json::from_slice::<Vec<serde_json::Value>>(b).unwrap())
            .map(|v| v["fields"]["seq"].as_u64().unwrap())
            .collect()
    };
    assert!(
        wait_until(T, || seqs(&server).len() == 300),
        "{}",
        tc.stderr()
    );
    tc.stop();
    assert_eq!(
        seqs(&server),
        (0..300).collect::<Vec<_>>(),
        "in order, even across a retry"
    );
    assert_eq!(
        server.received()[0].headers["content-type"],
        "application/json"
    );
}

#[test]
fn server_errors_are_retried_until_delivered_and_only_then_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![
        Reply::Status(500),
        Reply::Status(503),
        Reply::Status(502),
    ]);
    json_lines(&d.join("app.log"), 0..50);
    let cfg = config(d, &server.url("/"), "");
    let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
    assert!(
        wait_until(T, || accepted_seqs(&server).len() == 50),
        "{}",
        tc.stderr()
    );
    assert!(wait_until(T, || checkpoint_offset(
        &d.join("ck"),
        &d.join("app.log")
    ) == Some(file_len(&d.join("app.log")))));
    tc.stop();
    assert_eq!(server.script_left(), 0);
    assert_eq!(accepted_seqs(&server), (0..50).collect::<Vec<_>>());
    assert!(tc.stderr().contains("retries=3"), "{}", tc.stderr());
}

#[test]
fn retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![Reply::RetryAfter(429, 2)]);
    json_lines(&d.join("app.log"), 0..10);
    let cfg = config(d, &server.url("/"), "");
    let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
    assert!(
        wait_until(T, || accepted_seqs(&server).len() == 10),
        "{}",
        tc.stderr()
    );
    tc.stop();
    let reqs = server.received();
    let gap = reqs[1].at.duration_since(reqs[0].at);
    eprintln!("429 Retry-After: 2 -> next attempt after {gap:?}");
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, before the server's 2 s"
    );
}

#[test]
fn a_server_down_at_start_gets_everything_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let addr = free_port();
    json_lines(&d.join("app.log"), 0..100);
    let cfg = config(d, &format!("http://{addr}/"), "");
    let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
    tc.wait_stderr("delivery failed; retrying", T);
    json_lines(&d.join("app.log"), 100..200);
    let server = TestServer::start_on(addr, vec![]);
    assert!(
        wait_until(T, || accepted_seqs(&server).len() >= 200),
        "{}",
        tc.stderr()
    );
    tc.stop();
    let seqs = accepted_seqs(&server);
    let mut sorted = seqs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, (0..200).collect::<Vec<_>>(), "nothing lost");
    assert_eq!(seqs.len(), 200, "nothing sent twice");
}

#[test]
fn a_server_that_never_answers_times_out_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![Reply::Hang]);
    json_lines(&d.join("app.log"), 0..20);
    let cfg = config(d, &server.url("/"), "    request_timeout: 500ms\n");
    let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
    assert!(
        wait_until(T, || accepted_seqs(&server).len() == 20),
        "{}",
        tc.stderr()
    );
    tc.stop();
    assert!(
        tc.stderr().contains("no response within 500ms"),
        "{}",
        tc.stderr()
    );
}

#[test]
fn permanent_rejections_go_to_the_dead_letter_sink() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![Reply::Status(400)]);
    json_lines(&d.join("app.log"), 0..30);
    let extra = format!(
        "    dead_letter: rejected\n  rejected: {{ type: file, path: {}/rejected.json, format: json }}\n",
        d.display()
    );
    let cfg = config(d, &server.url("/"), &extra);
    let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
    let dl = d.join("rejected.json");
    assert!(
        wait_until(T, || fs::read_to_string(&dl)
            .map(|s| s.lines().count())
            .unwrap_or(0)
            == 30),
        "{}",
        tc.stderr()
    );
    json_lines(&d.join("app.log"), 30..40);
    assert!(
        wait_until(T, || accepted_seqs(&server).len() == 10),
        "{}",
        tc.stderr()
    );
    assert!(wait_until(T, || checkpoint_offset(
        &d.join("ck"),
        &d.join("app.log")
    ) == Some(file_len(&d.join("app.log")))));
    tc.stop();
    let dead: Vec<serde_json::Value> = fs::read_to_string(&dl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        dead[29]["fields"]["seq"], 29,
        "the rejected records, with their fields"
    );
    assert_eq!(accepted_seqs(&server), (30..40).collect::<Vec<_>>());
    assert!(tc.stderr().contains("dead_lettered=30"), "{}", tc.stderr());
}

#[test]
fn bad_remote_sink_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: [(&str, &str, &str); 2] = [
        (
            "ftp://nowhere",
            "",
            "sinks.remote.url: `ftp://nowhere` must start with http:// or https://",
        ),
        (
            "http://x/",
            "    dead_letter: missing\n",
            "sinks.remote.dead_letter: no sink named `missing` (sinks defined: remote)",
        ),
    ];
    for (url, extra, expected) in cases {
        let cfg = config(d, url, extra);
        let (code, _, err) = run(d, &["check", "--config", &cfg]);
        assert_eq!(code, Some(64), "{err}");
        assert_eq!(
            err,
            format!("tailcar: configuration error: {cfg}: {expected}\n")
        );
    }
}

/// A stream routed to a working sink and to a dead one: returns how many lines the working one
/// received within `wait` (and 2 s more), out of `lines`.
fn one_dead_sink(when_full: &str, lines: u64, wait: Duration) -> (usize, Tailcar) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    std::mem::forget(dir); // the process outlives this function
    let good = TestServer::start(vec![]);
    let dead = free_port();
    append(&d.join("app.log"), "a", 0..lines);
    let cfg = format!(
        "grace_period: 1s\nadmin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n    sinks: [good, dead]\nsinks:\n  good: {{ type: http, url: '{url}', compression: none, batch: {{ timeout: 100ms }} }}\n  dead: {{ type: http, url: 'http://{dead}/', max_in_flight: 1, batch: {{ max_records: 10 }}, retry: {{ initial_backoff: 1s, max_backoff: 1s }}, when_full: {when_full} }}\n",
        d = d.display(),
        url = good.url("/")
    );
    fs::write(d.join("tailcar.yaml"), cfg).unwrap();
    let tc = Tailcar::start(&d, &["run", "--config", "tailcar.yaml"]);
    let count = |s: &TestServer| {
        s.accepted_bodies()
            .iter()
            .map(|b| b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).count())
            .sum::<usize>()
    };
    wait_until(wait, || count(&good) == lines as usize);
    std::thread::sleep(Duration::from_secs(2));
    (count(&good), tc)
}

#[test]
fn a_dead_sink_with_drop_newest_does_not_stall_the_other() {
    let (received, mut tc) = one_dead_sink("drop_newest", 30_000, Duration::from_secs(30));
    assert_eq!(
        received,
        30_000,
        "the working sink gets everything:\n{}",
        tc.stderr()
    );
    assert!(
        tc.stderr()
            .contains("sink queue full; dropping records for this sink"),
        "{}",
        tc.stderr()
    );
    tc.signal(nix::sys::signal::Signal::SIGTERM);
    // The dead sink still holds what it had queued: the drain cannot finish.
    assert_eq!(tc.wait(T).code(), Some(75));
}

#[test]
fn a_dead_sink_with_block_backpressures_the_stream() {
    let (received, mut tc) = one_dead_sink("block", 30_000, Duration::from_secs(3));
    assert!(
        received < 30_000,
        "the stream is blocked by its dead sink, yet {received} lines went through"
    );
    assert!(
        received > 0,
        "the working sink got what was read before the queue filled"
    );
    tc.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(tc.wait(T).code(), Some(75));
}

#[test]
fn sigkill_with_requests_in_flight_then_restart_delivers_everything_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = TestServer::start(vec![]);
    server.set_default(ServerDefault::Slow(300));
    json_lines(&d.join("app.log"), 0..3000);
    let cfg = config(d, &server.url("/"), "    max_in_flight: 2\n");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, format!("checkpoint_interval: 100ms\n{text}")).unwrap();
    let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
    // Some requests answered, some in flight: kill it there.
    assert!(
        wait_until(T, || accepted_seqs(&server).len() >= 600),
        "{}",
        tc.stderr()
    );
    std::thread::sleep(Duration::from_millis(150));
    tc.kill9();
    let before = accepted_seqs(&server).len();
    server.set_default(ServerDefault::Ok);
    let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
    let unique = |server: &TestServer| {
        let mut s = accepted_seqs(server);
        s.sort();
        s.dedup();
        s
    };
    assert!(
        wait_until(T, || unique(&server).len() == 3000),
        "{}",
        tc.stderr()
    );
    tc.stop();
    assert_eq!(unique(&server), (0..3000).collect::<Vec<_>>());
    let dups = accepted_seqs(&server).len() - 3000;
    eprintln!(
        "SIGKILL with requests in flight: {before} accepted before the kill, {dups} duplicates after the restart"
    );
    // At most what was delivered but not yet checkpointed. A routed batch (one read: up to
    // 128 KiB of lines, here all 3,000) is acknowledged when every request carrying part of it
    // is, so the bound is the routed batches in flight plus one checkpoint interval.
    assert!(dups <= 3000, "{dups} duplicates");
}

#[test]
fn memory_stays_bounded_while_the_sink_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let addr = free_port();
    let admin = free_port().port();
    let cfg = format!(
        "admin: {{ address: '127.0.0.1:{admin}' }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n    sinks: [remote]\nsinks:\n  remote: {{ type: http, url: 'http://{addr}/', retry: {{ initial_backoff: 1s, max_backoff: 1s }} }}\n",
        d = d.display()
    );
    fs::write(d.join("tailcar.yaml"), cfg).unwrap();
    fs::write(d.join("app.log"), "").unwrap();
    let mut tc = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    tc.wait_stderr("tailing file", T);
    // 1,000,000 lines (about 150 MB) while nothing answers.
    for chunk in 0..100u64 {
        append(
            &d.join("app.log"),
            "a",
            chunk * 10_000..(chunk + 1) * 10_000,
        );
    }
    // Measured once the queues are full and reading has stopped: all tailcar holds, it holds now.
    assert!(
        wait_backpressured(admin, "app", T),
        "the stream never waited on its sink:\n{}",
        tc.stderr()
    );
    let rss_kib = rss_kib(tc.pid());
    eprintln!("RSS with the sink down and 150 MB written: {rss_kib} KiB");
    assert!(
        rss_kib < 48 * 1024,
        "RSS {rss_kib} KiB: something buffers instead of pushing back"
    );
    assert!(file_len(&d.join("app.log")) > 100 * 1024 * 1024);
    tc.kill9();
}

#[test]
fn tls_trusts_the_system_roots_plus_ca_file_and_skips_checks_only_when_asked() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    for (tls, delivered) in [
        ("{ ca_file: CA }", true),
        ("{}", false),
        ("{ insecure_skip_verify: true }", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("ca.pem"), &cert_pem).unwrap();
        let server = TestServer::start_tls(&cert_pem, &key_pem);
        json_lines(&d.join("app.log"), 0..5);
        let tls = tls.replace("CA", &d.join("ca.pem").display().to_string());
        let cfg = config(d, &server.https_url("/"), &format!("    tls: {tls}\n"));
        let mut tc = Tailcar::start(d, &["run", "--config", &cfg]);
        if delivered {
            assert!(
                wait_until(T, || accepted_seqs(&server).len() == 5),
                "{tls}: {}",
                tc.stderr()
            );
            tc.stop();
        } else {
            tc.wait_stderr("delivery failed; retrying", T);
            assert!(
                tc.stderr().contains("UnknownIssuer") || tc.stderr().contains("certificate"),
                "{}",
                tc.stderr()
            );
            assert!(
                accepted_seqs(&server).is_empty(),
                "an unknown certificate is refused"
            );
            tc.kill9();
        }
    }
}
