//! A real HTTP server on 127.0.0.1 for the sink tests: it records every request (bodies
//! gunzipped) and answers from a script (status codes, `Retry-After`, or no answer at all),
//! then 200 once the script is used up.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    /// Accept the request and never answer.
    Hang,
    /// An Elasticsearch bulk response: these statuses for the first items, 201 for the rest.
    Bulk(Vec<u16>),
    /// This status, content type and body.
    Body(u16, &'static str, Vec<u8>),
}

/// What the server does once the script is used up.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    Ok,
    /// Answer 200 after this many milliseconds.
    Slow(u64),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
    pub status: u16,
    /// For bulk replies: the status given to each item.
    pub items: Vec<u16>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Default>>,
    _rt: tokio::runtime::Runtime,
}

impl TestServer {
    pub fn start(script: Vec<Reply>) -> TestServer {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script)
    }

    pub fn start_on(addr: SocketAddr, script: Vec<Reply>) -> TestServer {
        Self::start_with(addr, script, None)
    }

    /// A server on 127.0.0.1 speaking TLS with `cert` (PEM) and `key` (PEM).
    pub fn start_tls(cert: &str, key: &str) -> TestServer {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start_with("127.0.0.1:0".parse().unwrap(), vec![], Some(acceptor))
    }

    fn start_with(
        addr: SocketAddr,
        script: Vec<Reply>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> TestServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let default = Arc::new(Mutex::new(Default::Ok));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("binding the test server");
        let addr = listener.local_addr().unwrap();
        let (rec, scr, def) = (
            Arc::clone(&received),
            Arc::clone(&script),
            Arc::clone(&default),
        );
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tls = tls.clone();
                let (rec, scr, def) = (Arc::clone(&rec), Arc::clone(&scr), Arc::clone(&def));
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (rec, scr, def) =
                            (Arc::clone(&rec), Arc::clone(&scr), Arc::clone(&def));
                        async move {
                            let (parts, body) = req.into_parts();
                            let raw = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let gzip = parts
                                .headers
                                .get("content-encoding")
                                .is_some_and(|v| v == "gzip");
                            let body = if gzip {
                                let mut out = Vec::new();
                                flate2::read::GzDecoder::new(&raw[..])
                                    .read_to_end(&mut out)
                                    .unwrap();
                                out
                            } else {
                                raw.to_vec()
                            };
                            let scripted = scr.lock().unwrap().pop_front();
                            let reply = match scripted {
                                Some(r) => r,
                                None => {
                                    let d = *def.lock().unwrap();
                                    if let Default::Slow(ms) = d {
                                        tokio::time::sleep(Duration::from_millis(ms)).await;
                                    }
                                    Reply::Status(200)
                                }
                            };
                            let status = match &reply {
                                Reply::Status(s) | Reply::RetryAfter(s, _) | Reply::Body(s, ..) => {
                                    *s
                                }
                                Reply::Hang => 0,
                                Reply::Bulk(_) => 200,
                            };
                            let n_items = body
                                .split(|&b| b == b'\n')
                                .filter(|l| !l.is_empty())
                                .count()
                                / 2;
                            let items: Vec<u16> = match &reply {
                                Reply::Bulk(statuses) => (0..n_items)
                                    .map(|i| statuses.get(i).copied().unwrap_or(201))
                                    .collect(),
                                _ if (200..300).contains(&status) => vec![201; n_items],
                                _ => Vec::new(),
                            };
                            let response_body = match &reply {
                                Reply::Body(_, _, body) => body.clone(),
                                _ => bulk_body(&items).into_bytes(),
                            };
                            rec.lock().unwrap().push(Received {
                                method: parts.method.to_string(),
                                path: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                                at: Instant::now(),
                                status,
                                items,
                            });
                            let mut resp = Response::builder();
                            match reply {
                                Reply::Hang => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    resp = resp.status(500);
                                }
                                Reply::Status(s) => resp = resp.status(s),
                                Reply::RetryAfter(s, secs) => {
                                    resp = resp.status(s).header("retry-after", secs.to_string())
                                }
                                Reply::Bulk(_) => resp = resp.status(200),
                                Reply::Body(s, content_type, _) => {
                                    resp = resp.status(s).header("content-type", content_type)
                                }
                            }
                            Ok::<_, std::convert::Infallible>(
                                resp.body(Full::new(Bytes::from(response_body))).unwrap(),
                            )
                        }
                    });
                    match tls {
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, service)
                                .await;
                        }
                        None => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, service)
                                .await;
                        }
                    }
                });
            }
        });
        TestServer {
            addr,
            received,
            script,
            default,
            _rt: rt,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The bodies of the requests answered 2xx.
    pub fn accepted_bodies(&self) -> Vec<Vec<u8>> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| r.body)
            .collect()
    }

    /// Changes the answer given once the script is used up.
    pub fn set_default(&self, d: Default) {
        *self.default.lock().unwrap() = d;
    }

    pub fn script_left(&self) -> usize {
        self.script.lock().unwrap().len()
    }
}

/// A port nothing listens on now (bound, then released).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A bulk response body for item statuses.
fn bulk_body(items: &[u16]) -> String {
    let errors = items.iter().any(|s| !(200..300).contains(s));
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|&status| {
            if (200..300).contains(&status) {
                serde_json::json!({"index": {"status": status}})
            } else {
                let kind = if status == 429 { "es_rejected_execution_exception" } else { "mapper_parsing_exception" };
                serde_json::json!({"index": {"status": status, "error": {"type": kind, "reason": "scripted"}}})
            }
        })
        .collect();
    serde_json::json!({"took": 1, "errors": errors, "items": items}).to_string()
}
