//! The `kafka` sink against a real Kafka-protocol broker (tansu, installed by
//! `scripts/test.sh`, memory storage, on a free port), read back with an independent client
//! (rskafka): every line, key, header and partition; a broker stopped and restarted mid-stream
//! loses nothing that was written to the file; SASL SCRAM-SHA-512/256 against a broker that
//! requires it (tansu offers no PLAIN).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::http_server::free_port;
use support::*;

const T: Duration = Duration::from_secs(90);

/// A tansu broker on 127.0.0.1, stopped on drop.
struct Broker {
    child: Child,
    addr: SocketAddr,
}

fn tansu() -> String {
    let home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap()));
    let path = format!("{home}/bin/tansu");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: `bash scripts/test.sh` installs it (cargo install tansu --version 0.6.0 --locked --features dynostore,libsql)"
    );
    path
}

impl Broker {
    /// A broker with memory storage, in a directory of its own.
    fn start(addr: SocketAddr, extra: &[&str]) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir.path(), addr, "memory://tansu/", extra)
    }

    /// A broker running in `dir` (where `sqlite://NAME` storage keeps its file).
    fn start_in(dir: &Path, addr: SocketAddr, storage: &str, extra: &[&str]) -> Broker {
        let url = format!("tcp://{addr}");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                storage,
                "--silent",
            ])
            .args(extra)
            // It reads `./.env` and LISTENER_URL-style variables: run it where there is none.
            .current_dir(dir)
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tansu");
        assert!(
            wait_until(Duration::from_secs(30), || std::net::TcpStream::connect(
                addr
            )
            .is_ok()),
            "tansu did not listen on {addr}"
        );
        Broker { child, addr }
    }

    /// `tansu user create` (the broker must not require authentication yet).
    fn create_user(&self, name: &str, password: &str, mechanism: &str) {
        self.cli(&[
            "user",
            "create",
            name,
            password,
            "--mechanism",
            mechanism,
            "--broker",
            &format!("tcp://{}", self.addr),
        ]);
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        self.cli(&[
            "topic",
            "create",
            name,
            "--broker",
            &format!("tcp://{}", self.addr),
            "--partitions",
            &partitions.to_string(),
        ]);
    }

    fn cli(&self, args: &[&str]) {
        let out = Command::new(tansu())
            .args(args)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu {}: {}",
            args[..2].join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One record read back: partition, key, value as JSON, headers.
#[derive(Debug)]
struct Got {
    partition: i32,
    key: Option<String>,
    value: serde_json::Value,
    headers: BTreeMap<String, String>,
}

/// Everything in `topic`'s `partitions`, read with rskafka.
fn consume(addr: SocketAddr, topic: &str, partitions: i32) -> Vec<Got> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = rskafka::client::ClientBuilder::new(vec![addr.to_string()])
            .build()
            .await
            .expect("rskafka client");
        let mut all = Vec::new();
        for p in 0..partitions {
            let pc = client
                .partition_client(
                    topic,
                    p,
                    rskafka::client::partition::UnknownTopicHandling::Retry,
                )
                .await
                .unwrap();
            let mut offset = 0;
            loop {
                let (records, high) = pc.fetch_records(offset, 1..10_000_000, 100).await.unwrap();
                for r in &records {
                    all.push(Got {
                        partition: p,
                        key: r
                            .record
                            .key
                            .as_ref()
                            .map(|k| String::from_utf8(k.clone()).unwrap()),
                        value: serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap(),
                        headers: r
                            .record
                            .headers
                            .iter()
                            .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap()))
                            .collect(),
                    });
                    offset = r.offset + 1;
                }
                if records.is_empty() || offset >= high {
                    break;
                }
            }
        }
        all
    })
}

fn config(dir: &Path, sink: &str) -> std::path::PathBuf {
    let text = format!(
        "checkpoint_dir: {d}/ck\nadmin: {{ enabled: false }}\nstreams:\n  access:\n    paths: [{d}/access.log]\n    parser: json\n    sinks: [kafka]\nsinks:\n  kafka:\n    type: kafka\n    batch: {{ max_records: 200, timeout: 100ms }}\n    retry: {{ initial_backoff: 100ms, max_backoff: 1s }}\n    request_timeout: 5s\n{sink}",
        d = dir.display()
    );
    let path = dir.join("tailcar.yaml");
    fs::write(&path, text).unwrap();
    path
}

const PODS: [&str; 5] = ["web-0", "web-1", "api-0", "api-1", "worker-7"];

fn write_lines(path: &Path, range: std::ops::Range<u64>) {
    use std::io::Write;
    let mut s = String::new();
    for i in range {
        let pod = PODS[(i % PODS.len() as u64) as usize];
        s.push_str(&format!(
            "{{\"seq\":{i},\"pod\":\"{pod}\",\"msg\":\"grüße {i}\"}}\n"
        ));
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(s.as_bytes())
        .unwrap();
}

fn seq(g: &Got) -> u64 {
    g.value["fields"]["seq"].as_u64().unwrap()
}

#[test]
fn every_line_with_its_key_headers_and_partition() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Broker::start(free_port(), &[]);
    broker.create_topic("logs-access", 3);
    write_lines(&d.join("access.log"), 0..2000);
    let cfg = config(
        d,
        &format!(
            "    bootstrap_servers: [\"{}\"]\n    topic: \"logs-{{stream}}\"\n    key: \"{{pod}}\"\n    headers: {{ pod: \"{{pod}}\", source: \"tailcar/{{stream}}\" }}\n    compression: zstd\n",
            broker.addr
        ),
    );
    let mut tc = Tailcar::start(d, &["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        wait_until(T, || consume(broker.addr, "logs-access", 3).len() >= 2000),
        "not all records arrived\n{}",
        tc.stderr()
    );
    tc.stop();
    let got = consume(broker.addr, "logs-access", 3);
    let seqs: Vec<u64> = {
        let mut s: Vec<u64> = got.iter().map(seq).collect();
        s.sort_unstable();
        s
    };
    assert_eq!(
        seqs,
        (0..2000).collect::<Vec<_>>(),
        "every line exactly once"
    );
    let mut partition_of: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for g in &got {
        let pod = g.value["fields"]["pod"].as_str().unwrap();
        assert_eq!(g.key.as_deref(), Some(pod));
        assert_eq!(g.headers.get("pod").map(String::as_str), Some(pod));
        assert_eq!(
            g.headers.get("source").map(String::as_str),
            Some("tailcar/access")
        );
        assert_eq!(g.value["stream"], "access");
        assert!(g.value["line"].as_str().unwrap().contains("grüße"));
        partition_of
            .entry(pod.to_string())
            .or_default()
            .insert(g.partition);
    }
    for (pod, parts) in &partition_of {
        assert_eq!(parts.len(), 1, "{pod} is in one partition: {parts:?}");
    }
    let used: BTreeSet<i32> = partition_of.values().flatten().copied().collect();
    assert!(used.len() >= 2, "keys spread over partitions: {used:?}");
    // Within a partition, each pod's lines are in file order.
    for p in 0..3 {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for g in got.iter().filter(|g| g.partition == p) {
            let pod = g.key.clone().unwrap();
            let s = seq(g);
            if let Some(prev) = last.insert(pod.clone(), s) {
                assert!(prev < s, "{pod}: {prev} before {s} in partition {p}");
            }
        }
    }
    assert_eq!(
        checkpoint_offset(&d.join("ck"), &d.join("access.log")),
        Some(file_len(&d.join("access.log")))
    );
}

#[test]
fn a_broker_restarted_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let addr = free_port();
    let mut broker = Broker::start(addr, &[]);
    broker.create_topic("logs", 1);
    let log = d.join("access.log");
    write_lines(&log, 0..500);
    let cfg = config(
        d,
        &format!("    bootstrap_servers: [\"{addr}\"]\n    topic: logs\n    compression: lz4\n"),
    );
    let mut tc = Tailcar::start(d, &["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        wait_until(T, || consume(addr, "logs", 1).len() >= 500),
        "{}",
        tc.stderr()
    );
    // Memory storage: what the first broker held is read now, before it goes.
    let before: Vec<u64> = consume(addr, "logs", 1).iter().map(seq).collect();
    let failed = tc.stderr_count("delivery failed; retrying");
    broker.stop();
    write_lines(&log, 500..1000);
    // Those lines meet the broker gone: tailcar retries them.
    tc.wait_stderr_after("delivery failed; retrying", failed, T);
    let broker = Broker::start(addr, &[]);
    broker.create_topic("logs", 1);
    write_lines(&log, 1000..1500);
    let all = || -> BTreeSet<u64> {
        consume(addr, "logs", 1)
            .iter()
            .map(seq)
            .chain(before.iter().copied())
            .collect()
    };
    assert!(
        wait_until(T, || all().len() == 1500),
        "{} of 1500 distinct lines\n{}",
        all().len(),
        tc.stderr()
    );
    tc.stop();
    let after: Vec<u64> = consume(addr, "logs", 1).iter().map(seq).collect();
    assert!(
        after.windows(2).all(|w| w[0] < w[1]),
        "the restarted broker got the lines in order"
    );
    assert!(
        tc.stderr().contains("delivery failed; retrying"),
        "the outage was retried:\n{}",
        tc.stderr()
    );
}

#[test]
fn a_missing_topic_is_retried_with_its_name_until_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Broker::start(free_port(), &[]);
    write_lines(&d.join("access.log"), 0..50);
    let cfg = config(
        d,
        &format!(
            "    bootstrap_servers: [\"{}\"]\n    topic: later\n    acks: leader\n",
            broker.addr
        ),
    );
    let mut tc = Tailcar::start(d, &["run", "--config", cfg.to_str().unwrap()]);
    tc.wait_stderr("topic `later` does not exist", T);
    broker.create_topic("later", 1);
    assert!(
        wait_until(T, || consume(broker.addr, "later", 1).len() >= 50),
        "{}",
        tc.stderr()
    );
    tc.stop();
    assert_eq!(consume(broker.addr, "later", 1).len(), 50);
}

#[test]
fn sasl_scram_against_a_broker_that_requires_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let state = tempfile::tempdir().unwrap();
    let addr = free_port();
    // Users and topics are made while the broker is open, kept in SQLite, then the broker
    // comes back requiring authentication.
    let mut open = Broker::start_in(state.path(), addr, "sqlite://tansu.db", &[]);
    open.create_user("tailcar", "s3cret,pass=word", "scram512");
    open.create_user("shipper", "right-password", "scram256");
    for topic in ["scram512", "scram256", "refused"] {
        open.create_topic(topic, 1);
    }
    open.stop();
    std::thread::sleep(Duration::from_millis(500));
    let mut secured = Broker::start_in(
        state.path(),
        addr,
        "sqlite://tansu.db",
        &["--authentication"],
    );

    fs::write(d.join("password"), "s3cret,pass=word\n").unwrap();
    let mut streams = String::new();
    for s in ["a", "b", "c"] {
        write_lines(&d.join(format!("{s}.log")), 0..300);
        streams.push_str(&format!(
            "  {s}:\n    paths: [{}/{s}.log]\n    parser: json\n    sinks: [{s}]\n",
            d.display()
        ));
    }
    let sink = |name: &str, topic: &str, sasl: &str| {
        format!(
            "  {name}:\n    type: kafka\n    bootstrap_servers: [\"{addr}\"]\n    topic: {topic}\n    batch: {{ max_records: 100, timeout: 100ms }}\n    retry: {{ initial_backoff: 100ms, max_backoff: 500ms }}\n    sasl: {sasl}\n"
        )
    };
    let text = format!(
        "checkpoint_dir: {d}/ck\nadmin: {{ enabled: false }}\ngrace_period: 1s\nstreams:\n{streams}sinks:\n{}{}{}",
        sink(
            "a",
            "scram512",
            &format!(
                "{{ mechanism: SCRAM-SHA-512, user: tailcar, password_file: {}/password }}",
                d.display()
            )
        ),
        // A wrong password: nothing is acknowledged, the failure is logged and retried.
        sink(
            "b",
            "refused",
            "{ mechanism: SCRAM-SHA-256, user: shipper, password: wrong-password }"
        ),
        sink(
            "c",
            "scram256",
            "{ mechanism: SCRAM-SHA-256, user: shipper, password: right-password }"
        ),
        d = d.display()
    );
    fs::write(d.join("tailcar.yaml"), text).unwrap();
    let mut tc = Tailcar::start(d, &["run", "--config", "tailcar.yaml"]);
    let done = |s: &str| {
        checkpoint_offset(&d.join("ck"), &d.join(format!("{s}.log")))
            == Some(file_len(&d.join(format!("{s}.log"))))
    };
    assert!(wait_until(T, || done("a") && done("c")), "{}", tc.stderr());
    assert!(
        wait_until(T, || tc
            .stderr()
            .contains("SASL SCRAM-SHA-256: the server refused")),
        "{}",
        tc.stderr()
    );
    // The refused sink still holds its lines when the grace period ends: exit 75, nothing of
    // them checkpointed, so they are read again on the next start.
    tc.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(tc.wait(Duration::from_secs(20)).code(), Some(75));
    assert!(!done("b"), "nothing acknowledged with a wrong password");
    assert_eq!(
        checkpoint_offset(&d.join("ck"), &d.join("b.log")).unwrap_or(0),
        0
    );
    assert!(
        !tc.stderr().contains("wrong-password"),
        "secrets are not logged"
    );

    // Read back with the broker open again.
    secured.stop();
    std::thread::sleep(Duration::from_millis(500));
    let _open = Broker::start_in(state.path(), addr, "sqlite://tansu.db", &[]);
    for topic in ["scram512", "scram256"] {
        let seqs: BTreeSet<u64> = consume(addr, topic, 1).iter().map(seq).collect();
        assert_eq!(seqs, (0..300).collect(), "{topic}");
    }
    assert!(consume(addr, "refused", 1).is_empty());
}
