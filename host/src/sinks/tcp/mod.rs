//! The `tcp` sink: records as lines over one TCP (or TLS) connection, for Logstash's `tcp`
//! input with the `json_lines` codec (`format: json_lines`, the default) or anything that reads
//! newline-separated lines (`format: raw`).
//!
//! Requests from the shared delivery core are written whole, in order, over one connection
//! that is re-opened when it breaks (see [`net`](super::util::net)). A request is acknowledged
//! when it is written and flushed to the kernel: TCP has no application-level answer, so a
//! server that dies after that and before reading loses what was in flight. The writer checks
//! before each request that the server has not closed the connection, which covers a server
//! restarted cleanly; a server that vanishes without closing (a crashed node) can lose up to one
//! socket buffer of records.

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::batcher::Request;
use super::util::delivery::RemoteOptions;
use super::util::delivery::{self, Transport, remote_sink_config};
use super::util::encode::{Format, encode_range};
use super::util::http::TlsConfig;
use super::util::net::{Connector, StreamWriter};
use super::util::retry::Outcome;
use super::{SinkBatch, SinkContext, SinkExit};
use crate::units::{KeyedResult, SettingError};

/// What goes on the wire for each record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// One JSON object per line (the `json` format of the stdout sink).
    #[default]
    JsonLines,
    /// The line's bytes as read, and a newline.
    Raw,
}

remote_sink_config! {
    pub struct TcpSinkConfig {
        /// `host:port` of the server.
        pub address: String,
        /// `json_lines` (default) or `raw`.
        #[serde(default)]
        pub format: LineFormat,
        /// Speak TLS (give `{}` for the defaults: system roots, certificates checked).
        pub tls: Option<TlsConfig>,
    }
    max_in_flight_default = "max_in_flight"
}

/// One connection carries the records in order, so one request at a time.
fn max_in_flight() -> usize {
    1
}

impl TcpSinkConfig {
    /// Checks the address and the TLS settings; errors are keyed relative to the sink.
    pub fn check(&self) -> Result<(), SettingError> {
        super::util::net::check_address(&self.address).key("address")?;
        if let Some(t) = &self.tls {
            super::util::http::tls_client_config(t).map_err(|e| e.under("tls"))?;
        }
        self.connector().key("address").map(drop)
    }

    /// With the settings checked, only the TLS server name (the address's host) can fail here.
    fn connector(&self) -> anyhow::Result<Connector> {
        Connector::new(&self.address, self.tls.as_ref(), self.request_timeout)
    }
}

impl super::Sink for TcpSinkConfig {
    fn kind(&self) -> &'static str {
        "tcp"
    }

    fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &SinkContext,
    ) -> anyhow::Result<()> {
        let transport = TcpTransport {
            writer: StreamWriter::new(Arc::clone(&name), self.connector()?),
            format: match self.format {
                LineFormat::JsonLines => Format::Json,
                LineFormat::Raw => Format::Raw,
            },
        };
        delivery::start(name, transport, self.options(), input, exit, ctx)
    }

    fn check_settings(&self) -> Result<(), SettingError> {
        self.check()
    }

    fn remote_options(&self) -> Option<RemoteOptions<'_>> {
        Some(self.options())
    }

    fn describe(&self) -> String {
        format!(
            "tcp {}{} ({:?})",
            self.address,
            if self.tls.is_some() { " tls" } else { "" },
            self.format
        )
        .to_lowercase()
    }
}

struct TcpTransport {
    writer: StreamWriter,
    format: Format,
}

impl Transport for TcpTransport {
    type Payload = Vec<u8>;

    fn encode(&self, request: &Request) -> Vec<u8> {
        let mut out = Vec::with_capacity(request.bytes + request.records * 96);
        for part in &request.parts {
            encode_range(&part.batch, part.range.clone(), self.format, &mut out)
                .expect("writing to a Vec cannot fail");
        }
        out
    }

    async fn send(&self, payload: &Vec<u8>, _request: &Request) -> Outcome {
        match self.writer.write(payload).await {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Retry {
                reason: format!("{e:#}"),
                after: None,
            },
        }
    }
}
