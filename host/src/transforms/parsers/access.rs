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

use crate::event::Fields;

static ACCESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"^(?P<remote_addr>\S+) \S+ (?P<remote_user>\S+) \[(?P<time>[^\]]+)\] "#,
        r#""(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\d+|-)"#,
        // The closing quote of the user agent may be missing: a line cut short keeps its agent.
        r#"(?: "(?P<referrer>(?:[^"\\]|\\.)*)" "(?P<user_agent>(?:[^"\\]|\\.)*)"?)?\s*$"#,
    ))
    .expect("static regex")
});

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

/// Parses a combined or common access-log line; returns the event time.
pub fn parse_access(line: &[u8], fields: &mut Fields) -> Result<Option<jiff::Timestamp>, String> {
    let c = ACCESS
        .captures(line)
        .ok_or("not an access-log line (combined or common format)")?;
    let time = text(c.name("time").expect("required group"));
    fields.insert(
        "remote_addr".into(),
        text(c.name("remote_addr").expect("required group")).into(),
    );
    fields.insert(
        "remote_user".into(),
        text(c.name("remote_user").expect("required group")).into(),
    );
    fields.insert("time".into(), time.clone().into());
    let request = text(c.name("request").expect("required group"));
    let parts: Vec<&str> = request.split(' ').collect();
    if let [method, path, protocol] = parts[..] {
        fields.insert("method".into(), method.into());
        fields.insert("path".into(), path.into());
        fields.insert("protocol".into(), protocol.into());
    }
    fields.insert("request".into(), request.into());
    let status: i64 = text(c.name("status").expect("required group"))
        .parse()
        .expect("three digits");
    fields.insert("status".into(), status.into());
    let bytes = c.name("bytes").expect("required group").as_bytes();
    let bytes: i64 = if bytes == b"-" {
        0
    } else {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(0)
    };
    fields.insert("bytes".into(), bytes.into());
    if let (Some(r), Some(a)) = (c.name("referrer"), c.name("user_agent")) {
        fields.insert("referrer".into(), text(r).into());
        fields.insert("user_agent".into(), text(a).into());
    }
    Ok(BrokenDownTime::parse("%d/%b/%Y:%H:%M:%S %z", &time)
        .ok()
        .and_then(|t| t.to_timestamp().ok()))
}

/// Parses an Apache error-log line; its time (which has no offset) is read in `zone`.
pub fn parse_apache_error(
    line: &[u8],
    fields: &mut Fields,
    zone: &TimeZone,
) -> Result<Option<jiff::Timestamp>, String> {
    let c = APACHE_ERROR
        .captures(line)
        .ok_or("not an Apache error-log line")?;
    let time = text(c.name("time").expect("required group"));
    fields.insert("time".into(), time.clone().into());
    for name in ["module", "level"] {
        if let Some(m) = c.name(name) {
            fields.insert(name.into(), text(m).into());
        }
    }
    for name in ["pid", "tid"] {
        if let Some(n) = c
            .name(name)
            .and_then(|m| std::str::from_utf8(m.as_bytes()).ok()?.parse::<i64>().ok())
        {
            fields.insert(name.into(), n.into());
        }
    }
    for name in ["client", "code", "message"] {
        if let Some(m) = c.name(name) {
            fields.insert(name.into(), text(m).into());
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
