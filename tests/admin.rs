//! The admin endpoint with the real binary: exact counter values on `/metrics` after a known
//! workload, `/healthz`, `/readyz` failing while a plugin keeps failing and while a remote sink
//! is down, and configuration reload by SIGHUP and `POST /reload` (a good config takes effect
//! with every stream at its position; a bad one is refused and the running one continues).

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use support::*;

/// A plain HTTP/1.1 request to the endpoint: `(status, body)`.
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new()); // Not listening (yet).
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample `name{labels}` in an OpenMetrics text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn wait_for(port: u16, path: &str, status: u16) -> String {
    let mut last = (0, String::new());
    let ok = wait_until(Duration::from_secs(15), || {
        last = http(port, "GET", path);
        last.0 == status
    });
    assert!(ok, "{path} never answered {status}; last: {last:?}");
    last.1
}

fn config(dir: &Path, port: u16, body: &str) -> String {
    format!(
        "checkpoint_dir: {d}/state\nadmin: {{ address: \"127.0.0.1:{port}\" }}\n{body}",
        d = dir.display()
    )
}

#[test]
fn metrics_count_a_known_workload_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = support::http_server::free_port().port();
    let mut text = String::new();
    for i in 0..100 {
        let path = if i % 10 == 0 { "/healthz" } else { "/shop" };
        text.push_str(&format!(
            "10.0.0.1 - - [17/May/2015:10:05:03 +0000] \"GET {path} HTTP/1.1\" 200 {i}\n"
        ));
    }
    fs::write(d.join("access.log"), &text).unwrap();
    fs::write(
        d.join("tailcar.yaml"),
        config(
            d,
            port,
            &format!(
                "streams:\n  access:\n    paths: [{d}/access.log]\n    plugins:\n      - path: {p}\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {d}/out.log }}\n",
                d = d.display(),
                p = plugin("drop_healthchecks").display()
            ),
        ),
    )
    .unwrap();
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    wait_for(port, "/readyz", 200);
    let mut metrics = String::new();
    let done = wait_until(Duration::from_secs(10), || {
        metrics = http(port, "GET", "/metrics").1;
        sample(&metrics, "tailcar_sink_records_total{sink=\"out\"}") == Some(90.0)
    });
    assert!(done, "{metrics}");
    let bytes = text.len() as f64;
    for (series, value) in [
        ("tailcar_stream_records_total{stream=\"access\"}", 100.0),
        ("tailcar_stream_read_bytes_total{stream=\"access\"}", bytes),
        ("tailcar_stream_files_opened_total{stream=\"access\"}", 1.0),
        ("tailcar_sink_records_total{sink=\"out\"}", 90.0),
        ("tailcar_sink_queue_batches{sink=\"out\"}", 0.0),
        (
            "tailcar_plugin_calls_total{stream=\"access\",plugin=\"drop_healthchecks\"}",
            1.0,
        ),
        (
            "tailcar_plugin_records_in_total{stream=\"access\",plugin=\"drop_healthchecks\"}",
            100.0,
        ),
        (
            "tailcar_plugin_records_out_total{stream=\"access\",plugin=\"drop_healthchecks\"}",
            90.0,
        ),
        (
            "tailcar_plugin_counter_total{stream=\"access\",plugin=\"drop_healthchecks\",name=\"healthchecks_dropped\"}",
            10.0,
        ),
        (
            "tailcar_plugin_failures_total{stream=\"access\",plugin=\"drop_healthchecks\",reason=\"trap\"}",
            0.0,
        ),
        ("tailcar_config_reloads_total{result=\"ok\"}", 0.0),
    ] {
        assert_eq!(sample(&metrics, series), Some(value), "{series}\n{metrics}");
    }
    // Lag: nothing left unacknowledged once everything is delivered.
    let lagless = wait_until(Duration::from_secs(5), || {
        sample(
            &http(port, "GET", "/metrics").1,
            "tailcar_stream_lag_bytes{stream=\"access\"}",
        ) == Some(0.0)
    });
    assert!(lagless);
    assert!(
        !metrics.contains(&d.display().to_string()),
        "no file paths in labels by default"
    );
    assert_eq!(http(port, "GET", "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(http(port, "GET", "/nope").0, 404);
    assert_eq!(http(port, "GET", "/reload").0, 405);
    t.stop();
}

#[test]
fn readiness_fails_while_a_plugin_keeps_failing_or_a_sink_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = support::http_server::free_port().port();
    let dead = support::http_server::free_port().port();
    fs::write(d.join("s.log"), "").unwrap();
    fs::write(
        d.join("tailcar.yaml"),
        config(
            d,
            port,
            &format!(
                "streams:\n  s:\n    paths: [{d}/s.log]\n    plugins:\n      - path: {p}\n        config: {{ mode: panic, trigger: PANIC }}\n    sinks: [out]\n  r:\n    paths: [{d}/r.log]\n    sinks: [remote]\nsinks:\n  out: {{ type: file, path: {d}/out.log }}\n  remote: {{ type: http, url: \"http://127.0.0.1:{dead}/\", retry: {{ initial_backoff: 50ms, max_backoff: 100ms }} }}\n",
                d = d.display(),
                p = plugin("hostile").display()
            ),
        ),
    )
    .unwrap();
    let config_text = fs::read_to_string(d.join("tailcar.yaml")).unwrap();
    // The remote sink is down, but within `sink_failing_for` (5 min by default): still ready.
    append(&d.join("r.log"), "r", 0..3);
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    wait_for(port, "/readyz", 200);
    t.wait_stderr("delivery failed; retrying", Duration::from_secs(10));
    assert_eq!(http(port, "GET", "/readyz").0, 200);
    // Nothing of r.log is acknowledged: all of it is lag.
    let size = fs::metadata(d.join("r.log")).unwrap().len() as f64;
    assert_eq!(
        sample(
            &http(port, "GET", "/metrics").1,
            "tailcar_stream_lag_bytes{stream=\"r\"}"
        ),
        Some(size)
    );
    assert!(
        sample(
            &http(port, "GET", "/metrics").1,
            "tailcar_sink_retries_total{sink=\"remote\"}"
        )
        .unwrap()
            >= 1.0
    );

    // Three failing batches in a row: the plugin counts as failing. Each is written once the
    // one before is counted, so each is a batch of its own.
    let failures = || -> f64 {
        http(port, "GET", "/metrics")
            .1
            .lines()
            .filter(|l| {
                l.starts_with("tailcar_plugin_failures_total{stream=\"s\",plugin=\"hostile\"")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    for i in 0..3 {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(d.join("s.log"))
            .unwrap();
        writeln!(f, "PANIC {i}").unwrap();
        drop(f);
        let counted = wait_until(Duration::from_secs(30), || failures() > f64::from(i));
        assert!(counted, "failure {i} not counted:\n{}", t.stderr());
    }
    let body = wait_for(port, "/readyz", 503);
    assert!(
        body.contains("stream s: plugin hostile cannot run"),
        "{body}"
    );
    // A healthy batch makes it ready again (after the back-off, the instance is re-created).
    append(&d.join("s.log"), "fine", 0..1);
    let ok = wait_until(Duration::from_secs(10), || {
        append(&d.join("s.log"), "fine", 0..1);
        std::thread::sleep(Duration::from_millis(100));
        http(port, "GET", "/readyz").0 == 200
    });
    assert!(ok, "{}", t.stderr());
    // (The remote sink is still down: tailcar could not drain it.)
    t.kill9();

    // A sink failing for longer than `sink_failing_for` makes it unready.
    fs::write(
        d.join("tailcar.yaml"),
        config_text.replace(
            &format!("127.0.0.1:{port}\" }}"),
            &format!("127.0.0.1:{port}\", sink_failing_for: 1s }}"),
        ),
    )
    .unwrap();
    append(&d.join("r.log"), "r", 3..4);
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    let mut last = (0, String::new());
    let unready = wait_until(Duration::from_secs(15), || {
        last = http(port, "GET", "/readyz");
        last.1.contains("sink remote: every attempt has failed for")
    });
    assert!(unready, "{last:?}");
    assert_eq!(last.0, 503);
    assert_eq!(
        http(port, "GET", "/healthz").0,
        200,
        "down sinks do not make tailcar unhealthy"
    );
    t.kill9();
}

#[test]
fn sighup_and_post_reload_apply_a_good_config_and_refuse_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = support::http_server::free_port().port();
    let write = |sink_file: &str, extra: &str| {
        fs::write(
            d.join("tailcar.yaml"),
            config(
                d,
                port,
                &format!(
                    "streams:\n  a:\n    paths: [{d}/a.log]\n    sinks: [out]\n  b:\n    paths: [{d}/b.log]\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {d}/{sink_file} }}\n{extra}",
                    d = d.display()
                ),
            ),
        )
        .unwrap();
    };
    write("one.log", "");
    append(&d.join("a.log"), "a", 0..100);
    append(&d.join("b.log"), "b", 0..100);
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    let lines = |f: &str| fs::read(d.join(f)).unwrap_or_default();
    let count = |f: &str, tag: &str| seq_counts(&only(&lines(f), tag), tag);
    assert!(wait_until(Duration::from_secs(10), || {
        count("one.log", "a").len() == 100 && count("one.log", "b").len() == 100
    }));

    // A good new config by SIGHUP: the sink now writes to two.log; both streams resume where
    // they were (no line again, none lost).
    write("two.log", "");
    t.signal(nix::sys::signal::Signal::SIGHUP);
    t.wait_stderr("configuration reloaded", Duration::from_secs(10));
    append(&d.join("a.log"), "a", 100..150);
    append(&d.join("b.log"), "b", 100..150);
    assert!(
        wait_until(Duration::from_secs(10), || {
            count("two.log", "a").len() == 50 && count("two.log", "b").len() == 50
        }),
        "{}",
        t.stderr()
    );
    assert_eq!(count("two.log", "a").keys().next(), Some(&100));
    assert_eq!(count("two.log", "b").keys().next(), Some(&100));

    // A bad one is refused, by SIGHUP and by POST /reload; the running config continues.
    write("three.log", "  bad: { type: nope }\n");
    t.signal(nix::sys::signal::Signal::SIGHUP);
    t.wait_stderr("configuration reload refused", Duration::from_secs(10));
    let (status, body) = http(port, "POST", "/reload");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("sinks.bad.type: unknown variant `nope`"),
        "{body}"
    );
    append(&d.join("a.log"), "a", 150..160);
    assert!(wait_until(Duration::from_secs(10), || {
        count("two.log", "a").len() == 60
    }));
    assert!(!d.join("three.log").exists());

    // A good one by POST /reload.
    write("three.log", "");
    assert_eq!(
        http(port, "POST", "/reload"),
        (200, "reloading\n".to_string())
    );
    t.wait_stderr("tailing file stream=a", Duration::from_secs(10));
    append(&d.join("a.log"), "a", 160..170);
    assert!(wait_until(Duration::from_secs(10), || {
        count("three.log", "a").len() == 10
    }));
    let metrics = http(port, "GET", "/metrics").1;
    assert_eq!(
        sample(&metrics, "tailcar_config_reloads_total{result=\"ok\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&metrics, "tailcar_config_reloads_total{result=\"refused\"}"),
        Some(2.0)
    );
    // Counters live on across reloads.
    assert_eq!(
        sample(&metrics, "tailcar_stream_records_total{stream=\"a\"}"),
        Some(170.0)
    );
    t.stop();
    // Every line exactly once over the three files.
    let all: Vec<u8> = [lines("one.log"), lines("two.log"), lines("three.log")].concat();
    assert_eq!(
        assert_all_arrived(&seq_counts(&only(&all, "a"), "a"), 170),
        0
    );
    assert_eq!(
        assert_all_arrived(&seq_counts(&only(&all, "b"), "b"), 150),
        0
    );
}
