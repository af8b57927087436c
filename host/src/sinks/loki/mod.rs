//! The `loki` sink: Grafana Loki's push API (`/loki/api/v1/push`), as protobuf + snappy (Loki's
//! preferred encoding, the default) or JSON.
//!
//! Labels are templates: `{ app: demo, stream: "{stream}", level: "{level}" }`, where `{stream}`,
//! `{file}` and `{FIELD}` are filled per record (`${ENV}` is filled at load, like everywhere in
//! the configuration). Records are grouped by label set, and each group's entries are sorted by
//! timestamp, as Loki wants them. A label set beyond `max_label_sets` (the cardinality guard)
//! has its field-filled values replaced by `_other_`, and those records are counted. `tenant` sets
//! `X-Scope-OrgID`. A 400 (entries out of order or too old) is permanent for the whole push and
//! goes to the dead-letter sink.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::batcher::Request;
use super::util::delivery::{self, Encoder, remote_sink_config};
use super::util::http::{Compression, HttpSettings, Secret, endpoint};
use super::util::template::Template;
use super::{SinkBatch, SinkContext, SinkExit};

/// The push body encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LokiEncoding {
    /// `logproto.PushRequest`, snappy-compressed.
    #[default]
    Protobuf,
    /// The JSON push format.
    Json,
}

remote_sink_config! {
    http:
    pub struct LokiConfig {
        /// Loki's base URL: `http://loki:3100`.
        pub url: String,
        /// Label templates.
        pub labels: IndexMap<String, String>,
        #[serde(default)]
        pub encoding: LokiEncoding,
        /// The tenant (`X-Scope-OrgID`).
        pub tenant: Option<String>,
        /// Most distinct label sets; beyond it, templated values become `_other_`.
        #[serde(default = "max_label_sets", deserialize_with = "crate::units::de_count")]
        pub max_label_sets: usize,
    }
    max_in_flight_default = "one"
}

fn max_label_sets() -> usize {
    256
}
fn one() -> usize {
    1
}

impl LokiConfig {
    pub fn settings(&self) -> anyhow::Result<HttpSettings> {
        let url = endpoint(&self.url, "/loki/api/v1/push");
        let mut headers = self.headers.clone();
        if let Some(t) = &self.tenant {
            headers.insert("X-Scope-OrgID".into(), Secret(t.clone()));
        }
        // Protobuf bodies are snappy-compressed by the encoder; JSON ones are gzipped.
        let compression = match self.encoding {
            LokiEncoding::Protobuf => Compression::None,
            LokiEncoding::Json => Compression::Gzip,
        };
        HttpSettings::new(
            "POST",
            &url,
            &headers,
            self.auth.as_ref(),
            compression,
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
        let encoder = Arc::new(self.encoder(ctx.stats(&name)));
        let transport = delivery::HttpTransport::new(&self.tls, self.settings()?, encoder)?;
        delivery::start(name, transport, self.options(), input, exit, ctx)?;
        Ok(())
    }

    /// The request body's encoder; label sets past `max_label_sets` are counted in `stats`.
    pub(crate) fn encoder(&self, stats: Arc<crate::stats::SinkStats>) -> impl Encoder + use<> {
        PushEncoder {
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Template::parse(v)))
                .collect(),
            encoding: self.encoding,
            max_label_sets: self.max_label_sets,
            seen: Mutex::default(),
            stats,
        }
    }
}

/// One label set's labels and entries (time, line).
type Group<'a> = (BTreeMap<&'a str, String>, Vec<(jiff::Timestamp, String)>);

struct PushEncoder {
    labels: Vec<(String, Template)>,
    encoding: LokiEncoding,
    max_label_sets: usize,
    /// Label sets seen so far (the cardinality guard).
    seen: Mutex<HashSet<String>>,
    stats: Arc<crate::stats::SinkStats>,
}

/// Loki's `{k="v", ...}` form, keys sorted, values escaped.
fn label_string(labels: &BTreeMap<&str, String>) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).expect("a string")))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

impl PushEncoder {
    fn label_set(&self, batch: &crate::event::Batch, i: usize) -> (String, BTreeMap<&str, String>) {
        let mut labels: BTreeMap<&str, String> = self
            .labels
            .iter()
            .map(|(k, t)| (k.as_str(), t.render(batch, i)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let mut key = label_string(&labels);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains(&key) {
            if seen.len() < self.max_label_sets {
                seen.insert(key.clone());
            } else {
                if self
                    .stats
                    .label_overflow
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    == 0
                {
                    tracing::warn!(
                        max_label_sets = self.max_label_sets,
                        "too many distinct Loki label sets; templated values become _other_"
                    );
                }
                for (k, t) in &self.labels {
                    if t.uses_fields() {
                        labels.insert(k.as_str(), "_other_".into());
                    }
                }
                key = label_string(&labels);
            }
        }
        (key, labels)
    }
}

mod proto {
    //! `logproto.PushRequest` (Loki's push.proto), the fields tailcar sends.

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

pub use proto::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};

impl Encoder for PushEncoder {
    fn content_type(&self) -> &'static str {
        match self.encoding {
            LokiEncoding::Protobuf => "application/x-protobuf",
            LokiEncoding::Json => "application/json",
        }
    }

    fn encode(&self, request: &Request, out: &mut Vec<u8>) {
        // Group by label set, keeping each group's labels, then sort each group by time.
        let mut groups: IndexMap<String, Group> = IndexMap::new();
        for part in &request.parts {
            let b = &part.batch;
            for i in part.range.clone() {
                let (key, labels) = self.label_set(b, i);
                let line = crate::event::text(b.line_at(i)).into_owned();
                groups
                    .entry(key)
                    .or_insert_with(|| (labels, Vec::new()))
                    .1
                    .push((b.event_time(i), line));
            }
        }
        for (_, entries) in groups.values_mut() {
            entries.sort_by_key(|e| e.0);
        }
        match self.encoding {
            LokiEncoding::Protobuf => {
                let push = PushRequest {
                    streams: groups
                        .into_iter()
                        .map(|(labels, (_, entries))| StreamAdapter {
                            labels,
                            entries: entries
                                .into_iter()
                                .map(|(t, line)| EntryAdapter {
                                    timestamp: Some(Timestamp {
                                        seconds: t.as_second(),
                                        nanos: t.subsec_nanosecond(),
                                    }),
                                    line,
                                })
                                .collect(),
                            hash: 0,
                        })
                        .collect(),
                };
                let raw = prost::Message::encode_to_vec(&push);
                *out = snap::raw::Encoder::new()
                    .compress_vec(&raw)
                    .expect("snappy compresses any input");
            }
            LokiEncoding::Json => {
                let streams: Vec<serde_json::Value> = groups
                    .into_values()
                    .map(|(labels, entries)| {
                        let values: Vec<serde_json::Value> = entries
                            .into_iter()
                            .map(|(t, line)| {
                                serde_json::json!([t.as_nanosecond().to_string(), line])
                            })
                            .collect();
                        serde_json::json!({ "stream": labels, "values": values })
                    })
                    .collect();
                serde_json::to_writer(&mut *out, &serde_json::json!({ "streams": streams }))
                    .expect("writing to a Vec");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_label_strings() {
        let t = Template::parse("pod-{pod}-x");
        assert!(t.uses_fields());
        assert!(!Template::parse("demo").uses_fields());
        assert!(!Template::parse("{stream}-{file}").uses_fields());
        let mut l = BTreeMap::new();
        l.insert("stream", "access".to_string());
        l.insert("app", "de\"mo".to_string());
        assert_eq!(label_string(&l), r#"{app="de\"mo", stream="access"}"#);
    }
}
