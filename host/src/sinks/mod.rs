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
use crate::units::SettingError;

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

/// What every sink's configuration provides; each sink's folder implements it beside its
/// config struct, and [`SinkConfig`] hands each call to the sink its `type` names.
pub trait Sink {
    /// The sink's type, as written in the configuration.
    fn kind(&self) -> &'static str;

    /// Starts the sink reading `input`; it reports on `exit` when it stops.
    fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &SinkContext,
    ) -> anyhow::Result<()>;

    /// Checks the settings the types cannot (URLs, TLS files, secrets, templates): the
    /// expensive part of validation, run once when the configuration is validated. Errors are
    /// keyed relative to the sink.
    fn check_settings(&self) -> Result<(), SettingError> {
        Ok(())
    }

    /// A remote sink's shared options (`None`: it talks to no server). Cheap: read as written.
    fn remote_options(&self) -> Option<util::delivery::RemoteOptions<'_>> {
        None
    }

    /// The templates it fills per record, with their keys (relative to the sink).
    fn templates(&self) -> Vec<(String, util::template::Template)> {
        Vec::new()
    }

    /// A one-line description for `tailcar check`.
    fn describe(&self) -> String;
}

impl SinkConfig {
    /// The sink this configuration is.
    fn sink(&self) -> &dyn Sink {
        match self {
            SinkConfig::Stdout(c) => c,
            SinkConfig::File(c) => c,
            SinkConfig::Http(c) => &**c,
            SinkConfig::Elasticsearch(c) => &**c,
            SinkConfig::Loki(c) => &**c,
            SinkConfig::Tcp(c) => &**c,
            SinkConfig::Kafka(c) => &**c,
            SinkConfig::Syslog(c) => &**c,
            SinkConfig::Otlp(c) => &**c,
        }
    }

    /// Starts the sink reading `input`; it reports on `exit` when it stops.
    pub fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &SinkContext,
    ) -> anyhow::Result<()> {
        self.sink().spawn(name, input, exit, ctx)
    }

    /// The sink's type, as written in the configuration.
    pub fn kind(&self) -> &'static str {
        self.sink().kind()
    }

    /// Whether the sink talks to a server.
    pub fn is_remote(&self) -> bool {
        self.remote().is_some()
    }

    /// A remote sink's shared options (`None` for stdout and file).
    fn remote(&self) -> Option<util::delivery::RemoteOptions<'_>> {
        self.sink().remote_options()
    }

    /// Checks what the types cannot, before anything starts; errors are keyed relative to the
    /// sink. `name` is this sink's name; `sinks` every sink's name.
    pub fn validate(&self, name: &str, sinks: &[&str]) -> Result<(), SettingError> {
        self.sink().check_settings()?;
        if let Some(dl) = self.dead_letter() {
            if dl == name {
                return Err(SettingError::new(
                    "dead_letter",
                    "a sink cannot be its own dead-letter sink",
                ));
            }
            if !sinks.contains(&dl) {
                return Err(SettingError::new(
                    "dead_letter",
                    format!("no sink named `{dl}` (sinks defined: {})", sinks.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The sink this one sends permanently rejected records to.
    pub fn dead_letter(&self) -> Option<&str> {
        self.remote().and_then(|o| o.dead_letter)
    }

    /// What the router does when this sink's queue is full.
    pub fn when_full(&self) -> crate::queue::WhenFull {
        self.remote().map(|o| o.when_full).unwrap_or_default()
    }

    /// The templates this sink fills per record, with their keys (relative to the sink); an
    /// `id_field` counts as the template `{id_field}`.
    pub fn templates(&self) -> Vec<(String, util::template::Template)> {
        self.sink().templates()
    }

    /// A one-line description for `tailcar check`.
    pub fn describe(&self) -> String {
        self.sink().describe()
    }
}
