//! `nginx` and `apache2`: the combined access-log format (nginx's default `log_format combined`,
//! Apache's `LogFormat ... combined`) and the common format (the same without referrer and user
//! agent), and `apache_error`: Apache's error log (2.2 and 2.4 layouts).
//!
//! Access fields, as a hand-written regexp would name them: `remote_addr`, `remote_user`, `time`,
//! `request` (the request line as written), `method`, `path`, `protocol` (when the request line
//! has those three parts; junk requests keep only `request`), `status` (int), `bytes` (int; `-`
//! is 0), and for combined lines `referrer` and `user_agent`. The event time comes from `time`.
//! Apache escapes `"` inside quoted values as `\"`; those are read correctly. A line cut short
//! inside its user agent (no closing quote) still parses, keeping the agent's text.

use std::sync::LazyLock;

use jiff::fmt::strtime::BrokenDownTime;
use jiff::tz::TimeZone;
use regex::bytes::Regex;

#[cfg(test)]
use crate::event::Fields;
use crate::event::fields::FieldSink;

static APACHE_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^\[(?P<time>[^\]]+)\] \[(?:(?P<module>[^:\]]+):)?(?P<level>[^\]]+)\]",
        r"(?: \[pid (?P<pid>\d+)(?::tid (?P<tid>\d+))?\])?",
        r"(?: \[client (?P<client>[^\]]+)\])?",
        r"(?: (?P<code>AH\d+):)? (?P<message>.*)$",
    ))
    .expect("static regex")
});

fn text(m: regex::bytes::Match<'_>) -> String {
    String::from_utf8_lossy(m.as_bytes()).into_owned()
}

/// A cursor over an access-log line, as text. Every place it cuts is an ASCII delimiter found
/// by `memchr`, so each piece is text without another UTF-8 check.
struct Cursor<'a> {
    line: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.line.as_bytes()
    }

    /// The text up to the next space (which is consumed).
    fn token(&mut self) -> Option<&'a str> {
        let end = memchr::memchr(b' ', &self.bytes()[self.at..])?;
        let token = self.line.get(self.at..self.at + end)?;
        self.at += end + 1;
        Some(token)
    }

    /// Consumes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.bytes().get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// `[...]`: the text up to the closing bracket.
    fn bracketed(&mut self) -> Option<&'a str> {
        self.eat(b'[')?;
        let end = memchr::memchr(b']', &self.bytes()[self.at..])?;
        let inside = self.line.get(self.at..self.at + end)?;
        self.at += end + 1;
        Some(inside)
    }

    /// `"..."` with `\"` escapes kept as written; with `lenient`, a missing closing quote at the
    /// end of the line is accepted.
    fn quoted(&mut self, lenient: bool) -> Option<&'a str> {
        self.eat(b'"')?;
        let line = self.bytes();
        let start = self.at;
        let mut i = start;
        loop {
            match memchr::memchr2(b'"', b'\\', &line[i..]) {
                Some(n) if line[i + n] == b'\\' => i += n + 2,
                Some(n) => {
                    self.at = i + n + 1;
                    return self.line.get(start..i + n);
                }
                None if lenient => {
                    self.at = line.len();
                    return self.line.get(start..);
                }
                None => return None,
            }
            if i > line.len() {
                return None;
            }
        }
    }

    fn rest(&self) -> &'a str {
        self.line.get(self.at.min(self.line.len())..).unwrap_or("")
    }
}

/// The last time text read and its timestamp: every line of one second carries the same text.
#[derive(Debug, Clone, Default)]
pub struct TimeCache {
    text: String,
    at: Option<jiff::Timestamp>,
}

impl TimeCache {
    fn get(&mut self, text: &str) -> Option<jiff::Timestamp> {
        if self.text != text {
            self.text.clear();
            self.text.push_str(text);
            self.at = parse_access_time(text);
        }
        self.at
    }
}

/// Parses a combined or common access-log line; returns the event time.
pub fn parse_access(
    line: &[u8],
    fields: &mut impl FieldSink,
) -> Result<Option<jiff::Timestamp>, String> {
    parse_access_with(line, fields, &mut TimeCache::default())
}

/// [`parse_access`] with the last line's time remembered in `times`.
pub fn parse_access_with(
    line: &[u8],
    fields: &mut impl FieldSink,
    times: &mut TimeCache,
) -> Result<Option<jiff::Timestamp>, String> {
    tokenize_access(line, fields, times).ok_or_else(|| {
        fields.clear();
        "not an access-log line (combined or common format)".to_string()
    })
}

fn tokenize_access(
    line: &[u8],
    fields: &mut impl FieldSink,
    times: &mut TimeCache,
) -> Option<Option<jiff::Timestamp>> {
    // Checked for UTF-8 once (invalid sequences become U+FFFD); the pieces are cut at ASCII.
    let text = crate::event::text(line.trim_ascii_end());
    let mut c = Cursor { line: &text, at: 0 };
    let remote_addr = c.token()?;
    let _ident = c.token()?;
    let remote_user = c.token()?;
    let time = c.bracketed()?;
    c.eat(b' ')?;
    let request = c.quoted(false)?;
    c.eat(b' ')?;
    let status = c.token()?;
    if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (bytes, combined) = match memchr::memchr(b' ', c.rest().as_bytes()) {
        Some(_) => (c.token()?, true),
        None => (c.rest(), false),
    };
    let bytes: i64 = match bytes {
        "-" => 0,
        b if !b.is_empty() && b.bytes().all(|b| b.is_ascii_digit()) => b.parse().ok()?,
        _ => return None,
    };
    let (referrer, user_agent) = if combined {
        let referrer = c.quoted(false)?;
        c.eat(b' ')?;
        let agent = c.quoted(true)?;
        if !c.rest().trim_ascii().is_empty() {
            return None;
        }
        (Some(referrer), Some(agent))
    } else {
        (None, None)
    };
    fields.text("remote_addr", remote_addr);
    fields.text("remote_user", remote_user);
    fields.text("time", time);
    let mut parts = request.splitn(4, ' ');
    if let (Some(m), Some(p), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    {
        fields.text("method", m);
        fields.text("path", p);
        fields.text("protocol", v);
    }
    fields.text("request", request);
    let status: i64 = status.parse().ok()?;
    fields.int("status", status);
    fields.int("bytes", bytes);
    if let (Some(r), Some(a)) = (referrer, user_agent) {
        fields.text("referrer", r);
        fields.text("user_agent", a);
    }
    Some(times.get(time))
}

/// `17/May/2015:10:05:03 +0000`: read by hand in that exact layout, else by `strftime` format
/// (which also takes, for example, a one-digit day).
fn parse_access_time(t: &str) -> Option<jiff::Timestamp> {
    exact_access_time(t).or_else(|| {
        BrokenDownTime::parse("%d/%b/%Y:%H:%M:%S %z", t)
            .ok()?
            .to_timestamp()
            .ok()
    })
}

fn exact_access_time(t: &str) -> Option<jiff::Timestamp> {
    let b = t.as_bytes();
    if b.len() != 26 || [b[2], b[6], b[11], b[14], b[17], b[20]] != *b"//::: " {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i32> {
        b[r].iter().try_fold(0i32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i32::from(d - b'0'))
        })
    };
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|m| m[..] == b[3..6])? as i8 + 1;
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let dt = jiff::civil::DateTime::new(
        i16::try_from(num(7..11)?).ok()?,
        month,
        num(0..2)? as i8,
        num(12..14)? as i8,
        num(15..17)? as i8,
        num(18..20)? as i8,
        0,
    )
    .ok()?;
    let offset =
        jiff::tz::Offset::from_seconds(sign * (num(22..24)? * 3600 + num(24..26)? * 60)).ok()?;
    offset.to_timestamp(dt).ok()
}

/// Every field [`parse_access`] can set.
pub const ACCESS_FIELDS: &[&str] = &[
    "remote_addr",
    "remote_user",
    "time",
    "method",
    "path",
    "protocol",
    "request",
    "status",
    "bytes",
    "referrer",
    "user_agent",
];

/// Every field [`parse_apache_error`] can set.
pub const APACHE_ERROR_FIELDS: &[&str] = &[
    "time", "module", "level", "pid", "tid", "client", "code", "message",
];

/// Parses an Apache error-log line; its time (which has no offset) is read in `zone`.
pub fn parse_apache_error(
    line: &[u8],
    fields: &mut impl FieldSink,
    zone: &TimeZone,
) -> Result<Option<jiff::Timestamp>, String> {
    let c = APACHE_ERROR
        .captures(line)
        .ok_or("not an Apache error-log line")?;
    let time = text(c.name("time").expect("required group"));
    fields.text("time", &time);
    for name in ["module", "level"] {
        if let Some(m) = c.name(name) {
            fields.text_lossy(name, m.as_bytes());
        }
    }
    for name in ["pid", "tid"] {
        if let Some(n) = c
            .name(name)
            .and_then(|m| std::str::from_utf8(m.as_bytes()).ok()?.parse::<i64>().ok())
        {
            fields.int(name, n);
        }
    }
    for name in ["client", "code", "message"] {
        if let Some(m) = c.name(name) {
            fields.text_lossy(name, m.as_bytes());
        }
    }
    let ts = BrokenDownTime::parse("%a %b %d %H:%M:%S%.f %Y", &time)
        .ok()
        .and_then(|t| t.to_datetime().ok())
        .and_then(|dt| zone.to_ambiguous_zoned(dt).compatible().ok())
        .map(|z| z.timestamp());
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(line: &str) -> (Fields, Option<String>) {
        let mut f = Fields::new();
        let t = parse_access(line.as_bytes(), &mut f).unwrap();
        (f, t.map(|t| t.to_string()))
    }

    #[test]
    fn times_read_by_hand_are_those_the_format_reads() {
        for t in [
            "17/May/2015:10:05:03 +0000",
            "29/Feb/2024:23:59:59 -0930",
            "01/Jan/1970:00:00:00 +1400",
            "31/Dec/9999:23:59:59 +0000",
            "31/Feb/2015:10:05:03 +0000",
            "17/May/2015:24:05:03 +0000",
            "17/Mai/2015:10:05:03 +0000",
            "17/May/2015:10:05:03 +9900",
            "17/May/2015:10:05:0x +0000",
        ] {
            let by_format = BrokenDownTime::parse("%d/%b/%Y:%H:%M:%S %z", t)
                .ok()
                .and_then(|b| b.to_timestamp().ok());
            assert_eq!(exact_access_time(t), by_format, "{t}");
        }
        assert!(exact_access_time("7/May/2015:10:05:03 +0000").is_none());
        assert_eq!(
            parse_access_time("7/May/2015:10:05:03 +0000").map(|t| t.to_string()),
            Some("2015-05-07T10:05:03Z".into()),
            "other layouts go to the format"
        );
    }

    #[test]
    fn a_remembered_time_is_the_one_of_the_line() {
        let mut times = TimeCache::default();
        let mut at = |t: &str| {
            let line = format!(r#"1.2.3.4 - - [{t}] "GET / HTTP/1.1" 200 1"#);
            parse_access_with(line.as_bytes(), &mut Fields::new(), &mut times)
                .unwrap()
                .map(|t| t.to_string())
        };
        let a = "17/May/2015:10:05:03 +0000";
        let b = "17/May/2015:10:05:04 +0200";
        assert_eq!(at(a).as_deref(), Some("2015-05-17T10:05:03Z"));
        assert_eq!(at(a).as_deref(), Some("2015-05-17T10:05:03Z"));
        assert_eq!(at(b).as_deref(), Some("2015-05-17T08:05:04Z"));
        assert_eq!(at("not a time"), None);
        assert_eq!(at("not a time"), None);
        assert_eq!(at(a).as_deref(), Some("2015-05-17T10:05:03Z"));
    }

    #[test]
    fn combined_line() {
        let (f, t) = access(
            r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36""#,
        );
        assert_eq!(f["remote_addr"], "83.149.9.216");
        assert_eq!(f["remote_user"], "-");
        assert_eq!(f["method"], "GET");
        assert_eq!(
            f["path"],
            "/presentations/logstash-monitorama-2013/images/kibana-search.png"
        );
        assert_eq!(f["protocol"], "HTTP/1.1");
        assert_eq!(f["status"], 200);
        assert_eq!(f["bytes"], 203023);
        assert_eq!(
            f["referrer"],
            "http://semicomplete.com/presentations/logstash-monitorama-2013/"
        );
        assert!(
            f["user_agent"]
                .as_str()
                .unwrap()
                .starts_with("Mozilla/5.0 (Macintosh")
        );
        assert_eq!(t.as_deref(), Some("2015-05-17T10:05:03Z"));
    }

    #[test]
    fn common_line_escaped_quotes_and_junk_requests() {
        let (f, t) = access(
            r#"10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 -"#,
        );
        assert_eq!(f["remote_user"], "frank");
        assert_eq!(f["bytes"], 0, "`-` bytes is 0");
        assert!(!f.contains_key("referrer"));
        assert_eq!(t.as_deref(), Some("2000-10-10T20:55:36Z"));
        let (f, _) = access(
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] "\x16\x03\x01" 400 226 "-" "a \"quoted\" agent""#,
        );
        assert_eq!(f["request"], r"\x16\x03\x01");
        assert!(
            !f.contains_key("method"),
            "a junk request line is kept whole"
        );
        assert_eq!(f["user_agent"], r#"a \"quoted\" agent"#);
        let (f, _) = access(
            r#"1.2.3.4 - - [20/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 235 "-" "Googlebot/2.1; +http://www.google.com/bot.html"#,
        );
        assert_eq!(
            f["user_agent"], "Googlebot/2.1; +http://www.google.com/bot.html",
            "cut short: agent kept"
        );
        let mut f = Fields::new();
        assert!(parse_access(b"not an access line", &mut f).is_err());
    }

    #[test]
    fn apache_error_24_and_22() {
        let mut f = Fields::new();
        let t = parse_apache_error(
            b"[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:51234] AH00037: Symbolic link not allowed: /var/www/html/x",
            &mut f,
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(f["module"], "core");
        assert_eq!(f["level"], "error");
        assert_eq!(f["pid"], 35708);
        assert_eq!(f["tid"], 4328636416i64);
        assert_eq!(f["client"], "72.15.99.187:51234");
        assert_eq!(f["code"], "AH00037");
        assert_eq!(f["message"], "Symbolic link not allowed: /var/www/html/x");
        assert_eq!(t.unwrap().to_string(), "2000-10-11T14:32:52.123456Z");
        let mut f = Fields::new();
        parse_apache_error(b"[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration", &mut f, &TimeZone::UTC)
            .unwrap();
        assert_eq!(f["level"], "error");
        assert!(!f.contains_key("module"));
        assert_eq!(f["message"], "client denied by server configuration");
    }
}
