//! The `json` parser: a line that is a JSON object gives its members as fields, nested objects
//! and arrays kept as they are.

#[cfg(test)]
use crate::event::Fields;
use crate::event::fields::FieldSink;

pub fn parse(line: &[u8], fields: &mut impl FieldSink) -> Result<(), String> {
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                fields.json(&k, v);
            }
            Ok(())
        }
        Ok(other) => Err(format!("not a JSON object but {}", kind(&other))),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_become_fields_with_types_and_nesting() {
        let mut f = Fields::new();
        parse(
            br#"{"level":"info","status":200,"dur":0.5,"ok":true,"user":{"id":7,"roles":["a"]}}"#,
            &mut f,
        )
        .unwrap();
        assert_eq!(f["level"], "info");
        assert_eq!(f["status"], 200);
        assert_eq!(f["dur"], 0.5);
        assert_eq!(f["ok"], true);
        assert_eq!(f["user"]["roles"][0], "a");
        assert_eq!(
            f.keys().collect::<Vec<_>>(),
            vec!["level", "status", "dur", "ok", "user"],
            "order kept"
        );
    }

    #[test]
    fn other_lines_are_errors_with_a_reason() {
        let mut f = Fields::new();
        assert_eq!(
            parse(b"[1,2]", &mut f).unwrap_err(),
            "not a JSON object but an array"
        );
        assert!(
            parse(b"plain text", &mut f)
                .unwrap_err()
                .starts_with("invalid JSON: expected value")
        );
        assert!(
            parse(b"{\"a\":\"\xff\"}", &mut f)
                .unwrap_err()
                .starts_with("invalid JSON")
        );
        assert!(f.is_empty());
    }
}
