//! `redact`: masks personal data and secrets in the line and in every text field.
//!
//! What it masks (config `kinds`, a list; all by default):
//! - `email`: e-mail addresses, replaced by `<email>`;
//! - `ipv4`: IPv4 addresses (each part 0–255), replaced by `<ipv4>`;
//! - `token`: bearer tokens (`Bearer abc.def` → `Bearer <token>`) and the values of
//!   `api_key=`, `apikey:`, `token=`, `access_token=`, `secret=`, `password=` and the like
//!   (`api_key=<secret>`).
//!
//! Records whose line or fields were masked are counted as `records_redacted`. Pair it with
//! `on_error: drop` or `dead_letter` rather than the default `pass`, so that a failing batch is
//! never shipped unmasked.

use std::borrow::Cow;

use regex::Regex;
use tailcar_plugin::{Config, Plugin, Record, Value, Verdict};

pub struct Redact {
    rules: Vec<(Regex, Replace)>,
}

#[derive(Clone, Copy)]
enum Replace {
    Email,
    Ipv4,
    Bearer,
    KeyValue,
}

const KINDS: [&str; 3] = ["email", "ipv4", "token"];

impl Redact {
    fn apply<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for (re, how) in &self.rules {
            if !re.is_match(&out) {
                continue;
            }
            let replaced = re.replace_all(&out, |c: &regex::Captures<'_>| match how {
                Replace::Email => "<email>".to_string(),
                Replace::Ipv4 => {
                    let valid = c[0].split('.').all(|p| p.parse::<u8>().is_ok());
                    if valid {
                        "<ipv4>".to_string()
                    } else {
                        c[0].to_string()
                    }
                }
                Replace::Bearer => format!("{} <token>", &c[1]),
                Replace::KeyValue => format!("{}{}<secret>", &c[1], &c[2]),
            });
            if let Cow::Owned(s) = replaced {
                out = Cow::Owned(s);
            }
        }
        out
    }
}

impl Plugin for Redact {
    fn init(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["kinds"])?;
        let kinds = config
            .list("kinds")?
            .unwrap_or_else(|| KINDS.iter().map(|k| k.to_string()).collect());
        let mut rules = Vec::new();
        for kind in &kinds {
            let rule = match kind.as_str() {
                "email" => vec![(
                    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
                    Replace::Email,
                )],
                "ipv4" => vec![(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", Replace::Ipv4)],
                "token" => vec![
                    (r"\b([Bb]earer)\s+[A-Za-z0-9._~+/=-]+", Replace::Bearer),
                    (
                        r#"(?i)\b((?:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|passwd))(["']?\s*[:=]\s*["']?)[^\s"'&,;]+"#,
                        Replace::KeyValue,
                    ),
                ],
                other => {
                    return Err(format!(
                        "`kinds`: unknown kind `{other}` (known: {})",
                        KINDS.join(", ")
                    ));
                }
            };
            for (pattern, how) in rule {
                rules.push((Regex::new(pattern).map_err(|e| e.to_string())?, how));
            }
        }
        Ok(Redact { rules })
    }

    fn process(&mut self, record: &mut Record<'_>) -> Verdict {
        let mut changed = false;
        let line = String::from_utf8_lossy(record.line()).into_owned();
        if let Cow::Owned(masked) = self.apply(&line) {
            record.set_line(masked);
            changed = true;
        }
        let mut updates = Vec::new();
        for (key, value) in record.fields() {
            if let Value::Str(s) = &value
                && let Cow::Owned(masked) = self.apply(s)
            {
                updates.push((key.to_string(), masked));
            }
        }
        changed |= !updates.is_empty();
        for (key, masked) in updates {
            record.set_field(key, masked);
        }
        if changed {
            tailcar_plugin::count("records_redacted", 1);
        }
        Verdict::Keep
    }
}

tailcar_plugin::export!(Redact);

#[cfg(test)]
mod tests {
    use super::*;
    use tailcar_plugin::testing::Harness;

    #[test]
    fn masks_emails_addresses_and_tokens_in_line_and_fields() {
        let mut h = Harness::<Redact>::new("{}").unwrap();
        let out = h.run_records(&[
            (
                b"login ok user=jane.doe@example.co.uk from 192.168.1.20 Authorization: Bearer eyJhbGciOi.J9.x-y",
                serde_json::json!({"client": "10.1.2.3", "n": 5}),
            ),
            (b"GET /x?api_key=abc123&page=2 version 1.2.3.999 at 300.1.1.1", serde_json::Value::Null),
            (b"nothing to see", serde_json::Value::Null),
        ]);
        assert_eq!(
            out[0].line,
            "login ok user=<email> from <ipv4> Authorization: Bearer <token>"
        );
        assert_eq!(out[0].fields["client"], "<ipv4>");
        assert_eq!(out[0].fields["n"], 5);
        assert_eq!(
            out[1].line,
            "GET /x?api_key=<secret>&page=2 version 1.2.3.999 at 300.1.1.1"
        );
        assert_eq!(out[2].line, "nothing to see");
        assert_eq!(tailcar_plugin::testing::counts()["records_redacted"], 2);
    }

    #[test]
    fn kinds_select_and_unknown_kinds_are_refused() {
        let mut h = Harness::<Redact>::new(r#"{"kinds": ["email"]}"#).unwrap();
        let out = h.run(&["a@b.io 1.2.3.4 password=x"]);
        assert_eq!(out[0].line, "<email> 1.2.3.4 password=x");
        let err = Harness::<Redact>::new(r#"{"kinds": "phone"}"#)
            .err()
            .unwrap();
        assert_eq!(
            err,
            "`kinds`: unknown kind `phone` (known: email, ipv4, token)"
        );
    }
}
