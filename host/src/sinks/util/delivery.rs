//! The delivery loop every remote sink runs: batch → encode → send → retry → acknowledge.
//!
//! A sink plugs in a [`Transport`] (how one request's records are encoded and sent, and what
//! the answer means): HTTP with an [`Encoder`] for the body ([`HttpTransport`]: `http`,
//! `elasticsearch`, `loki`, `otlp`), a TCP/TLS or UDP stream (`tcp`, `syslog`), or Kafka's
//! protocol (`kafka`). Everything else is shared:
//!
//! One tokio task per sink reads its bounded queue into the [`Batcher`]; each full (or timed
//! out) request waits for one of `max_in_flight` permits, so a slow server stops the loop from
//! reading its queue, the queue fills, and the stream's tailer blocks: backpressure all the way
//! to the file. Each request is sent by its own task and retried (see [`retry`]) until it is
//! delivered, when its ack shares are resolved, or permanently rejected, when it goes to the
//! dead-letter sink (or is counted and logged). The loop ends when its queue is closed and every
//! request is settled.
//!
//! [`retry`]: super::retry

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::batcher::{BatchConfig, Batcher, Request};
use super::http::{Body, HttpClient, HttpSettings, Response, TlsConfig, send};
use super::retry::{Backoff, Outcome, RetryConfig, classify_status};
use crate::sinks::{SinkBatch, SinkExit};
use crate::stats::SinkStats;

/// What a remote sink adds to the shared loop: its body format and how it judges a response.
pub trait Encoder: Send + Sync + 'static {
    fn content_type(&self) -> &'static str;
    /// Writes the request body for `request`'s records.
    fn encode(&self, request: &Request, out: &mut Vec<u8>);
    /// Decides what a response means; the default is [`classify_status`].
    fn classify(&self, response: &Response) -> Outcome {
        classify_status(response.status, &response.headers)
    }
}

/// How a remote sink moves one request's records to its server.
pub trait Transport: Send + Sync + 'static {
    /// A request's records as they go on the wire. Encoded once per request (and again only
    /// for the records a partial failure sends again), then reused by every retry.
    type Payload: Send + Sync + 'static;

    /// Encodes `request`'s records.
    fn encode(&self, request: &Request) -> Self::Payload;

    /// Sends one encoded request and says what became of it. `Outcome::Partial` indexes are
    /// record positions in `request`.
    fn send(
        &self,
        payload: &Self::Payload,
        request: &Request,
    ) -> impl std::future::Future<Output = Outcome> + Send;
}

/// HTTP requests with a body written by an [`Encoder`].
pub struct HttpTransport {
    client: HttpClient,
    settings: HttpSettings,
    encoder: Arc<dyn Encoder>,
}

impl HttpTransport {
    pub fn new(
        tls: &TlsConfig,
        settings: HttpSettings,
        encoder: Arc<dyn Encoder>,
    ) -> anyhow::Result<Self> {
        Ok(HttpTransport {
            client: super::http::client(tls, &settings.url)?,
            settings,
            encoder,
        })
    }
}

impl Transport for HttpTransport {
    type Payload = Body;

    /// The body, encoded and compressed once for every attempt.
    fn encode(&self, request: &Request) -> Body {
        let mut body = Vec::with_capacity(request.bytes);
        self.encoder.encode(request, &mut body);
        Body::new(self.settings.compression, body)
    }

    async fn send(&self, body: &Body, _request: &Request) -> Outcome {
        let target = format!("{} {}", self.settings.method, redacted(&self.settings.url));
        match send(
            &self.client,
            &self.settings,
            self.encoder.content_type(),
            body,
        )
        .await
        {
            // Every failure says where it went and what came back, so a wrong URL or a proxy's
            // error page is recognisable from the log line alone.
            Ok(response) => match self.encoder.classify(&response) {
                Outcome::Retry { reason, after } => Outcome::Retry {
                    reason: format!("{reason}; {}", answer(&target, &response)),
                    after,
                },
                Outcome::Permanent(reason) => {
                    Outcome::Permanent(format!("{reason}; {}", answer(&target, &response)))
                }
                other => other,
            },
            Err(e) => Outcome::Retry {
                reason: format!("{target}: {e:#}"),
                after: None,
            },
        }
    }
}

/// A URL without its user information or query (where secrets may sit).
fn redacted(url: &http::Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let host = url.host().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", url.path())
}

/// `POST URL answered HTTP 404 Not Found (text/html, 162 bytes): "<html>..."`.
fn answer(target: &str, response: &super::http::Response) -> String {
    const EXCERPT: usize = 200;
    let content_type = response
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type");
    let body = &response.body[..response.body.len().min(EXCERPT)];
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "{target} answered HTTP {} ({content_type}, {} bytes): {:?}{}",
        response.status,
        response.body.len(),
        text.trim(),
        if response.body.len() > EXCERPT {
            "..."
        } else {
            ""
        }
    )
}

/// The delivery options of one remote sink.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    pub max_in_flight: usize,
    /// Where permanently rejected records go.
    pub dead_letter: Option<(Arc<str>, mpsc::Sender<SinkBatch>)>,
}

/// One remote sink, ready to run.
pub struct RemoteSink<T> {
    pub name: Arc<str>,
    pub transport: T,
    pub delivery: Delivery,
    pub stats: Arc<SinkStats>,
}

/// What every remote sink's configuration gives the delivery core.
pub struct RemoteOptions<'a> {
    pub batch: &'a BatchConfig,
    pub retry: &'a RetryConfig,
    pub max_in_flight: usize,
    pub dead_letter: Option<&'a str>,
    pub when_full: crate::queue::WhenFull,
}

/// Declares a remote sink's configuration: its own fields, then the options every remote sink
/// shares (batching, retries, request timeout, in-flight bound, dead-letter, `when_full`), with
/// unknown keys denied; and its `options()` for the delivery core. With `http:` in front, also
/// the options of HTTP sinks (headers, auth, TLS) and `http_settings()`, which checks and builds
/// them.
/// (`#[serde(flatten)]` would share one struct, but serde cannot deny unknown keys with it.)
macro_rules! remote_sink_config {
    (http: $(#[$meta:meta])* pub struct $name:ident { $($fields:tt)* } max_in_flight_default = $mif:literal) => {
        $crate::sinks::util::delivery::remote_sink_config! {
            $(#[$meta])*
            pub struct $name {
                $($fields)*
                /// Extra headers (values may be `${ENV}` secrets; they are never logged).
                #[serde(default)]
                pub headers: indexmap::IndexMap<String, $crate::sinks::util::http::Secret>,
                /// `{ user, password }` or `{ bearer }`, secrets inline or from `*_file`.
                pub auth: Option<$crate::sinks::util::http::AuthConfig>,
                #[serde(default)]
                pub tls: $crate::sinks::util::http::TlsConfig,
            }
            max_in_flight_default = $mif
        }

        impl $name {
            /// Requests `method url` with this sink's headers, auth, TLS files and timeout,
            /// checked; errors are keyed relative to the sink.
            pub fn http_settings(
                &self,
                method: &str,
                url: &str,
                compression: $crate::sinks::util::http::Compression,
            ) -> Result<$crate::sinks::util::http::HttpSettings, $crate::units::SettingError> {
                $crate::sinks::util::http::HttpSettings::new(
                    method,
                    url,
                    &self.headers,
                    self.auth.as_ref(),
                    &self.tls,
                    compression,
                    self.request_timeout,
                )
            }
        }
    };
    ($(#[$meta:meta])* pub struct $name:ident { $($fields:tt)* } max_in_flight_default = $mif:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($fields)*
            #[serde(default)]
            pub batch: $crate::sinks::util::batcher::BatchConfig,
            #[serde(default)]
            pub retry: $crate::sinks::util::retry::RetryConfig,
            /// How long one request may take.
            #[serde(default = "crate::sinks::util::delivery::default_timeout", deserialize_with = "crate::units::de_interval")]
            pub request_timeout: std::time::Duration,
            /// Requests in flight at once (1 to 512).
            #[serde(default = $mif, deserialize_with = "crate::units::de_in_flight")]
            pub max_in_flight: usize,
            /// A sink for records the server rejects for good (for example a `file` sink).
            pub dead_letter: Option<String>,
            /// When this sink's queue is full: `block` (default: back-pressure the stream) or
            /// `drop_newest` (drop for this sink only, counted).
            #[serde(default)]
            pub when_full: $crate::queue::WhenFull,
        }

        impl $name {
            /// The shared options, for the delivery core.
            pub fn options(&self) -> $crate::sinks::util::delivery::RemoteOptions<'_> {
                $crate::sinks::util::delivery::RemoteOptions {
                    batch: &self.batch,
                    retry: &self.retry,
                    max_in_flight: self.max_in_flight,
                    dead_letter: self.dead_letter.as_deref(),
                    when_full: self.when_full,
                }
            }
        }
    };
}
pub(crate) use remote_sink_config;

/// Starts a remote sink: `transport` on top of the shared loop.
pub fn start<T: Transport>(
    name: Arc<str>,
    transport: T,
    options: RemoteOptions<'_>,
    input: mpsc::Receiver<SinkBatch>,
    exit: mpsc::UnboundedSender<SinkExit>,
    ctx: &crate::sinks::SinkContext,
) -> anyhow::Result<()> {
    let delivery = Delivery {
        batch: options.batch.clone(),
        retry: options.retry.clone(),
        max_in_flight: options.max_in_flight,
        dead_letter: ctx.dead_letter(options.dead_letter)?,
    };
    let stats = ctx.stats(&name);
    spawn(
        RemoteSink {
            name,
            transport,
            delivery,
            stats,
        },
        input,
        exit,
    );
    Ok(())
}

/// Starts the sink's delivery task.
pub fn spawn<T: Transport>(
    sink: RemoteSink<T>,
    input: mpsc::Receiver<SinkBatch>,
    exit: mpsc::UnboundedSender<SinkExit>,
) {
    tokio::spawn(async move {
        let name = Arc::clone(&sink.name);
        let stats = Arc::clone(&sink.stats);
        let ctx = Arc::new(sink);
        // A panic in the loop or in one of its requests ends the sink as a failure, never
        // silently: the application shuts down and says which sink and why.
        let result = crate::supervise::catch_task(&format!("sink {name}"), run(ctx, input))
            .await
            .map_err(anyhow::Error::from);
        stats.log(&name);
        let _ = exit.send(SinkExit { sink: name, result });
    });
}

async fn run<T: Transport>(ctx: Arc<RemoteSink<T>>, mut input: mpsc::Receiver<SinkBatch>) {
    let permits = Arc::new(Semaphore::new(ctx.delivery.max_in_flight.max(1)));
    let mut batcher = Batcher::new(ctx.delivery.batch.clone());
    let mut tasks = JoinSet::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let ready = tokio::select! {
            msg = input.recv() => match msg {
                Some(sb) => {
                    let full = batcher.add(sb);
                    if batcher.is_empty() {
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + batcher.timeout());
                    }
                    full
                }
                None => break,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                deadline = None;
                batcher.take().into_iter().collect()
            }
        };
        for request in ready {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let ctx = Arc::clone(&ctx);
            tasks.spawn(async move {
                deliver(ctx, request).await;
                drop(permit);
            });
        }
        while let Some(done) = tasks.try_join_next() {
            settle(done);
        }
    }
    if let Some(request) = batcher.take() {
        let ctx = Arc::clone(&ctx);
        tasks.spawn(async move { deliver(ctx, request).await });
    }
    while let Some(done) = tasks.join_next().await {
        settle(done);
    }
}

/// A request task that panicked takes the sink down with it (its records stay unacknowledged).
fn settle(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Encodes `request` on tokio's blocking pool, not on the runtime's one worker (which every
/// remote sink and the admin endpoint share): encoding and compressing is the CPU-heavy part of
/// a request, and requests in flight then encode in parallel. A panic there is the request
/// task's panic; `None` when the runtime is shutting down.
async fn encode<T: Transport>(
    ctx: &Arc<RemoteSink<T>>,
    request: Request,
) -> Option<(Request, T::Payload)> {
    let ctx = Arc::clone(ctx);
    let encoding = tokio::task::spawn_blocking(move || {
        let payload = ctx.transport.encode(&request);
        (request, payload)
    });
    match encoding.await {
        Ok(done) => Some(done),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

/// Sends one request until it is delivered or permanently rejected.
async fn deliver<T: Transport>(ctx: Arc<RemoteSink<T>>, request: Request) {
    let Some((mut request, mut payload)) = encode(&ctx, request).await else {
        return;
    };
    let ctx = &ctx;
    let mut backoff = Backoff::new(&ctx.delivery.retry);
    loop {
        let started = std::time::Instant::now();
        let outcome = ctx.transport.send(&payload, &request).await;
        ctx.stats.observe_request(started.elapsed());
        match outcome {
            Outcome::Delivered => {
                ctx.stats.attempt(true);
                SinkStats::add(&ctx.stats.delivered, request.records as u64);
                for part in request.parts {
                    part.ack.delivered();
                }
                return;
            }
            Outcome::Retry { reason, after } => {
                let wait = backoff.next(after);
                ctx.stats.attempt(false);
                SinkStats::add(&ctx.stats.retries, 1);
                tracing::warn!(sink = %ctx.name, %reason, records = request.records, retry_in = ?wait, "delivery failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Outcome::Permanent(reason) => {
                ctx.stats.attempt(true); // The server answered: reachable.
                dead_letter(ctx, request, &reason).await;
                return;
            }
            Outcome::Partial {
                retry,
                permanent,
                reason,
            } => {
                ctx.stats.attempt(true);
                let delivered = request.records - retry.len() - permanent.len();
                SinkStats::add(&ctx.stats.delivered, delivered as u64);
                let (retry_req, failed) = split_request(request, &retry, &permanent);
                if let Some(failed) = failed {
                    let why = permanent
                        .first()
                        .map(|p| p.1.as_str())
                        .unwrap_or("rejected");
                    dead_letter(ctx, failed, why).await;
                }
                let Some(retry_req) = retry_req else { return };
                let Some(encoded) = encode(ctx, retry_req).await else {
                    return;
                };
                (request, payload) = encoded;
                let wait = backoff.next(None);
                SinkStats::add(&ctx.stats.retries, 1);
                tracing::warn!(sink = %ctx.name, %reason, records = request.records, retry_in = ?wait, "some records failed; retrying those");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Splits `request` after a partial outcome: the records at `retry` (to send again) and those
/// at `permanent` (for the dead-letter sink), each as a request whose parts carry new shares of
/// the original acks. The delivered records need nothing more: the original shares are
/// resolved here, after the new ones exist.
fn split_request(
    request: Request,
    retry: &[usize],
    permanent: &[(usize, String)],
) -> (Option<Request>, Option<Request>) {
    let retry: std::collections::BTreeSet<usize> = retry.iter().copied().collect();
    let permanent: std::collections::BTreeSet<usize> = permanent.iter().map(|p| p.0).collect();
    let (mut again, mut failed) = (Request::default(), Request::default());
    let mut index = 0;
    for part in request.parts {
        for i in part.range.clone() {
            let target = if retry.contains(&index) {
                Some(&mut again)
            } else if permanent.contains(&index) {
                Some(&mut failed)
            } else {
                None
            };
            if let Some(t) = target {
                // Extend the last part when it is the same batch and the next record.
                match t.parts.last_mut() {
                    Some(last) if Arc::ptr_eq(&last.batch, &part.batch) && last.range.end == i => {
                        last.range.end = i + 1
                    }
                    _ => t.parts.push(super::batcher::Part {
                        batch: Arc::clone(&part.batch),
                        range: i..i + 1,
                        ack: part.ack.share(),
                    }),
                }
                t.records += 1;
                t.bytes += part.batch.records()[i].len as usize;
            }
            index += 1;
        }
        part.ack.delivered();
    }
    (
        (again.records > 0).then_some(again),
        (failed.records > 0).then_some(failed),
    )
}

/// Hands permanently rejected records to the dead-letter sink, or counts and logs them.
async fn dead_letter<T: Transport>(ctx: &RemoteSink<T>, request: Request, reason: &str) {
    let records = request.records as u64;
    match &ctx.delivery.dead_letter {
        Some((dl_name, tx)) => {
            tracing::error!(sink = %ctx.name, %reason, records, dead_letter = %dl_name, "rejected permanently; sent to the dead-letter sink");
            SinkStats::add(&ctx.stats.dead_lettered, records);
            for part in request.parts {
                let range = part.range.clone();
                let batch = Arc::new(part.batch.subset(|i| range.contains(&i)));
                if tx
                    .send(SinkBatch {
                        batch,
                        ack: part.ack,
                    })
                    .await
                    .is_err()
                {
                    tracing::error!(sink = %ctx.name, dead_letter = %dl_name, "the dead-letter sink has stopped; these lines stay unacknowledged");
                }
            }
        }
        None => {
            tracing::error!(sink = %ctx.name, %reason, records, "rejected permanently and no dead_letter sink is configured; counted as rejected");
            SinkStats::add(&ctx.stats.rejected, records);
            for part in request.parts {
                part.ack.delivered();
            }
        }
    }
}

/// The default request timeout.
pub fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
