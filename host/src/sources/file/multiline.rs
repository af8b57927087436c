//! Multiline records: joins physical lines into one record, by a start pattern or, for CSV, by
//! balanced double quotes (a quoted field may hold newlines, RFC 4180).
//!
//! A line matching the start regex begins a new record; other lines are appended to the record
//! being built (joined with `\n`), so a Java stack trace becomes one record. The record is
//! flushed when the next start line arrives, when no line has arrived for `timeout`, when it
//! would exceed `max_bytes` (counted as a split), and when the file is let go or tailcar stops.
//! Lines before the first start line form a record of their own rather than being dropped.
//! In quote mode a record ends at the first line end where its `"` count is even.
use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::event::{Batch, FLAG_MULTILINE, FLAG_SPLIT, FLAG_UNTERMINATED};

/// How lines are joined.
#[derive(Debug, Clone)]
pub enum JoinMode {
    /// A line matching the regex begins a new record.
    Start(Regex),
    /// A record ends where its double quotes are balanced (CSV).
    BalancedQuotes,
    /// CRI (containerd, CRI-O) lines: `P` (partial) chunks are joined up to the `F` line.
    Cri,
    /// Docker json-file lines: entries whose `log` lacks its final newline (split at 16 KiB)
    /// are joined up to the one that has it.
    Docker,
}
#[derive(Debug, Clone)]
pub struct MultilineRule {
    pub mode: JoinMode,
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// The record being assembled for one file.
#[derive(Debug)]
pub struct Multiline {
    rule: MultilineRule,
    buf: Vec<u8>,
    lines: usize,
    offset: u64,
    flags: u8,
    /// When the last line was appended.
    last: Option<Instant>,
    /// The previous piece was a split piece of a longer line: the next piece continues it.
    continues: bool,
    /// Double quotes in `buf` (quote mode).
    quotes: usize,
    /// CRI: `TIME STREAM` of the first partial; Docker: its `stream` and `time`.
    meta: (Vec<u8>, Vec<u8>),
}
impl Multiline {
    pub fn new(rule: MultilineRule) -> Self {
        Multiline {
            rule,
            buf: Vec::new(),
            lines: 0,
            offset: 0,
            flags: 0,
            last: None,
            continues: false,
            quotes: 0,
            meta: (Vec::new(), Vec::new()),
        }
    }

    /// Adds one framed line (or split piece) ending at file offset `offset`. Completed records
    /// are appended to `out`; returns how many records were split for exceeding `max_bytes`.
    pub fn push(
        &mut self,
        line: &[u8],
        offset: u64,
        flags: u8,
        now: Instant,
        out: &mut Batch,
    ) -> u64 {
        match self.rule.mode {
            JoinMode::Cri => return self.push_cri(line, offset, flags, now, out),
            JoinMode::Docker => return self.push_docker(line, offset, flags, now, out),
            _ => {}
        }
        let mut splits = 0;
        if self.continues {
            self.buf.extend_from_slice(line);
        } else {
            if let JoinMode::Start(start) = &self.rule.mode
                && self.lines > 0
                && start.is_match(line)
            {
                self.flush(out);
            }
            if self.lines > 0 {
                if self.buf.len() + 1 + line.len() > self.rule.max_bytes {
                    self.flags |= FLAG_SPLIT;
                    self.flush(out);
                    splits += 1;
                } else {
                    self.buf.push(b'\n');
                }
            }
            self.buf.extend_from_slice(line);
            self.lines += 1;
        }
        self.continues = flags & FLAG_SPLIT != 0;
        self.flags |= flags & !FLAG_SPLIT;
        if self.continues {
            // The framer already split this physical line at max_line_bytes; carry its flag.
            self.flags |= FLAG_SPLIT;
        }
        self.offset = offset;
        self.last = Some(now);
        if let JoinMode::BalancedQuotes = self.rule.mode {
            self.quotes += memchr::memchr_iter(b'"', line).count();
            if !self.continues && self.quotes.is_multiple_of(2) {
                self.flush(out);
            }
        }
        splits
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.lines = 0;
        self.flags = 0;
        self.last = None;
        self.continues = false;
        self.quotes = 0;
    }

    /// CRI: `TIME STREAM P|F CONTENT`; partials are joined into one `F` line.
    fn push_cri(
        &mut self,
        line: &[u8],
        offset: u64,
        flags: u8,
        now: Instant,
        out: &mut Batch,
    ) -> u64 {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let (time, stream, tag) = (parts.next(), parts.next(), parts.next());
        let content = parts.next().unwrap_or_default();
        let (Some(time), Some(stream), Some(tag @ (b"P" | b"F"))) = (time, stream, tag) else {
            self.flush(out);
            out.push_line(line, offset, flags);
            return 0;
        };
        if self.lines > 0 && self.meta.1 != stream {
            self.flush(out);
        }
        if self.lines == 0 {
            if tag == b"F" {
                out.push_line(line, offset, flags);
                return 0;
            }
            self.meta = ([time, b" ", stream].concat(), stream.to_vec());
        }
        self.buf.extend_from_slice(content);
        self.lines += 1;
        self.offset = offset;
        self.last = Some(now);
        if tag == b"F" {
            let joined = [self.meta.0.as_slice(), b" F ", &self.buf].concat();
            out.push_line(&joined, offset, FLAG_MULTILINE);
            self.reset();
        }
        0
    }

    /// Docker json-file: `{"log":"...","stream":"stdout","time":"..."}`; entries whose log does
    /// not end with a newline are joined with the following ones.
    fn push_docker(
        &mut self,
        line: &[u8],
        offset: u64,
        flags: u8,
        now: Instant,
        out: &mut Batch,
    ) -> u64 {
        #[derive(serde::Deserialize)]
        struct Entry {
            log: String,
            #[serde(default)]
            stream: String,
            #[serde(default)]
            time: String,
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(line) else {
            self.flush(out);
            out.push_line(line, offset, flags);
            return 0;
        };
        if self.lines > 0 && self.meta.0 != entry.stream.as_bytes() {
            self.flush(out);
        }
        let complete = entry.log.ends_with('\n');
        if self.lines == 0 {
            if complete {
                out.push_line(line, offset, flags);
                return 0;
            }
            self.meta = (entry.stream.into_bytes(), entry.time.into_bytes());
        }
        self.buf.extend_from_slice(entry.log.as_bytes());
        self.lines += 1;
        self.offset = offset;
        self.last = Some(now);
        if complete {
            let joined = docker_line(&self.buf, &self.meta);
            out.push_line(&joined, offset, FLAG_MULTILINE);
            self.reset();
        }
        0
    }

    /// A multiline state with the same rule and nothing pending.
    pub fn fresh(&self) -> Self {
        Multiline::new(self.rule.clone())
    }

    /// Emits the record being built, if any.
    pub fn flush(&mut self, out: &mut Batch) {
        if self.lines > 0 && matches!(self.rule.mode, JoinMode::Cri | JoinMode::Docker) {
            // A partial that never got its end (timeout, or the other stream interrupted it):
            // emit it as a well-formed partial line of its format.
            let line = match self.rule.mode {
                JoinMode::Cri => [self.meta.0.as_slice(), b" P ", &self.buf].concat(),
                _ => docker_line(&self.buf, &self.meta),
            };
            out.push_line(&line, self.offset, self.flags | FLAG_UNTERMINATED);
            self.reset();
            return;
        }
        if self.lines == 0 && self.buf.is_empty() {
            return;
        }
        let flags = self.flags | if self.lines > 1 { FLAG_MULTILINE } else { 0 };
        out.push_line(&self.buf, self.offset, flags);
        self.buf.clear();
        self.lines = 0;
        self.flags = 0;
        self.last = None;
        self.continues = false;
        self.quotes = 0;
    }

    /// When the pending record times out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.last.map(|t| t + self.rule.timeout)
    }

    /// Flushes the pending record if its timeout has passed.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Batch) {
        if self.deadline().is_some_and(|d| now >= d) {
            self.flush(out);
        }
    }

    pub fn is_pending(&self) -> bool {
        self.lines > 0
    }
}

/// A Docker json-file line holding `log`, with the `stream` and `time` of its first part.
fn docker_line(log: &[u8], meta: &(Vec<u8>, Vec<u8>)) -> Vec<u8> {
    let value = serde_json::json!({
        "log": String::from_utf8_lossy(log),
        "stream": String::from_utf8_lossy(&meta.0),
        "time": String::from_utf8_lossy(&meta.1),
    });
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn rule(max: usize) -> MultilineRule {
        MultilineRule {
            mode: JoinMode::Start(Regex::new(r"^\d{4}-\d{2}-\d{2}").unwrap()),
            timeout: Duration::from_secs(1),
            max_bytes: max,
        }
    }

    fn batch() -> Batch {
        Batch::new(
            Arc::new(Source {
                stream: "e".into(),
                path: "/e".into(),
                file_id: None,
            }),
            SystemTime::now(),
        )
    }

    fn lines(b: &Batch) -> Vec<String> {
        b.records()
            .iter()
            .map(|r| String::from_utf8_lossy(b.line(r)).into_owned())
            .collect()
    }

    #[test]
    fn java_stack_trace_becomes_one_record() {
        let mut m = Multiline::new(rule(1 << 20));
        let mut out = batch();
        let now = Instant::now();
        let input = [
            "2024-01-01 ERROR boom",
            "java.lang.IllegalStateException: bad",
            "\tat com.example.A.b(A.java:10)",
            "\tat com.example.C.d(C.java:20)",
            "2024-01-01 INFO next",
        ];
        let mut off = 0;
        for l in input {
            off += l.len() as u64 + 1;
            m.push(l.as_bytes(), off, 0, now, &mut out);
        }
        assert_eq!(lines(&out), vec![input[..4].join("\n")]);
        assert_eq!(out.records()[0].flags, FLAG_MULTILINE);
        assert_eq!(
            out.records()[0].offset,
            (input[..4].iter().map(|l| l.len() + 1).sum::<usize>()) as u64
        );
        assert!(m.is_pending());
        m.flush(&mut out);
        assert_eq!(lines(&out)[1], "2024-01-01 INFO next");
        assert_eq!(out.records()[1].flags, 0);
    }

    #[test]
    fn times_out_and_keeps_leading_continuation_lines() {
        let mut m = Multiline::new(rule(1 << 20));
        let mut out = batch();
        let t0 = Instant::now();
        m.push(b"orphan continuation", 20, 0, t0, &mut out);
        m.push(b"2024-01-01 start", 37, 0, t0, &mut out);
        assert_eq!(lines(&out), vec!["orphan continuation"]);
        m.flush_expired(t0 + Duration::from_millis(500), &mut out);
        assert_eq!(out.len(), 1);
        m.flush_expired(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(lines(&out), vec!["orphan continuation", "2024-01-01 start"]);
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn records_over_max_bytes_are_split_not_dropped() {
        let mut m = Multiline::new(rule(20));
        let mut out = batch();
        let now = Instant::now();
        assert_eq!(m.push(b"2024-01-01 aaaaaaaa", 20, 0, now, &mut out), 0);
        assert_eq!(m.push(b"continuation", 33, 0, now, &mut out), 1);
        m.flush(&mut out);
        assert_eq!(lines(&out), vec!["2024-01-01 aaaaaaaa", "continuation"]);
        assert_eq!(out.records()[0].flags & FLAG_SPLIT, FLAG_SPLIT);
    }

    #[test]
    fn csv_records_end_where_quotes_balance() {
        let rule = MultilineRule {
            mode: JoinMode::BalancedQuotes,
            timeout: Duration::from_secs(1),
            max_bytes: 1 << 20,
        };
        let mut m = Multiline::new(rule);
        let mut out = batch();
        let now = Instant::now();
        let input = [
            "1,plain,x",
            "2,\"a quoted, comma\",y",
            "3,\"two",
            "lines\",z",
            "4,\"say \"\"hi\"\"\",w",
        ];
        for (i, l) in input.iter().enumerate() {
            m.push(l.as_bytes(), i as u64, 0, now, &mut out);
        }
        assert!(!m.is_pending());
        assert_eq!(
            lines(&out),
            vec![
                "1,plain,x",
                "2,\"a quoted, comma\",y",
                "3,\"two\nlines\",z",
                "4,\"say \"\"hi\"\"\",w"
            ]
        );
        assert_eq!(out.records()[2].flags, FLAG_MULTILINE);
    }

    #[test]
    fn split_pieces_of_one_line_are_rejoined_without_newlines() {
        let mut m = Multiline::new(rule(1 << 20));
        let mut out = batch();
        let now = Instant::now();
        m.push(b"2024-01-01 very", 15, FLAG_SPLIT, now, &mut out);
        m.push(b"2024-01-01 long", 30, 0, now, &mut out); // looks like a start, but continues
        m.flush(&mut out);
        assert_eq!(lines(&out), vec!["2024-01-01 very2024-01-01 long"]);
    }
}
