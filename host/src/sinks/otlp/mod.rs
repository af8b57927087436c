//! The `otlp` sink: OpenTelemetry logs over OTLP/HTTP to a collector's `/v1/logs`, as protobuf
//! (the default) or OTLP/JSON, on the shared HTTP delivery core.
//!
//! Each record becomes a `LogRecord`:
//! - `time_unix_nano`: the parsed event time (left 0, "unknown", when no parser set one);
//!   `observed_time_unix_nano`: when tailcar read the line.
//! - `severity_text` / `severity_number`: from the `severity_field` (default `level`), by name
//!   (`warn`, `ERROR`, syslog's `crit`, ...) or by pino/bunyan number (10–60).
//! - `body`: the `body_field` (default `message`) when the record has it, else the line itself
//!   (a string, or bytes when the line is not UTF-8).
//! - `attributes`: the record's other fields (typed: strings, integers, doubles, booleans, lists,
//!   maps), plus `log.file.path` and `tailcar.stream`. Fields `trace_id` (32 hex digits) and
//!   `span_id` (16) become the record's trace context instead.
//!
//! Resource attributes group the records (one `ResourceLogs` per distinct set): with
//! `kubernetes: true` (the default) `k8s.pod.name`, `k8s.namespace.name`, `k8s.node.name`,
//! `k8s.container.name`, and `k8s.pod.label.*` / `k8s.pod.annotation.*`, taken from the record's
//! `kubernetes` object (the `enrich` transform) or else from the Downward API variables
//! (`POD_NAME`, `POD_NAMESPACE`, `NODE_NAME`; `CONTAINER_NAME` is a literal in the manifest, as
//! the Downward API cannot expose it); then `resource:` templates
//! (`service.name: "{stream}"`), which win over the Kubernetes ones.
//!
//! A 2xx answer acknowledges the whole request. If it carries a partial success
//! (`rejected_log_records`), the receiver does not say which records it refused, so they cannot
//! be sent again or dead-lettered: they are counted (`server_rejected`) and logged with the
//! receiver's message.

mod json;
pub mod proto;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use indexmap::IndexMap;
use prost::Message;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::batcher::Request;
use super::util::delivery::RemoteOptions;
use super::util::delivery::{self, Encoder, remote_sink_config};
use super::util::http::{Compression, HttpSettings, Response, endpoint};
use super::util::retry::{Outcome, classify_status};
use super::util::template::Template;
use super::{SinkBatch, SinkContext, SinkExit};
use crate::event::Batch;
use crate::event::fields::Value;
use crate::units::SettingError;
use proto::{AnyValue, KeyValue, LogRecord};

/// The request body encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpEncoding {
    /// `ExportLogsServiceRequest` protobuf (`application/x-protobuf`).
    #[default]
    Protobuf,
    /// OTLP/JSON (`application/json`).
    Json,
}

remote_sink_config! {
    http:
    pub struct OtlpConfig {
        /// The collector's OTLP/HTTP base URL, `http://otel-collector:4318`; `/v1/logs` is
        /// appended unless the URL already ends with it (as `url` works for `loki`).
        pub url: String,
        #[serde(default)]
        pub encoding: OtlpEncoding,
        /// `gzip` (default) or `none`.
        #[serde(default)]
        pub compression: Compression,
        /// Resource attributes, as templates (`{stream}`, `{file}`, `{FIELD}`, `{a.b}`).
        #[serde(default)]
        pub resource: IndexMap<String, Template>,
        /// Fill the `k8s.*` resource attributes.
        #[serde(default = "yes")]
        pub kubernetes: bool,
        /// The field holding the record's level.
        #[serde(default = "level")]
        pub severity_field: String,
        /// The field holding the record's message; the line is the body when it is missing.
        #[serde(default = "message")]
        pub body_field: String,
    }
    max_in_flight_default = "max_in_flight"
}

fn yes() -> bool {
    true
}
fn level() -> String {
    "level".into()
}
fn message() -> String {
    "message".into()
}
fn max_in_flight() -> usize {
    4
}

/// The Kubernetes resource attributes: (attribute, field of the `kubernetes` object, Downward
/// API variable).
const K8S: [(&str, &str, &str); 4] = [
    ("k8s.pod.name", "pod_name", "POD_NAME"),
    ("k8s.namespace.name", "namespace", "POD_NAMESPACE"),
    ("k8s.node.name", "node_name", "NODE_NAME"),
    ("k8s.container.name", "container_name", "CONTAINER_NAME"),
];

impl OtlpConfig {
    pub fn settings(&self) -> Result<HttpSettings, SettingError> {
        self.http_settings("POST", &endpoint(&self.url, "/v1/logs"), self.compression)
    }

    /// The request body's encoder, with the Downward API values `k8s_env` (read at start).
    pub(crate) fn encoder(
        &self,
        k8s_env: Vec<Option<String>>,
        stats: Arc<crate::stats::SinkStats>,
    ) -> impl Encoder + use<> {
        LogsEncoder {
            encoding: self.encoding,
            resource: self
                .resource
                .iter()
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect(),
            kubernetes: self.kubernetes,
            k8s_env,
            severity_field: self.severity_field.clone(),
            body_field: self.body_field.clone(),
            stats,
        }
    }
}

impl super::Sink for OtlpConfig {
    fn kind(&self) -> &'static str {
        "otlp"
    }

    fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &SinkContext,
    ) -> anyhow::Result<()> {
        let k8s_env = if self.kubernetes {
            K8S.iter()
                .map(|(_, _, var)| std::env::var(var).ok().filter(|v| !v.is_empty()))
                .collect()
        } else {
            Vec::new()
        };
        let encoder = Arc::new(self.encoder(k8s_env, ctx.stats(&name)));
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
        self.resource
            .iter()
            .map(|(k, t)| (format!("resource.{k}"), t.clone()))
            .collect()
    }

    fn describe(&self) -> String {
        format!("otlp {} ({:?})", self.url, self.encoding).to_lowercase()
    }
}

struct LogsEncoder {
    encoding: OtlpEncoding,
    resource: Vec<(String, Template)>,
    kubernetes: bool,
    /// The Downward API values of [`K8S`]'s variables, read at start (empty when off).
    k8s_env: Vec<Option<String>>,
    severity_field: String,
    body_field: String,
    stats: Arc<crate::stats::SinkStats>,
}

/// One resource's attributes and records.
type Group = (Vec<(String, String)>, Vec<LogRecord>);

/// The last `kubernetes` object's text (none: the record had none) and its attributes.
type K8sCache = Option<(Option<String>, Vec<(String, String)>)>;

/// Sets resource attribute `k` (an empty value sets nothing; a later value replaces an earlier).
fn set_attribute(attrs: &mut Vec<(String, String)>, k: String, v: String) {
    if v.is_empty() {
        return;
    }
    match attrs.iter_mut().find(|(key, _)| *key == k) {
        Some(slot) => slot.1 = v,
        None => attrs.push((k, v)),
    }
}

impl LogsEncoder {
    /// Record `i`'s resource attributes, in a stable order. `k8s` keeps the Kubernetes
    /// attributes of the last `kubernetes` object seen (records of a batch share one), so the
    /// object is parsed once per distinct text, not per record.
    fn resource_of(&self, batch: &Batch, i: usize, k8s: &mut K8sCache) -> Vec<(String, String)> {
        let mut attrs: Vec<(String, String)> = Vec::new();
        if self.kubernetes {
            let text = match batch.fields().get(i, "kubernetes") {
                Some(Value::Json(t)) => Some(t),
                _ => None,
            };
            if k8s.as_ref().is_none_or(|(seen, _)| seen.as_deref() != text) {
                *k8s = Some((text.map(str::to_string), self.kubernetes_attributes(text)));
            }
            if let Some((_, known)) = k8s {
                attrs.clone_from(known);
            }
        }
        for (k, t) in &self.resource {
            set_attribute(&mut attrs, k.clone(), t.render(batch, i));
        }
        attrs
    }

    /// The Kubernetes resource attributes of a record's `kubernetes` object (its JSON text),
    /// falling back to the Downward API values for what it does not say.
    fn kubernetes_attributes(&self, text: Option<&str>) -> Vec<(String, String)> {
        let mut attrs = Vec::new();
        let parsed: Option<serde_json::Value> = text.and_then(|t| serde_json::from_str(t).ok());
        let pod = parsed.as_ref().and_then(|k| k.as_object());
        for ((attr, field, _), env) in K8S.iter().zip(&self.k8s_env) {
            let from_record = pod.and_then(|p| p.get(*field)).and_then(|v| v.as_str());
            if let Some(v) = from_record.or(env.as_deref()) {
                set_attribute(&mut attrs, attr.to_string(), v.to_string());
            }
        }
        for (key, prefix) in [
            ("labels", "k8s.pod.label."),
            ("annotations", "k8s.pod.annotation."),
        ] {
            if let Some(map) = pod.and_then(|p| p.get(key)).and_then(|m| m.as_object()) {
                for (k, v) in map {
                    set_attribute(&mut attrs, format!("{prefix}{k}"), json_text(v));
                }
            }
        }
        attrs
    }

    fn log_record(&self, batch: &Batch, i: usize) -> LogRecord {
        let record = &batch.records()[i];
        let fields = batch.fields();
        // A null field (or a float JSON cannot write, which it would turn into null) is absent.
        let field = |name: &str| {
            fields
                .get(i, name)
                .filter(|v| !matches!(v, Value::Null) && v.as_f64().is_none_or(f64::is_finite))
        };
        let mut rec = LogRecord {
            time_unix_nano: batch.time(i).map_or(0, unix_nanos),
            observed_time_unix_nano: jiff::Timestamp::try_from(batch.read_at())
                .map_or(0, unix_nanos),
            ..LogRecord::default()
        };
        let severity = field(&self.severity_field);
        if let Some(v) = severity {
            rec.severity_text = v.to_string();
            rec.severity_number = severity_number(&rec.severity_text);
        }
        let body = field(&self.body_field);
        rec.body = Some(match body {
            Some(v) => any_value(v),
            None => {
                let line = batch.line(record);
                match std::str::from_utf8(line) {
                    Ok(s) => AnyValue::string(s),
                    Err(_) => AnyValue {
                        value: Some(proto::Value::BytesValue(line.to_vec())),
                    },
                }
            }
        });
        let trace_id = fields.get(i, "trace_id").and_then(|v| hex_id(v, 16));
        let span_id = fields.get(i, "span_id").and_then(|v| hex_id(v, 8));
        let (severity_used, body_used) = (severity.is_some(), body.is_some());
        let (trace_used, span_used) = (trace_id.is_some(), span_id.is_some());
        // The record's fields as attributes, without those that went elsewhere.
        rec.attributes = fields
            .iter(i)
            .filter(|&(k, _)| {
                !(severity_used && k == self.severity_field
                    || body_used && k == self.body_field
                    || self.kubernetes && k == "kubernetes"
                    || trace_used && k == "trace_id"
                    || span_used && k == "span_id")
            })
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: Some(any_value(v)),
            })
            .collect();
        rec.trace_id = trace_id.unwrap_or_default();
        rec.span_id = span_id.unwrap_or_default();
        rec.attributes.push(KeyValue::string(
            "log.file.path",
            batch.source().path.to_string_lossy(),
        ));
        rec.attributes
            .push(KeyValue::string("tailcar.stream", &*batch.source().stream));
        rec
    }

    /// The request's records as an `ExportLogsServiceRequest`, one `ResourceLogs` per distinct
    /// resource, records in their batch order.
    fn export_request(&self, request: &Request) -> proto::ExportLogsServiceRequest {
        let mut groups: IndexMap<String, Group> = IndexMap::new();
        let mut key = String::new();
        let mut k8s = None;
        for part in &request.parts {
            let b = &part.batch;
            for i in part.range.clone() {
                let resource = self.resource_of(b, i, &mut k8s);
                key.clear();
                for (k, v) in &resource {
                    key.push_str(k);
                    key.push('\0');
                    key.push_str(v);
                    key.push('\0');
                }
                let record = self.log_record(b, i);
                match groups.get_mut(&key) {
                    Some(g) => g.1.push(record),
                    None => {
                        groups.insert(key.clone(), (resource, vec![record]));
                    }
                }
            }
        }
        let scope = proto::InstrumentationScope {
            name: "tailcar".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        proto::ExportLogsServiceRequest {
            resource_logs: groups
                .into_values()
                .map(|(resource, log_records)| proto::ResourceLogs {
                    resource: Some(proto::Resource {
                        attributes: resource
                            .into_iter()
                            .map(|(k, v)| KeyValue::string(k, v))
                            .collect(),
                        dropped_attributes_count: 0,
                    }),
                    scope_logs: vec![proto::ScopeLogs {
                        scope: Some(scope.clone()),
                        log_records,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        }
    }
}

impl Encoder for LogsEncoder {
    fn content_type(&self) -> &'static str {
        match self.encoding {
            OtlpEncoding::Protobuf => "application/x-protobuf",
            OtlpEncoding::Json => "application/json",
        }
    }

    fn encode(&self, request: &Request, out: &mut Vec<u8>) {
        let export = self.export_request(request);
        match self.encoding {
            OtlpEncoding::Protobuf => export.encode(out).expect("a Vec grows to fit the message"),
            OtlpEncoding::Json => json::write_export_request(&export, out),
        }
    }

    fn classify(&self, response: &Response) -> Outcome {
        if !response.status.is_success() {
            return classify_status(response.status, &response.headers);
        }
        if let Some((rejected, message)) = partial_success(response).filter(|(n, _)| *n > 0) {
            self.stats
                .server_rejected
                .fetch_add(rejected, Ordering::Relaxed);
            tracing::warn!(
                rejected,
                message,
                "the OTLP receiver accepted the request but rejected some of its records \
                 (partial success); it does not say which, so they are not sent again"
            );
        }
        Outcome::Delivered
    }
}

/// The partial success a 2xx response reports: (rejected records, the receiver's message).
fn partial_success(response: &Response) -> Option<(u64, String)> {
    let content_type = response
        .headers
        .get(http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    if content_type.starts_with("application/x-protobuf") {
        let answer = proto::ExportLogsServiceResponse::decode(&response.body[..]).ok()?;
        let p = answer.partial_success?;
        Some((p.rejected_log_records.max(0) as u64, p.error_message))
    } else if content_type.starts_with("application/json") {
        json::partial_success(&response.body)
    } else {
        None
    }
}

fn unix_nanos(t: jiff::Timestamp) -> u64 {
    u64::try_from(t.as_nanosecond()).unwrap_or(0)
}

/// A JSON value as attribute text: strings as they are, anything else as JSON.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field value as an `AnyValue`: integers as `int_value`, floats as `double_value` (one that
/// is not finite as an empty value, as JSON has no such number), nested objects and arrays
/// (kept as JSON text, parsed here) as key-value lists and arrays; `null` as an empty value.
fn any_value(v: Value<'_>) -> AnyValue {
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(proto::Value::BoolValue(b)),
        Value::Int(i) => Some(proto::Value::IntValue(i)),
        Value::Float(f) if f.is_finite() => Some(proto::Value::DoubleValue(f)),
        Value::Float(_) => None,
        Value::Text(s) => Some(proto::Value::StringValue(s.to_string())),
        Value::Json(_) => return AnyValue::from_json(&v.to_json()),
    };
    AnyValue { value }
}

/// A trace or span id: `len` bytes written as hex digits, not all zero.
fn hex_id(v: Value<'_>, len: usize) -> Option<Vec<u8>> {
    let s = v.as_str()?;
    if s.len() != len * 2 {
        return None;
    }
    let bytes = (0..len)
        .map(|i| u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    bytes.iter().any(|&b| b != 0).then_some(bytes)
}

/// OpenTelemetry's `SeverityNumber` for a level: by name (syslog's included, as in the logs
/// data model's mapping) or by pino/bunyan number; 0 (unspecified) when unknown.
pub fn severity_number(level: &str) -> i32 {
    let level = level.trim();
    if let Ok(n) = level.parse::<u32>() {
        return match n {
            10 => 1,
            20 => 5,
            30 => 9,
            40 => 13,
            50 => 17,
            60 => 21,
            _ => 0,
        };
    }
    match level.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" | "dbg" => 5,
        "info" | "informational" | "information" => 9,
        "notice" => 10,
        "warn" | "warning" => 13,
        "err" | "error" => 17,
        "crit" | "critical" => 18,
        "alert" => 19,
        "fatal" | "emerg" | "emergency" | "panic" => 21,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use std::time::{Duration, SystemTime};

    fn encoder(resource: &[(&str, &str)], k8s_env: [Option<&str>; 4]) -> LogsEncoder {
        LogsEncoder {
            encoding: OtlpEncoding::Protobuf,
            resource: resource
                .iter()
                .map(|(k, v)| (k.to_string(), Template::parse(v)))
                .collect(),
            kubernetes: true,
            k8s_env: k8s_env.iter().map(|v| v.map(str::to_string)).collect(),
            severity_field: "level".into(),
            body_field: "message".into(),
            stats: Arc::default(),
        }
    }

    fn batch(lines: &[&[u8]], fields: Vec<serde_json::Value>) -> Batch {
        let source = Arc::new(Source {
            stream: "app".into(),
            path: "/var/log/app/app.log".into(),
            file_id: None,
        });
        let mut b = Batch::new(source, SystemTime::UNIX_EPOCH + Duration::from_secs(7));
        let mut offset = 0;
        for l in lines {
            offset += l.len() as u64 + 1;
            b.push_line(l, offset, 0);
        }
        for (i, f) in fields.into_iter().enumerate() {
            if let serde_json::Value::Object(m) = f {
                b.fields_mut().set_map(i, &m);
            }
        }
        b
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a proto::Value> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn a_record_maps_to_a_log_record() {
        let e = encoder(&[], [None; 4]);
        let b = batch(
            &[b"{...}"],
            vec![serde_json::json!({
                "level": "WARN", "message": "disk almost full", "free": 12, "ratio": 0.5,
                "ok": false, "tags": ["a", 1], "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7", "nothing": null
            })],
        );
        let r = e.log_record(&b, 0);
        assert_eq!(r.severity_number, 13);
        assert_eq!(r.severity_text, "WARN");
        assert_eq!(r.body, Some(AnyValue::string("disk almost full")));
        assert_eq!(r.time_unix_nano, 0, "no parsed time: unknown");
        assert_eq!(r.observed_time_unix_nano, 7_000_000_000);
        assert_eq!(r.trace_id.len(), 16);
        assert_eq!(r.trace_id[0], 0x4b);
        assert_eq!(r.span_id, vec![0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        let keys: Vec<&str> = r.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "free",
                "ratio",
                "ok",
                "tags",
                "nothing",
                "log.file.path",
                "tailcar.stream"
            ]
        );
        assert_eq!(
            attr(&r.attributes, "free"),
            Some(&proto::Value::IntValue(12))
        );
        assert_eq!(
            attr(&r.attributes, "ratio"),
            Some(&proto::Value::DoubleValue(0.5))
        );
        assert_eq!(
            attr(&r.attributes, "ok"),
            Some(&proto::Value::BoolValue(false))
        );
        assert!(matches!(
            attr(&r.attributes, "tags"),
            Some(proto::Value::ArrayValue(a)) if a.values.len() == 2
        ));
    }

    #[test]
    fn lines_without_fields_are_the_body_bytes_when_not_utf8() {
        let e = encoder(&[], [None; 4]);
        let b = batch(&[b"plain line", b"bad \xff byte"], vec![]);
        let r = e.log_record(&b, 0);
        assert_eq!(r.body, Some(AnyValue::string("plain line")));
        assert_eq!(r.severity_number, 0);
        assert_eq!(r.attributes.len(), 2);
        let r = e.log_record(&b, 1);
        assert_eq!(
            r.body.unwrap().value,
            Some(proto::Value::BytesValue(b"bad \xff byte".to_vec()))
        );
    }

    #[test]
    fn an_invalid_trace_id_stays_an_attribute() {
        let e = encoder(&[], [None; 4]);
        let b = batch(
            &[b"x"],
            vec![serde_json::json!({"trace_id": "not-hex", "span_id": "0000000000000000"})],
        );
        let r = e.log_record(&b, 0);
        assert!(r.trace_id.is_empty() && r.span_id.is_empty());
        assert!(attr(&r.attributes, "trace_id").is_some());
        assert!(
            attr(&r.attributes, "span_id").is_some(),
            "all-zero is invalid"
        );
    }

    #[test]
    fn resources_come_from_the_record_then_the_environment_then_templates() {
        let e = encoder(
            &[("service.name", "{stream}"), ("k8s.node.name", "{node}")],
            [Some("env-pod"), Some("env-ns"), Some("env-node"), None],
        );
        let b = batch(
            &[b"a", b"b"],
            vec![
                serde_json::json!({"kubernetes": {"pod_name": "web-1", "labels": {"app": "web"}}}),
                serde_json::json!({"node": "n7"}),
            ],
        );
        // One cache over both records, as a request uses it: the second record's lack of a
        // `kubernetes` object must not reuse the first's.
        let mut cache = None;
        assert_eq!(
            e.resource_of(&b, 0, &mut cache),
            [
                ("k8s.pod.name", "web-1"),
                ("k8s.namespace.name", "env-ns"),
                ("k8s.node.name", "env-node"),
                ("k8s.pod.label.app", "web"),
                ("service.name", "app"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let second = e.resource_of(&b, 1, &mut cache);
        assert!(second.contains(&("k8s.node.name".into(), "n7".into())));
        assert!(second.contains(&("k8s.pod.name".into(), "env-pod".into())));
    }

    #[test]
    fn severity_numbers() {
        for (text, n) in [
            ("info", 9),
            ("WARNING", 13),
            ("Error", 17),
            ("fatal", 21),
            ("crit", 18),
            ("30", 9),
            ("50", 17),
            ("verbose", 0),
            ("7", 0),
        ] {
            assert_eq!(severity_number(text), n, "{text}");
        }
    }

    #[test]
    fn url_gets_the_logs_path_once() {
        let cfg =
            |url: &str| -> OtlpConfig { serde_yaml::from_str(&format!("url: {url}")).unwrap() };
        for (base, url) in [
            ("http://c:4318", "http://c:4318/v1/logs"),
            ("http://c:4318/", "http://c:4318/v1/logs"),
            ("http://gw/otlp", "http://gw/otlp/v1/logs"),
            ("http://c:4318/v1/logs", "http://c:4318/v1/logs"),
        ] {
            assert_eq!(cfg(base).settings().unwrap().url.to_string(), url);
        }
        let err = cfg("c:4318").settings().unwrap_err();
        assert!(format!("{err:#}").starts_with("url:"), "{err:#}");
    }
}
