//! The `regexp` parser: the named captures of `pattern` become fields, as strings unless
//! `types` says `int`, `float` or `bool`. A capture that does not convert keeps its text and is
//! counted (`type_errors`); a line the pattern does not match is a parse error.

use indexmap::IndexMap;
use regex::bytes::Regex;
use serde::Deserialize;

#[cfg(test)]
use crate::event::Fields;
use crate::event::fields::FieldSink;
use crate::stats::StreamStats;
use crate::transforms::time::TimeOptions;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegexpConfig {
    /// A regex with named captures: `(?P<status>\d+)`.
    pub pattern: String,
    /// Types of captures that are not strings: `{ status: int, duration: float }`.
    #[serde(default)]
    pub types: IndexMap<String, FieldType>,
    /// The capture holding the event time (see [`TimeOptions`]).
    pub time_key: Option<String>,
    pub time_format: Option<String>,
    pub time_zone: Option<String>,
}

/// The type a captured value is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Int,
    Float,
    Bool,
}

impl RegexpConfig {
    pub fn time_options(&self) -> TimeOptions {
        TimeOptions {
            time_key: self.time_key.clone(),
            time_format: self.time_format.clone(),
            time_zone: self.time_zone.clone(),
        }
    }

    /// Compiles the pattern; the error is `(key, reason)`.
    pub fn build(&self) -> Result<Regexp, (String, String)> {
        let regex = Regex::new(&self.pattern).map_err(|e| {
            let reason = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            ("pattern".to_string(), format!("invalid regex: {reason}"))
        })?;
        let names: Vec<&str> = regex.capture_names().flatten().collect();
        if names.is_empty() {
            return Err((
                "pattern".into(),
                "has no named captures (write (?P<name>...))".into(),
            ));
        }
        if let Some(k) = self
            .time_key
            .as_ref()
            .filter(|k| !names.contains(&k.as_str()))
        {
            return Err((
                "time_key".into(),
                format!("no capture named `{k}` in the pattern"),
            ));
        }
        for k in self.types.keys() {
            if !names.contains(&k.as_str()) {
                return Err((
                    format!("types.{k}"),
                    format!("no capture named `{k}` in the pattern"),
                ));
            }
        }
        let captures = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| {
                n.map(|n| {
                    (
                        i,
                        n.to_string(),
                        self.types.get(n).copied().unwrap_or(FieldType::String),
                    )
                })
            })
            .collect();
        Ok(Regexp { regex, captures })
    }
}

#[derive(Debug, Clone)]
pub struct Regexp {
    regex: Regex,
    /// Capture index, field name, type.
    captures: Vec<(usize, String, FieldType)>,
}

impl Regexp {
    /// The named captures, each a field.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.captures.iter().map(|(_, n, _)| n.as_str())
    }

    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    pub fn parse(
        &self,
        line: &[u8],
        fields: &mut impl FieldSink,
        stats: &StreamStats,
    ) -> Result<(), String> {
        let caps = self
            .regex
            .captures(line)
            .ok_or("line does not match the pattern")?;
        for (i, name, ty) in &self.captures {
            let Some(m) = caps.get(*i) else { continue };
            let text = String::from_utf8_lossy(m.as_bytes());
            set_typed(fields, name, &text, Some(*ty), stats);
        }
        Ok(())
    }
}

/// Sets field `key` to `text` converted to `ty` (text when it has no type). A value that does
/// not convert (a float must be finite) keeps its text and is counted (`type_errors`).
pub(crate) fn set_typed(
    fields: &mut impl FieldSink,
    key: &str,
    text: &str,
    ty: Option<FieldType>,
    stats: &StreamStats,
) {
    let converted = match ty {
        None | Some(FieldType::String) => {
            fields.text(key, text);
            return;
        }
        Some(FieldType::Int) => text.parse::<i64>().ok().map(|i| fields.int(key, i)),
        Some(FieldType::Float) => (text.parse::<f64>().ok())
            .filter(|f| f.is_finite())
            .map(|f| fields.float(key, f)),
        Some(FieldType::Bool) => match text {
            "true" | "TRUE" | "True" | "1" | "yes" => Some(true),
            "false" | "FALSE" | "False" | "0" | "no" => Some(false),
            _ => None,
        }
        .map(|b| fields.bool(key, b)),
    };
    if converted.is_none() {
        StreamStats::add(&stats.type_errors, 1);
        fields.text(key, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(pattern: &str, types: &[(&str, FieldType)]) -> Regexp {
        RegexpConfig {
            pattern: pattern.into(),
            types: types.iter().map(|(k, t)| (k.to_string(), *t)).collect(),
            ..Default::default()
        }
        .build()
        .unwrap()
    }

    #[test]
    fn named_captures_become_typed_fields() {
        let p = parser(
            r"^(?P<ip>\S+) (?P<status>\d+) (?P<bytes>\S+) (?P<dur>\S+) (?P<cached>\w+)( (?P<opt>x))?$",
            &[
                ("status", FieldType::Int),
                ("bytes", FieldType::Int),
                ("dur", FieldType::Float),
                ("cached", FieldType::Bool),
            ],
        );
        let stats = StreamStats::default();
        let mut f = Fields::new();
        p.parse(b"10.0.0.1 404 - 0.25 true", &mut f, &stats)
            .unwrap();
        assert_eq!(f["ip"], "10.0.0.1");
        assert_eq!(f["status"], 404);
        assert_eq!(
            f["bytes"], "-",
            "a value that does not convert keeps its text"
        );
        assert_eq!(f["dur"], 0.25);
        assert_eq!(f["cached"], true);
        assert!(
            !f.contains_key("opt"),
            "an optional capture that did not take part is absent"
        );
        assert_eq!(
            stats.type_errors.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(
            p.parse(b"garbage", &mut Fields::new(), &stats).unwrap_err(),
            "line does not match the pattern"
        );
    }

    #[test]
    fn configuration_mistakes_are_named() {
        let err = |pattern: &str, types: &[(&str, FieldType)]| {
            RegexpConfig {
                pattern: pattern.into(),
                types: types.iter().map(|(k, t)| (k.to_string(), *t)).collect(),
                ..Default::default()
            }
            .build()
            .unwrap_err()
        };
        assert_eq!(
            err(r"^\d+$", &[]).1,
            "has no named captures (write (?P<name>...))"
        );
        assert_eq!(
            err(r"(?P<a>\d+)", &[("b", FieldType::Int)]),
            (
                "types.b".into(),
                "no capture named `b` in the pattern".into()
            )
        );
        assert!(err(r"(?P<a>", &[]).1.starts_with("invalid regex:"));
    }
}
