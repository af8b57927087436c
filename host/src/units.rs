//! Sizes, durations and counts as the configuration writes them (`1MiB`, `250ms`, `8`), each
//! read with the bounds a working tailcar needs: no value a user could write may lead to a panic
//! or a busy loop at run time. The bounds are checked while the YAML is read, so a refused value
//! is reported with its file and key path (`streams.app.rotate_wait: ...`) and exit code 64.
//!
//! Settings the types cannot check (a URL, a TLS file, a secret) are checked later, and their
//! errors are [`SettingError`]s: the key at fault, relative to whoever checked it, and the
//! reason, kept apart so the configuration can put the file and the full key path in front.
//!
//! A base module: the configuration structs of every layer (tailer, transforms, sinks, admin)
//! use it, and it uses nothing of tailcar's.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The longest duration any setting takes: waits, timeouts and intervals beyond it are
/// mistakes (and some would overflow the clock).
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The most requests a remote sink keeps in flight.
pub const MAX_IN_FLIGHT: usize = 512;

/// Parses a size such as `1MiB` or `65536`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::parse_size(s).map_err(|e| format!("invalid size `{s}`: {e}"))
}

/// Sizes as numbers of bytes or strings such as `1MiB`, `512KiB`, `64k`.
pub fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size: a number of bytes or a string such as `1MiB`")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::custom(format!("a size cannot be negative ({n})")))
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<u64, E> {
            parse_size(s).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// A size of at least 1 byte and at most 1 GiB (buffers, batches, messages).
pub fn de_buffer_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = de_size(d)?;
    in_range(n, 1, 1 << 30, "between 1 byte and 1GiB").map_err(serde::de::Error::custom)
}

fn in_range<T: PartialOrd + fmt::Display>(n: T, min: T, max: T, what: &str) -> Result<T, String> {
    if n < min || n > max {
        Err(format!("{n} is out of range: must be {what}"))
    } else {
        Ok(n)
    }
}

fn duration(text: &str, min: Duration, what: &str) -> Result<Duration, String> {
    let value =
        humantime::parse_duration(text).map_err(|e| format!("invalid duration `{text}`: {e}"))?;
    if value < min || value > DAY {
        return Err(format!(
            "`{text}` is out of range: must be {what} and at most 1 day"
        ));
    }
    Ok(value)
}

/// How often something is done (checkpoints, polls, batch timeouts, back-offs): more than zero
/// (at least 1 ms, or it would spin a core) and at most a day.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    duration(text, Duration::from_millis(1), "at least 1ms")
}

/// How long to wait for something (a rotated file to go quiet, a drain): zero or more, at most
/// a day.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    duration(text, Duration::ZERO, "zero or more")
}

/// [`parse_interval`] for serde.
pub fn de_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_interval(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// [`parse_wait`] for serde.
pub fn de_wait<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_wait(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// Requests in flight: 1 to [`MAX_IN_FLIGHT`].
pub fn de_in_flight<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    in_range(
        n,
        1,
        MAX_IN_FLIGHT as u64,
        &format!("between 1 and {MAX_IN_FLIGHT}"),
    )
    .map(|n| n as usize)
    .map_err(serde::de::Error::custom)
}

/// A count of records (a batch's records, label sets): 1 to 10 million.
pub fn de_count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    in_range(n, 1, 10_000_000, "between 1 and 10000000")
        .map(|n| n as usize)
        .map_err(serde::de::Error::custom)
}

/// A setting that cannot work: its key, relative to the part of the configuration that checked
/// it (`ca_file` for the TLS block; `tls.ca_file` once the sink has put its `tls` in front; empty
/// when the reason concerns the whole part), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub key: String,
    pub reason: String,
}

impl SettingError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        SettingError {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same error seen from one level up: `ca_file` under `tls` is `tls.ca_file`, `[2]`
    /// under `brokers` is `brokers[2]`, and an error of the whole part is the part's own.
    pub fn under(mut self, parent: &str) -> Self {
        self.key = if self.key.is_empty() {
            parent.to_string()
        } else if self.key.starts_with('[') {
            format!("{parent}{}", self.key)
        } else {
            format!("{parent}.{}", self.key)
        };
        self
    }
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for SettingError {}

/// Names the key an error concerns: `check_address(a).key("address")?`.
pub trait KeyedResult<T> {
    fn key(self, key: &str) -> Result<T, SettingError>;
}

impl<T, E: fmt::Display> KeyedResult<T> for Result<T, E> {
    fn key(self, key: &str) -> Result<T, SettingError> {
        // `{:#}` prints an anyhow error's whole chain; other errors ignore the flag.
        self.map_err(|e| SettingError::new(key, format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "de_interval")]
        interval: Duration,
        #[serde(default, deserialize_with = "de_wait")]
        wait: Duration,
        #[serde(default, deserialize_with = "de_in_flight")]
        in_flight: usize,
        #[serde(default, deserialize_with = "de_buffer_size")]
        size: u64,
    }

    fn err(yaml: &str) -> String {
        serde_yaml::from_str::<T>(yaml).unwrap_err().to_string()
    }

    #[test]
    fn values_no_one_would_mean_are_refused() {
        assert!(err("interval: 0s").contains("`0s` is out of range: must be at least 1ms"));
        assert!(
            err("wait: 300000000000y").contains("invalid duration")
                || err("wait: 300000000000y").contains("out of range")
        );
        assert!(err("wait: 2days").contains("at most 1 day"));
        assert!(
            err("in_flight: 18446744073709551615")
                .contains("18446744073709551615 is out of range: must be between 1 and 512")
        );
        assert!(err("in_flight: 0").contains("out of range"));
        assert!(err("size: 0").contains("between 1 byte and 1GiB"));
        assert!(err("size: 2GiB").contains("between 1 byte and 1GiB"));
        assert!(err("size: -5").contains("cannot be negative"));
        let t: T =
            serde_yaml::from_str("interval: 250ms\nwait: 0s\nin_flight: 8\nsize: 64KiB").unwrap();
        assert_eq!(t.interval, Duration::from_millis(250));
        assert_eq!(t.wait, Duration::ZERO);
        assert_eq!((t.in_flight, t.size), (8, 64 * 1024));
    }

    #[test]
    fn a_setting_error_takes_its_parents_keys_in_front() {
        let e = SettingError::new("ca_file", "cannot read /x").under("tls");
        assert_eq!(e.key, "tls.ca_file");
        assert_eq!(e.to_string(), "tls.ca_file: cannot read /x");
        let e = SettingError::new("[2]", "no port").under("bootstrap_servers");
        assert_eq!(e.key, "bootstrap_servers[2]");
        let e = SettingError::new("", "give one")
            .under("auth")
            .under("sasl");
        assert_eq!(e.to_string(), "sasl.auth: give one");
        assert_eq!(SettingError::new("", "whole").to_string(), "whole");
        let r: Result<(), String> = Err("bad".into());
        assert_eq!(r.key("url").unwrap_err(), SettingError::new("url", "bad"));
    }
}
