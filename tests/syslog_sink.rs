//! The `syslog` sink against a real rsyslog (Debian's `rsyslogd`, installed by
//! `scripts/test.sh`), started here with its own configuration on free ports (imtcp, imudp;
//! no system daemon, no `/dev/log`) and writing what it parses to a file: octet-counted frames
//! with embedded newlines and UTF-8 arrive whole with the right priority, hostname, app-name and
//! msgid; RFC 3164 over UDP; TLS; a message over the size limit cut and counted.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::http_server::free_port;
use support::*;

const T: Duration = Duration::from_secs(60);

/// rsyslogd in the foreground with a test configuration, stopped on drop.
struct Rsyslog {
    child: Child,
    out: PathBuf,
    port: u16,
}

impl Rsyslog {
    /// `input` is the rsyslog input (with `PORT` for the port); what it receives goes to
    /// `out.log` as tab-separated pri, hostname, app-name, msgid, JSON-escaped message.
    fn start(dir: &Path, global: &str, input: &str, udp: bool) -> Rsyslog {
        let port = if udp {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            free_port().port()
        };
        let work = dir.join("rsyslog");
        fs::create_dir_all(&work).unwrap();
        let out = work.join("out.log");
        let conf = format!(
            r#"global(workDirectory="{w}" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off" {global})
{input}
template(name="fields" type="string" string="%pri%\t%hostname%\t%app-name%\t%msgid%\t%msg:::json%\n")
ruleset(name="test") {{ action(type="omfile" file="{out}" template="fields") }}
"#,
            w = work.display(),
            out = out.display(),
            input = input.replace("PORT", &port.to_string()),
        );
        let conf_path = work.join("rsyslog.conf");
        fs::write(&conf_path, conf).unwrap();
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf_path)
            .arg("-i")
            .arg(work.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting rsyslogd (bash scripts/test.sh installs it)");
        if !udp {
            assert!(
                wait_until(Duration::from_secs(20), || std::net::TcpStream::connect((
                    "127.0.0.1",
                    port
                ))
                .is_ok()),
                "rsyslogd did not listen on {port}"
            );
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
        Rsyslog { child, out, port }
    }

    /// The messages received: (pri, hostname, app-name, msgid, message).
    fn messages(&self) -> Vec<(u32, String, String, String, String)> {
        let text = fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.splitn(5, '\t').collect();
                let msg = serde_json::from_str::<String>(&format!("\"{}\"", f[4])).unwrap();
                (
                    f[0].parse().unwrap(),
                    f[1].to_string(),
                    f[2].to_string(),
                    f[3].to_string(),
                    msg,
                )
            })
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, stream: &str, sink: &str) -> PathBuf {
    let text = format!(
        "checkpoint_dir: {d}/ck\nadmin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n{stream}    sinks: [syslog]\nsinks:\n  syslog:\n    type: syslog\n    batch: {{ max_records: 100, timeout: 100ms }}\n    retry: {{ initial_backoff: 100ms, max_backoff: 1s }}\n{sink}",
        d = dir.display()
    );
    let path = dir.join("tailcar.yaml");
    fs::write(&path, text).unwrap();
    path
}

const TCP_INPUT: &str = r#"module(load="imtcp")
input(type="imtcp" port="PORT" ruleset="test")"#;

#[test]
fn octet_counted_rfc5424_over_tcp_keeps_multiline_utf8_messages_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Rsyslog::start(d, "", TCP_INPUT, false);
    let mut text = String::new();
    for i in 0..200 {
        let level = ["info", "error", "warn", "debug"][i % 4];
        text.push_str(&format!(
            "2026-11-22 10:00:{:02} {level} request {i} für Zürich\n",
            i % 60
        ));
        if i % 10 == 0 {
            text.push_str(&format!("  at frame one of {i}\n  at frame two\n"));
        }
    }
    fs::write(d.join("app.log"), &text).unwrap();
    let cfg = config(
        d,
        "    multiline: { start: '^\\d{4}-' }\n    parser: { type: regexp, pattern: '^\\S+ \\S+ (?P<level>\\w+) request (?P<n>\\d+)' }\n",
        &format!(
            "    address: 127.0.0.1:{}\n    facility: local4\n    severity: \"{{level}}\"\n    hostname: web-7f9c\n    msg_id: \"req{{n}}\"\n",
            server.port
        ),
    );
    let mut tc = Tailcar::start(d, &["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        wait_until(T, || server.messages().len() >= 200),
        "{} messages\n{}",
        server.messages().len(),
        tc.stderr()
    );
    tc.stop();
    let got = server.messages();
    assert_eq!(got.len(), 200);
    for (i, (pri, host, app, msgid, msg)) in got.iter().enumerate() {
        let level = ["info", "error", "warn", "debug"][i % 4];
        let severity = [6, 3, 4, 7][i % 4];
        assert_eq!(*pri, 20 * 8 + severity, "message {i}: {msg}");
        assert_eq!(host, "web-7f9c");
        assert_eq!(app, "app");
        assert_eq!(msgid, &format!("req{i}"));
        let mut want = format!(
            "2026-11-22 10:00:{:02} {level} request {i} für Zürich",
            i % 60
        );
        if i % 10 == 0 {
            want.push_str(&format!("\n  at frame one of {i}\n  at frame two"));
        }
        assert_eq!(msg, &want, "message {i} arrived whole");
    }
}

#[test]
fn rfc3164_over_udp() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Rsyslog::start(
        d,
        "",
        r#"module(load="imudp")
input(type="imudp" address="127.0.0.1" port="PORT" ruleset="test")"#,
        true,
    );
    let lines: Vec<String> = (0..50).map(|i| format!("udp message {i}")).collect();
    fs::write(d.join("app.log"), lines.join("\n") + "\n").unwrap();
    let cfg = config(
        d,
        "",
        &format!(
            "    address: 127.0.0.1:{}\n    protocol: udp\n    format: rfc3164\n    app_name: nginx\n    hostname: node-1\n",
            server.port
        ),
    );
    let mut tc = Tailcar::start(d, &["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        wait_until(T, || server.messages().len() >= 50),
        "{} messages\n{}",
        server.messages().len(),
        tc.stderr()
    );
    tc.stop();
    let got = server.messages();
    // rsyslog keeps the space after an RFC 3164 tag's colon in `msg`.
    let msgs: Vec<&str> = got.iter().map(|m| m.4.strip_prefix(' ').unwrap()).collect();
    assert_eq!(msgs, lines.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        got.iter()
            .all(|m| m.0 == 8 + 6 && m.1 == "node-1" && m.2 == "nginx")
    );
}

#[test]
fn tls_and_a_cut_message_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
    fs::write(d.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let global = format!(
        r#"defaultNetstreamDriver="ossl" defaultNetstreamDriverCAFile="{d}/cert.pem" defaultNetstreamDriverCertFile="{d}/cert.pem" defaultNetstreamDriverKeyFile="{d}/key.pem""#,
        d = d.display()
    );
    let server = Rsyslog::start(
        d,
        &global,
        r#"module(load="imtcp" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" port="PORT" ruleset="test")"#,
        false,
    );
    let long = "x".repeat(3000);
    fs::write(d.join("app.log"), format!("short one\n{long}\nlast\n")).unwrap();
    let cfg = config(
        d,
        "",
        &format!(
            "    address: localhost:{}\n    protocol: tls\n    tls: {{ ca_file: {}/cert.pem }}\n    max_message_size: 1KiB\n",
            server.port,
            d.display()
        ),
    );
    let mut tc = Tailcar::start(d, &["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        wait_until(T, || server.messages().len() >= 3),
        "{} messages\n{}",
        server.messages().len(),
        tc.stderr()
    );
    tc.stop();
    let got = server.messages();
    assert_eq!(got[0].4, "short one");
    assert!(
        got[1].4.len() < 1024 && got[1].4.len() > 900 && got[1].4.chars().all(|c| c == 'x'),
        "cut to the limit: {} bytes",
        got[1].4.len()
    );
    assert_eq!(got[2].4, "last");
    assert_eq!(stat(&tc.stderr(), "sink statistics", "truncated"), Some(1));
}
