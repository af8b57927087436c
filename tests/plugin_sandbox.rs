//! The sandbox, with the hostile test plugin (`plugins/testing/hostile`) built for wasm32-wasip2:
//! an infinite loop is interrupted at its deadline while other streams keep shipping, a memory
//! bomb traps at its limit with tailcar's memory bounded, a panic's message reaches the log, an
//! output flood is cut at the output limit, and each `on_error` policy does what it says.

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

fn hostile(config: &str, extra: &str) -> String {
    format!(
        "      - path: {}\n        config: {config}\n{extra}",
        plugin("hostile").display()
    )
}

/// One stream `s` reading `s.log` through `plugins`, into the file sink `out` (and `dlq`).
fn write_config(dir: &Path, plugins: &str) {
    let d = dir.display();
    fs::write(
        dir.join("tailcar.yaml"),
        format!(
            "checkpoint_dir: {d}/state\nadmin: {{ enabled: false }}\nstreams:\n  s:\n    paths: [{d}/s.log]\n    plugins:\n{plugins}\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {d}/out.json, format: json }}\n  dlq: {{ type: file, path: {d}/dlq.json, format: json }}\n"
        ),
    )
    .unwrap();
}

#[test]
fn an_infinite_loop_is_interrupted_and_other_streams_keep_shipping() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("slow.log"), "").unwrap();
    fs::write(d.join("fast.log"), "").unwrap();
    let dd = d.display();
    fs::write(
        d.join("tailcar.yaml"),
        format!(
            "checkpoint_dir: {dd}/state\nadmin: {{ enabled: false }}\nstreams:\n  slow:\n    paths: [{dd}/slow.log]\n    plugins:\n{}\n    sinks: [slow_out]\n  fast:\n    paths: [{dd}/fast.log]\n    sinks: [fast_out]\nsinks:\n  slow_out: {{ type: file, path: {dd}/slow.json, format: json }}\n  fast_out: {{ type: file, path: {dd}/fast.json, format: json }}\n",
            hostile(
                "{ mode: loop, trigger: LOOP }",
                "        limits: { deadline: 4s }\n        on_error: pass"
            )
        ),
    )
    .unwrap();
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    t.wait_stderr("tailing file stream=fast", Duration::from_secs(10));
    fs::write(d.join("slow.log"), "before\nLOOP forever\n").unwrap();
    // Found and read at once: from here its plugin loops for 4 s.
    t.wait_stderr("tailing file stream=slow", Duration::from_secs(10));
    append(&d.join("fast.log"), "fast", 0..100);
    // The fast stream ships while the slow one is stuck in its plugin (4 s deadline).
    let shipped = wait_until(Duration::from_secs(3), || {
        lines_of(&d.join("fast.json")).len() == 100
    });
    assert!(shipped, "fast stream stalled:\n{}", t.stderr());
    assert!(
        !t.stderr().contains("deadline exceeded"),
        "the loop should still be running"
    );
    // Then the loop is interrupted and its batch passed on unchanged (on_error: pass).
    t.wait_stderr("deadline exceeded (interrupted)", Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || {
        lines_of(&d.join("slow.json")) == ["before", "LOOP forever"]
    }));
    // The next batch gets a fresh instance.
    append(&d.join("slow.log"), "after", 0..3);
    assert!(wait_until(Duration::from_secs(5), || {
        lines_of(&d.join("slow.json")).len() == 5
    }));
    t.stop();
    let err = t.stderr();
    assert_eq!(
        stat(&err, "plugin statistics", "timeouts"),
        Some(1),
        "{err}"
    );
    assert_eq!(stat(&err, "plugin statistics", "failed_passed"), Some(2));
    assert_eq!(stat(&err, "plugin statistics", "instances"), Some(2));
}

#[test]
fn deadlines_and_fuel_interrupt_within_their_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("in.log"), "spin\n").unwrap();
    let p = plugin("hostile");
    let base = [
        "plugin",
        "test",
        p.to_str().unwrap(),
        "in.log",
        "--config",
        r#"{"mode":"loop"}"#,
    ];
    let mut args = base.to_vec();
    args.extend(["--deadline", "200ms"]);
    let started = Instant::now();
    let (code, out, err) = run(d, &args);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, Some(1), "{out}{err}");
    let line = out.lines().find(|l| l.contains("FAILED")).expect(&out);
    assert!(line.ends_with("deadline exceeded (interrupted)"), "{line}");
    let ms: f64 = line
        .split("after ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .unwrap()
        .parse()
        .unwrap();
    // Interrupted at the deadline, plus at most a couple of 2 ms epoch ticks (and a generous
    // margin for a loaded machine).
    assert!((200.0..700.0).contains(&ms), "interrupted after {ms} ms");
    assert!(started.elapsed() < Duration::from_secs(20));

    let mut args = base.to_vec();
    args.extend(["--fuel", "5000000", "--deadline", "30s"]);
    let (code, out, _) = run(d, &args);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, Some(1));
    assert!(
        out.contains("FAILED") && out.contains("fuel budget exhausted"),
        "{out}"
    );
}

#[test]
fn a_memory_bomb_traps_at_its_limit_and_tailcar_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("s.log"), "").unwrap();
    write_config(
        d,
        &hostile(
            "{ mode: membomb, trigger: BOMB }",
            "        limits: { memory: 32MiB, deadline: 20s }\n        on_error: drop",
        ),
    );
    let mut t = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    t.wait_stderr("tailing file", Duration::from_secs(10));
    fs::write(d.join("s.log"), "one\nBOMB\n").unwrap();
    t.wait_stderr("memory limit of 32MiB exceeded", Duration::from_secs(10));
    let rss = rss_kib(t.pid());
    append(&d.join("s.log"), "after", 0..3);
    assert!(wait_until(Duration::from_secs(5), || {
        lines_of(&d.join("out.json")).len() == 3
    }));
    t.stop();
    assert!(rss < 120 * 1024, "tailcar's RSS after the bomb: {rss} KiB");
    let err = t.stderr();
    assert_eq!(
        stat(&err, "plugin statistics", "memory_exceeded"),
        Some(1),
        "{err}"
    );
    assert_eq!(stat(&err, "plugin statistics", "failed_dropped"), Some(2));
    assert_eq!(stat(&err, "plugin statistics", "records_in"), Some(5));
    assert_eq!(stat(&err, "plugin statistics", "records_out"), Some(3));
}

#[test]
fn a_panic_message_reaches_the_log_and_the_batch_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("s.log"), "first\nPANIC here\nthird\n").unwrap();
    write_config(
        d,
        &hostile(
            "{ mode: panic, trigger: PANIC }",
            "        on_error: dead_letter\n        dead_letter: dlq",
        ),
    );
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("plugin stderr: ")
            && err.contains("hostile plugin panicked on purpose at line `PANIC here`"),
        "{err}"
    );
    assert!(
        err.contains(
            "plugin failed on a batch: trapped: wasm trap: wasm `unreachable` instruction executed"
        ),
        "{err}"
    );
    assert!(lines_of(&d.join("out.json")).is_empty());
    let dlq = json_records(&d.join("dlq.json"));
    let lines: Vec<&str> = dlq.iter().map(|r| r["line"].as_str().unwrap()).collect();
    assert_eq!(lines, ["first", "PANIC here", "third"]);
    assert_eq!(
        dlq[1]["fields"]["plugin_error"],
        "hostile: trapped: wasm trap: wasm `unreachable` instruction executed"
    );
    assert_eq!(stat(&err, "plugin statistics", "traps"), Some(1));
    assert_eq!(
        stat(&err, "plugin statistics", "failed_dead_lettered"),
        Some(3)
    );
}

#[test]
fn an_output_flood_is_cut_at_the_output_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = "x".repeat(200);
    fs::write(d.join("s.log"), format!("{line}\n{line}\n")).unwrap();
    write_config(
        d,
        &hostile(
            "{ mode: flood, copies: 100000 }",
            "        limits: { max_output: 1MiB, memory: 128MiB, deadline: 20s }",
        ),
    );
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("is over limits.max_output (1048576 bytes)"),
        "{err}"
    );
    // on_error: pass (the default): the two lines, once each.
    assert_eq!(lines_of(&d.join("out.json")), [line.clone(), line]);
    assert_eq!(stat(&err, "plugin statistics", "bad_outputs"), Some(1));
}

#[test]
fn each_on_error_policy_does_what_it_says() {
    for (policy, out, dlq, counter) in [
        ("pass", 3, 0, "failed_passed"),
        ("drop", 0, 0, "failed_dropped"),
        (
            "dead_letter\n        dead_letter: dlq",
            0,
            3,
            "failed_dead_lettered",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("s.log"), "a\nb FAIL\nc\n").unwrap();
        write_config(
            d,
            &hostile(
                "{ mode: fail, trigger: FAIL }",
                &format!("        on_error: {policy}"),
            ),
        );
        let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(lines_of(&d.join("out.json")).len(), out, "{policy}");
        assert_eq!(lines_of(&d.join("dlq.json")).len(), dlq, "{policy}");
        assert_eq!(stat(&err, "plugin statistics", "records_in"), Some(3));
        assert_eq!(
            stat(&err, "plugin statistics", "records_out"),
            Some(out as u64 + dlq as u64)
        );
        assert_eq!(stat(&err, "plugin statistics", counter), Some(3), "{err}");
        assert_eq!(stat(&err, "plugin statistics", "errors"), Some(1));
        assert!(
            err.contains(
                "plugin failed on a batch: returned an error: refusing the batch at line `b FAIL`"
            ),
            "{err}"
        );
        // The lines are checkpointed whatever the policy: nothing is read twice.
        assert_eq!(
            checkpoint_offset(&d.join("state"), &d.join("s.log")),
            Some(11)
        );
    }
}

#[test]
fn a_leaking_instance_is_recycled_and_plugin_logs_reach_tailcar() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // About 2 MB: a dozen or more reads, so a dozen or more batches.
    append(&d.join("s.log"), "leak", 0..12_000);
    write_config(
        d,
        &format!(
            "{}{}",
            hostile(
                "{ mode: leak, leak_kib: 4096 }",
                "        name: leaker\n        limits: { memory: 64MiB, recycle_above: 12MiB }\n"
            ),
            hostile(
                "{ mode: log, trigger: leak 00000007 }",
                "        name: logger"
            )
        ),
    );
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    let raw = lines_of(&d.join("out.json")).join("\n") + "\n";
    let counts = seq_counts(raw.as_bytes(), "leak");
    assert_eq!(assert_all_arrived(&counts, 12_000), 0);
    let leaker = "plugin=\"leaker\"";
    let recycled = stat(&err, leaker, "recycled").unwrap();
    assert!(recycled >= 2, "{err}");
    assert_eq!(stat(&err, leaker, "memory_exceeded"), Some(0));
    assert_eq!(stat(&err, leaker, "instances"), Some(recycled + 1));
    assert!(err.contains("plugin instance recycled"), "{err}");
    // The logging plugin: its message with its name, and its counter.
    assert!(
        err.lines()
            .any(|l| l.contains("plugin=\"logger\"") && l.contains("saw `leak 00000007")),
        "{err}"
    );
    assert!(err.contains("counters=lines_logged="), "{err}");
}
