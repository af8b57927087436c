//! Never a silent failure, with the real binary: values that used to panic at run time are
//! refused at start with their file and key; a panicking stream or sink ends the run with exit
//! code 70 and says which; permanent rejections make `run --once` exit 65 with a summary that
//! counts them and a log line naming the URL, the status and the answer; a Loki URL pasted with
//! its API path is used as written; duplicate keys, alias bombs and a file sink inside the
//! stream's own paths are refused; a second tailcar on one checkpoint directory is refused
//! (until the first dies, even by SIGKILL); a taken admin address fails start-up; a stream
//! whose paths match nothing says so and its files gauge reads 0; a panic in the admin endpoint
//! ends the run with exit code 70 like a stream's.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use support::http_server::{Reply, TestServer, free_port};
use support::*;

/// Writes `tailcar.yaml` in `dir` (admin off unless the text sets it) and returns its path.
fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("tailcar.yaml");
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn check(dir: &Path, text: &str) -> (Option<i32>, String) {
    let cfg = write_config(dir, text);
    let (code, out, err) = run(dir, &["check", "--config", &cfg]);
    (code, format!("{}{err}", String::from_utf8_lossy(&out)))
}

fn base(d: &Path, stream_extra: &str, sink: &str) -> String {
    format!(
        "checkpoint_dir: {d}/ck\nadmin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n{stream_extra}    sinks: [out]\nsinks:\n  out: {sink}\n",
        d = d.display()
    )
}

#[test]
fn values_that_used_to_panic_or_spin_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("tailcar.yaml").display().to_string();
    let http = "{ type: http, url: 'http://127.0.0.1:9/', max_in_flight: 18446744073709551615 }";
    let (code, out) = check(d, &base(d, "", http));
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(&format!(
            "{cfg}: sinks.out.max_in_flight: 18446744073709551615 is out of range: must be between 1 and 512"
        )),
        "{out}"
    );
    let file = format!("{{ type: file, path: {}/out.log }}", d.display());
    let (code, out) = check(d, &base(d, "    rotate_wait: 300000000000y\n", &file));
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(&format!("{cfg}: streams.app.rotate_wait: ")),
        "{out}"
    );
    let text = base(d, "", &file).replace("admin:", "checkpoint_interval: 0s\nadmin:");
    let (code, out) = check(d, &text);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(&format!(
            "{cfg}: checkpoint_interval: `0s` is out of range: must be at least 1ms and at most 1 day"
        )),
        "{out}"
    );
    // The same bounds on the command line.
    let (code, _, err) = run(d, &["tail", "--rotate-wait", "3days", "x.log"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("at most 1 day"), "{err}");
}

#[test]
fn a_panicking_stream_or_sink_ends_the_run_with_exit_70_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("app.log"), "a", 0..100);
    append(&d.join("other.log"), "b", 0..100);
    let cfg = write_config(
        d,
        &format!(
            "checkpoint_dir: {d}/ck\nadmin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n    sinks: [out]\n  other:\n    paths: [{d}/other.log]\n    sinks: [other_out]\nsinks:\n  out: {{ type: file, path: {d}/out.log }}\n  other_out: {{ type: file, path: {d}/other_out.log }}\n",
            d = d.display()
        ),
    );
    let (code, _, err) = run_env(
        d,
        &["run", "--once", "--config", &cfg],
        &[("TAILCAR_FAILPOINTS", "stream-panic:app")],
    );
    assert_eq!(code, Some(70), "{err}");
    assert!(
        err.contains("stream app panicked: fail point stream-panic:app"),
        "{err}"
    );
    assert!(
        err.contains("summary: failed: stream app panicked"),
        "{err}"
    );
    assert!(!err.contains("everything read was delivered"), "{err}");

    let (code, _, err) = run_env(
        d,
        &["run", "--once", "--config", &cfg],
        &[("TAILCAR_FAILPOINTS", "sink-panic:out")],
    );
    assert_eq!(code, Some(70), "{err}");
    assert!(err.contains("sink out panicked: fail point"), "{err}");
    // Nothing was acknowledged, so the next run ships every line.
    let (code, _, err) = run(d, &["run", "--once", "--config", &cfg]);
    assert_eq!(code, Some(0), "{err}");
    let out = fs::read(d.join("out.log")).unwrap();
    assert_all_arrived(&seq_counts(&out, "a"), 100);
    let out = fs::read(d.join("other_out.log")).unwrap();
    assert_all_arrived(&seq_counts(&out, "b"), 100);
    assert!(
        err.contains("summary: everything read was delivered"),
        "{err}"
    );
}

#[test]
fn permanent_rejections_make_run_once_exit_65_and_are_counted_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("app.log"), "a", 0..10);
    let page = b"<html><body>404 page not found</body></html>".to_vec();
    let server = TestServer::start(vec![Reply::Body(404, "text/html", page); 4]);
    let sink = format!(
        "{{ type: http, url: '{}', batch: {{ timeout: 100ms }} }}",
        server.url("/wrong/path")
    );
    let cfg = write_config(d, &base(d, "", &sink));
    let (code, _, err) = run(d, &["run", "--once", "--config", &cfg]);
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains(&format!(
            "POST http://{}/wrong/path answered HTTP 404 Not Found (text/html, 44 bytes): \"<html><body>404 page not found</body></html>\"",
            server.addr
        )),
        "{err}"
    );
    assert!(
        err.contains("summary: sink out: delivered 0, rejected 10, dropped 0, dead-lettered 0"),
        "{err}"
    );
    assert!(
        err.contains("summary: 10 records were rejected or dropped and not delivered"),
        "{err}"
    );
    assert!(!err.contains("everything read was delivered"), "{err}");
}

#[test]
fn a_loki_url_pasted_with_its_api_path_is_used_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("app.log"), "a", 0..10);
    let server = TestServer::start(vec![]);
    let sink = format!(
        "{{ type: loki, url: '{}', labels: {{ app: demo }}, batch: {{ timeout: 100ms }} }}",
        server.url("/loki/api/v1/push")
    );
    let cfg = write_config(d, &base(d, "", &sink));
    let (code, _, err) = run(d, &["run", "--once", "--config", &cfg]);
    assert_eq!(code, Some(0), "{err}");
    let paths: Vec<String> = server.received().iter().map(|r| r.path.clone()).collect();
    assert!(!paths.is_empty());
    assert!(paths.iter().all(|p| p == "/loki/api/v1/push"), "{paths:?}");
    assert!(
        err.contains("summary: everything read was delivered"),
        "{err}"
    );
}

#[test]
fn duplicate_keys_alias_bombs_and_feedback_loops_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("tailcar.yaml").display().to_string();
    let text = format!(
        "streams:\n  app:\n    paths: [{d}/a.log]\n    sinks: [out]\n  app:\n    paths: [{d}/b.log]\n    sinks: [out]\nsinks:\n  out: {{ type: stdout }}\n",
        d = d.display()
    );
    let (code, out) = check(d, &text);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(&format!(
            "{cfg}: streams.app: duplicate key `app` (lines 2 and 5): the second would silently replace the first"
        )),
        "{out}"
    );

    let mut bomb =
        String::from("x0: &x0 [l, l, l, l, l, l, l, l, l, l, l, l, l, l, l, l, l, l, l, l]\n");
    for i in 1..9 {
        bomb.push_str(&format!(
            "x{i}: &x{i} [{}]\n",
            vec![format!("*x{}", i - 1); 20].join(", ")
        ));
    }
    bomb.push_str(&format!("nested: {}{}\n", "[".repeat(100), "]".repeat(100)));
    let (code, out) = check(d, &bomb);
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("expands to more than 100000 values"), "{out}");

    let text = format!(
        "admin: {{ enabled: false }}\nstreams:\n  app:\n    paths: ['{d}/*.log']\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {d}/shipped.log }}\n",
        d = d.display()
    );
    let (code, out) = check(d, &text);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(&format!(
            "{cfg}: sinks.out.path: {}/shipped.log is matched by streams.app.paths: tailcar would read what it writes",
            d.display()
        )),
        "{out}"
    );
    // Excluding it is the documented way out.
    let (code, out) = check(
        d,
        &text.replace(
            "    sinks: [out]\n",
            &format!(
                "    exclude: ['{}/shipped.log']\n    sinks: [out]\n",
                d.display()
            ),
        ),
    );
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_second_tailcar_on_one_checkpoint_directory_is_refused_until_the_first_dies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("app.log"), "a", 0..10);
    let ck = d.join("ck").display().to_string();
    let log = d.join("app.log").display().to_string();
    let mut first = Tailcar::start(d, &["tail", "--checkpoint-dir", &ck, &log]);
    first.wait_lines(10, Duration::from_secs(30));
    let (code, _, err) = run(d, &["tail", "--once", "--checkpoint-dir", &ck, &log]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains(&format!(
            "command line: --checkpoint-dir: {ck} is in use by another tailcar (pid {})",
            first.pid()
        )),
        "{err}"
    );
    first.kill9();
    // The kernel let go of the lock with the process: a restart is not blocked.
    append(&d.join("app.log"), "a", 10..20);
    let (code, out, err) = run(d, &["tail", "--once", "--checkpoint-dir", &ck, &log]);
    assert_eq!(code, Some(0), "{err}");
    let counts = seq_counts(&out, "a");
    assert!((10..20).all(|i| counts.contains_key(&i)), "{counts:?}");
}

#[test]
fn a_taken_admin_address_fails_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(d, &["tail", "--once", "--admin", &addr, "app.log"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("admin endpoint: cannot listen on {addr}")),
        "{err}"
    );
}

#[test]
fn a_panic_in_the_admin_endpoint_ends_the_run_like_any_component() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("app.log"), "a", 0..10);
    let port = free_port().port();
    let mut tc = Tailcar::start_env(
        d,
        &["tail", "--admin", &format!("127.0.0.1:{port}"), "app.log"],
        &[("TAILCAR_FAILPOINTS", "admin-panic")],
    );
    tc.wait_lines(10, Duration::from_secs(30));
    let mut answer = String::new();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(
        answer.contains("admin endpoint panicked: fail point admin-panic"),
        "{answer}"
    );
    let status = tc.wait(Duration::from_secs(30));
    let err = tc.stderr();
    assert_eq!(status.code(), Some(70), "{err}");
    assert!(
        err.contains("summary: failed: admin endpoint panicked"),
        "{err}"
    );
}

/// `GET /metrics` from the admin endpoint, once it answers.
fn metrics(port: u16) -> String {
    let mut text = String::new();
    wait_until(Duration::from_secs(15), || {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        text.clear();
        s.read_to_string(&mut text).is_ok() && text.contains("tailcar_stream_files")
    });
    text
}

#[test]
fn a_stream_whose_paths_match_nothing_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port().port();
    let pattern = d.join("nowhere/acess.log").display().to_string();
    let mut tc = Tailcar::start(
        d,
        &["tail", "--admin", &format!("127.0.0.1:{port}"), &pattern],
    );
    tc.wait_stderr(
        "no file matches the stream's paths yet; waiting for one to appear",
        Duration::from_secs(30),
    );
    let err = tc.stderr();
    assert!(err.contains(&pattern), "{err}");
    assert!(
        err.contains(&format!(
            "missing_directories=[\"{}/nowhere\"]",
            d.display()
        )),
        "{err}"
    );
    let text = metrics(port);
    assert!(
        text.contains("tailcar_stream_files{stream=\"acess\"} 0"),
        "{text}"
    );
    tc.stop();
    let cfg = write_config(
        d,
        &format!(
            "streams:\n  app:\n    paths: ['{pattern}']\n    sinks: [out]\nsinks:\n  out: {{ type: stdout }}\n"
        ),
    );
    let (code, out, err) = run(d, &["check", "--config", &cfg]);
    assert_eq!(code, Some(0), "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains(&format!(
            "warning: {}/nowhere does not exist (yet?)",
            d.display()
        )),
        "{out}"
    );
}

#[test]
fn a_file_whose_name_is_not_utf8_is_shipped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let odd = d.join(std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.log"));
    append(&odd, "a", 0..500);
    let pattern = format!("{}/*.log", d.display());
    let (code, out, err) = run(d, &["tail", "--once", "--checkpoint-dir", "ck", &pattern]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        seqs_in_order(&out, "a"),
        (0..500).collect::<Vec<_>>(),
        "{err}"
    );
    // Its position was checkpointed: a second run sends nothing again.
    append(&odd, "a", 500..600);
    let (code, out, err) = run(d, &["tail", "--once", "--checkpoint-dir", "ck", &pattern]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        seqs_in_order(&out, "a"),
        (500..600).collect::<Vec<_>>(),
        "{err}"
    );
}
