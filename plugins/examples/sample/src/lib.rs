//! `sample`: keeps 1 record in N, but always keeps errors.
//!
//! Config: `n` (default 10): the first record and then every N-th one is kept. A record is an
//! error, and always kept, when its `status` field is 500 or more, or its `level` field is
//! `error`, `fatal` or `critical` (any case), or (with no such fields) its line has an access-log
//! status of 5xx after the request or contains the word `ERROR`. The sampled-out records are
//! counted as `sampled_out`.

use tailcar_plugin::{Config, Plugin, Record, Value, Verdict};

pub struct Sample {
    n: u64,
    seen: u64,
}

fn is_error_level(s: &str) -> bool {
    [
        "error", "err", "fatal", "critical", "crit", "panic", "emerg", "alert",
    ]
    .iter()
    .any(|l| s.eq_ignore_ascii_case(l))
}

/// A 5xx status right after the quoted request of an access-log line (`..." 503 `).
fn line_status_5xx(line: &[u8]) -> bool {
    line.windows(6).any(|w| {
        w[0] == b'"'
            && w[1] == b' '
            && w[2] == b'5'
            && w[3].is_ascii_digit()
            && w[4].is_ascii_digit()
            && w[5] == b' '
    })
}

fn has_word(line: &[u8], word: &[u8]) -> bool {
    line.windows(word.len()).enumerate().any(|(i, w)| {
        w == word
            && (i == 0 || !line[i - 1].is_ascii_alphanumeric())
            && line
                .get(i + word.len())
                .is_none_or(|b| !b.is_ascii_alphanumeric())
    })
}

fn is_error(record: &Record<'_>) -> bool {
    let status = record.field("status");
    let level = record.field("level");
    match (&status, &level) {
        (None, None) => {
            let line = record.line();
            line_status_5xx(line) || has_word(line, b"ERROR")
        }
        _ => {
            let bad_status = match status {
                Some(Value::Int(n)) => n >= 500,
                Some(Value::Str(s)) => s.parse::<i64>().is_ok_and(|n| n >= 500),
                _ => false,
            };
            bad_status
                || level
                    .as_ref()
                    .and_then(|l| l.as_str())
                    .is_some_and(is_error_level)
        }
    }
}

impl Plugin for Sample {
    fn init(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["n"])?;
        let n = config.u64("n")?.unwrap_or(10);
        if n == 0 {
            return Err("`n` must be 1 or more".into());
        }
        Ok(Sample { n, seen: 0 })
    }

    fn process(&mut self, record: &mut Record<'_>) -> Verdict {
        if is_error(record) {
            return Verdict::Keep;
        }
        let keep = self.seen.is_multiple_of(self.n);
        self.seen += 1;
        if keep {
            Verdict::Keep
        } else {
            tailcar_plugin::count("sampled_out", 1);
            Verdict::Drop
        }
    }
}

tailcar_plugin::export!(Sample);

#[cfg(test)]
mod tests {
    use super::*;
    use tailcar_plugin::testing::Harness;

    #[test]
    fn keeps_one_in_n_and_every_error() {
        let mut h = Harness::<Sample>::new(r#"{"n": 3}"#).unwrap();
        let lines = [
            r#"a - - [x] "GET / HTTP/1.1" 200 1"#,
            r#"b - - [x] "GET / HTTP/1.1" 200 1"#,
            r#"c - - [x] "GET / HTTP/1.1" 503 1"#,
            r#"d - - [x] "GET / HTTP/1.1" 200 1"#,
            "2024-01-01 ERROR boom",
            "2024-01-01 ERRORS are not a level",
            "f",
            "g",
        ];
        let kept: Vec<usize> = h.run(&lines).iter().map(|o| o.source).collect();
        // Ordinary records 0,1,3,5,6,7 are sampled as the 1st..6th: the 1st and 4th are kept.
        assert_eq!(kept, [0, 2, 4, 5]);
        assert_eq!(tailcar_plugin::testing::counts()["sampled_out"], 4);
    }

    #[test]
    fn fields_decide_when_present() {
        let mut h = Harness::<Sample>::new(r#"{"n": "1000"}"#).unwrap();
        let out = h.run_records(&[
            (b"first is kept", serde_json::json!({"status": 200})),
            (
                b"ERROR in the line but status 200",
                serde_json::json!({"status": 200}),
            ),
            (b"x", serde_json::json!({"status": 502})),
            (b"y", serde_json::json!({"level": "Error"})),
            (b"z", serde_json::json!({"level": "info"})),
        ]);
        let kept: Vec<usize> = out.iter().map(|o| o.source).collect();
        assert_eq!(kept, [0, 2, 3]);
        assert!(Harness::<Sample>::new(r#"{"n": 0}"#).is_err());
    }
}
