//! The `http` sink: POSTs batches of records as NDJSON (one JSON object per line, the default)
//! or as one JSON array, with the shared delivery core (batching, retries, acknowledgements,
//! dead-letter, gzip, TLS, auth). A record's JSON is the same as the `json` format of the
//! stdout and file sinks.

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::batcher::Request;
use super::util::delivery::RemoteOptions;
use super::util::delivery::{self, Encoder, remote_sink_config};
use super::util::encode::{Format, encode_range};
use super::util::http::{Compression, HttpSettings};
use super::{SinkBatch, SinkContext, SinkExit};
use crate::units::SettingError;

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

remote_sink_config! {
    http:
    pub struct HttpSinkConfig {
        /// Where to send: `http://` or `https://`.
        pub url: String,
        /// The HTTP method (default POST).
        #[serde(default = "post")]
        pub method: String,
        /// `ndjson` (default) or `json_array`.
        #[serde(default)]
        pub format: BodyFormat,
        /// `gzip` (default) or `none`.
        #[serde(default)]
        pub compression: Compression,
    }
    max_in_flight_default = "max_in_flight"
}

fn post() -> String {
    "POST".into()
}

fn max_in_flight() -> usize {
    4
}

impl HttpSinkConfig {
    pub fn settings(&self) -> Result<HttpSettings, SettingError> {
        self.http_settings(&self.method, &self.url, self.compression)
    }

    /// The request body's encoder.
    pub(crate) fn encoder(&self) -> impl Encoder + use<> {
        HttpEncoder {
            format: self.format,
        }
    }
}

impl super::Sink for HttpSinkConfig {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &SinkContext,
    ) -> anyhow::Result<()> {
        let encoder = Arc::new(self.encoder());
        let transport = delivery::HttpTransport::new(&self.tls, self.settings()?, encoder)?;
        delivery::start(name, transport, self.options(), input, exit, ctx)?;
        Ok(())
    }

    fn check_settings(&self) -> Result<(), SettingError> {
        self.settings().map(drop)
    }

    fn remote_options(&self) -> Option<RemoteOptions<'_>> {
        Some(self.options())
    }

    fn describe(&self) -> String {
        format!("http {} {}", self.method, self.url)
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
