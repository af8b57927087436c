//! The `syslog` parser: RFC 5424, falling back to RFC 3164 (BSD), through `syslog_loose`.
//!
//! Fields: `facility` and `severity` (the priority decoded to their names: `auth`, `err`, ...),
//! `hostname`, `appname`, `procid` (an integer when numeric), `msgid`, `structured_data`
//! (`{ "id": { "param": "value" } }`) and `message`; the event time is the message's timestamp.
//! RFC 3164 timestamps have no year: the current year is used, or the previous one when that
//! would put the message more than a day in the future (a December line read in January).
//! Timestamps without an offset are read in `time_zone` (a fixed offset; default UTC).

use chrono::{Datelike, FixedOffset};
use syslog_loose::{ProcId, Variant};

use crate::event::Fields;
use crate::event::fields::FieldSink;

/// Every field [`parse`] can set.
pub const FIELDS: &[&str] = &[
    "facility",
    "severity",
    "hostname",
    "appname",
    "msgid",
    "procid",
    "structured_data",
    "message",
];

/// Parses one syslog line; returns the event time when the message has a timestamp.
pub fn parse(
    line: &[u8],
    fields: &mut impl FieldSink,
    offset: FixedOffset,
) -> Result<Option<jiff::Timestamp>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not valid UTF-8")?;
    let now = chrono::Utc::now().with_timezone(&offset);
    let (year, month, day) = (now.year(), now.month(), now.day());
    let resolve_year = move |(m, d, _, _, _): syslog_loose::IncompleteDate| {
        if (m, d) > (month, day + 1) {
            year - 1
        } else {
            year
        }
    };
    let msg = syslog_loose::parse_message_with_year_exact_tz(
        text,
        resolve_year,
        Some(offset),
        Variant::Either,
    )?;
    if msg.facility.is_none() && msg.timestamp.is_none() && msg.hostname.is_none() {
        return Err("not a syslog message (no priority, timestamp or hostname)".into());
    }
    if let Some(f) = msg.facility {
        fields.text("facility", f.as_str());
    }
    if let Some(s) = msg.severity {
        fields.text("severity", s.as_str());
    }
    for (name, value) in [
        ("hostname", msg.hostname),
        ("appname", msg.appname),
        ("msgid", msg.msgid),
    ] {
        if let Some(v) = value {
            fields.text(name, v);
        }
    }
    match msg.procid {
        Some(ProcId::PID(pid)) => fields.int("procid", i64::from(pid)),
        Some(ProcId::Name(name)) => fields.text("procid", name),
        None => {}
    }
    if !msg.structured_data.is_empty() {
        let mut sd = Fields::new();
        for element in &msg.structured_data {
            let params: Fields = element
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), (*v).into()))
                .collect();
            sd.insert(element.id.to_string(), serde_json::Value::Object(params));
        }
        fields.json("structured_data", serde_json::Value::Object(sd));
    }
    fields.text("message", msg.msg);
    Ok(msg
        .timestamp
        .and_then(|t| jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    #[test]
    fn rfc5424_examples() {
        // RFC 5424, section 6.5, examples 1 and 3.
        let mut f = Fields::new();
        let t = parse(
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8",
            &mut f,
            utc(),
        )
        .unwrap();
        assert_eq!(f["facility"], "auth");
        assert_eq!(f["severity"], "crit");
        assert_eq!(f["hostname"], "mymachine.example.com");
        assert_eq!(f["appname"], "su");
        assert_eq!(f["msgid"], "ID47");
        assert!(!f.contains_key("procid"));
        assert_eq!(
            f["message"],
            "BOM'su root' failed for lonvick on /dev/pts/8"
        );
        assert_eq!(t.unwrap().to_string(), "2003-10-11T22:14:15.003Z");

        let mut f = Fields::new();
        let t = parse(
            br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry..."#,
            &mut f,
            utc(),
        )
        .unwrap();
        assert_eq!(f["facility"], "local4");
        assert_eq!(f["severity"], "notice");
        assert_eq!(f["structured_data"]["exampleSDID@32473"]["eventID"], "1011");
        assert_eq!(f["message"], "An application event log entry...");
        assert!(t.is_some());
    }

    #[test]
    fn rfc3164_example_with_a_resolved_year() {
        // RFC 3164, section 5.4, example 1.
        let mut f = Fields::new();
        let t = parse(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            &mut f,
            utc(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f["facility"], "auth");
        assert_eq!(f["severity"], "crit");
        assert_eq!(f["hostname"], "mymachine");
        assert_eq!(f["appname"], "su");
        assert_eq!(f["message"], "'su root' failed for lonvick on /dev/pts/8");
        let z = t.to_zoned(jiff::tz::TimeZone::UTC);
        assert_eq!((z.month(), z.day(), z.hour()), (10, 11, 22));
        assert!(
            t <= jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48),
            "never far in the future"
        );

        let mut f = Fields::new();
        parse(
            b"<13>Feb  5 17:32:18 10.0.0.99 myapp[4711]: Use the BFG!",
            &mut f,
            utc(),
        )
        .unwrap();
        assert_eq!(f["procid"], 4711);
        assert_eq!(f["appname"], "myapp");
        assert_eq!(f["message"], "Use the BFG!");
    }

    #[test]
    fn other_lines_are_errors() {
        let mut f = Fields::new();
        assert!(parse(b"\xff\xfe", &mut f, utc()).is_err());
        assert!(parse(b"just some text", &mut f, utc()).is_err(), "{f:?}");
    }
}
