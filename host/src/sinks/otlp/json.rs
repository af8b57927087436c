//! OTLP/JSON: the protobuf messages in the JSON mapping OTLP specifies: lowerCamelCase names,
//! 64-bit integers as decimal strings, enums as numbers, trace and span ids as hex (not base64),
//! other bytes as base64, default values left out.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::proto::{self, AnyValue, KeyValue, LogRecord};

pub fn export_request(r: &proto::ExportLogsServiceRequest) -> Value {
    json!({ "resourceLogs": r.resource_logs.iter().map(resource_logs).collect::<Vec<_>>() })
}

fn resource_logs(r: &proto::ResourceLogs) -> Value {
    let mut o = Map::new();
    if let Some(res) = &r.resource {
        o.insert(
            "resource".into(),
            json!({ "attributes": key_values(&res.attributes) }),
        );
    }
    let scopes: Vec<Value> = r
        .scope_logs
        .iter()
        .map(|s| {
            let mut o = Map::new();
            if let Some(scope) = &s.scope {
                o.insert(
                    "scope".into(),
                    json!({ "name": scope.name, "version": scope.version }),
                );
            }
            o.insert(
                "logRecords".into(),
                s.log_records.iter().map(log_record).collect(),
            );
            Value::Object(o)
        })
        .collect();
    o.insert("scopeLogs".into(), scopes.into());
    Value::Object(o)
}

fn log_record(r: &LogRecord) -> Value {
    let mut o = Map::new();
    if r.time_unix_nano != 0 {
        o.insert("timeUnixNano".into(), r.time_unix_nano.to_string().into());
    }
    if r.observed_time_unix_nano != 0 {
        o.insert(
            "observedTimeUnixNano".into(),
            r.observed_time_unix_nano.to_string().into(),
        );
    }
    if r.severity_number != 0 {
        o.insert("severityNumber".into(), r.severity_number.into());
    }
    if !r.severity_text.is_empty() {
        o.insert("severityText".into(), r.severity_text.clone().into());
    }
    if let Some(body) = &r.body {
        o.insert("body".into(), any_value(body));
    }
    if !r.attributes.is_empty() {
        o.insert("attributes".into(), key_values(&r.attributes));
    }
    if !r.trace_id.is_empty() {
        o.insert("traceId".into(), hex(&r.trace_id).into());
    }
    if !r.span_id.is_empty() {
        o.insert("spanId".into(), hex(&r.span_id).into());
    }
    Value::Object(o)
}

fn key_values(kvs: &[KeyValue]) -> Value {
    kvs.iter()
        .map(|kv| {
            json!({
                "key": kv.key,
                "value": kv.value.as_ref().map_or(json!({}), any_value),
            })
        })
        .collect()
}

fn any_value(v: &AnyValue) -> Value {
    use proto::Value as V;
    match &v.value {
        None => json!({}),
        Some(V::StringValue(s)) => json!({ "stringValue": s }),
        Some(V::BoolValue(b)) => json!({ "boolValue": b }),
        Some(V::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(V::DoubleValue(d)) if d.is_finite() => json!({ "doubleValue": d }),
        Some(V::DoubleValue(d)) => {
            let special = if d.is_nan() {
                "NaN"
            } else if *d > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            json!({ "doubleValue": special })
        }
        Some(V::ArrayValue(a)) => {
            json!({ "arrayValue": { "values": a.values.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Some(V::KvlistValue(l)) => json!({ "kvlistValue": { "values": key_values(&l.values) } }),
        Some(V::BytesValue(b)) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
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
        let v = log_record(&r);
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
        let bytes = any_value(&AnyValue {
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
