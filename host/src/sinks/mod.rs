//! Sinks: where batches leave tailcar. One folder per sink (its config and implementation),
//! with what they share in [`util`].
//!
//! A sink consumes its bounded input queue of [`SinkBatch`]es and resolves each batch's
//! [`Ack`](crate::checkpoint::Ack) share once that batch is delivered, at whatever time delivery is known (right after a
//! write for stdout and file; after an HTTP response for remote sinks). When its queue is closed
//! and drained it reports [`SinkExit`] and stops; on an error it cannot recover from (stdout
//! closed) it reports the error, and the application shuts down.

pub mod elasticsearch;
pub mod file;
pub mod http;
pub mod kafka;
pub mod loki;
pub mod otlp;
pub mod stdout;
pub mod syslog;
pub mod tcp;
pub mod util;

#[cfg(test)]
mod golden;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;

pub use crate::queue::{QUEUE_BATCHES, SinkBatch};

/// How a sink's run ended.
#[derive(Debug)]
pub struct SinkExit {
    pub sink: Arc<str>,
    pub result: anyhow::Result<()>,
}

/// The configuration of one sink, by `type`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// tailcar's standard output.
    Stdout(stdout::StdoutConfig),
    /// Appends to a file.
    File(file::FileConfig),
    /// POSTs NDJSON (or a JSON array) to a URL.
    Http(Box<http::HttpSinkConfig>),
    /// The Elasticsearch / OpenSearch `_bulk` API.
    Elasticsearch(Box<elasticsearch::ElasticsearchConfig>),
    /// Grafana Loki's push API.
    Loki(Box<loki::LokiConfig>),
    /// Lines over TCP or TLS (Logstash's `tcp` input with `json_lines`).
    Tcp(Box<tcp::TcpSinkConfig>),
    /// Records produced to Kafka topics.
    Kafka(Box<kafka::KafkaConfig>),
    /// Syslog messages (RFC 5424 or 3164) over TCP, TLS or UDP.
    Syslog(Box<syslog::SyslogConfig>),
    /// OpenTelemetry logs over OTLP/HTTP (protobuf or JSON).
    Otlp(Box<otlp::OtlpConfig>),
}

/// What a sink may need from the others when it starts.
pub struct SinkContext {
    /// Every sink's input queue, by name (for dead-letter sinks).
    pub inputs: HashMap<Arc<str>, mpsc::Sender<SinkBatch>>,
    /// Every sink's counters, by name.
    pub stats: HashMap<Arc<str>, Arc<crate::stats::SinkStats>>,
}

impl SinkContext {
    /// The named dead-letter sink's queue.
    pub fn dead_letter(
        &self,
        name: Option<&str>,
    ) -> anyhow::Result<Option<(Arc<str>, mpsc::Sender<SinkBatch>)>> {
        let Some(name) = name else { return Ok(None) };
        let (k, tx) = self
            .inputs
            .get_key_value(name)
            .ok_or_else(|| anyhow::anyhow!("dead_letter: no sink named `{name}`"))?;
        Ok(Some((Arc::clone(k), tx.clone())))
    }

    pub fn stats(&self, name: &str) -> Arc<crate::stats::SinkStats> {
        self.stats.get(name).cloned().unwrap_or_default()
    }
}

impl SinkConfig {
    /// Starts the sink reading `input`; it reports on `exit` when it stops.
    pub fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &SinkContext,
    ) -> anyhow::Result<()> {
        match self {
            SinkConfig::Stdout(c) => c.spawn(name, input, exit, ctx),
            SinkConfig::File(c) => c.spawn(name, input, exit, ctx),
            SinkConfig::Http(c) => c.spawn(name, input, exit, ctx),
            SinkConfig::Elasticsearch(c) => c.spawn(name, input, exit, ctx),
            SinkConfig::Loki(c) => c.spawn(name, input, exit, ctx),
            SinkConfig::Tcp(c) => c.spawn(name, input, exit, ctx),
            SinkConfig::Kafka(c) => c.spawn(name, input, exit, ctx),
            SinkConfig::Syslog(c) => c.spawn(name, input, exit, ctx),
            SinkConfig::Otlp(c) => c.spawn(name, input, exit, ctx),
        }
    }

    /// The sink's type, as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Stdout(_) => "stdout",
            SinkConfig::File(_) => "file",
            SinkConfig::Http(_) => "http",
            SinkConfig::Elasticsearch(_) => "elasticsearch",
            SinkConfig::Loki(_) => "loki",
            SinkConfig::Tcp(_) => "tcp",
            SinkConfig::Kafka(_) => "kafka",
            SinkConfig::Syslog(_) => "syslog",
            SinkConfig::Otlp(_) => "otlp",
        }
    }

    /// Whether the sink talks to a server.
    pub fn is_remote(&self) -> bool {
        self.remote().is_some()
    }

    /// A remote sink's settings check and shared options (`None` for stdout and file).
    fn remote(&self) -> Option<(anyhow::Result<()>, util::delivery::RemoteOptions<'_>)> {
        match self {
            SinkConfig::Stdout(_) | SinkConfig::File(_) => None,
            SinkConfig::Http(c) => Some((c.settings().map(drop), c.options())),
            SinkConfig::Elasticsearch(c) => Some((c.settings().map(drop), c.options())),
            SinkConfig::Loki(c) => Some((c.settings().map(drop), c.options())),
            SinkConfig::Tcp(c) => Some((c.check(), c.options())),
            SinkConfig::Kafka(c) => Some((c.check(), c.options())),
            SinkConfig::Syslog(c) => Some((c.check(), c.options())),
            SinkConfig::Otlp(c) => Some((c.settings().map(drop), c.options())),
        }
    }

    /// Checks what the types cannot, before anything starts: `(key relative to the sink,
    /// reason)`. `name` is this sink's name; `sinks` every sink's name.
    pub fn validate(&self, name: &str, sinks: &[&str]) -> Result<(), (String, String)> {
        let Some((settings, options)) = self.remote() else {
            return Ok(());
        };
        settings.map_err(|e| {
            let msg = format!("{e:#}");
            match msg.split_once(": ") {
                Some((key, reason)) if !key.contains(' ') => (key.to_string(), reason.to_string()),
                _ => (String::new(), msg),
            }
        })?;
        if let Some(dl) = options.dead_letter {
            if dl == name {
                return Err((
                    "dead_letter".into(),
                    "a sink cannot be its own dead-letter sink".into(),
                ));
            }
            if !sinks.contains(&dl) {
                return Err((
                    "dead_letter".into(),
                    format!("no sink named `{dl}` (sinks defined: {})", sinks.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The sink this one sends permanently rejected records to.
    pub fn dead_letter(&self) -> Option<&str> {
        self.remote().and_then(|(_, o)| o.dead_letter)
    }

    /// What the router does when this sink's queue is full.
    pub fn when_full(&self) -> crate::queue::WhenFull {
        self.remote().map(|(_, o)| o.when_full).unwrap_or_default()
    }

    /// The templates this sink fills per record, with their keys (relative to the sink); an
    /// `id_field` counts as the template `{id_field}`.
    pub fn templates(&self) -> Vec<(String, util::template::Template)> {
        use util::template::Template;
        let mut out = Vec::new();
        match self {
            SinkConfig::Stdout(_)
            | SinkConfig::File(_)
            | SinkConfig::Http(_)
            | SinkConfig::Tcp(_) => {}
            SinkConfig::Elasticsearch(c) => {
                out.push(("index".into(), Template::parse(&c.index)));
                if let Some(f) = &c.id_field {
                    out.push(("id_field".into(), Template::parse(&format!("{{{f}}}"))));
                }
            }
            SinkConfig::Loki(c) => out.extend(
                c.labels
                    .iter()
                    .map(|(k, v)| (format!("labels.{k}"), Template::parse(v))),
            ),
            SinkConfig::Kafka(c) => {
                out.push(("topic".into(), c.topic.clone()));
                out.extend(c.key.clone().map(|k| ("key".into(), k)));
                out.extend(
                    c.headers
                        .iter()
                        .map(|(k, t)| (format!("headers.{k}"), t.clone())),
                );
            }
            SinkConfig::Syslog(c) => {
                out.push(("facility".into(), c.facility.clone()));
                out.push(("severity".into(), c.severity.clone()));
                out.extend(c.hostname.clone().map(|t| ("hostname".into(), t)));
                out.push(("app_name".into(), c.app_name.clone()));
                out.extend(c.proc_id.clone().map(|t| ("proc_id".into(), t)));
                out.extend(c.msg_id.clone().map(|t| ("msg_id".into(), t)));
            }
            SinkConfig::Otlp(c) => out.extend(
                c.resource
                    .iter()
                    .map(|(k, t)| (format!("resource.{k}"), t.clone())),
            ),
        }
        out
    }

    /// A one-line description for `tailcar check`.
    pub fn describe(&self) -> String {
        match self {
            SinkConfig::Stdout(c) => format!("stdout, format {}", c.format),
            SinkConfig::File(c) => format!("file {}, format {}", c.path.display(), c.format),
            SinkConfig::Http(c) => format!("http {} {}", c.method, c.url),
            SinkConfig::Elasticsearch(c) => format!("elasticsearch {} index {}", c.url, c.index),
            SinkConfig::Loki(c) => format!("loki {} ({:?})", c.url, c.encoding).to_lowercase(),
            SinkConfig::Tcp(c) => format!(
                "tcp {}{} ({:?})",
                c.address,
                if c.tls.is_some() { " tls" } else { "" },
                c.format
            )
            .to_lowercase(),
            SinkConfig::Kafka(c) => format!(
                "kafka {} acks {:?}, compression {:?}",
                c.bootstrap_servers.join(","),
                c.acks,
                c.compression
            )
            .to_lowercase(),
            SinkConfig::Syslog(c) => {
                format!("syslog {} {:?} {:?}", c.address, c.protocol, c.format).to_lowercase()
            }
            SinkConfig::Otlp(c) => format!("otlp {} ({:?})", c.url, c.encoding).to_lowercase(),
        }
    }
}
