//! Counters of what each stream, sink and plugin did, and the registry that keeps them by name
//! ([`telemetry`]): reported in tailcar's log at shutdown and read by the admin endpoint's
//! `/metrics`, with the liveness marks `/healthz` and `/readyz` use. Relaxed atomics: they are
//! statistics, not synchronisation. A leaf: the runtime modules count here, and the admin
//! endpoint (above them) reads here, so no runtime module needs the endpoint.

pub mod plugin;
pub mod telemetry;

pub use plugin::PluginStats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::histogram::Histogram;

/// Milliseconds since the Unix epoch, for liveness marks.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Counters of one stream.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Records emitted (lines, multiline records, pieces of split lines).
    pub lines: AtomicU64,
    /// Bytes read from files.
    pub bytes: AtomicU64,
    /// Lines longer than `max_line_bytes` (or multiline records longer than it) that were split.
    pub split: AtomicU64,
    pub files_opened: AtomicU64,
    /// Files being tailed now (a gauge: 0 while the paths match nothing).
    pub files: AtomicU64,
    pub rotations: AtomicU64,
    pub truncations: AtomicU64,
    /// Lines a parser could not parse (kept, with a `parse_error` field).
    pub parse_errors: AtomicU64,
    /// Captured values that did not convert to their configured type (kept as text).
    pub type_errors: AtomicU64,
    /// Records whose `time_key` was missing or did not parse (they keep the read time).
    pub time_errors: AtomicU64,
    /// Records dropped by `grep` filters.
    pub filtered: AtomicU64,
    /// Records dropped by `throttle` filters.
    pub throttled: AtomicU64,
    /// Bytes of acknowledged prefixes whose disk blocks were freed (`reclaim: punch_holes`).
    pub bytes_reclaimed: AtomicU64,
    /// Rotated files deleted once shipped (`remove_rotated_after_ship`).
    pub files_removed: AtomicU64,
    /// Set once the stream has looked at its paths and opened what it found.
    pub started: AtomicBool,
    /// When the stream's loop last went round (ms since the epoch).
    pub heartbeat_ms: AtomicU64,
    /// True while the stream waits for a full sink queue (backpressure, not a wedge).
    pub waiting_on_sinks: AtomicBool,
}

impl StreamStats {
    /// Marks the stream's loop as alive.
    pub fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn log(&self, stream: &str) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            stream,
            records = g(&self.lines),
            bytes = g(&self.bytes),
            split_lines = g(&self.split),
            files_opened = g(&self.files_opened),
            rotations = g(&self.rotations),
            truncations = g(&self.truncations),
            parse_errors = g(&self.parse_errors),
            type_errors = g(&self.type_errors),
            time_errors = g(&self.time_errors),
            filtered = g(&self.filtered),
            throttled = g(&self.throttled),
            "stream statistics"
        );
    }
}

/// Counters of one sink (the request ones for remote sinks only), logged when it stops.
#[derive(Debug)]
pub struct SinkStats {
    /// Records delivered: acknowledged by the server, or written and flushed.
    pub delivered: AtomicU64,
    /// Failed attempts that were retried.
    pub retries: AtomicU64,
    /// Records rejected for good and sent to the dead-letter sink.
    pub dead_lettered: AtomicU64,
    /// Records rejected for good with no dead-letter sink (logged, counted, acknowledged).
    pub rejected: AtomicU64,
    /// Records not queued for this sink because its queue was full (`when_full: drop_newest`).
    pub dropped: AtomicU64,
    /// Records whose Loki label set was over `max_label_sets` (sent with `_other_` values).
    pub label_overflow: AtomicU64,
    /// Records cut to the sink's message size limit (syslog `max_message_size`).
    pub truncated: AtomicU64,
    /// Records a server said it refused inside a successful answer (OTLP partial success),
    /// without saying which: counted, not sent again.
    pub server_rejected: AtomicU64,
    /// Requests sent, and their total time in microseconds.
    pub requests: AtomicU64,
    pub request_micros: AtomicU64,
    /// Request latency, in seconds.
    pub latency: Histogram,
    /// Since when (ms since the epoch) every attempt has failed; 0 while deliveries succeed.
    pub failing_since_ms: AtomicU64,
}

impl Default for SinkStats {
    fn default() -> Self {
        SinkStats {
            delivered: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            label_overflow: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            server_rejected: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            request_micros: AtomicU64::new(0),
            latency: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            failing_since_ms: AtomicU64::new(0),
        }
    }
}

impl SinkStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        StreamStats::add(counter, n);
    }

    pub fn observe_request(&self, took: std::time::Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.request_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.latency.observe(took.as_secs_f64());
    }

    /// Records whether the last attempt succeeded (for `/readyz`).
    pub fn attempt(&self, ok: bool) {
        if ok {
            self.failing_since_ms.store(0, Ordering::Relaxed);
        } else {
            let _ = self.failing_since_ms.compare_exchange(
                0,
                now_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    pub fn log(&self, sink: &str) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            sink,
            delivered = g(&self.delivered),
            retries = g(&self.retries),
            dead_lettered = g(&self.dead_lettered),
            rejected = g(&self.rejected),
            dropped = g(&self.dropped),
            label_overflow = g(&self.label_overflow),
            truncated = g(&self.truncated),
            server_rejected = g(&self.server_rejected),
            requests = g(&self.requests),
            "sink statistics"
        );
    }
}
