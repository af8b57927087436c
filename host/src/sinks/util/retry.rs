//! Retries: which outcomes are worth another try, and how long to wait before it.
//!
//! Exponential back-off from `initial_backoff`, doubling up to `max_backoff`, with full jitter
//! (a uniform wait between zero and the current step, so many senders do not retry in step);
//! a `Retry-After` from the server (429, 503) is honoured instead when present. Delivery is
//! at-least-once: a retriable failure is retried until it succeeds or tailcar shuts down, when
//! the batch stays unacknowledged and is read again after the restart.

use std::time::Duration;

use serde::Deserialize;

/// The longest `Retry-After` honoured (a server asking for more gets this).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What a sink makes of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Delivered,
    /// Worth another try (5xx, 429, timeouts, connection errors), after the server's wait if it
    /// gave one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Will never succeed as sent (other 4xx): dead-letter it, or count and log it.
    Permanent(String),
    /// Some records were delivered, some are worth another try, some failed for good (bulk
    /// APIs): indexes into the request's records, in request order.
    Partial {
        retry: Vec<usize>,
        permanent: Vec<(usize, String)>,
        reason: String,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First wait after a failure.
    #[serde(
        default = "initial_backoff",
        deserialize_with = "crate::units::de_interval"
    )]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    #[serde(
        default = "max_backoff",
        deserialize_with = "crate::units::de_interval"
    )]
    pub max_backoff: Duration,
}

fn initial_backoff() -> Duration {
    Duration::from_millis(200)
}

fn max_backoff() -> Duration {
    Duration::from_secs(30)
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: initial_backoff(),
            max_backoff: max_backoff(),
        }
    }
}

/// The waits of one request's retries.
#[derive(Debug)]
pub struct Backoff {
    config: RetryConfig,
    step: Duration,
}

impl Backoff {
    pub fn new(config: &RetryConfig) -> Self {
        Backoff {
            config: config.clone(),
            step: config.initial_backoff,
        }
    }

    /// The wait before the next attempt: the server's `Retry-After` (up to [`MAX_RETRY_AFTER`],
    /// whatever `max_backoff` says: the server knows when it will be ready) or a jittered
    /// exponential step.
    pub fn next(&mut self, retry_after: Option<Duration>) -> Duration {
        let wait = match retry_after {
            Some(after) => after.min(MAX_RETRY_AFTER),
            None => self.step.mul_f64(fastrand::f64()),
        };
        self.step = (self.step * 2).min(self.config.max_backoff);
        wait
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is not honoured).
pub fn retry_after(value: Option<&http::HeaderValue>) -> Option<Duration> {
    let secs: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// The classification every HTTP sink starts from: 2xx delivered; 408, 429 and 5xx retriable
/// (with `Retry-After` honoured); any other status permanent.
pub fn classify_status(status: http::StatusCode, headers: &http::HeaderMap) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        return Outcome::Retry {
            reason: format!("HTTP {status}"),
            after: retry_after(headers.get(http::header::RETRY_AFTER)),
        };
    }
    Outcome::Permanent(format!("HTTP {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let config = RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let mut b = Backoff::new(&config);
        let waits: Vec<Duration> = (0..8).map(|_| b.next(None)).collect();
        let caps = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (w, cap) in waits.iter().zip(caps) {
            assert!(*w <= Duration::from_millis(cap), "{w:?} over {cap} ms");
        }
        assert_eq!(
            b.next(Some(Duration::from_secs(7))),
            Duration::from_secs(7),
            "Retry-After beats max_backoff"
        );
        assert_eq!(b.next(Some(Duration::from_secs(3600))), MAX_RETRY_AFTER);
        assert_eq!(
            b.next(Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn statuses_are_classified_in_one_place() {
        let h = http::HeaderMap::new();
        assert_eq!(
            classify_status(http::StatusCode::OK, &h),
            Outcome::Delivered
        );
        assert_eq!(
            classify_status(http::StatusCode::NO_CONTENT, &h),
            Outcome::Delivered
        );
        assert!(matches!(
            classify_status(http::StatusCode::BAD_GATEWAY, &h),
            Outcome::Retry { after: None, .. }
        ));
        let mut h429 = http::HeaderMap::new();
        h429.insert(http::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(
            classify_status(http::StatusCode::TOO_MANY_REQUESTS, &h429),
            Outcome::Retry {
                reason: "HTTP 429 Too Many Requests".into(),
                after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            classify_status(http::StatusCode::BAD_REQUEST, &h),
            Outcome::Permanent("HTTP 400 Bad Request".into())
        );
    }
}
