//! The admin endpoint (HTTP, default `0.0.0.0:9095`): `GET /metrics` (Prometheus/OpenMetrics
//! text), `GET /healthz` (liveness), `GET /readyz` (readiness) and `POST /reload` (re-read the
//! configuration, as SIGHUP does).
//!
//! It runs on tailcar's tokio runtime for the life of the process, across configuration reloads:
//! it reads [`Telemetry`], which the application fills at each (re)start, and asks
//! the application to reload through a channel, answering with the outcome.

pub mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::stats::now_ms;
use crate::stats::telemetry::Telemetry;

/// The `admin:` section of the configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve the endpoint at all.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// Where to listen.
    #[serde(default = "defaults::address")]
    pub address: SocketAddr,
    /// Label file lag with the file's path (one series per file: mind the cardinality).
    #[serde(default)]
    pub file_labels: bool,
    /// `/readyz` fails once a remote sink has failed every attempt for this long.
    #[serde(
        default = "defaults::sink_failing_for",
        deserialize_with = "crate::units::de_wait"
    )]
    pub sink_failing_for: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: defaults::enabled(),
            address: defaults::address(),
            file_labels: false,
            sink_failing_for: defaults::sink_failing_for(),
        }
    }
}

pub mod defaults {
    use std::time::Duration;
    pub fn enabled() -> bool {
        true
    }
    pub fn address() -> std::net::SocketAddr {
        ([0, 0, 0, 0], 9095).into()
    }
    pub fn sink_failing_for() -> Duration {
        Duration::from_secs(300)
    }
}

/// A request to reload the configuration; the answer is `Err(reason)` when the new
/// configuration is refused (the running one continues).
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// A stream's loop is wedged when it has not gone round for this long while not waiting on its
/// sinks (a plugin's deadline is at most 60 s; a loop goes round at least every second).
const WEDGED_AFTER: Duration = Duration::from_secs(120);

/// Starts the endpoint on the current tokio runtime. Fails if the address cannot be bound.
pub async fn serve(
    address: SocketAddr,
    telemetry: Arc<Telemetry>,
    reload: mpsc::Sender<ReloadRequest>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("admin endpoint: cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "admin endpoint listening (/metrics, /healthz, /readyz, POST /reload)");
    // A panic in a request (rendering the metrics, say) or in the accept loop ends the run
    // like any component's: reported, counted, `/healthz` 503, exit 70.
    let panic_at_metrics = crate::supervise::failpoint("admin-panic");
    tokio::spawn(async move {
        let accept = async move {
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("admin endpoint: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let telemetry = Arc::clone(&telemetry);
                let reload = reload.clone();
                tokio::spawn(async move {
                    // A request's panic is reported once its 500 has been written (the answer
                    // closes the connection): reporting ends the run, and the caller must still
                    // get the answer that says why.
                    let panicked = Arc::new(std::sync::Mutex::new(None));
                    let seen = Arc::clone(&panicked);
                    let service = hyper::service::service_fn(move |req| {
                        let telemetry = Arc::clone(&telemetry);
                        let reload = reload.clone();
                        let seen = Arc::clone(&seen);
                        async move {
                            let answer =
                                crate::supervise::catch_task("admin endpoint", async move {
                                    if panic_at_metrics && req.uri().path() == "/metrics" {
                                        panic!("fail point admin-panic at GET /metrics");
                                    }
                                    handle(req, &telemetry, &reload).await
                                })
                                .await;
                            Ok::<_, Infallible>(answer.unwrap_or_else(|p| {
                                let text = format!("{p}\n");
                                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                                let mut answer = reply(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    "text/plain; charset=utf-8",
                                    text,
                                );
                                answer.headers_mut().insert(
                                    http::header::CONNECTION,
                                    http::HeaderValue::from_static("close"),
                                );
                                answer
                            }))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                    let p = panicked.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(p) = p {
                        crate::supervise::report(p);
                    }
                });
            }
        };
        // The accept loop never returns: only its panic comes back.
        if let Some(p) = crate::supervise::catch_task("admin endpoint", accept)
            .await
            .err()
        {
            crate::supervise::report(p);
        }
    });
    Ok(bound)
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// A probe's answer: 200 with `ok_text`, or 503 with the problems, one per line.
fn probe(problems: Vec<String>, ok_text: &str) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if problems.is_empty() {
        reply(StatusCode::OK, TEXT, format!("{ok_text}\n"))
    } else {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            problems.join("\n") + "\n",
        )
    }
}

async fn handle(
    req: Request<Incoming>,
    telemetry: &Arc<Telemetry>,
    reload: &mpsc::Sender<ReloadRequest>,
) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics::render(telemetry),
        ),
        (&Method::GET, "/healthz") => probe(liveness(telemetry), "ok"),
        (&Method::GET, "/readyz") => probe(readiness(telemetry), "ready"),
        (&Method::POST, "/reload") => {
            let (tx, rx) = oneshot::channel();
            if reload.send(tx).await.is_err() {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "shutting down\n".into(),
                );
            }
            match rx.await {
                Ok(Ok(())) => reply(StatusCode::OK, TEXT, "reloading\n".into()),
                Ok(Err(reason)) => reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    TEXT,
                    format!("configuration refused, the running one continues: {reason}\n"),
                ),
                Err(_) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "shutting down\n".into(),
                ),
            }
        }
        (_, "/metrics" | "/healthz" | "/readyz" | "/reload") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: try /metrics, /healthz, /readyz, POST /reload\n".into(),
        ),
    }
}

/// Why the process is not alive and well: a component that panicked, a stream loop wedged.
pub fn liveness(t: &Telemetry) -> Vec<String> {
    let now = now_ms();
    let running: Vec<Arc<str>> = t.running().streams.clone();
    let mut problems = t.failures();
    for (name, s) in t.streams() {
        if !running.contains(&name) || !s.started.load(Ordering::Relaxed) {
            continue;
        }
        let age = now.saturating_sub(s.heartbeat_ms.load(Ordering::Relaxed));
        if age > WEDGED_AFTER.as_millis() as u64 && !s.waiting_on_sinks.load(Ordering::Relaxed) {
            problems.push(format!(
                "stream {name}: its loop has not gone round for {} s",
                age / 1000
            ));
        }
    }
    problems
}

/// Why tailcar is not ready: streams not started yet, plugins that cannot run, remote sinks
/// failing for longer than `sink_failing_for`.
pub fn readiness(t: &Telemetry) -> Vec<String> {
    let settings = t.settings();
    let (streams, sinks) = {
        let r = t.running();
        (r.streams.clone(), r.sinks.clone())
    };
    let mut problems = liveness(t);
    if streams.is_empty() {
        problems.push("starting".into());
    }
    for (name, s) in t.streams() {
        if streams.contains(&name) && !s.started.load(Ordering::Relaxed) {
            problems.push(format!("stream {name}: not tailing yet"));
        }
    }
    for (stream, plugin, p) in t.plugins() {
        if streams.contains(&stream) && p.failing.load(Ordering::Relaxed) {
            problems.push(format!(
                "stream {stream}: plugin {plugin} cannot run (failing repeatedly; see the log)"
            ));
        }
    }
    let now = now_ms();
    for (name, s) in t.sinks() {
        if !sinks.iter().any(|v| v.name == name && v.remote) {
            continue;
        }
        let since = s.failing_since_ms.load(Ordering::Relaxed);
        if since != 0 && now.saturating_sub(since) > settings.sink_failing_for.as_millis() as u64 {
            problems.push(format!(
                "sink {name}: every attempt has failed for {} s",
                now.saturating_sub(since) / 1000
            ));
        }
    }
    problems
}
