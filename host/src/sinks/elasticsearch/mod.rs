//! The `elasticsearch` sink (also OpenSearch): the `_bulk` API with `index` actions.
//!
//! Each record becomes a document: `@timestamp` (the record's event time; the name is
//! `timestamp_field`, and `include_timestamp: false` leaves it out), `message` (the line), `stream`,
//! `file`, then the record's fields at the top level (a field wins over these names). `index`
//! may hold strftime specifiers filled from the event time in UTC (`logs-%Y.%m.%d`, as Fluentd's
//! `logstash_format`); `id_field` names a field used as `_id` (idempotent writes); `pipeline` an
//! ingest pipeline. The bulk response is read item by item: items answered 429 or 5xx are sent
//! again, alone; items rejected for good (mapping errors) go to the dead-letter sink.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::batcher::Request;
use super::util::delivery::RemoteOptions;
use super::util::delivery::{self, Encoder, remote_sink_config};
use super::util::http::{Compression, HttpSettings, Response, endpoint};
use super::util::retry::{Outcome, classify_status};
use super::util::template::Template;
use super::{SinkBatch, SinkContext, SinkExit};
use crate::units::SettingError;

remote_sink_config! {
    http:
    pub struct ElasticsearchConfig {
        /// The cluster's base URL: `http://elasticsearch:9200`.
        pub url: String,
        /// The index: a template (`{stream}`, `{file}`, `{FIELD}`, `{a.b}`, filled per record,
        /// as Loki labels and Kafka topics are), then strftime specifiers filled from the
        /// record's event time (UTC): `app-{kubernetes.namespace}-%Y.%m.%d`.
        #[serde(default = "default_index")]
        pub index: String,
        /// An ingest pipeline to run the documents through.
        pub pipeline: Option<String>,
        /// A field whose value becomes the document `_id` (wins over `id`).
        pub id_field: Option<String>,
        /// `file_offset` (default): each document's `_id` is made from its file's identity and
        /// its offset, so a batch sent again after a crash or a retry overwrites the documents it
        /// wrote the first time instead of adding copies; `none`: Elasticsearch picks ids.
        #[serde(default)]
        pub id: DocumentId,
        /// The document field that holds the event time.
        #[serde(default = "default_timestamp_field")]
        pub timestamp_field: String,
        /// Write the event time into `timestamp_field`.
        #[serde(default = "yes")]
        pub include_timestamp: bool,
        /// The document field that holds the line.
        #[serde(default = "default_message_field")]
        pub message_field: String,
        #[serde(default)]
        pub compression: Compression,
    }
    max_in_flight_default = "max_in_flight"
}

/// `format` filled from `time` (UTC); a format that does not work (a field value with a `%` in
/// it) is used as written, and the server's refusal of the index name is counted and logged.
/// Whether a strftime pattern names nothing finer than a day (`%Y.%m.%d`, `%F`, `%j`, ...), so
/// one formatting serves every time of a UTC day.
fn date_only(format: &str) -> bool {
    let mut chars = format.chars();
    while let Some(ch) = chars.next() {
        if ch == '%' {
            // Flags and widths (`%-d`, `%_m`, `%4Y`) before the specifier.
            let spec = chars
                .by_ref()
                .find(|c| !matches!(c, '-' | '_' | '0'..='9' | '^' | '#'));
            if !matches!(
                spec,
                Some('Y' | 'y' | 'C' | 'm' | 'd' | 'e' | 'j' | 'F' | 'D' | 'b' | 'B' | 'h')
                    | Some('a' | 'A' | 'u' | 'w' | 'G' | 'g' | 'V' | 'U' | 'W' | '%' | 'n' | 't')
            ) {
                return false;
            }
        }
    }
    true
}

fn strftime(format: &str, time: jiff::Timestamp) -> String {
    jiff::fmt::strtime::format(format, &time.to_zoned(jiff::tz::TimeZone::UTC))
        .unwrap_or_else(|_| format.to_string())
}

/// How document ids are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentId {
    /// From the file's identity (device, inode, birth time), the stream and the record's offset.
    #[default]
    FileOffset,
    /// None: Elasticsearch assigns one (a re-sent record becomes a second document).
    None,
}

/// Writes `,"_id":"…"`, the stable id of record `i` of `b`: its file's life, its stream, its
/// end offset, and its rank among records of the batch that share that offset (a plugin may
/// split one line into several records). Nothing when the file's filesystem keeps no birth time.
fn write_stable_id(out: &mut Vec<u8>, b: &crate::event::Batch, i: usize, stream_hash: u64) {
    let Some(life) = b.source().file_id else {
        return;
    };
    let offset = b.records()[i].offset;
    let rank = b.records()[..i]
        .iter()
        .rev()
        .take_while(|r| r.offset == offset)
        .count();
    write_id(out, life, stream_hash as u32, offset, rank);
}

/// `,"_id":"{life:016x}{h:08x}-{offset:x}"` (with `-{rank}` when not 0), written without the
/// formatting machinery (it took about 3 % of a parsed run to Elasticsearch). Hex digits and
/// dashes: nothing to escape.
fn write_id(out: &mut Vec<u8>, life: u64, h: u32, offset: u64, rank: usize) {
    out.extend_from_slice(b",\"_id\":\"");
    write_hex(out, life, 16);
    write_hex(out, u64::from(h), 8);
    out.push(b'-');
    let digits = (64 - offset.leading_zeros() as usize).div_ceil(4).max(1);
    write_hex(out, offset, digits);
    if rank != 0 {
        out.push(b'-');
        use std::io::Write as _;
        write!(out, "{rank}").expect("writing to a Vec");
    }
    out.push(b'"');
}

/// The low `digits` hex digits of `v`, lowercase, zero-padded.
fn write_hex(out: &mut Vec<u8>, v: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for d in (0..digits).rev() {
        out.push(HEX[((v >> (d * 4)) & 0xf) as usize]);
    }
}

fn default_index() -> String {
    "logs-%Y.%m.%d".into()
}
fn default_timestamp_field() -> String {
    "@timestamp".into()
}
fn default_message_field() -> String {
    "message".into()
}
fn yes() -> bool {
    true
}
fn max_in_flight() -> usize {
    4
}

impl ElasticsearchConfig {
    pub fn settings(&self) -> Result<HttpSettings, SettingError> {
        let epoch = jiff::Timestamp::UNIX_EPOCH.to_zoned(jiff::tz::TimeZone::UTC);
        if let Err(e) = jiff::fmt::strtime::format(&self.index, &epoch) {
            return Err(SettingError::new(
                "index",
                format!("`{}` is not a valid date format: {e}", self.index),
            ));
        }
        self.http_settings("POST", &endpoint(&self.url, "/_bulk"), self.compression)
    }

    /// The request body's encoder.
    pub(crate) fn encoder(&self) -> impl Encoder + use<> {
        BulkEncoder {
            index: Template::parse(&self.index),
            config: self.clone(),
        }
    }
}

impl super::Sink for ElasticsearchConfig {
    fn kind(&self) -> &'static str {
        "elasticsearch"
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

    fn templates(&self) -> Vec<(String, Template)> {
        let mut out = vec![("index".to_string(), Template::parse(&self.index))];
        if let Some(f) = &self.id_field {
            out.push(("id_field".into(), Template::parse(&format!("{{{f}}}"))));
        }
        out
    }

    fn describe(&self) -> String {
        format!("elasticsearch {} index {}", self.url, self.index)
    }
}

struct BulkEncoder {
    config: ElasticsearchConfig,
    /// `config.index` as a template.
    index: Template,
}

/// A value of the source document's own keys (time, message, stream, file).
enum Own<'a> {
    Text(&'a str),
    /// Already JSON (the timestamp, rendered once per distinct time).
    Json(&'a [u8]),
}

impl BulkEncoder {
    /// Record `i`'s source document: the time (if included), the message, the stream and the
    /// file, then the record's fields. A field named like one of those four replaces its value
    /// in its place (as inserting into one ordered map would). `time` is the event time as JSON.
    fn write_source(
        &self,
        out: &mut Vec<u8>,
        b: &crate::event::Batch,
        i: usize,
        time: &[u8],
        stream: &str,
        file: &str,
    ) {
        let c = &self.config;
        let message = crate::event::text(b.line_at(i));
        let own: [(Option<&str>, Own); 4] = [
            (
                c.include_timestamp.then_some(c.timestamp_field.as_str()),
                Own::Json(time),
            ),
            (Some(c.message_field.as_str()), Own::Text(&message)),
            (Some("stream"), Own::Text(stream)),
            (Some("file"), Own::Text(file)),
        ];
        let is_own = |k: &str| own.iter().any(|(o, _)| *o == Some(k));
        // One pass, written as if no field is named like an own key (the usual case); a record
        // with such a field is written again the slow way.
        let doc = out.len();
        self.write_own(out, &own, |_| None);
        for (k, v) in b.fields().iter(i) {
            if is_own(k) {
                out.truncate(doc);
                let fields = b.fields();
                self.write_own(out, &own, |key| fields.get(i, key));
                for (k, v) in fields.iter(i).filter(|(k, _)| !is_own(k)) {
                    write_field(out, k, v);
                }
                out.push(b'}');
                return;
            }
            write_field(out, k, v);
        }
        out.push(b'}');
    }

    /// `{` and the own keys, each at its first place with the record's field of that name
    /// (from `field`) or else the last own value given for it.
    fn write_own<'v>(
        &self,
        out: &mut Vec<u8>,
        own: &[(Option<&str>, Own)],
        field: impl Fn(&str) -> Option<crate::event::Value<'v>>,
    ) {
        out.push(b'{');
        let mut first = true;
        for (j, (key, _)) in own.iter().enumerate() {
            let Some(key) = *key else { continue };
            if own[..j].iter().any(|(o, _)| *o == Some(key)) {
                continue; // written at its first place, with its last value
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(out, key);
            out.push(b':');
            match field(key) {
                Some(v) => v.write_json(out),
                None => {
                    let last = own.iter().rev().find(|(o, _)| *o == Some(key));
                    match last.map(|(_, v)| v) {
                        Some(Own::Text(t)) => write_str(out, t),
                        Some(Own::Json(j)) => out.extend_from_slice(j),
                        None => unreachable!("the key is one of `own`"),
                    }
                }
            }
        }
    }
}

/// `,"key":value`.
fn write_field(out: &mut Vec<u8>, k: &str, v: crate::event::Value<'_>) {
    out.push(b',');
    write_str(out, k);
    out.push(b':');
    v.write_json(out);
}

/// `s` as a JSON string.
fn write_str(out: &mut Vec<u8>, s: &str) {
    crate::event::fields::write_json_str(out, s);
}

impl Encoder for BulkEncoder {
    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    /// Writes each document's action and source lines straight into `out`: no map per document,
    /// no copy of a key or value; the index is formatted once per distinct time when it is
    /// dated, and the action line's constant parts are escaped once per request.
    fn encode(&self, request: &Request, out: &mut Vec<u8>) {
        let c = &self.config;
        let plain = self.index.as_text().is_some();
        let dated = c.index.contains('%');
        let mut pipeline = Vec::new();
        if let Some(p) = &c.pipeline {
            pipeline.extend_from_slice(b",\"pipeline\":");
            write_str(&mut pipeline, p);
        }
        let mut plain_index = Vec::new();
        write_str(&mut plain_index, &c.index);
        // The last dated index and the time it was formatted for (records share times).
        // Index names change at most daily unless the pattern says otherwise.
        let daily = dated && date_only(&c.index);
        let mut last_dated: Option<(i128, Vec<u8>)> = None;
        // The last event time and its JSON text (records of a second share it).
        let mut last_time: Option<(jiff::Timestamp, Vec<u8>)> = None;
        // About what a parsed access line becomes (action, source, fields): grown once, not
        // doubled a dozen times.
        let line_bytes: usize = request
            .parts
            .iter()
            .map(|p| {
                p.batch.records()[p.range.clone()]
                    .iter()
                    .map(|r| r.len as usize)
                    .sum::<usize>()
            })
            .sum();
        out.reserve(line_bytes * 3);
        for part in &request.parts {
            let b = &part.batch;
            let file = b.source().path.to_string_lossy();
            let stream: &str = &b.source().stream;
            let stream_hash = xxhash_rust::xxh3::xxh3_64(stream.as_bytes());
            for i in part.range.clone() {
                let time = b.event_time(i);
                out.extend_from_slice(b"{\"index\":{\"_index\":");
                match (plain, dated) {
                    (true, false) => out.extend_from_slice(&plain_index),
                    (true, true) => {
                        let key = if daily {
                            i128::from(time.as_second().div_euclid(86_400))
                        } else {
                            time.as_nanosecond()
                        };
                        if last_dated.as_ref().is_none_or(|(k, _)| *k != key) {
                            let mut v = Vec::new();
                            write_str(&mut v, &strftime(&c.index, time));
                            last_dated = Some((key, v));
                        }
                        out.extend_from_slice(&last_dated.as_ref().expect("just set").1);
                    }
                    (false, _) => {
                        let filled = self.index.render(b, i);
                        if filled.contains('%') {
                            write_str(out, &strftime(&filled, time));
                        } else {
                            write_str(out, &filled);
                        }
                    }
                }
                if let Some(id) = c.id_field.as_ref().and_then(|k| b.fields().get(i, k)) {
                    out.extend_from_slice(b",\"_id\":");
                    match id {
                        crate::event::Value::Text(s) => write_str(out, s),
                        other => write_str(out, &other.to_string()),
                    }
                } else if c.id == DocumentId::FileOffset {
                    write_stable_id(out, b, i, stream_hash);
                }
                out.extend_from_slice(&pipeline);
                out.extend_from_slice(b"}}\n");
                if last_time.as_ref().is_none_or(|(t, _)| *t != time) {
                    use std::io::Write as _;
                    let mut v = Vec::new();
                    // A timestamp's text needs no escaping.
                    write!(v, "\"{time}\"").expect("writing to a Vec");
                    last_time = Some((time, v));
                }
                let time_json = &last_time.as_ref().expect("just set").1;
                self.write_source(out, b, i, time_json, stream, &file);
                out.push(b'\n');
            }
        }
    }

    fn classify(&self, response: &Response) -> Outcome {
        let base = classify_status(response.status, &response.headers);
        if base != Outcome::Delivered {
            return base;
        }
        classify_bulk(&response.body)
    }
}

/// Reads a bulk response item by item.
/// Whether a bulk answer is clean by its first bytes: Elasticsearch and OpenSearch write `took`,
/// then `errors`, then the items (one per document, most of the answer), so a compact
/// `"errors":false` before `"items"` settles it without reading the items. The answer must
/// still end as a whole one does (the items' `]` and the object's `}`); anything else is read
/// in full.
fn clean_by_its_head(body: &[u8]) -> bool {
    let head = &body[..body.len().min(256)];
    let whole = body.first() == Some(&b'{') && body.trim_ascii_end().ends_with(b"]}");
    whole
        && memchr::memmem::find(head, b"\"items\"").is_some_and(|items| {
            memchr::memmem::find(&head[..items], b"\"errors\":false").is_some()
        })
}

pub fn classify_bulk(body: &[u8]) -> Outcome {
    #[derive(Deserialize)]
    struct Bulk {
        errors: bool,
        #[serde(default)]
        items: Vec<IndexMap<String, Item>>,
    }
    #[derive(Deserialize)]
    struct Item {
        status: u16,
        error: Option<serde_json::Value>,
    }
    /// The answer without its items, which are only read when some failed (there is one per
    /// document: building a map for each of a clean answer's items is wasted work).
    #[derive(Deserialize)]
    struct Summary {
        errors: bool,
    }
    if clean_by_its_head(body) {
        return Outcome::Delivered;
    }
    if let Ok(Summary { errors: false }) = serde_json::from_slice::<Summary>(body) {
        return Outcome::Delivered;
    }
    let Ok(bulk) = serde_json::from_slice::<Bulk>(body) else {
        return Outcome::Retry {
            reason: "unreadable bulk response".into(),
            after: None,
        };
    };
    if !bulk.errors {
        return Outcome::Delivered;
    }
    let (mut retry, mut permanent) = (Vec::new(), Vec::new());
    for (i, item) in bulk.items.iter().enumerate() {
        let Some(item) = item.values().next() else {
            continue;
        };
        match item.status {
            200..=299 => {}
            429 | 500..=599 => retry.push(i),
            status => {
                let reason = item
                    .error
                    .as_ref()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e["type"].as_str().unwrap_or("error"),
                            e["reason"].as_str().unwrap_or("")
                        )
                    })
                    .unwrap_or_else(|| format!("status {status}"));
                permanent.push((i, reason));
            }
        }
    }
    let reason = format!(
        "bulk: {} items to retry, {} rejected",
        retry.len(),
        permanent.len()
    );
    Outcome::Partial {
        retry,
        permanent,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_written_as_the_format_machinery_would() {
        for (life, h, offset, rank) in [
            (0u64, 0u32, 0u64, 0usize),
            (0x1234_5678_9abc_def0, 0xdead_beef, 0x10, 0),
            (u64::MAX, u32::MAX, u64::MAX, 3),
            (1, 2, 0xabc_def0_1234, 12),
        ] {
            let mut ours = Vec::new();
            write_id(&mut ours, life, h, offset, rank);
            let theirs = if rank == 0 {
                format!(",\"_id\":\"{life:016x}{h:08x}-{offset:x}\"")
            } else {
                format!(",\"_id\":\"{life:016x}{h:08x}-{offset:x}-{rank}\"")
            };
            assert_eq!(String::from_utf8(ours).unwrap(), theirs);
        }
    }

    #[test]
    fn only_day_patterns_are_formatted_once_a_day() {
        for p in ["logs-%Y.%m.%d", "a-%F", "x-%-d-%_m-%4Y", "%j%%", "plain"] {
            assert!(date_only(p), "{p}");
        }
        for p in ["logs-%Y.%m.%d-%H", "%s", "%Y%", "%T", "%M"] {
            assert!(!date_only(p), "{p}");
        }
    }

    #[test]
    fn bulk_items_are_judged_one_by_one() {
        assert_eq!(
            classify_bulk(br#"{"took":3,"errors":false,"items":[{"index":{"status":201}}]}"#),
            Outcome::Delivered
        );
        let body = br#"{"errors":true,"items":[
            {"index":{"status":201}},
            {"index":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [status]"}}},
            {"create":{"status":503}}]}"#;
        match classify_bulk(body) {
            Outcome::Partial {
                retry, permanent, ..
            } => {
                assert_eq!(retry, vec![1, 3]);
                assert_eq!(
                    permanent,
                    vec![(
                        2,
                        "mapper_parsing_exception: failed to parse field [status]".to_string()
                    )]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify_bulk(b"not json"), Outcome::Retry { .. }));
    }

    #[test]
    fn a_clean_answer_is_known_by_its_head_and_nothing_else_is() {
        let clean = br#"{"took":3,"errors":false,"items":[{"index":{"status":201}}]}"#;
        assert!(clean_by_its_head(clean));
        // Cut short: read in full, and unreadable.
        let cut = &clean[..clean.len() - 3];
        assert!(!clean_by_its_head(cut));
        assert!(matches!(classify_bulk(cut), Outcome::Retry { .. }));
        // `errors` after the items, or spaced: read in full (and still judged right).
        let late = br#"{"items":[{"index":{"status":201}}],"errors":false}"#;
        assert!(!clean_by_its_head(late));
        assert_eq!(classify_bulk(late), Outcome::Delivered);
        let spaced = br#"{ "took" : 3, "errors" : false, "items" : [] }"#;
        assert!(!clean_by_its_head(spaced));
        assert_eq!(classify_bulk(spaced), Outcome::Delivered);
        // A failed item's text cannot pass for the flag: it comes after `items`.
        let failed = br#"{"errors":true,"items":[{"index":{"status":400,"error":{"reason":"\"errors\":false"}}}]}"#;
        assert!(!clean_by_its_head(failed));
        assert!(matches!(classify_bulk(failed), Outcome::Partial { .. }));
    }
}
