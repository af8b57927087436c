//! Event time: `time_key` names the field holding when the record happened, `time_format` how
//! to read it (strftime/strptime specifiers, e.g. `%d/%b/%Y:%H:%M:%S %z`, or `rfc3339`, `unix`,
//! `unix_ms`), `time_zone` what a time without an offset is in (an IANA name such as
//! `Europe/Paris`, a fixed offset such as `+02:00`; default UTC). A record whose time is missing
//! or does not parse keeps its read time and is counted.

use jiff::Timestamp;
use jiff::fmt::strtime::BrokenDownTime;
use jiff::tz::{Offset, TimeZone};
use serde::Deserialize;

use crate::event::{FieldStore, Value};

/// The time options a parser accepts (written inside the parser's map).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeOptions {
    pub time_key: Option<String>,
    pub time_format: Option<String>,
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone)]
enum Format {
    Strptime(String),
    Rfc3339,
    Unix,
    UnixMs,
}

/// A compiled time extraction.
#[derive(Debug, Clone)]
pub struct TimeFrom {
    key: String,
    format: Format,
    zone: TimeZone,
}

impl TimeOptions {
    /// Validates the options; `None` when no `time_key` is set. The error is `(key, reason)`.
    pub fn build(&self) -> Result<Option<TimeFrom>, (String, String)> {
        let Some(key) = &self.time_key else {
            if self.time_format.is_some() || self.time_zone.is_some() {
                return Err((
                    "time_key".into(),
                    "time_format and time_zone need a time_key".into(),
                ));
            }
            return Ok(None);
        };
        let format = match self.time_format.as_deref() {
            None | Some("rfc3339") => Format::Rfc3339,
            Some("unix") => Format::Unix,
            Some("unix_ms") => Format::UnixMs,
            Some(f) if f.contains('%') => Format::Strptime(f.to_string()),
            Some(f) => {
                return Err((
                    "time_format".into(),
                    format!(
                        "`{f}` is not a strftime format (use % specifiers) nor rfc3339, unix or unix_ms"
                    ),
                ));
            }
        };
        let zone = parse_zone(self.time_zone.as_deref())?;
        Ok(Some(TimeFrom {
            key: key.clone(),
            format,
            zone,
        }))
    }
}

/// A `time_zone` option: absent or `UTC`, an offset such as `+02:00`, or an IANA name. The
/// error is `(key, reason)`.
pub fn parse_zone(name: Option<&str>) -> Result<TimeZone, (String, String)> {
    match name {
        None | Some("UTC") | Some("utc") => Ok(TimeZone::UTC),
        Some(z) if z.starts_with(['+', '-']) => {
            parse_offset(z).map(TimeZone::fixed).ok_or_else(|| {
                (
                    "time_zone".to_string(),
                    format!("invalid offset `{z}` (write +02:00)"),
                )
            })
        }
        Some(z) => TimeZone::get(z).map_err(|e| {
            (
                "time_zone".to_string(),
                format!("unknown time zone `{z}`: {e}"),
            )
        }),
    }
}

fn parse_offset(s: &str) -> Option<Offset> {
    let sign = if s.starts_with('-') { -1 } else { 1 };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

impl TimeFrom {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The event time in the fields of `record`; `Err` says why there is none.
    pub fn extract(&self, fields: &FieldStore, record: usize) -> Result<Timestamp, String> {
        let value = fields
            .get(record, &self.key)
            .ok_or_else(|| format!("no field `{}`", self.key))?;
        match (&self.format, value) {
            (Format::Unix, v) => {
                let secs = v
                    .as_f64()
                    .or_else(|| v.as_str()?.parse().ok())
                    .ok_or("not a number")?;
                Timestamp::from_nanosecond((secs * 1e9) as i128).map_err(|e| e.to_string())
            }
            (Format::UnixMs, v) => {
                let ms = v
                    .as_i64()
                    .or_else(|| v.as_str()?.parse().ok())
                    .ok_or("not a number")?;
                Timestamp::from_millisecond(ms).map_err(|e| e.to_string())
            }
            (Format::Rfc3339, Value::Text(s)) => s.parse::<Timestamp>().map_err(|e| e.to_string()),
            (Format::Strptime(f), Value::Text(s)) => {
                let bdt = BrokenDownTime::parse(f, s).map_err(|e| e.to_string())?;
                if bdt.offset().is_some() {
                    bdt.to_timestamp().map_err(|e| e.to_string())
                } else {
                    let dt = bdt.to_datetime().map_err(|e| e.to_string())?;
                    self.zone
                        .to_ambiguous_zoned(dt)
                        .compatible()
                        .map(|z| z.timestamp())
                        .map_err(|e| e.to_string())
                }
            }
            _ => Err(format!("field `{}` is not a string", self.key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(key: &str, format: Option<&str>, zone: Option<&str>) -> TimeFrom {
        TimeOptions {
            time_key: Some(key.into()),
            time_format: format.map(Into::into),
            time_zone: zone.map(Into::into),
        }
        .build()
        .unwrap()
        .unwrap()
    }

    fn fields(v: serde_json::Value) -> FieldStore {
        let mut s = FieldStore::new();
        s.set_map(0, v.as_object().unwrap());
        s
    }

    /// The time of the only record.
    trait One {
        fn ex(&self, f: &FieldStore) -> Result<Timestamp, String>;
    }

    impl One for TimeFrom {
        fn ex(&self, f: &FieldStore) -> Result<Timestamp, String> {
            self.extract(f, 0)
        }
    }

    #[test]
    fn reads_formats_offsets_and_zones() {
        let apache = from("time", Some("%d/%b/%Y:%H:%M:%S %z"), None);
        let t = apache
            .ex(&fields(
                serde_json::json!({"time": "17/May/2015:10:05:03 +0200"}),
            ))
            .unwrap();
        assert_eq!(t.to_string(), "2015-05-17T08:05:03Z");
        let local = from("t", Some("%Y-%m-%d %H:%M:%S%.f"), Some("Europe/Paris"));
        let t = local
            .ex(&fields(serde_json::json!({"t": "2026-07-01 12:00:00.250"})))
            .unwrap();
        assert_eq!(t.to_string(), "2026-07-01T10:00:00.25Z", "CEST is UTC+2");
        let fixed = from("t", Some("%Y-%m-%d %H:%M:%S"), Some("-05:30"));
        assert_eq!(
            fixed
                .ex(&fields(serde_json::json!({"t": "2026-01-01 00:00:00"})))
                .unwrap()
                .to_string(),
            "2026-01-01T05:30:00Z"
        );
        let rfc = from("ts", None, None);
        assert_eq!(
            rfc.ex(&fields(
                serde_json::json!({"ts": "2026-11-22T10:00:00+01:00"})
            ))
            .unwrap()
            .to_string(),
            "2026-11-22T09:00:00Z"
        );
        let unix = from("ts", Some("unix"), None);
        assert_eq!(
            unix.ex(&fields(serde_json::json!({"ts": 1700000000.5})))
                .unwrap()
                .to_string(),
            "2023-11-14T22:13:20.5Z"
        );
        let ms = from("ts", Some("unix_ms"), None);
        assert_eq!(
            ms.ex(&fields(serde_json::json!({"ts": "1700000000123"})))
                .unwrap()
                .to_string(),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn failures_say_why() {
        let t = from("time", Some("%Y-%m-%d"), None);
        assert_eq!(t.ex(&FieldStore::new()).unwrap_err(), "no field `time`");
        assert!(
            t.ex(&fields(serde_json::json!({"time": "yesterday"})))
                .is_err()
        );
        assert_eq!(
            t.ex(&fields(serde_json::json!({"time": 5}))).unwrap_err(),
            "field `time` is not a string"
        );
    }

    #[test]
    fn bad_options_are_refused() {
        let err = |o: TimeOptions| o.build().unwrap_err();
        assert_eq!(
            err(TimeOptions {
                time_format: Some("%Y".into()),
                ..Default::default()
            })
            .0,
            "time_key"
        );
        let base = TimeOptions {
            time_key: Some("t".into()),
            ..Default::default()
        };
        assert_eq!(
            err(TimeOptions {
                time_format: Some("yyyy-mm-dd".into()),
                ..base.clone()
            })
            .0,
            "time_format"
        );
        assert_eq!(
            err(TimeOptions {
                time_zone: Some("Mars/Olympus".into()),
                ..base.clone()
            })
            .0,
            "time_zone"
        );
        assert_eq!(
            err(TimeOptions {
                time_zone: Some("+2".into()),
                ..base
            })
            .0,
            "time_zone"
        );
    }
}
