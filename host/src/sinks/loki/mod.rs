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

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::batcher::Request;
use super::util::delivery::RemoteOptions;
use super::util::delivery::{self, Encoder, remote_sink_config};
use super::util::http::{Compression, HttpSettings, endpoint};
use super::util::template::Template;
use super::{SinkBatch, SinkContext, SinkExit};
use crate::units::SettingError;

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
    pub fn settings(&self) -> Result<HttpSettings, SettingError> {
        // Protobuf bodies are snappy-compressed by the encoder; JSON ones are gzipped.
        let compression = match self.encoding {
            LokiEncoding::Protobuf => Compression::None,
            LokiEncoding::Json => Compression::Gzip,
        };
        let url = endpoint(&self.url, "/loki/api/v1/push");
        let mut settings = self.http_settings("POST", &url, compression)?;
        if let Some(t) = &self.tenant {
            settings.add_header("x-scope-orgid", t, "tenant")?;
        }
        Ok(settings)
    }

    /// The request body's encoder; label sets past `max_label_sets` are counted in `stats`.
    pub(crate) fn encoder(&self, stats: Arc<crate::stats::SinkStats>) -> impl Encoder + use<> {
        PushEncoder {
            labels: {
                let mut labels: Vec<(String, Template)> = self
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Template::parse(v)))
                    .collect();
                labels.sort_by(|a, b| a.0.cmp(&b.0));
                labels
            },
            encoding: self.encoding,
            max_label_sets: self.max_label_sets,
            seen: Mutex::default(),
            stats,
        }
    }
}

impl super::Sink for LokiConfig {
    fn kind(&self) -> &'static str {
        "loki"
    }

    fn spawn(
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

    fn check_settings(&self) -> Result<(), SettingError> {
        self.settings().map(drop)
    }

    fn remote_options(&self) -> Option<RemoteOptions<'_>> {
        Some(self.options())
    }

    fn templates(&self) -> Vec<(String, Template)> {
        self.labels
            .iter()
            .map(|(k, v)| (format!("labels.{k}"), Template::parse(v)))
            .collect()
    }

    fn describe(&self) -> String {
        format!("loki {} ({:?})", self.url, self.encoding).to_lowercase()
    }
}

/// One label set's labels and entries (time, line borrowed from its batch).
type Group<'a> = (
    BTreeMap<&'a str, String>,
    Vec<(jiff::Timestamp, Cow<'a, str>)>,
);

struct PushEncoder {
    /// Label names (sorted) and their templates.
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
    /// Record `i`'s label set before the cardinality guard, rendered into `out` as the key
    /// a request looks label sets up by (one string per distinct set; `value` is scratch).
    fn raw_label_string(
        &self,
        batch: &crate::event::Batch,
        i: usize,
        out: &mut Vec<u8>,
        value: &mut String,
    ) {
        out.clear();
        out.push(b'{');
        // `labels` is sorted by name, as the label string wants.
        for (k, t) in &self.labels {
            value.clear();
            t.render_into(batch, i, value);
            if value.is_empty() {
                continue;
            }
            if out.len() > 1 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            crate::event::fields::write_json_str(out, value);
        }
        out.push(b'}');
    }

    /// Record `i`'s label string and labels, through the cardinality guard: past
    /// `max_label_sets` distinct sets, field-filled values become `_other_` (the `bool`).
    fn label_set(
        &self,
        batch: &crate::event::Batch,
        i: usize,
    ) -> (String, BTreeMap<&str, String>, bool) {
        let mut labels: BTreeMap<&str, String> = self
            .labels
            .iter()
            .map(|(k, t)| (k.as_str(), t.render(batch, i)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let key = label_string(&labels);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&key) {
            return (key, labels, false);
        }
        if seen.len() < self.max_label_sets {
            seen.insert(key.clone());
            return (key, labels, false);
        }
        for (k, t) in &self.labels {
            if t.uses_fields() {
                labels.insert(k.as_str(), "_other_".into());
            }
        }
        (label_string(&labels), labels, true)
    }

    /// Counts one record whose label set was past the guard (and says so the first time).
    fn count_overflow(&self) {
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
        // Group by label set, keeping each group's labels, then sort each group by time. A
        // record's label string is rendered into one reused buffer and looked up; only a label
        // set new to this request goes through the cardinality guard and allocates.
        let mut groups: IndexMap<String, Group<'_>> = IndexMap::new();
        let mut index: HashMap<Vec<u8>, (usize, bool)> = HashMap::new();
        let (mut raw, mut value) = (Vec::new(), String::new());
        for part in &request.parts {
            let b = &part.batch;
            for i in part.range.clone() {
                self.raw_label_string(b, i, &mut raw, &mut value);
                let (g, overflowed) = match index.get(&raw) {
                    Some(&found) => found,
                    None => {
                        let (key, labels, overflowed) = self.label_set(b, i);
                        let entry = groups.entry(key);
                        let g = entry.index();
                        entry.or_insert_with(|| (labels, Vec::new()));
                        index.insert(raw.clone(), (g, overflowed));
                        (g, overflowed)
                    }
                };
                if overflowed {
                    self.count_overflow();
                }
                groups[g]
                    .1
                    .push((b.event_time(i), crate::event::text(b.line_at(i))));
            }
        }
        for (_, entries) in groups.values_mut() {
            entries.sort_by_key(|e| e.0);
        }
        match self.encoding {
            LokiEncoding::Protobuf => {
                let mut raw = Vec::with_capacity(request.bytes + request.records * 16);
                write_push_request(&groups, &mut raw);
                *out = snap::raw::Encoder::new()
                    .compress_vec(&raw)
                    .expect("snappy compresses any input");
            }
            LokiEncoding::Json => write_push_json(&groups, out),
        }
    }
}

/// `logproto.PushRequest` as prost writes it (fields at their default value left out), from
/// borrowed lines.
fn write_push_request(groups: &IndexMap<String, Group<'_>>, out: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
    let len_of = |n: usize| encoded_len_varint(n as u64) + n;
    let int_len = |tag_and_value: u64| {
        if tag_and_value == 0 {
            0
        } else {
            1 + encoded_len_varint(tag_and_value)
        }
    };
    let time_len =
        |t: &jiff::Timestamp| int_len(t.as_second() as u64) + int_len(t.subsec_nanosecond() as u64);
    let entry_len = |(t, line): &(jiff::Timestamp, Cow<'_, str>)| {
        1 + len_of(time_len(t))
            + if line.is_empty() {
                0
            } else {
                1 + len_of(line.len())
            }
    };
    for (labels, (_, entries)) in groups {
        let stream_len = if labels.is_empty() {
            0
        } else {
            1 + len_of(labels.len())
        } + entries
            .iter()
            .map(|e| 1 + len_of(entry_len(e)))
            .sum::<usize>();
        encode_key(1, WireType::LengthDelimited, out);
        encode_varint(stream_len as u64, out);
        if !labels.is_empty() {
            encode_key(1, WireType::LengthDelimited, out);
            encode_varint(labels.len() as u64, out);
            out.extend_from_slice(labels.as_bytes());
        }
        for e in entries {
            encode_key(2, WireType::LengthDelimited, out);
            encode_varint(entry_len(e) as u64, out);
            let (t, line) = e;
            encode_key(1, WireType::LengthDelimited, out);
            encode_varint(time_len(t) as u64, out);
            if t.as_second() != 0 {
                encode_key(1, WireType::Varint, out);
                encode_varint(t.as_second() as u64, out);
            }
            if t.subsec_nanosecond() != 0 {
                encode_key(2, WireType::Varint, out);
                encode_varint(t.subsec_nanosecond() as u64, out);
            }
            if !line.is_empty() {
                encode_key(2, WireType::LengthDelimited, out);
                encode_varint(line.len() as u64, out);
                out.extend_from_slice(line.as_bytes());
            }
        }
    }
}

/// Loki's JSON push body: `{"streams":[{"stream":{labels},"values":[["ns","line"],...]}]}`.
fn write_push_json(groups: &IndexMap<String, Group<'_>>, out: &mut Vec<u8>) {
    use crate::event::fields::write_json_str;
    out.extend_from_slice(b"{\"streams\":[");
    for (n, (labels, entries)) in groups.values().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":{");
        for (m, (k, v)) in labels.iter().enumerate() {
            if m > 0 {
                out.push(b',');
            }
            write_json_str(out, k);
            out.push(b':');
            write_json_str(out, v);
        }
        out.extend_from_slice(b"},\"values\":[");
        for (m, (t, line)) in entries.iter().enumerate() {
            if m > 0 {
                out.push(b',');
            }
            // Digits only: nothing to escape, and no string allocated per entry.
            use std::io::Write as _;
            write!(out, "[\"{}\",", t.as_nanosecond()).expect("writing to a Vec");
            write_json_str(out, line);
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
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
