//! Templates for values a sink fills per record (Loki labels, Kafka topics and keys, syslog
//! names): literal text with `{stream}`, `{file}` and `{FIELD}` placeholders. A field that is
//! missing renders as nothing; a non-string field as its JSON text.

use crate::event::Batch;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Piece>);

impl Template {
    pub fn parse(s: &str) -> Template {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            pieces.push(Piece::Var(rest[open + 1..open + close].to_string()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Template(pieces)
    }

    /// Whether a record's fields fill it (unbounded values), as opposed to text, `{stream}` and
    /// `{file}` (bounded by the configuration).
    pub fn uses_fields(&self) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, Piece::Var(v) if v != "stream" && v != "file"))
    }

    /// The template filled for record `i` of `batch`.
    pub fn render(&self, batch: &Batch, i: usize) -> String {
        let mut out = String::new();
        self.render_into(batch, i, &mut out);
        out
    }

    /// Whether the template is plain text (no placeholders).
    pub fn as_text(&self) -> Option<&str> {
        match self.0.as_slice() {
            [] => Some(""),
            [Piece::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Appends the template filled for record `i` of `batch` to `out`.
    pub fn render_into(&self, batch: &Batch, i: usize, out: &mut String) {
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) if v == "stream" => out.push_str(&batch.source.stream),
                Piece::Var(v) if v == "file" => out.push_str(&batch.source.path.to_string_lossy()),
                Piece::Var(v) => match batch.fields(i).and_then(|f| f.get(v)) {
                    Some(serde_json::Value::String(s)) => out.push_str(s),
                    Some(other) => out.push_str(&other.to_string()),
                    None => {}
                },
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Template::parse(&s))
    }
}
