//! Templates for values a sink fills per record (Loki labels, Kafka topics and keys, syslog
//! names, OTLP resources): literal text with `{stream}`, `{file}` and `{FIELD}` placeholders;
//! `{a.b}` reaches into objects (`{kubernetes.pod_name}`) when no field is named `a.b` itself. A
//! field that is missing renders as nothing; a non-string field as its JSON text.

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

    /// The record fields it names (`{FIELD}`, `{a.b}`), in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Var(v) if v != "stream" && v != "file" => Some(v.as_str()),
            _ => None,
        })
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
                Piece::Var(v) if v == "stream" => out.push_str(&batch.source().stream),
                Piece::Var(v) if v == "file" => {
                    out.push_str(&batch.source().path.to_string_lossy())
                }
                Piece::Var(v) => {
                    if let Some(found) = batch.fields().lookup(i, v) {
                        found.write_text(out);
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use std::sync::Arc;

    #[test]
    fn fills_stream_fields_and_dotted_paths() {
        let source = Arc::new(Source {
            stream: "web".into(),
            path: "/logs/a.log".into(),
            file_id: None,
        });
        let mut b = Batch::new(source, std::time::SystemTime::UNIX_EPOCH);
        b.push_line(b"x", 2, 0);
        let serde_json::Value::Object(f) = serde_json::json!({
            "n": 3, "kubernetes": {"pod_name": "web-1"}, "a.b": "flat"
        }) else {
            unreachable!()
        };
        b.fields_mut().set_map(0, &f);
        let t =
            Template::parse("{stream}/{kubernetes.pod_name}/{n}/{a.b}/{kubernetes.none}{missing}!");
        assert_eq!(t.render(&b, 0), "web/web-1/3/flat/!");
        assert!(t.uses_fields());
        assert_eq!(
            Template::parse("{stream}-{file}").render(&b, 0),
            "web-/logs/a.log"
        );
        assert_eq!(Template::parse("plain").as_text(), Some("plain"));
    }
}
