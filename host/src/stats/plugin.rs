//! Counters of one plugin in one stream, logged when the stream stops (and the source of the
//! plugin metrics). Relaxed atomics: statistics, not synchronisation.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus_client::metrics::histogram::Histogram;

#[derive(Debug)]
pub struct PluginStats {
    pub batches: AtomicU64,
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    /// Time spent in the plugin (crossing the boundary included), in nanoseconds.
    pub busy_ns: AtomicU64,
    pub timeouts: AtomicU64,
    pub fuel_exhausted: AtomicU64,
    pub memory_exceeded: AtomicU64,
    pub traps: AtomicU64,
    pub errors: AtomicU64,
    /// Outputs refused as invalid or larger than `max_output`.
    pub bad_outputs: AtomicU64,
    /// Records of failed batches passed on unchanged, dropped, or dead-lettered.
    pub failed_passed: AtomicU64,
    pub failed_dropped: AtomicU64,
    pub failed_dead_lettered: AtomicU64,
    /// Instances created (the first one, and after traps, recycling and reloads).
    pub instances: AtomicU64,
    /// Instances re-created because their memory passed `recycle_above`.
    pub recycled: AtomicU64,
    pub reloads: AtomicU64,
    pub reloads_refused: AtomicU64,
    /// The plugin's own counters (`count` in the WIT host interface).
    pub custom: Mutex<BTreeMap<String, u64>>,
    /// Time of each call, in seconds.
    pub call_seconds: Histogram,
    /// True while the plugin keeps failing (three failures in a row or more): `/readyz` fails.
    pub failing: AtomicBool,
}

impl Default for PluginStats {
    fn default() -> Self {
        PluginStats {
            batches: AtomicU64::new(0),
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            fuel_exhausted: AtomicU64::new(0),
            memory_exceeded: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bad_outputs: AtomicU64::new(0),
            failed_passed: AtomicU64::new(0),
            failed_dropped: AtomicU64::new(0),
            failed_dead_lettered: AtomicU64::new(0),
            instances: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reloads_refused: AtomicU64::new(0),
            custom: Mutex::default(),
            call_seconds: Histogram::new([
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            failing: AtomicBool::new(false),
        }
    }
}

pub fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl PluginStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn log(&self, stream: &str, plugin: &str) {
        let g = Self::get;
        let custom = self.custom.lock().unwrap_or_else(|e| e.into_inner());
        let custom: Vec<String> = custom.iter().map(|(k, v)| format!("{k}={v}")).collect();
        tracing::info!(
            stream,
            plugin,
            batches = g(&self.batches),
            records_in = g(&self.records_in),
            records_out = g(&self.records_out),
            busy_ms = g(&self.busy_ns) / 1_000_000,
            timeouts = g(&self.timeouts),
            fuel_exhausted = g(&self.fuel_exhausted),
            memory_exceeded = g(&self.memory_exceeded),
            traps = g(&self.traps),
            errors = g(&self.errors),
            bad_outputs = g(&self.bad_outputs),
            failed_passed = g(&self.failed_passed),
            failed_dropped = g(&self.failed_dropped),
            failed_dead_lettered = g(&self.failed_dead_lettered),
            instances = g(&self.instances),
            recycled = g(&self.recycled),
            reloads = g(&self.reloads),
            reloads_refused = g(&self.reloads_refused),
            counters = %custom.join(","),
            "plugin statistics"
        );
    }
}
