//! Parsers: fill a record's fields from its line. Chosen per stream with `parser: NAME` or
//! `parser: { type: NAME, ... }`. A line that does not parse keeps its bytes and gets a
//! `parse_error` field (the reason), and the stream's `parse_errors` counter goes up.

pub mod json;
pub mod regexp;

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::event::{Batch, Fields};
use crate::stats::StreamStats;
use crate::transforms::Transform;

/// The field a parser sets when a line does not parse.
pub const PARSE_ERROR: &str = "parse_error";

/// A parser's configuration as written in the YAML.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ParserConfig {
    /// No parsing: the line is shipped as it is.
    None(NoOptions),
    /// The line is a JSON object; its members become fields (nested objects kept).
    Json(NoOptions),
    /// Named captures of a regex become fields.
    Regexp(regexp::RegexpConfig),
}

impl ParserConfig {
    /// Validates and compiles; the error is the reason (the caller adds where).
    pub fn build(&self) -> Result<Option<Parser>, (String, String)> {
        Ok(match self {
            ParserConfig::None(_) => None,
            ParserConfig::Json(_) => Some(Parser::Json),
            ParserConfig::Regexp(c) => Some(Parser::Regexp(c.build()?)),
        })
    }
}

/// Parsers without options (a struct, so that unknown keys are still refused).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// `parser: json` or `parser: { type: regexp, pattern: ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParserSpec(pub ParserConfig);

impl<'de> Deserialize<'de> for ParserSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ParserSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a parser name (none, json) or a map with `type`")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<ParserSpec, E> {
                match name {
                    "none" => Ok(ParserSpec(ParserConfig::None(NoOptions {}))),
                    "json" => Ok(ParserSpec(ParserConfig::Json(NoOptions {}))),
                    "regexp" => Err(E::custom(
                        "parser `regexp` needs options: write { type: regexp, pattern: '...' }",
                    )),
                    other => Err(E::unknown_variant(other, &["none", "json", "regexp"])),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ParserSpec, A::Error> {
                ParserConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ParserSpec)
            }
        }
        d.deserialize_any(V)
    }
}

/// A compiled parser.
#[derive(Debug, Clone)]
pub enum Parser {
    Json,
    Regexp(regexp::Regexp),
}

impl Parser {
    pub fn describe(&self) -> String {
        match self {
            Parser::Json => "json".into(),
            Parser::Regexp(r) => format!("regexp {}", r.pattern()),
        }
    }

    /// Parses one line into `fields`; `Err` is the reason it did not parse.
    fn parse(&self, line: &[u8], fields: &mut Fields, stats: &StreamStats) -> Result<(), String> {
        match self {
            Parser::Json => json::parse(line, fields),
            Parser::Regexp(r) => r.parse(line, fields, stats),
        }
    }
}

impl Transform for Parser {
    fn process(&mut self, batch: &mut Batch, stats: &StreamStats) {
        batch.fields_mut();
        let mut errors = 0;
        let Batch {
            data,
            records,
            fields,
            ..
        } = batch;
        for (r, f) in records.iter().zip(fields.iter_mut()) {
            let start = r.start as usize;
            let line = &data[start..start + r.len as usize];
            if let Err(reason) = self.parse(line, f, stats) {
                f.insert(PARSE_ERROR.into(), reason.into());
                errors += 1;
            }
        }
        StreamStats::add(&stats.parse_errors, errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_spec_takes_a_name_or_a_map() {
        let p: ParserSpec = serde_yaml::from_str("json").unwrap();
        assert_eq!(p.0, ParserConfig::Json(NoOptions {}));
        let p: ParserSpec = serde_yaml::from_str("{ type: regexp, pattern: '(?P<a>.)' }").unwrap();
        assert!(matches!(p.0, ParserConfig::Regexp(_)));
        let e = serde_yaml::from_str::<ParserSpec>("nginks")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown variant `nginks`, expected one of `none`, `json`, `regexp`"),
            "{e}"
        );
        let e = serde_yaml::from_str::<ParserSpec>("{ type: json, extra: 1 }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
    }
}
