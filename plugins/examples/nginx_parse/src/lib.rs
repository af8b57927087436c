//! `nginx_parse`: parses nginx's `combined` access-log format (Apache's `combined` too, and the
//! `common` format without referrer and agent) into typed fields.
//!
//! Fields: `remote_addr`, `remote_user`, `time` (as written), `request` (the request line as
//! written), `method`, `path`, `protocol` (when the request line has those three parts),
//! `status` (integer), `bytes` (integer; `-` is 0), and for combined lines `referrer` and
//! `user_agent`, the same names as tailcar's native `nginx` parser. The record's event time is
//! set from `time`. A line that is not in the format is kept, unchanged, with a `parse_error`
//! field, and counted as `parse_errors`; nothing is dropped.
//!
//! Config: none.

use std::borrow::Cow;

use tailcar_plugin::{Config, Plugin, Record, Timestamp, Value, Verdict};

pub struct NginxParse;

/// What a line is made of, borrowed from it.
#[derive(Debug, PartialEq)]
pub struct Access<'a> {
    pub remote_addr: &'a [u8],
    pub remote_user: &'a [u8],
    pub time: &'a [u8],
    pub request: &'a [u8],
    pub status: i64,
    pub bytes: i64,
    pub referrer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
}

struct Cursor<'a> {
    line: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.line[self.at.min(self.line.len())..]
    }

    fn token(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest();
        let end = memchr::memchr(b' ', rest)?;
        self.at += end + 1;
        Some(&rest[..end])
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.line.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    fn bracketed(&mut self) -> Option<&'a [u8]> {
        self.eat(b'[')?;
        let rest = self.rest();
        let end = memchr::memchr(b']', rest)?;
        self.at += end + 1;
        Some(&rest[..end])
    }

    /// `"..."`, where `\"` does not end the value; `lenient` accepts a missing closing quote at
    /// the end of the line (a line cut inside its user agent).
    fn quoted(&mut self, lenient: bool) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        let mut i = start;
        while let Some(found) = self
            .line
            .get(i..)
            .and_then(|r| memchr::memchr2(b'\\', b'"', r))
        {
            i += found;
            if self.line[i] == b'\\' {
                i += 2;
            } else {
                self.at = i + 1;
                return Some(&self.line[start..i]);
            }
        }
        if lenient {
            self.at = self.line.len();
            Some(&self.line[start..])
        } else {
            None
        }
    }
}

fn number(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

/// Parses one access-log line.
pub fn parse(line: &[u8]) -> Option<Access<'_>> {
    let line = line.trim_ascii_end();
    let mut c = Cursor { line, at: 0 };
    let remote_addr = c.token()?;
    let _ident = c.token()?;
    let remote_user = c.token()?;
    let time = c.bracketed()?;
    c.eat(b' ')?;
    let request = c.quoted(false)?;
    c.eat(b' ')?;
    let status = c.token()?;
    if status.len() != 3 {
        return None;
    }
    let status = number(status)?;
    let combined = memchr::memchr(b' ', c.rest()).is_some();
    let bytes = if combined { c.token()? } else { c.rest() };
    let bytes = if bytes == b"-" { 0 } else { number(bytes)? };
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
    Some(Access {
        remote_addr,
        remote_user,
        time,
        request,
        status,
        bytes,
        referrer,
        user_agent,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `17/May/2015:10:05:03 +0000` as a timestamp.
pub fn parse_time(t: &[u8]) -> Option<Timestamp> {
    if t.len() != 26 || t[2] != b'/' || t[6] != b'/' || t[11] != b':' || t[20] != b' ' {
        return None;
    }
    let month = match &t[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    let day = number(&t[0..2])?;
    let year = number(&t[7..11])?;
    let (h, m, s) = (
        number(&t[12..14])?,
        number(&t[15..17])?,
        number(&t[18..20])?,
    );
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let sign = match t[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset = sign * (number(&t[22..24])? * 3600 + number(&t[24..26])? * 60);
    let seconds = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s - offset;
    Some(Timestamp { seconds, nanos: 0 })
}

/// Part `b` of `line` as text: borrowed from `whole` (the line, checked as UTF-8 once) when
/// the line is UTF-8, else checked on its own (a lossy copy when it is not UTF-8 either).
fn text<'a>(line: &'a [u8], whole: Option<&'a str>, b: &'a [u8]) -> Value<'a> {
    let start = (b.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
    if let Some(s) = whole.and_then(|w| w.get(start..start + b.len())) {
        return Value::Str(Cow::Borrowed(s));
    }
    match std::str::from_utf8(b) {
        Ok(s) => Value::Str(Cow::Borrowed(s)),
        Err(_) => Value::Str(Cow::Owned(String::from_utf8_lossy(b).into_owned())),
    }
}

impl Plugin for NginxParse {
    fn init(config: Config) -> Result<Self, String> {
        config.deny_unknown(&[])?;
        Ok(NginxParse)
    }

    fn process(&mut self, record: &mut Record<'_>) -> Verdict {
        let line = record.input_line();
        let whole = std::str::from_utf8(line).ok();
        let text = |b| text(line, whole, b);
        let Some(a) = parse(line) else {
            tailcar_plugin::count("parse_errors", 1);
            record.set_field(
                "parse_error",
                "not an access-log line (combined or common format)",
            );
            return Verdict::Keep;
        };
        record.set_field("remote_addr", text(a.remote_addr));
        record.set_field("remote_user", text(a.remote_user));
        record.set_field("time", text(a.time));
        let mut parts = a.request.splitn(4, |&b| b == b' ');
        if let (Some(m), Some(p), Some(v), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            record.set_field("method", text(m));
            record.set_field("path", text(p));
            record.set_field("protocol", text(v));
        }
        record.set_field("request", text(a.request));
        record.set_field("status", a.status);
        record.set_field("bytes", a.bytes);
        if let (Some(r), Some(u)) = (a.referrer, a.user_agent) {
            record.set_field("referrer", text(r));
            record.set_field("user_agent", text(u));
        }
        if let Some(t) = parse_time(a.time) {
            record.set_time(t);
        }
        Verdict::Keep
    }
}

tailcar_plugin::export!(NginxParse);

#[cfg(test)]
mod tests {
    use super::*;
    use tailcar_plugin::testing::Harness;

    #[test]
    fn parses_a_combined_line_into_typed_fields() {
        let mut h = Harness::<NginxParse>::new("").unwrap();
        let out = h.run(&[
            r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36""#,
        ]);
        let f = &out[0].fields;
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
        // 2015-05-17T10:05:03Z
        assert_eq!(
            out[0].time,
            Some(Timestamp {
                seconds: 1_431_857_103,
                nanos: 0
            })
        );
    }

    #[test]
    fn common_format_escapes_and_offsets() {
        let a =
            parse(br#"::1 - bob [10/Oct/2000:13:55:36 -0700] "GET /a\"b HTTP/1.0" 304 -"#).unwrap();
        assert_eq!(a.remote_user, b"bob");
        assert_eq!(a.request, br#"GET /a\"b HTTP/1.0"#);
        assert_eq!((a.status, a.bytes, a.referrer), (304, 0, None));
        // 2000-10-10T20:55:36Z
        assert_eq!(parse_time(a.time).unwrap().seconds, 971_211_336);
    }

    #[test]
    fn keeps_what_it_cannot_parse_and_counts_it() {
        let mut h = Harness::<NginxParse>::new("").unwrap();
        let out = h.run(&[
            "not an access line",
            "1.2.3.4 - - [x] \"GET / HTTP/1.1\" 20 1",
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].line, "not an access line");
        assert_eq!(
            out[0].fields["parse_error"],
            "not an access-log line (combined or common format)"
        );
        assert!(out[1].fields.contains_key("parse_error"));
        assert_eq!(tailcar_plugin::testing::counts()["parse_errors"], 2);
    }
}
