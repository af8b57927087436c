//! Parsers and enrichment with the real binary, on real lines: the Apache access sample through
//! a `regexp` parser, JSON lines (and lines that are not JSON), static fields.

mod support;

use std::fs;

use support::*;

/// The combined log format, written as a user would.
const COMBINED: &str = r#"^(?P<remote>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S*) (?P<protocol>[^"]*)" (?P<status>\d{3}) (?P<bytes>\S+) "(?P<referrer>[^"]*)" "(?P<agent>[^"]*)"$"#;

#[test]
fn the_apache_sample_parses_with_a_regexp_and_gets_static_fields() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_sample(d);
    let config = format!(
        "admin: {{ enabled: false }}\nstreams:\n  access:\n    paths: [{dir}/access.log]\n    parser: {{ type: regexp, pattern: '{pattern}', types: {{ status: int, bytes: int }}, time_key: time, time_format: '%d/%b/%Y:%H:%M:%S %z' }}\n    fields: {{ cluster: prod-eu-1, pod: \"${{POD_NAME:-web-0}}\" }}\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {dir}/out.json, format: json }}\n",
        dir = d.display(),
        pattern = COMBINED.replace('\'', "''"),
    );
    fs::write(d.join("tailcar.yaml"), config).unwrap();
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    let recs = json_records(&d.join("out.json"));
    assert_eq!(recs.len(), 10_000);
    // The sample has one malformed line (its user agent lacks the closing quote): it is kept,
    // with the reason, and counted.
    let unparsed: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r["fields"].get("parse_error").is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(unparsed, vec![8898]);
    assert_eq!(
        recs[8898]["fields"]["parse_error"],
        "line does not match the pattern"
    );
    assert!(
        recs[8898]["line"]
            .as_str()
            .unwrap()
            .ends_with("+http://www.google.com/bot.html")
    );
    assert!(err.contains("parse_errors=1"), "{err}");
    // Lines whose size is `-` keep the text; they are counted as type errors.
    let dashes = recs.iter().filter(|r| r["fields"]["bytes"] == "-").count();
    assert!(
        err.contains(&format!("type_errors={dashes}")),
        "{dashes} dashes:\n{err}"
    );
    let first = &recs[0]["fields"];
    assert_eq!(first["remote"], "83.149.9.216");
    assert_eq!(first["time"], "17/May/2015:10:05:03 +0000");
    assert_eq!(first["method"], "GET");
    assert_eq!(
        first["path"],
        "/presentations/logstash-monitorama-2013/images/kibana-search.png"
    );
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], 203023);
    assert_eq!(
        first["referrer"],
        "http://semicomplete.com/presentations/logstash-monitorama-2013/"
    );
    assert_eq!(first["cluster"], "prod-eu-1");
    assert_eq!(first["pod"], "web-0");
    assert_eq!(
        recs[0]["timestamp"], "2015-05-17T10:05:03Z",
        "the event time, from time_key"
    );
    assert!(err.contains("time_errors=0"), "{err}");
}

#[test]
fn nginx_and_apache2_parse_every_line_of_the_apache_sample() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_sample(d);
    for parser in ["nginx", "apache2"] {
        let config = format!(
            "checkpoint_dir: {dir}/ck-{parser}\nadmin: {{ enabled: false }}\nstreams:\n  access:\n    paths: [{dir}/access.log]\n    parser: {parser}\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {dir}/{parser}.json, format: json }}\n",
            dir = d.display()
        );
        fs::write(d.join("tailcar.yaml"), config).unwrap();
        let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
        assert_eq!(code, Some(0), "{err}");
        let recs = json_records(&d.join(format!("{parser}.json")));
        assert_eq!(recs.len(), 10_000);
        assert!(
            err.contains("parse_errors=0") && err.contains("time_errors=0"),
            "{parser}:\n{err}"
        );
        let f = &recs[0]["fields"];
        assert_eq!(
            (
                f["remote_addr"].as_str(),
                f["method"].as_str(),
                f["status"].as_i64(),
                f["bytes"].as_i64()
            ),
            (Some("83.149.9.216"), Some("GET"), Some(200), Some(203023))
        );
        assert_eq!(recs[0]["timestamp"], "2015-05-17T10:05:03Z");
        // The line cut short inside its user agent.
        assert_eq!(
            recs[8898]["fields"]["user_agent"],
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html"
        );
        assert_eq!(
            recs[8898]["fields"]["path"],
            "/scripts/grok-py-test/configlib.py"
        );
        assert_eq!(recs[8898]["fields"]["bytes"], 235);
        let last = &recs[9999]["fields"];
        assert_eq!(last["remote_addr"], "46.105.14.53", "{last}");
        assert_eq!(last["path"], "/blog/tags/puppet?flav=rss20");
        assert_eq!(
            last["user_agent"],
            "UniversalFeedParser/4.2-pre-314-svn +http://feedparser.org/"
        );
        assert_eq!(recs[9999]["timestamp"], "2015-05-20T21:05:15Z");
    }
}

#[test]
fn the_documented_access_stream_drops_health_checks_and_enriches() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lines = String::new();
    for (i, path) in [
        "/api/items",
        "/healthz",
        "/readyz",
        "/api/orders",
        "/healthz/deep",
    ]
    .iter()
    .enumerate()
    {
        lines.push_str(&format!(
            "10.0.0.{i} - - [22/Nov/2026:10:00:0{i} +0000] \"GET {path} HTTP/1.1\" 200 {i} \"-\" \"kube-probe/1.31\"\n"
        ));
    }
    fs::write(d.join("access.log"), lines).unwrap();
    // The issue's example stream, with a file sink standing in for Elasticsearch.
    let config = format!(
        r#"admin: {{ enabled: false }}
streams:
  access:
    paths: [{dir}/access.log]
    parser: nginx
    filters:
      - grep: {{ exclude: {{ path: '^/(healthz|readyz)$' }} }}
    fields: {{ cluster: prod-eu-1, pod: "${{POD_NAME:-web-0}}", namespace: "${{POD_NAMESPACE:-shop}}" }}
    sinks: [es]
sinks:
  es: {{ type: file, path: {dir}/out.json, format: json }}
"#,
        dir = d.display()
    );
    fs::write(d.join("tailcar.yaml"), config).unwrap();
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    let recs = json_records(&d.join("out.json"));
    let paths: Vec<&str> = recs
        .iter()
        .map(|r| r["fields"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["/api/items", "/api/orders", "/healthz/deep"]);
    assert_eq!(recs[1]["fields"]["namespace"], "shop");
    assert_eq!(recs[1]["timestamp"], "2026-11-22T10:00:03Z");
    assert!(
        err.contains("filtered=2"),
        "dropped records are counted:\n{err}"
    );
    // The dropped lines are acknowledged: a second run has nothing left to read.
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json_records(&d.join("out.json")).len(), 3);
    assert!(err.contains("records=0"), "{err}");
}

#[test]
fn records_are_enriched_from_the_downward_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log"), "{\"msg\":\"hello\"}\n").unwrap();
    fs::create_dir(d.join("podinfo")).unwrap();
    fs::write(
        d.join("podinfo/labels"),
        "app=\"shop\"\npod-template-hash=\"5d9c8\"\n",
    )
    .unwrap();
    let config = format!(
        "admin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{dir}/app.log]\n    parser: json\n    enrich: {{ pod: true, labels: {dir}/podinfo/labels, file: true }}\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {dir}/out.json, format: json }}\n",
        dir = d.display()
    );
    fs::write(d.join("tailcar.yaml"), config).unwrap();
    let env = [
        ("POD_NAME", "shop-7f9d-x2k"),
        ("POD_NAMESPACE", "prod"),
        ("NODE_NAME", "node-3"),
        ("CONTAINER_NAME", "app"),
    ];
    let (code, _, err) = run_env(d, &["run", "--config", "tailcar.yaml", "--once"], &env);
    assert_eq!(code, Some(0), "{err}");
    let recs = json_records(&d.join("out.json"));
    assert_eq!(
        recs[0]["fields"]["kubernetes"],
        serde_json::json!({
            "pod_name": "shop-7f9d-x2k", "namespace": "prod", "node_name": "node-3", "container_name": "app",
            "labels": {"app": "shop", "pod-template-hash": "5d9c8"}
        })
    );
    assert_eq!(recs[0]["fields"]["msg"], "hello");
    assert_eq!(
        recs[0]["fields"]["file"],
        d.join("app.log").display().to_string()
    );
}

/// Runs `parser_yaml` over `content` with `--once`; returns the JSON records and stderr.
fn parse_with(parser_yaml: &str, content: &[u8]) -> (Vec<serde_json::Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("in.log"), content).unwrap();
    let config = format!(
        "admin: {{ enabled: false }}\nstreams:\n  s:\n    paths: [{dir}/in.log]\n    parser: {parser_yaml}\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {dir}/out.json, format: json }}\n",
        dir = d.display()
    );
    fs::write(d.join("tailcar.yaml"), config).unwrap();
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    (json_records(&d.join("out.json")), err)
}

#[test]
fn csv_records_may_span_lines_inside_quotes() {
    let (recs, err) = parse_with(
        "{ type: csv, fields: [id, user, comment], types: { id: int } }",
        b"1,alice,plain\n2,\"bob, jr\",\"first line\nsecond line\"\n3,carol,\"say \"\"hi\"\"\"\n",
    );
    assert_eq!(recs.len(), 3, "{err}");
    assert_eq!(
        recs[1]["fields"],
        serde_json::json!({"id": 2, "user": "bob, jr", "comment": "first line\nsecond line"})
    );
    assert_eq!(recs[2]["fields"]["comment"], "say \"hi\"");
}

#[test]
fn syslog_logfmt_and_tsv_lines() {
    let (recs, err) = parse_with(
        "syslog",
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed\n<13>Feb  5 17:32:18 10.0.0.99 myapp[4711]: Use the BFG!\nnot syslog\n",
    );
    assert_eq!(recs[0]["fields"]["severity"], "crit");
    assert_eq!(recs[0]["timestamp"], "2003-10-11T22:14:15.003Z");
    assert_eq!(recs[1]["fields"]["procid"], 4711);
    assert!(recs[2]["fields"]["parse_error"].is_string());
    assert!(err.contains("parse_errors=1"), "{err}");

    let (recs, _) = parse_with(
        "{ type: logfmt, types: { status: int }, time_key: ts }",
        b"ts=2026-11-22T10:00:00Z level=warn msg=\"slow request\" status=504 retried\n",
    );
    assert_eq!(recs[0]["fields"]["msg"], "slow request");
    assert_eq!(recs[0]["fields"]["status"], 504);
    assert_eq!(recs[0]["fields"]["retried"], true);
    assert_eq!(recs[0]["timestamp"], "2026-11-22T10:00:00Z");

    let (recs, _) = parse_with("{ type: tsv, fields: [a, b] }", b"x\t\"y\"\n");
    assert_eq!(
        recs[0]["fields"],
        serde_json::json!({"a": "x", "b": "\"y\""})
    );
}

#[test]
fn cri_partial_lines_are_merged() {
    let content = b"2026-11-22T10:00:00.000000001Z stdout F whole line\n\
2026-11-22T10:00:01.000000001Z stdout P first part, \n\
2026-11-22T10:00:01.000000002Z stdout P second part, \n\
2026-11-22T10:00:01.000000003Z stdout F last part\n\
2026-11-22T10:00:02.000000001Z stderr P an error cut \n\
2026-11-22T10:00:02.000000002Z stdout F stdout interrupts it\n\
2026-11-22T10:00:03.000000001Z stderr F error alone\n";
    let (recs, err) = parse_with("cri", content);
    let logs: Vec<(&str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["fields"]["stream"].as_str().unwrap(),
                r["fields"]["log"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        logs,
        vec![
            ("stdout", "whole line"),
            ("stdout", "first part, second part, last part"),
            ("stderr", "an error cut "),
            ("stdout", "stdout interrupts it"),
            ("stderr", "error alone"),
        ],
        "{err}"
    );
    assert_eq!(
        recs[1]["timestamp"], "2026-11-22T10:00:01.000000001Z",
        "the first part's time"
    );
    assert!(err.contains("parse_errors=0"), "{err}");
}

#[test]
fn docker_entries_split_at_16_kib_are_merged() {
    let long: String = (0..40 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut content = String::new();
    content.push_str(
        "{\"log\":\"short line\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T10:00:00Z\"}\n",
    );
    let chunks: Vec<&str> = [&long[..16384], &long[16384..32768], &long[32768..]].to_vec();
    for (i, c) in chunks.iter().enumerate() {
        let nl = if i == 2 { "\\n" } else { "" };
        content.push_str(&format!(
            "{{\"log\":\"{c}{nl}\",\"stream\":\"stderr\",\"time\":\"2026-11-22T10:00:0{}Z\"}}\n",
            i + 1
        ));
    }
    let (recs, err) = parse_with("docker", content.as_bytes());
    assert_eq!(recs.len(), 2, "{err}");
    assert_eq!(recs[0]["fields"]["log"], "short line");
    assert_eq!(
        recs[1]["fields"]["log"].as_str().unwrap(),
        long,
        "40 KiB rejoined"
    );
    assert_eq!(recs[1]["fields"]["stream"], "stderr");
    assert_eq!(recs[1]["timestamp"], "2026-11-22T10:00:01Z");
}

#[test]
fn a_kubernetes_audit_event_parses_with_its_nesting_and_time() {
    // The shape of an audit.k8s.io/v1 Event as the API server writes it (one JSON per line).
    let event = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"3e0f6b9a-1c2d-4e5f-8a9b-0c1d2e3f4a5b","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/pods?limit=500","verb":"list","user":{"username":"system:serviceaccount:shop:deployer","uid":"b1c2","groups":["system:serviceaccounts","system:serviceaccounts:shop","system:authenticated"]},"sourceIPs":["10.0.3.7"],"userAgent":"kubectl/v1.31.0 (linux/amd64) kubernetes/abc1234","objectRef":{"resource":"pods","namespace":"shop","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-22T10:00:00.123456Z","stageTimestamp":"2026-11-22T10:00:00.140000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"deployer/shop\""}}"#;
    let (recs, err) = parse_with(
        "{ type: json, time_key: requestReceivedTimestamp }",
        format!("{event}\n").as_bytes(),
    );
    let f = &recs[0]["fields"];
    assert_eq!(f["verb"], "list", "{err}");
    assert_eq!(f["user"]["username"], "system:serviceaccount:shop:deployer");
    assert_eq!(f["user"]["groups"][2], "system:authenticated");
    assert_eq!(f["objectRef"]["resource"], "pods");
    assert_eq!(f["responseStatus"]["code"], 200);
    assert_eq!(f["annotations"]["authorization.k8s.io/decision"], "allow");
    assert_eq!(recs[0]["timestamp"], "2026-11-22T10:00:00.123456Z");
}

#[test]
fn json_lines_become_fields_and_other_lines_are_kept_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("app.log"),
        "{\"level\":\"info\",\"msg\":\"started\",\"port\":8080}\nnot json at all\n{\"req\":{\"id\":\"r1\",\"ms\":12.5}}\n[1,2]\n",
    )
    .unwrap();
    let config = format!(
        "admin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{dir}/app.log]\n    parser: json\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {dir}/out.json, format: json }}\n",
        dir = d.display()
    );
    fs::write(d.join("tailcar.yaml"), config).unwrap();
    let (code, _, err) = run(d, &["run", "--config", "tailcar.yaml", "--once"]);
    assert_eq!(code, Some(0), "{err}");
    let recs = json_records(&d.join("out.json"));
    assert_eq!(recs.len(), 4, "nothing is dropped");
    assert_eq!(
        recs[0]["fields"],
        serde_json::json!({"level": "info", "msg": "started", "port": 8080})
    );
    assert_eq!(recs[1]["line"], "not json at all");
    assert!(
        recs[1]["fields"]["parse_error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
    assert_eq!(recs[2]["fields"]["req"]["ms"], 12.5);
    assert_eq!(
        recs[3]["fields"]["parse_error"],
        "not a JSON object but an array"
    );
    assert!(err.contains("parse_errors=2"), "{err}");
}
