//! What the admin endpoint reads: every stream's, sink's and plugin's counters (kept across
//! reloads, so a counter never goes back to zero while the process lives), and what is running
//! now (for health, queue depths and lag).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use indexmap::IndexMap;
use tokio::sync::mpsc;

use crate::checkpoint::Ledger;
use crate::queue::SinkBatch;
use crate::stats::PluginStats;
use crate::stats::{SinkStats, StreamStats};

/// A running sink, as the endpoint sees it.
#[derive(Debug, Clone)]
pub struct SinkView {
    pub name: Arc<str>,
    /// `stdout`, `file`, `http`, `elasticsearch`, `loki`.
    pub kind: &'static str,
    /// Its queue, held weakly so the endpoint never keeps a sink from seeing its input close.
    pub queue: mpsc::WeakSender<SinkBatch>,
    /// Whether it talks to a server (and so can be unreachable).
    pub remote: bool,
}

/// What runs now: replaced at each (re)start of the topology.
#[derive(Debug, Default)]
pub struct Running {
    pub streams: Vec<Arc<str>>,
    pub sinks: Vec<SinkView>,
    pub ledger: Option<Arc<Ledger>>,
}

/// Settings of the endpoint that shape what it reports.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Label file metrics with their path (more series).
    pub file_labels: bool,
    /// A remote sink failing for longer than this makes `/readyz` fail.
    pub sink_failing_for: Duration,
}

/// A plugin's counters are kept by (stream, plugin name).
type PluginKey = (Arc<str>, Arc<str>);

/// Counters by name, and what runs now.
#[derive(Debug)]
pub struct Telemetry {
    streams: Mutex<IndexMap<Arc<str>, Arc<StreamStats>>>,
    sinks: Mutex<IndexMap<Arc<str>, Arc<SinkStats>>>,
    plugins: Mutex<IndexMap<PluginKey, Arc<PluginStats>>>,
    running: Mutex<Running>,
    settings: Mutex<ReportSettings>,
    /// Configuration reloads that took effect, and those refused.
    pub reloads: std::sync::atomic::AtomicU64,
    pub reloads_refused: std::sync::atomic::AtomicU64,
    /// Components that panicked (`stream access panicked: ...`): `/healthz` fails with them.
    failures: Mutex<Vec<String>>,
    /// Panics caught under supervision.
    pub panics: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            streams: Mutex::default(),
            sinks: Mutex::default(),
            plugins: Mutex::default(),
            running: Mutex::default(),
            settings: Mutex::new(ReportSettings {
                file_labels: false,
                sink_failing_for: Duration::from_secs(300),
            }),
            reloads: Default::default(),
            reloads_refused: Default::default(),
            failures: Mutex::default(),
            panics: Default::default(),
        }
    }
}

impl Telemetry {
    /// The counters of stream `name`, created on first use.
    pub fn stream(&self, name: &Arc<str>) -> Arc<StreamStats> {
        Arc::clone(lock(&self.streams).entry(Arc::clone(name)).or_default())
    }

    /// The counters of sink `name`, created on first use.
    pub fn sink(&self, name: &Arc<str>) -> Arc<SinkStats> {
        Arc::clone(lock(&self.sinks).entry(Arc::clone(name)).or_default())
    }

    /// The counters of plugin `plugin` in stream `stream`, created on first use.
    pub fn plugin(&self, stream: &Arc<str>, plugin: &Arc<str>) -> Arc<PluginStats> {
        Arc::clone(
            lock(&self.plugins)
                .entry((Arc::clone(stream), Arc::clone(plugin)))
                .or_default(),
        )
    }

    /// Records a component that died: counted, logged, and reported by `/healthz`.
    pub fn fail(&self, failure: &crate::supervise::Panicked) {
        self.panics
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(
            component = %failure.component,
            "{failure}; tailcar shuts down (the checkpoints hold only what was acknowledged)"
        );
        lock(&self.failures).push(failure.to_string());
    }

    /// What has died, in order.
    pub fn failures(&self) -> Vec<String> {
        lock(&self.failures).clone()
    }

    pub fn set_running(&self, running: Running) {
        *lock(&self.running) = running;
    }

    pub fn set_settings(&self, settings: ReportSettings) {
        *lock(&self.settings) = settings;
    }

    pub fn settings(&self) -> ReportSettings {
        lock(&self.settings).clone()
    }

    pub fn running(&self) -> MutexGuard<'_, Running> {
        lock(&self.running)
    }

    pub fn streams(&self) -> Vec<(Arc<str>, Arc<StreamStats>)> {
        lock(&self.streams)
            .iter()
            .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
            .collect()
    }

    pub fn sinks(&self) -> Vec<(Arc<str>, Arc<SinkStats>)> {
        lock(&self.sinks)
            .iter()
            .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
            .collect()
    }

    pub fn plugins(&self) -> Vec<(Arc<str>, Arc<str>, Arc<PluginStats>)> {
        lock(&self.plugins)
            .iter()
            .map(|((s, p), v)| (Arc::clone(s), Arc::clone(p), Arc::clone(v)))
            .collect()
    }
}
