//! `passthrough`: keeps every record unchanged. The smallest plugin there is: a template to start
//! from, and the benchmark's measure of what crossing into WebAssembly and back costs.

use tailcar_plugin::{Config, Plugin, Record, Verdict};

pub struct Passthrough;

impl Plugin for Passthrough {
    fn init(config: Config) -> Result<Self, String> {
        config.deny_unknown(&[])?;
        Ok(Passthrough)
    }

    fn process(&mut self, _record: &mut Record<'_>) -> Verdict {
        Verdict::Keep
    }
}

tailcar_plugin::export!(Passthrough);

#[cfg(test)]
mod tests {
    use super::*;
    use tailcar_plugin::testing::Harness;

    #[test]
    fn keeps_lines_and_fields_as_they_are() {
        let mut h = Harness::<Passthrough>::new("{}").unwrap();
        let out = h.run_records(&[
            (b"one", serde_json::json!({"a": 1})),
            (b"\xff not utf-8", serde_json::Value::Null),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].line, "one");
        assert_eq!(out[0].fields["a"], 1);
        assert_eq!(out[1].source, 1);
        assert!(Harness::<Passthrough>::new(r#"{"x": 1}"#).is_err());
    }
}
