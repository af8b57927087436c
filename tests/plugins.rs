//! The example WASM plugins (built from `plugins/` for wasm32-wasip2) in real pipelines over the
//! Apache access sample, `tailcar plugin test`, the compile cache, start-up refusals and hot
//! reload.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::*;

fn write_config(dir: &Path, stream_body: &str, sinks: &str) {
    let config = format!(
        "checkpoint_dir: {d}/state\nadmin: {{ enabled: false }}\nstreams:\n  access:\n    paths: [{d}/access.log]\n{stream_body}\nsinks:\n{sinks}\n",
        d = dir.display()
    );
    fs::write(dir.join("tailcar.yaml"), config).unwrap();
}

fn file_sink(dir: &Path, name: &str) -> String {
    format!(
        "  {name}: {{ type: file, path: {}/{name}.json, format: json }}",
        dir.display()
    )
}

/// The path of an access-log line's request, without its query string (`None` if the line has
/// no quoted request), worked out here independently of the plugins.
fn request_path(line: &str) -> Option<&str> {
    let request = line.split('"').nth(1)?;
    let path = request.split(' ').nth(1)?;
    Some(path.split('?').next().unwrap_or(path))
}

#[test]
fn nginx_parse_in_wasm_parses_the_whole_sample_exactly_like_the_native_parser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_sample(d);
    let plugin = plugin("nginx_parse");
    write_config(
        d,
        &format!(
            "    plugins:\n      - path: {}\n    sinks: [wasm]",
            plugin.display()
        ),
        &file_sink(d, "wasm"),
    );
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    let wasm = json_records(&d.join("wasm.json"));
    assert_eq!(wasm.len(), 10_000);
    assert_eq!(stat(&err, "plugin statistics", "records_out"), Some(10_000));
    assert_eq!(stat(&err, "plugin statistics", "traps"), Some(0));
    // No `parse_errors` counter: every line parsed.
    assert!(!err.contains("counters=parse_errors"), "{err}");
    assert!(
        wasm.iter()
            .all(|r| r["fields"].get("parse_error").is_none())
    );

    // The same sample through the native `nginx` parser: identical fields and times.
    write_config(
        d,
        "    parser: nginx\n    sinks: [native]",
        &file_sink(d, "native"),
    );
    fs::remove_dir_all(d.join("state")).unwrap();
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    let native = json_records(&d.join("native.json"));
    assert_eq!(native.len(), 10_000);
    for (i, (w, n)) in wasm.iter().zip(&native).enumerate() {
        assert_eq!(w["fields"], n["fields"], "record {i}");
        assert_eq!(w["timestamp"], n["timestamp"], "record {i}");
        assert_eq!(w["line"], n["line"], "record {i}");
    }
    // Chosen lines, by value.
    let first = &wasm[0]["fields"];
    assert_eq!(first["remote_addr"], "83.149.9.216");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], 203023);
    assert_eq!(wasm[0]["timestamp"], "2015-05-17T10:05:03Z");
    assert_eq!(
        wasm[8898]["fields"]["user_agent"],
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html"
    );
    assert_eq!(wasm[9999]["fields"]["path"], "/blog/tags/puppet?flav=rss20");
}

#[test]
fn nginx_parse_keeps_and_counts_the_lines_it_cannot_parse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = fs::read_to_string(copy_sample(d)).unwrap();
    let mut lines: Vec<&str> = sample.lines().take(100).collect();
    lines.insert(10, "this is not an access log line");
    lines.insert(50, "");
    fs::write(d.join("access.log"), lines.join("\n") + "\n").unwrap();
    write_config(
        d,
        &format!(
            "    plugins:\n      - path: {}\n    sinks: [out]",
            plugin("nginx_parse").display()
        ),
        &file_sink(d, "out"),
    );
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    let recs = json_records(&d.join("out.json"));
    assert_eq!(recs.len(), 102);
    let failed: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r["fields"].get("parse_error").is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, [10, 50]);
    assert_eq!(recs[10]["line"], "this is not an access log line");
    assert!(err.contains("counters=parse_errors=2"), "{err}");
}

#[test]
fn drop_healthchecks_redact_and_sample_over_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = fs::read_to_string(copy_sample(d)).unwrap();
    let lines: Vec<&str> = sample.lines().collect();
    write_config(
        d,
        &format!(
            "    plugins:\n      - path: {}\n        config: {{ paths: [/favicon.ico, /robots.txt] }}\n      - path: {}\n      - path: {}\n        config: {{ n: 10 }}\n    sinks: [out]",
            plugin("drop_healthchecks").display(),
            plugin("redact").display(),
            plugin("sample").display()
        ),
        &file_sink(d, "out"),
    );
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    let recs = json_records(&d.join("out.json"));

    // What each plugin should do, worked out here from the lines.
    let kept: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !matches!(request_path(l), Some("/favicon.ico" | "/robots.txt")))
        .collect();
    let dropped = lines.len() - kept.len();
    assert!(
        dropped > 500,
        "the sample has many such requests: {dropped}"
    );
    let is_5xx = |l: &str| {
        l.split('"')
            .nth(2)
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|s| s.starts_with('5'))
    };
    let mut expected = Vec::new();
    let mut ordinary = 0;
    for l in &kept {
        if is_5xx(l) || l.contains("ERROR") {
            expected.push(*l);
        } else {
            if ordinary % 10 == 0 {
                expected.push(*l);
            }
            ordinary += 1;
        }
    }
    assert_eq!(recs.len(), expected.len(), "{err}");
    assert_eq!(
        stat(&err, "plugin=\"drop_healthchecks\"", "records_out"),
        Some(kept.len() as u64)
    );
    assert!(
        err.contains(&format!("counters=healthchecks_dropped={dropped}")),
        "{err}"
    );
    // Every shipped line is the expected one with its IPv4 addresses masked.
    for (r, l) in recs.iter().zip(&expected) {
        let line = r["line"].as_str().unwrap();
        assert!(!line.contains("83.149.9.216"));
        assert_eq!(line.split(' ').nth(1), l.split(' ').nth(1));
        assert!(line.starts_with("<ipv4> - "), "{line}");
    }
    assert_eq!(
        recs[0]["line"],
        lines[0].replacen("83.149.9.216", "<ipv4>", 1)
    );
    assert!(recs.iter().all(|r| {
        !r["line"]
            .as_str()
            .unwrap()
            .split(['"', ' '])
            .any(|w| w.split('.').count() == 4 && w.split('.').all(|p| p.parse::<u8>().is_ok()))
    }));
}

#[test]
fn plugin_test_shows_each_record_and_the_cache_makes_restarts_cheap() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in.log");
    fs::write(
        &input,
        "10.0.0.1 - - [17/May/2015:10:05:03 +0000] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"kube-probe\"\n\
         10.0.0.2 - - [17/May/2015:10:05:04 +0000] \"GET /shop HTTP/1.1\" 200 5 \"-\" \"curl\"\n",
    )
    .unwrap();
    let p = plugin("drop_healthchecks");
    let args = [
        "plugin",
        "test",
        p.to_str().unwrap(),
        input.to_str().unwrap(),
        "--cache-dir",
        "cache",
    ];
    let (code, out, err) = run(d, &args);
    assert_eq!(code, Some(0), "{err}");
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(": compiled in "), "{out}");
    assert!(out.contains("batch 1: 2 records in, 1 out"), "{out}");
    assert!(
        out.contains("  #1 in:  10.0.0.1 - -") && out.contains("     dropped"),
        "{out}"
    );
    assert!(
        out.contains("  #2 in:  10.0.0.2") && out.contains("     kept"),
        "{out}"
    );
    assert!(
        out.contains("plugin counter healthchecks_dropped += 1"),
        "{out}"
    );
    // Second start: the compiled artifact comes from the cache.
    let (code, out, _) = run(d, &args);
    assert_eq!(code, Some(0));
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains(": loaded from the compile cache in "),
    );
    assert_eq!(fs::read_dir(d.join("cache")).unwrap().count(), 1);

    // A refused config is the plugin's own message; exit 64.
    let (code, _, err) = run(
        d,
        &[
            "plugin",
            "test",
            p.to_str().unwrap(),
            input.to_str().unwrap(),
            "--config",
            r#"{"paths": "healthz"}"#,
        ],
    );
    assert_eq!(code, Some(64));
    assert!(
        err.contains(
            "plugin `drop_healthchecks` refused its config: `paths`: `healthz` is not a path (it must start with `/`)"
        ),
        "{err}"
    );
}

#[test]
fn bad_plugins_are_refused_at_start_with_their_path_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("access.log"), "x\n").unwrap();
    fs::write(d.join("garbage.wasm"), b"\0asm but not really").unwrap();
    let cases = [
        (
            format!("      - path: {}", plugin("wrong_world").display()),
            format!(
                "streams.access.plugins[0].path: {}: it does not implement tailcar's world `tailcar:plugin/plugin@0.2.0`",
                plugin("wrong_world").display()
            ),
        ),
        (
            format!("      - path: {}/garbage.wasm", d.display()),
            format!(
                "streams.access.plugins[0].path: {}/garbage.wasm: not a valid WebAssembly component",
                d.display()
            ),
        ),
        (
            format!("      - path: {}/missing.wasm", d.display()),
            format!(
                "streams.access.plugins[0].path: cannot read {}/missing.wasm: No such file",
                d.display()
            ),
        ),
        (
            format!(
                "      - path: {}\n        config: {{ kinds: [phone] }}",
                plugin("redact").display()
            ),
            "streams.access.plugins[0].config: plugin `redact` refused its config: `kinds`: unknown kind `phone` (known: email, ipv4, token)".to_string(),
        ),
        (
            format!(
                "      - path: {}\n        on_error: dead_letter",
                plugin("passthrough").display()
            ),
            "streams.access.plugins[0].dead_letter: `on_error: dead_letter` needs the name of a sink here".to_string(),
        ),
        (
            format!(
                "      - path: {}\n        limits: {{ memory: 1MiB }}",
                plugin("redact").display()
            ),
            "streams.access.plugins[0].limits.memory: plugin `redact` failed to start: memory limit of 1MiB exceeded".to_string(),
        ),
    ];
    for (plugins, expected) in cases {
        write_config(
            d,
            &format!("    plugins:\n{plugins}\n    sinks: [out]"),
            &file_sink(d, "out"),
        );
        let (code, _, err) = run(d, &["check", "--config", "tailcar.yaml"]);
        assert_eq!(code, Some(64), "{plugins}\n{err}");
        assert!(
            err.contains(&format!("tailcar.yaml: {expected}")),
            "expected `{expected}` in:\n{err}"
        );
    }
}

#[test]
fn a_plugin_replaced_on_disk_is_reloaded_and_a_broken_one_refused_without_losing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("access.log");
    fs::write(&log, "").unwrap();
    let live = d.join("live.wasm");
    fs::copy(plugin("passthrough"), &live).unwrap();
    write_config(
        d,
        &format!(
            "    plugins:\n      - path: {}\n        name: live\n    sinks: [out]",
            live.display()
        ),
        &file_sink(d, "out"),
    );
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    let out = d.join("out.json");
    let count = |out: &Path| json_records(out).len();
    let access = |seq: u64| {
        format!(
            "10.0.0.{} - - [17/May/2015:10:05:03 +0000] \"GET /item/{seq} HTTP/1.1\" 200 {seq}",
            seq % 250
        )
    };
    let write = |range: std::ops::Range<u64>| {
        let mut text = String::new();
        for i in range {
            text.push_str(&access(i));
            text.push('\n');
        }
        let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    };
    write(0..100);
    assert!(
        wait_until(Duration::from_secs(10), || count(&out) == 100),
        "{}",
        t.stderr()
    );

    // Lines keep flowing while the file is replaced and checked (once a second, before a batch).
    let mut next = 100u64;
    let flow_until = |t: &Tailcar, text: &str, next: &mut u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !t.stderr().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "no `{text}`:\n{}",
                t.stderr()
            );
            write(*next..*next + 5);
            *next += 5;
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // A new version, put in place atomically as a ConfigMap update does.
    fs::copy(plugin("nginx_parse"), d.join("next.wasm")).unwrap();
    fs::rename(d.join("next.wasm"), &live).unwrap();
    flow_until(&t, "plugin reloaded", &mut next);
    write(next..next + 50);
    next += 50;
    let parsed_from = next - 50;
    // A broken version is refused; the running one (nginx_parse) goes on.
    fs::write(d.join("next.wasm"), b"not wasm at all").unwrap();
    fs::rename(d.join("next.wasm"), &live).unwrap();
    flow_until(&t, "new version of the plugin refused", &mut next);
    write(next..next + 50);
    next += 50;
    let total = next;
    assert!(
        wait_until(Duration::from_secs(10), || count(&out) == total as usize),
        "{}",
        t.stderr()
    );
    t.stop();

    let recs = json_records(&out);
    let lines: Vec<String> = recs
        .iter()
        .map(|r| r["line"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..total).map(access).collect();
    assert_eq!(lines, expected, "every line once, in order");
    // Unparsed up to the reload, parsed from then on (the refused version changed nothing).
    let first_parsed = recs
        .iter()
        .position(|r| r.get("fields").is_some())
        .expect("some records parsed by the new version");
    assert!(first_parsed >= 100 && first_parsed as u64 <= parsed_from);
    assert!(
        recs[first_parsed..]
            .iter()
            .all(|r| r["fields"]["path"].is_string()),
        "every record after the reload is parsed"
    );
    assert_eq!(
        recs[(total - 1) as usize]["fields"]["path"],
        format!("/item/{}", total - 1)
    );
    let err = t.stderr();
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
    assert_eq!(stat(&err, "plugin statistics", "reloads"), Some(1));
    assert_eq!(stat(&err, "plugin statistics", "reloads_refused"), Some(1));
}
