//! Python and JavaScript plugins, built from `plugins/python` and `plugins/javascript` with the
//! pinned componentize-py and componentize-js, running in real pipelines: the same filter in
//! Rust, Python and JavaScript ships exactly the same lines; a Python parser feeds a JavaScript
//! filter with exact typed fields and times; loops, memory bombs and exceptions in either
//! language cost their own batch only, with the traceback in tailcar's log under the plugin's
//! name; and a memory limit below a runtime's floor is refused at start.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use support::*;

/// The 1-based number of the first line of `plugins/{file}` that starts with `prefix`.
fn source_line(file: &str, prefix: &str) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(file);
    let source = fs::read_to_string(&path).unwrap();
    source
        .lines()
        .position(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {}", path.display()))
        + 1
}

fn request_path(line: &str) -> Option<&str> {
    let request = line.split_once('"')?.1;
    let rest = request.split_once(' ')?.1;
    let path = rest.split([' ', '"']).next()?;
    Some(path.split('?').next().unwrap_or(path))
}

#[test]
fn drop_healthchecks_ships_the_same_lines_in_rust_python_and_javascript() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = fs::read_to_string(copy_sample(d)).unwrap();
    let dd = d.display();
    let cache = plugin_cache();
    let cache = cache.display();
    let mut streams = String::new();
    for (lang, path) in [
        ("rust", plugin("drop_healthchecks")),
        ("python", lang_plugin("python", "drop_healthchecks")),
        ("javascript", lang_plugin("javascript", "drop_healthchecks")),
    ] {
        fs::copy(d.join("access.log"), d.join(format!("{lang}.log"))).unwrap();
        streams += &format!(
            "  {lang}:\n    paths: [{dd}/{lang}.log]\n    plugins:\n      - path: {}\n        name: {lang}_filter\n        config: {{ paths: [/favicon.ico, /robots.txt] }}\n    sinks: [{lang}_out]\n",
            path.display()
        );
    }
    fs::write(
        d.join("tailcar.yaml"),
        format!(
            "checkpoint_dir: {dd}/state\nplugin_cache_dir: {cache}\nadmin: {{ enabled: false }}\nstreams:\n{streams}sinks:\n  rust_out: {{ type: file, path: {dd}/rust.json, format: json }}\n  python_out: {{ type: file, path: {dd}/python.json, format: json }}\n  javascript_out: {{ type: file, path: {dd}/javascript.json, format: json }}\n"
        ),
    )
    .unwrap();
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");

    // Worked out here from the lines.
    let expected: Vec<&str> = sample
        .lines()
        .filter(|l| !matches!(request_path(l), Some("/favicon.ico" | "/robots.txt")))
        .collect();
    let dropped = sample.lines().count() - expected.len();
    assert!(
        dropped > 500,
        "the sample has many such requests: {dropped}"
    );
    for lang in ["rust", "python", "javascript"] {
        assert_eq!(
            lines_of(&d.join(format!("{lang}.json"))),
            expected,
            "{lang} shipped other lines"
        );
        let context = format!("plugin=\"{lang}_filter\"");
        assert_eq!(stat(&err, &context, "records_in"), Some(10_000), "{err}");
        assert_eq!(stat(&err, &context, "errors"), Some(0), "{lang}");
        let stats = err.lines().rev().find(|l| l.contains(&context)).unwrap();
        assert!(
            stats.contains(&format!("counters=healthchecks_dropped={dropped}")),
            "{stats}"
        );
    }
}

/// Lines for the parsers, and what each must become (fields, event time as the JSON sink writes
/// it, or None for the read time).
fn parser_cases() -> Vec<(&'static str, serde_json::Value, Option<&'static str>)> {
    vec![
        (
            r#"{"level":"error","msg":"boom","ts":"2026-11-22T10:00:00.123456789Z","n":5,"f":1.5,"ok":false,"none":null,"o":{"a":[1,"x"]},"path":"/api"}"#,
            json!({"level":"error","msg":"boom","ts":"2026-11-22T10:00:00.123456789Z","n":5,"f":1.5,"ok":false,"none":null,"o":{"a":[1,"x"]},"path":"/api"}),
            Some("2026-11-22T10:00:00.123456789Z"),
        ),
        (
            r#"level=warn msg="disk \"full\" é" ts=1700000000.5 retry n=-42"#,
            json!({"level":"warn","msg":"disk \"full\" é","ts":1700000000.5,"retry":true,"n":-42}),
            Some("2023-11-14T22:13:20.5Z"),
        ),
        (
            "no pairs here",
            json!({"parse_error":"neither a JSON object nor key=value pairs"}),
            None,
        ),
        (
            r#"{"path":"/healthz","ts":"2026-11-22T10:00:01+01:00"}"#,
            json!({"path":"/healthz","ts":"2026-11-22T10:00:01+01:00"}),
            Some("2026-11-22T09:00:01Z"),
        ),
        (
            r#"user="a b" path=/readyz?x=1"#,
            json!({"user":"a b","path":"/readyz?x=1"}),
            None,
        ),
    ]
}

#[test]
fn a_python_parser_feeds_a_javascript_filter_and_the_parser_gives_the_same_fields_in_three_languages()
 {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dd = d.display();
    let cache = plugin_cache();
    let cache = cache.display();
    let cases = parser_cases();
    let input: String = cases.iter().map(|(l, _, _)| format!("{l}\n")).collect();
    for s in ["chain", "py", "js", "rs"] {
        fs::write(d.join(format!("{s}.log")), &input).unwrap();
    }
    let py = lang_plugin("python", "json_kv_parse");
    let js = lang_plugin("javascript", "json_kv_parse");
    let rs = plugin("json_kv_parse");
    let js_filter = lang_plugin("javascript", "drop_healthchecks");
    let parser = |p: &Path, name: &str| {
        format!(
            "      - path: {}\n        name: {name}\n        config: {{ time_key: ts }}\n",
            p.display()
        )
    };
    fs::write(
        d.join("tailcar.yaml"),
        format!(
            "checkpoint_dir: {dd}/state\nplugin_cache_dir: {cache}\nadmin: {{ enabled: false }}\nstreams:\n  chain:\n    paths: [{dd}/chain.log]\n    plugins:\n{}      - path: {}\n        name: js_filter\n    sinks: [chain_out]\n  py:\n    paths: [{dd}/py.log]\n    plugins:\n{}    sinks: [py_out]\n  js:\n    paths: [{dd}/js.log]\n    plugins:\n{}    sinks: [js_out]\n  rs:\n    paths: [{dd}/rs.log]\n    plugins:\n{}    sinks: [rs_out]\nsinks:\n  chain_out: {{ type: file, path: {dd}/chain.json, format: json }}\n  rs_out: {{ type: file, path: {dd}/rs.json, format: json }}\n  py_out: {{ type: file, path: {dd}/py.json, format: json }}\n  js_out: {{ type: file, path: {dd}/js.json, format: json }}\n",
            parser(&py, "py_parse"),
            js_filter.display(),
            parser(&py, "py_parse_alone"),
            parser(&js, "js_parse"),
            parser(&rs, "rs_parse"),
        ),
    )
    .unwrap();
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");

    for out in ["py", "js", "rs"] {
        let recs = json_records(&d.join(format!("{out}.json")));
        assert_eq!(recs.len(), cases.len(), "{out}: {err}");
        for (r, (line, fields, time)) in recs.iter().zip(&cases) {
            assert_eq!(r["line"], *line, "{out}");
            assert_eq!(r["fields"], *fields, "{out}: fields of {line}");
            if let Some(t) = time {
                assert_eq!(r["timestamp"], *t, "{out}: time of {line}");
            }
        }
    }
    // The JavaScript filter read the `path` field the Python parser set (for the JSON line and
    // the logfmt one alike, query string ignored) and dropped the two health checks.
    let chain = json_records(&d.join("chain.json"));
    let kept: Vec<&serde_json::Value> = cases
        .iter()
        .filter(|(_, f, _)| !matches!(f["path"].as_str(), Some("/healthz" | "/readyz?x=1")))
        .map(|(_, f, _)| f)
        .collect();
    assert_eq!(chain.len(), 3, "{err}");
    for (r, f) in chain.iter().zip(kept) {
        assert_eq!(r["fields"], *f);
    }
    let filter = err
        .lines()
        .rev()
        .find(|l| l.contains("plugin=\"js_filter\""))
        .unwrap();
    assert!(
        filter.contains("counters=healthchecks_dropped=2"),
        "{filter}"
    );
    let parse = err
        .lines()
        .rev()
        .find(|l| l.contains("plugin=\"py_parse\""))
        .unwrap();
    assert!(parse.contains("counters=parse_errors=1"), "{parse}");
}

#[test]
fn loops_memory_bombs_and_exceptions_cost_their_own_batch_in_python_and_javascript() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dd = d.display();
    let cache = plugin_cache();
    let cache = cache.display();
    let mut streams = String::new();
    let mut sinks = String::new();
    let mut names = Vec::new();
    for lang in ["python", "javascript"] {
        let hostile = lang_plugin(lang, "hostile");
        for mode in ["loop", "memory", "raise"] {
            let s = format!("{}_{mode}", &lang[..2]);
            fs::write(d.join(format!("{s}.log")), "").unwrap();
            streams += &format!(
                "  {s}:\n    paths: [{dd}/{s}.log]\n    plugins:\n      - path: {}\n        name: {s}\n        config: {{ mode: {mode}, trigger: BAD }}\n        limits: {{ deadline: 1s, memory: 48MiB }}\n        on_error: pass\n    sinks: [{s}_out]\n",
                hostile.display()
            );
            sinks += &format!("  {s}_out: {{ type: file, path: {dd}/{s}.json, format: json }}\n");
            names.push(s);
        }
    }
    fs::write(
        d.join("tailcar.yaml"),
        format!(
            "checkpoint_dir: {dd}/state\nplugin_cache_dir: {cache}\nadmin: {{ enabled: false }}\nstreams:\n{streams}sinks:\n{sinks}"
        ),
    )
    .unwrap();
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    for s in &names {
        // Compiling the Python and JavaScript components (beside the other tests of this binary)
        // takes minutes on a loaded 2-core machine: a long bound on an event, not a guess.
        t.wait_stderr(
            &format!("tailing file stream={s}"),
            Duration::from_secs(300),
        );
    }
    // A good batch, a bad one, then good ones again: each stream ships all of them (the bad
    // batch passed on unchanged) and its plugin gets a fresh instance after the failure. Each
    // write waits for the one before to be shipped, so each is a batch of its own.
    let shipped = |s: &str, n: usize| {
        let out = d.join(format!("{s}.json"));
        let ok = wait_until(Duration::from_secs(30), || lines_of(&out).len() == n);
        assert!(ok, "{s}: {:?}\n{}", lines_of(&out), t.stderr());
    };
    for s in &names {
        append(&d.join(format!("{s}.log")), "good", 0..3);
    }
    for s in &names {
        shipped(s, 3);
    }
    for s in &names {
        fs::OpenOptions::new()
            .append(true)
            .open(d.join(format!("{s}.log")))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"BAD line\n"))
            .unwrap();
    }
    for s in &names {
        shipped(s, 4);
    }
    for s in &names {
        append(&d.join(format!("{s}.log")), "after", 0..3);
    }
    for s in &names {
        let out = d.join(format!("{s}.json"));
        let shipped = wait_until(Duration::from_secs(30), || lines_of(&out).len() == 7);
        assert!(shipped, "{s}: {:?}\n{}", lines_of(&out), t.stderr());
        assert_eq!(lines_of(&out)[3], "BAD line", "{s}");
    }
    t.stop();
    let err = t.stderr();
    for s in &names {
        let context = format!("plugin=\"{s}\"");
        let (key, n) = if s.ends_with("loop") {
            ("timeouts", 1)
        } else if s.ends_with("memory") {
            ("memory_exceeded", 1)
        } else {
            ("errors", 1)
        };
        assert_eq!(stat(&err, &context, key), Some(n), "{s}: {err}");
        assert_eq!(stat(&err, &context, "failed_passed"), Some(1), "{s}");
        assert_eq!(stat(&err, &context, "records_out"), Some(7), "{s}");
    }
    // The exception's traceback (Python) and stack (JavaScript) are in the log, with the
    // plugin's name.
    let printed = |plugin: &str| -> String {
        err.lines()
            .filter(|l| l.contains(&format!("plugin={plugin}")) && l.contains("plugin stderr: "))
            // The message, without the `stream=.. plugin=..` fields after it.
            .map(|l| l.split("plugin stderr: ").nth(1).unwrap())
            .map(|m| m.rsplit_once(" stream=").map_or(m, |(m, _)| m))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let traceback = printed("\"py_raise\"");
    assert!(
        traceback.starts_with("Traceback (most recent call last):"),
        "{err}"
    );
    // The traceback points at the line of the source that raised.
    let raise_line = source_line("python/testing/hostile/app.py", "raise RuntimeError(");
    assert!(
        traceback.contains(&format!("/app.py\", line {raise_line}, in explode")),
        "{traceback}"
    );
    assert!(
        traceback.contains("RuntimeError: hostile plugin refused the line 'BAD line'"),
        "{traceback}"
    );
    let stack = printed("\"ja_raise\"");
    let throw_line = source_line("javascript/testing/hostile/app.js", "throw new Error(");
    assert!(
        stack.contains(r#"process: Error: hostile plugin refused the line "BAD line""#),
        "{err}"
    );
    assert!(
        stack.contains(&format!(
            "explode@plugins/javascript/testing/hostile/app.js:{throw_line}"
        )),
        "{stack}"
    );
}

#[test]
fn a_memory_limit_below_a_runtimes_floor_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dd = d.display();
    fs::write(d.join("a.log"), "x\n").unwrap();
    for (lang, memory, expected) in [
        (
            "python",
            "8MiB",
            "8MiB is below what plugin `passthrough` needs: it is a Python plugin (CPython, componentize-py), which needs at least 16MiB of linear memory",
        ),
        (
            "javascript",
            "16MiB",
            "16MiB is below what plugin `passthrough` needs: it is a JavaScript plugin (StarlingMonkey, componentize-js), which needs at least 32MiB of linear memory",
        ),
    ] {
        fs::write(
            d.join("tailcar.yaml"),
            format!(
                "checkpoint_dir: {dd}/state\nadmin: {{ enabled: false }}\nstreams:\n  a:\n    paths: [{dd}/a.log]\n    plugins:\n      - path: {}\n        limits: {{ memory: {memory} }}\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {dd}/out.json, format: json }}\n",
                lang_plugin(lang, "passthrough").display()
            ),
        )
        .unwrap();
        let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
        assert_eq!(code, Some(64), "{lang}: {err}");
        assert!(
            err.contains("streams.a.plugins[0].limits.memory") && err.contains(expected),
            "{lang}: {err}"
        );
        // `plugin test` applies the same floor.
        let wasm = lang_plugin(lang, "passthrough");
        let (code, _, err) = run(
            d,
            &[
                "plugin",
                "test",
                wasm.to_str().unwrap(),
                "a.log",
                "--memory",
                memory,
            ],
        );
        assert_ne!(code, Some(0));
        assert!(err.contains(expected), "{lang}: {err}");
    }
}

#[test]
fn a_python_plugin_sees_no_files_environment_or_network() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dd = d.display();
    let cache = plugin_cache();
    let cache = cache.display();
    fs::write(d.join("a.log"), "probe\n").unwrap();
    fs::write(d.join("secret.txt"), "do not read\n").unwrap();
    fs::write(
        d.join("tailcar.yaml"),
        format!(
            "checkpoint_dir: {dd}/state\nplugin_cache_dir: {cache}\nadmin: {{ enabled: false }}\nstreams:\n  a:\n    paths: [{dd}/a.log]\n    plugins:\n      - path: {}\n        config: {{ mode: probe }}\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {dd}/out.json, format: json }}\n",
            lang_plugin("python", "hostile").display()
        ),
    )
    .unwrap();
    // tailcar runs in the directory holding a file and with a secret in its environment.
    let (code, _, err) = run_env(
        d,
        &["run", "--config", "tailcar.yaml", "--once"],
        &[("TAILCAR_TEST_SECRET", "hunter2")],
    );
    assert_eq!(code, Some(0), "{err}");
    let recs = json_records(&d.join("out.json"));
    let f = &recs[0]["fields"];
    // No preopened directory: no path resolves, not even the working directory.
    assert_eq!(f["file"], "FileNotFoundError", "{f}");
    assert_eq!(f["listdir"], "FileNotFoundError", "{f}");
    assert_eq!(f["cwd_files"], "FileNotFoundError", "{f}");
    assert_eq!(
        f["env"], 0,
        "no environment variable reaches the plugin: {f}"
    );
    assert_ne!(f["net"], "connected", "{f}");
}

#[test]
fn the_compile_cache_holds_python_and_javascript_components() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("a.log"), "GET /healthz\n").unwrap();
    for lang in ["python", "javascript"] {
        let wasm = lang_plugin(lang, "drop_healthchecks");
        let cache = d.join(format!("cache-{lang}"));
        let args = [
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "a.log",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--quiet",
        ];
        let first = run(d, &args);
        let second = run(d, &args);
        for (code, out, err) in [&first, &second] {
            assert_eq!(*code, Some(0), "{lang}: {err}");
            assert!(String::from_utf8_lossy(out).contains("1 records in, 1 out"));
        }
        let header = |out: &[u8]| {
            String::from_utf8_lossy(out)
                .lines()
                .next()
                .unwrap()
                .to_string()
        };
        assert!(
            header(&first.1).contains(": compiled in "),
            "{}",
            header(&first.1)
        );
        assert!(
            header(&second.1).contains(": loaded from the compile cache in "),
            "{lang}: {}",
            header(&second.1)
        );
        // The cached artifact is the whole compiled runtime (tens of MB), in one file.
        let sizes: Vec<u64> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        assert_eq!(sizes.len(), 1, "{lang}: {sizes:?}");
        assert!(sizes[0] > 10 << 20, "{lang}: {sizes:?}");
    }
}
