//! The `http` sink: POSTs batches of records as NDJSON (one JSON object per line, the default)
//! or as one JSON array, with the shared delivery core (batching, retries, acknowledgements,
//! dead-letter, gzip, TLS, auth). A record's JSON is the same as the `json` format of the
//! stdout and file sinks.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::batcher::{BatchConfig, Request};
use super::util::delivery::{self, Encoder};
use super::util::encode::{Format, encode_range};
use super::util::http::{AuthConfig, Compression, HttpSettings, Secret, TlsConfig};
use super::util::retry::RetryConfig;
use super::{SinkBatch, SinkContext, SinkExit};

/// The body layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// One JSON object per line.
    #[default]
    Ndjson,
    /// One JSON array of objects.
    JsonArray,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where to send: `http://` or `https://`.
    pub url: String,
    /// The HTTP method (default POST).
    #[serde(default = "post")]
    pub method: String,
    /// `ndjson` (default) or `json_array`.
    #[serde(default)]
    pub format: BodyFormat,
    /// Extra headers (values may be `${ENV}` secrets; they are never logged).
    #[serde(default)]
    pub headers: IndexMap<String, Secret>,
    pub auth: Option<AuthConfig>,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    /// How long one request may take.
    #[serde(default = "delivery::default_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Requests in flight at once.
    #[serde(default = "max_in_flight")]
    pub max_in_flight: usize,
    /// A sink for records the server rejects for good (for example a `file` sink).
    pub dead_letter: Option<String>,
    /// When this sink's queue is full: `block` (default: back-pressure the stream) or
    /// `drop_newest` (drop for this sink only, counted).
    #[serde(default)]
    pub when_full: crate::route::WhenFull,
}

fn post() -> String {
    "POST".into()
}

fn max_in_flight() -> usize {
    4
}

impl HttpSinkConfig {
    pub fn settings(&self) -> anyhow::Result<HttpSettings> {
        HttpSettings::new(
            &self.method,
            &self.url,
            &self.headers,
            self.auth.as_ref(),
            self.compression,
            self.request_timeout,
        )
    }

    pub fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &SinkContext,
    ) -> anyhow::Result<()> {
        let options = delivery::RemoteOptions {
            tls: &self.tls,
            batch: &self.batch,
            retry: &self.retry,
            max_in_flight: self.max_in_flight,
            dead_letter: self.dead_letter.as_deref(),
        };
        let encoder = Arc::new(HttpEncoder {
            format: self.format,
        });
        delivery::start(name, self.settings()?, options, encoder, input, exit, ctx)?;
        Ok(())
    }
}

struct HttpEncoder {
    format: BodyFormat,
}

impl Encoder for HttpEncoder {
    fn content_type(&self) -> &'static str {
        match self.format {
            BodyFormat::Ndjson => "application/x-ndjson",
            BodyFormat::JsonArray => "application/json",
        }
    }

    fn encode(&self, request: &Request, out: &mut Vec<u8>) {
        for part in &request.parts {
            encode_range(&part.batch, part.range.clone(), Format::Json, out)
                .expect("writing to a Vec cannot fail");
        }
        if self.format == BodyFormat::JsonArray {
            // NDJSON lines → one array: the objects hold no raw newlines (JSON escapes them).
            let mut array = Vec::with_capacity(out.len() + 2);
            array.push(b'[');
            for (i, line) in out
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .enumerate()
            {
                if i > 0 {
                    array.push(b',');
                }
                array.extend_from_slice(line);
            }
            array.push(b']');
            *out = array;
        }
    }
}
