//! OTLP/JSON: the protobuf messages in the JSON mapping OTLP specifies: lowerCamelCase names,
//! 64-bit integers as decimal strings, enums as numbers, trace and span ids as hex (not base64),
//! other bytes as base64, default values left out.

use base64::Engine;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use super::proto::{self, AnyValue, KeyValue, LogRecord};

/// A message in its OTLP/JSON form, written straight to the output (no value tree).
pub struct Json<'a, T>(pub &'a T);

/// Writes `r` as OTLP/JSON.
pub fn write_export_request(r: &proto::ExportLogsServiceRequest, out: &mut Vec<u8>) {
    serde_json::to_writer(out, &Json(r)).expect("writing JSON to a Vec");
}

/// A list of messages.
struct List<'a, T>(&'a [T]);

impl<'a, T> Serialize for List<'a, T>
where
    Json<'a, T>: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&Json(item))?;
        }
        seq.end()
    }
}

impl Serialize for Json<'_, proto::ExportLogsServiceRequest> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("resourceLogs", &List(&self.0.resource_logs))?;
        m.end()
    }
}

impl Serialize for Json<'_, proto::ResourceLogs> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(res) = &self.0.resource {
            m.serialize_entry("resource", &Json(res))?;
        }
        m.serialize_entry("scopeLogs", &List(&self.0.scope_logs))?;
        m.end()
    }
}

impl Serialize for Json<'_, proto::Resource> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("attributes", &List(&self.0.attributes))?;
        m.end()
    }
}

impl Serialize for Json<'_, proto::ScopeLogs> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(scope) = &self.0.scope {
            m.serialize_entry("scope", &Json(scope))?;
        }
        m.serialize_entry("logRecords", &List(&self.0.log_records))?;
        m.end()
    }
}

impl Serialize for Json<'_, proto::InstrumentationScope> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", &self.0.name)?;
        m.serialize_entry("version", &self.0.version)?;
        m.end()
    }
}

impl Serialize for Json<'_, LogRecord> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        if r.time_unix_nano != 0 {
            m.serialize_entry("timeUnixNano", &r.time_unix_nano.to_string())?;
        }
        if r.observed_time_unix_nano != 0 {
            m.serialize_entry(
                "observedTimeUnixNano",
                &r.observed_time_unix_nano.to_string(),
            )?;
        }
        if r.severity_number != 0 {
            m.serialize_entry("severityNumber", &r.severity_number)?;
        }
        if !r.severity_text.is_empty() {
            m.serialize_entry("severityText", &r.severity_text)?;
        }
        if let Some(body) = &r.body {
            m.serialize_entry("body", &Json(body))?;
        }
        if !r.attributes.is_empty() {
            m.serialize_entry("attributes", &List(&r.attributes))?;
        }
        if !r.trace_id.is_empty() {
            m.serialize_entry("traceId", &hex(&r.trace_id))?;
        }
        if !r.span_id.is_empty() {
            m.serialize_entry("spanId", &hex(&r.span_id))?;
        }
        m.end()
    }
}

impl Serialize for Json<'_, KeyValue> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("key", &self.0.key)?;
        match &self.0.value {
            Some(v) => m.serialize_entry("value", &Json(v))?,
            None => m.serialize_entry("value", &Json(&AnyValue::default()))?,
        }
        m.end()
    }
}

impl Serialize for Json<'_, AnyValue> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use proto::Value as V;
        let Some(v) = &self.0.value else {
            return s.serialize_map(Some(0))?.end();
        };
        let mut m = s.serialize_map(Some(1))?;
        match v {
            V::StringValue(x) => m.serialize_entry("stringValue", x)?,
            V::BoolValue(b) => m.serialize_entry("boolValue", b)?,
            V::IntValue(i) => m.serialize_entry("intValue", &i.to_string())?,
            V::DoubleValue(d) if d.is_finite() => m.serialize_entry("doubleValue", d)?,
            V::DoubleValue(d) => {
                let special = if d.is_nan() {
                    "NaN"
                } else if *d > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                };
                m.serialize_entry("doubleValue", special)?
            }
            V::ArrayValue(a) => m.serialize_entry("arrayValue", &Values(&a.values))?,
            V::KvlistValue(l) => m.serialize_entry("kvlistValue", &KvValues(&l.values))?,
            V::BytesValue(b) => m.serialize_entry(
                "bytesValue",
                &base64::engine::general_purpose::STANDARD.encode(b),
            )?,
        }
        m.end()
    }
}

/// `{"values": [AnyValue...]}`.
struct Values<'a>(&'a [AnyValue]);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("values", &List(self.0))?;
        m.end()
    }
}

/// `{"values": [KeyValue...]}`.
struct KvValues<'a>(&'a [KeyValue]);

impl Serialize for KvValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("values", &List(self.0))?;
        m.end()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `partialSuccess` of an `ExportLogsServiceResponse` in JSON (`rejectedLogRecords` may be a
/// number or a decimal string).
pub fn partial_success(body: &[u8]) -> Option<(u64, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let p = v.get("partialSuccess")?;
    let rejected = match p.get("rejectedLogRecords")? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let message = p
        .get("errorMessage")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some((rejected, message.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn to_value<'a, T>(v: &'a T) -> Value
    where
        Json<'a, T>: Serialize,
    {
        serde_json::to_value(Json(v)).unwrap()
    }

    #[test]
    fn values_follow_the_otlp_json_mapping() {
        let r = LogRecord {
            time_unix_nano: 1_700_000_000_000_000_001,
            severity_number: 9,
            body: Some(AnyValue::from_json(
                &json!({"n": 1, "x": [true, 1.5], "raw": null}),
            )),
            trace_id: vec![0xab; 16],
            span_id: vec![1; 8],
            ..Default::default()
        };
        let v = to_value(&r);
        assert_eq!(v["timeUnixNano"], "1700000000000000001");
        assert_eq!(v["severityNumber"], 9);
        assert_eq!(v["traceId"], "abababababababababababababababab");
        assert_eq!(v["spanId"], "0101010101010101");
        assert!(v.get("observedTimeUnixNano").is_none());
        let kv = &v["body"]["kvlistValue"]["values"];
        assert_eq!(kv[0], json!({"key": "n", "value": {"intValue": "1"}}));
        assert_eq!(
            kv[1]["value"]["arrayValue"]["values"],
            json!([{"boolValue": true}, {"doubleValue": 1.5}])
        );
        assert_eq!(kv[2], json!({"key": "raw", "value": {}}));
        let bytes = to_value(&AnyValue {
            value: Some(proto::Value::BytesValue(vec![0xff, 0])),
        });
        assert_eq!(bytes, json!({"bytesValue": "/wA="}));
    }

    #[test]
    fn partial_success_numbers_and_strings() {
        let body = br#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"too old"}}"#;
        assert_eq!(partial_success(body), Some((3, "too old".into())));
        let body = br#"{"partialSuccess":{"rejectedLogRecords":2}}"#;
        assert_eq!(partial_success(body), Some((2, String::new())));
        assert_eq!(partial_success(b"{}"), None);
        assert_eq!(partial_success(b"not json"), None);
    }
}
