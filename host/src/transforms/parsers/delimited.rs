//! `csv` and `tsv`: columns become fields named by `fields: [..]`, typed by `types`. CSV follows
//! RFC 4180 quoting (a quoted value may hold the delimiter, `""`, and newlines: with `parser:
//! csv` the stream joins lines until the quotes balance); TSV splits on tabs, with no quoting.
//! Columns beyond the named ones become `column_N` (1-based); missing columns are absent.

use indexmap::IndexMap;
use serde::Deserialize;

use super::regexp::{FieldType, set_typed};
#[cfg(test)]
use crate::event::Fields;
use crate::event::fields::FieldSink;
use crate::stats::StreamStats;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DelimitedConfig {
    /// Names of the columns, in order.
    pub fields: Vec<String>,
    /// Types of columns that are not strings: `{ status: int }`.
    #[serde(default)]
    pub types: IndexMap<String, FieldType>,
    /// The field holding the event time, and how to read it (see the time options).
    pub time_key: Option<String>,
    pub time_format: Option<String>,
    pub time_zone: Option<String>,
}

#[derive(Debug)]
pub struct Delimited {
    delimiter: u8,
    quoting: bool,
    columns: Vec<(String, FieldType)>,
    /// One reader, built on first use and reset for each line: no allocation per line. Not
    /// shared by clones (a cloned `csv_core::Reader` did not parse correctly here).
    reader: Option<csv_core::Reader>,
    /// Room for one field (a field is never longer than its line).
    field: Vec<u8>,
}

impl DelimitedConfig {
    pub fn build(&self, delimiter: u8, quoting: bool) -> Result<Delimited, (String, String)> {
        if self.fields.is_empty() {
            return Err((
                "fields".into(),
                "name at least one column: fields: [a, b, c]".into(),
            ));
        }
        for k in self.types.keys() {
            if !self.fields.contains(k) {
                return Err((
                    format!("types.{k}"),
                    format!("no column named `{k}` in fields"),
                ));
            }
        }
        if let Some(k) = self.time_key.as_ref().filter(|k| !self.fields.contains(k)) {
            return Err((
                "time_key".into(),
                format!("no column named `{k}` in fields"),
            ));
        }
        let columns = self
            .fields
            .iter()
            .map(|f| {
                (
                    f.clone(),
                    self.types.get(f).copied().unwrap_or(FieldType::String),
                )
            })
            .collect();
        Ok(Delimited {
            delimiter,
            quoting,
            columns,
            reader: None,
            field: Vec::new(),
        })
    }

    pub fn time_options(&self) -> super::super::time::TimeOptions {
        super::super::time::TimeOptions {
            time_key: self.time_key.clone(),
            time_format: self.time_format.clone(),
            time_zone: self.time_zone.clone(),
        }
    }
}

impl Clone for Delimited {
    fn clone(&self) -> Self {
        Delimited {
            delimiter: self.delimiter,
            quoting: self.quoting,
            columns: self.columns.clone(),
            reader: None,
            field: Vec::new(),
        }
    }
}

/// The names of columns beyond the named ones: `column_4`.
pub const EXTRA_PREFIX: &str = "column_";

impl Delimited {
    /// The named columns.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(n, _)| n.as_str())
    }

    pub fn parse(
        &mut self,
        line: &[u8],
        fields: &mut impl FieldSink,
        stats: &StreamStats,
    ) -> Result<(), String> {
        use csv_core::ReadFieldResult;
        if line.is_empty() {
            return Err("empty line".into());
        }
        let (delimiter, quoting) = (self.delimiter, self.quoting);
        let reader = self.reader.get_or_insert_with(|| {
            csv_core::ReaderBuilder::new()
                .delimiter(delimiter)
                .quoting(quoting)
                .build()
        });
        reader.reset();
        self.field.resize(line.len() + 1, 0);
        let mut input = line;
        let mut column = 0;
        // A field may be written over several calls (when the input runs out inside it).
        let mut written = 0;
        loop {
            let (result, nin, nout) = reader.read_field(input, &mut self.field[written..]);
            input = &input[nin..];
            written += nout;
            match result {
                // All of the line is read: an empty input tells the reader the line ended.
                ReadFieldResult::InputEmpty => continue,
                ReadFieldResult::OutputFull => {
                    let what = if self.quoting { "CSV" } else { "TSV" };
                    return Err(format!("invalid {what}: a field longer than its line"));
                }
                ReadFieldResult::Field { record_end } => {
                    let text = String::from_utf8_lossy(&self.field[..written]);
                    written = 0;
                    match self.columns.get(column) {
                        Some((name, ty)) => set_typed(fields, name, &text, Some(*ty), stats),
                        None => fields.text(&format!("{EXTRA_PREFIX}{}", column + 1), &text),
                    }
                    column += 1;
                    if record_end {
                        return Ok(());
                    }
                }
                ReadFieldResult::End => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(names: &[&str]) -> DelimitedConfig {
        DelimitedConfig {
            fields: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn csv_with_quoted_commas_quotes_and_newlines() {
        let mut c = cfg(&["id", "name", "note"]);
        c.types.insert("id".into(), FieldType::Int);
        let mut p = c.build(b',', true).unwrap();
        let stats = StreamStats::default();
        let mut f = Fields::new();
        p.parse(
            b"7,\"Smith, John\",\"said \"\"hi\"\"\nthen left\",extra",
            &mut f,
            &stats,
        )
        .unwrap();
        assert_eq!(f["id"], 7);
        assert_eq!(f["name"], "Smith, John");
        assert_eq!(f["note"], "said \"hi\"\nthen left");
        assert_eq!(f["column_4"], "extra");
        let mut f = Fields::new();
        p.parse(b"x,short", &mut f, &stats).unwrap();
        assert_eq!(f["id"], "x", "a value that does not convert keeps its text");
        assert!(!f.contains_key("note"));
        assert_eq!(
            stats.type_errors.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn tsv_does_not_interpret_quotes() {
        let mut p = cfg(&["a", "b"]).build(b'\t', false).unwrap();
        let mut f = Fields::new();
        p.parse(
            b"\"quoted\"\tplain, with comma",
            &mut f,
            &StreamStats::default(),
        )
        .unwrap();
        assert_eq!(f["a"], "\"quoted\"");
        assert_eq!(f["b"], "plain, with comma");
    }

    #[test]
    fn a_cloned_parser_parses_like_a_fresh_one() {
        // Regression: a clone sharing a copied csv_core::Reader returned one empty field.
        let p = cfg(&["id", "user"]).build(b',', true).unwrap();
        let mut clone = p.clone();
        let mut f = Fields::new();
        clone
            .parse(b"1,alice", &mut f, &StreamStats::default())
            .unwrap();
        assert_eq!(
            serde_json::Value::Object(f),
            serde_json::json!({"id": "1", "user": "alice"})
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(cfg(&[]).build(b',', true).unwrap_err().0, "fields");
        let mut c = cfg(&["a"]);
        c.types.insert("b".into(), FieldType::Int);
        assert_eq!(c.build(b',', true).unwrap_err().0, "types.b");
    }
}
