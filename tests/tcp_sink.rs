//! The `tcp` sink against a real TCP listener on 127.0.0.1 (what Logstash's `tcp` input with
//! the `json_lines` codec reads): exact JSON lines in order; a server stopped and restarted on
//! the same port mid-stream loses nothing; TLS with a CA file, raw lines byte for byte.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::http_server::free_port;
use support::*;
use tokio::io::AsyncReadExt;

const T: Duration = Duration::from_secs(60);

/// A server that keeps every byte it receives, per connection.
struct LineServer {
    rt: Option<tokio::runtime::Runtime>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    addr: SocketAddr,
}

impl LineServer {
    fn start(addr: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> LineServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Restarting on the same port: another process's ephemeral port can hold it for a
        // moment, so keep trying for a few seconds.
        let bind = || {
            rt.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.set_reuseaddr(true)?;
                socket.bind(addr)?;
                socket.listen(64)
            })
        };
        let mut attempt = bind();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while attempt.is_err() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            attempt = bind();
        }
        let listener = attempt.expect("binding the line server");
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let rec = Arc::clone(&received);
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let index = {
                    let mut r = rec.lock().unwrap();
                    r.push(Vec::new());
                    r.len() - 1
                };
                let (rec, tls) = (Arc::clone(&rec), tls.clone());
                tokio::spawn(async move {
                    let mut stream: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => Box::new(s),
                            Err(_) => return,
                        },
                        None => Box::new(stream),
                    };
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        rec.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        LineServer {
            rt: Some(rt),
            received,
            addr,
        }
    }

    /// Every complete line received, in order, over all connections.
    fn lines(&self) -> Vec<Vec<u8>> {
        let r = self.received.lock().unwrap();
        r.iter()
            .flat_map(|conn| {
                let (complete, _) = complete_lines(conn);
                complete
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| l.to_vec())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn connections(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Closes the listener and every connection, as a server that goes down.
    fn stop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for LineServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config(dir: &Path, sink: &str) -> std::path::PathBuf {
    let text = format!(
        "checkpoint_dir: {d}/ck\nadmin: {{ enabled: false }}\nstreams:\n  app:\n    paths: [{d}/app.log]\n    parser: json\n    sinks: [out]\nsinks:\n  out:\n    type: tcp\n    batch: {{ max_records: 100, timeout: 100ms }}\n    retry: {{ initial_backoff: 50ms, max_backoff: 300ms }}\n    request_timeout: 5s\n{sink}",
        d = dir.display()
    );
    let path = dir.join("tailcar.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn json_lines(path: &Path, range: std::ops::Range<u64>) {
    use std::io::Write;
    let mut s = String::new();
    for i in range {
        s.push_str(&format!("{{\"seq\":{i},\"msg\":\"event {i}\"}}\n"));
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(s.as_bytes()).unwrap();
}

fn seqs(lines: &[Vec<u8>]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("not JSON: {e}: {}", String::from_utf8_lossy(l)));
            v["fields"]["seq"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn ships_json_lines_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = LineServer::start("127.0.0.1:0".parse().unwrap(), None);
    json_lines(&d.join("app.log"), 0..500);
    let cfg = config(d, &format!("    address: {}\n", server.addr));
    let mut tc = Tailcar::start(d, &["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        wait_until(T, || server.lines().len() >= 500),
        "{} lines arrived\n{}",
        server.lines().len(),
        tc.stderr()
    );
    tc.stop();
    let lines = server.lines();
    assert_eq!(seqs(&lines), (0..500).collect::<Vec<_>>());
    let first: serde_json::Value = serde_json::from_slice(&lines[0]).unwrap();
    assert_eq!(first["stream"], "app");
    assert_eq!(first["line"], r#"{"seq":0,"msg":"event 0"}"#);
    assert_eq!(first["fields"]["msg"], "event 0");
    assert_eq!(server.connections(), 1, "one connection carried it all");
    assert_eq!(
        checkpoint_offset(&d.join("ck"), &d.join("app.log")),
        Some(file_len(&d.join("app.log")))
    );
}

#[test]
fn a_server_restarted_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let addr = free_port();
    let mut server = LineServer::start(addr, None);
    let cfg = config(d, &format!("    address: {addr}\n"));
    let log = d.join("app.log");
    json_lines(&log, 0..300);
    let mut tc = Tailcar::start(d, &["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        wait_until(T, || server.lines().len() >= 300),
        "{}",
        tc.stderr()
    );
    let before = server.lines();
    let failed = tc.stderr_count("delivery failed; retrying");
    server.stop();
    // Written while the server is down: retried until it is back.
    json_lines(&log, 300..600);
    tc.wait_stderr_after("delivery failed; retrying", failed, T);
    let server = LineServer::start(addr, None);
    json_lines(&log, 600..900);
    assert!(
        wait_until(T, || {
            let got: std::collections::BTreeSet<u64> = seqs(&server.lines())
                .into_iter()
                .chain(seqs(&before))
                .collect();
            got.len() == 900
        }),
        "not every line arrived after the restart: {} + {}\n{}",
        before.len(),
        server.lines().len(),
        tc.stderr()
    );
    tc.stop();
    let all: Vec<u64> = seqs(&before)
        .into_iter()
        .chain(seqs(&server.lines()))
        .collect();
    let distinct: std::collections::BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct, (0..900).collect());
    assert!(
        tc.stderr().contains("delivery failed; retrying"),
        "the outage was retried:\n{}",
        tc.stderr()
    );
    // After the restart the lines arrive in order on the new connection.
    let after = seqs(&server.lines());
    assert!(after.windows(2).all(|w| w[0] < w[1]), "{after:?}");
}

#[test]
fn tls_with_a_ca_file_and_raw_lines_byte_for_byte() {
    use rustls_pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    fs::write(d.join("ca.pem"), &cert_pem).unwrap();
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let server = LineServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))),
    );
    let text = "plain line\nutf-8: grüße, 日本\ttab\n";
    fs::write(d.join("app.log"), text).unwrap();
    let cfg = config(
        d,
        &format!(
            "    address: localhost:{}\n    format: raw\n    tls: {{ ca_file: {}/ca.pem }}\n",
            server.addr.port(),
            d.display()
        ),
    );
    let mut tc = Tailcar::start(d, &["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        wait_until(T, || server.lines().len() >= 2),
        "{}",
        tc.stderr()
    );
    tc.stop();
    assert_eq!(
        server.lines(),
        vec![
            b"plain line".to_vec(),
            "utf-8: grüße, 日本\ttab".as_bytes().to_vec()
        ]
    );
}

#[test]
fn a_bad_address_is_refused_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d, "    address: logstash\n");
    let (code, _, err) = run(d, &["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("sinks.out.address") && err.contains("not host:port"),
        "{err}"
    );
}
