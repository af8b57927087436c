//! A plugin running in a stream's chain: one instance, called once per batch on the stream's
//! thread, with its failure policy, back-off, recycling and hot reload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::convert::{self, RouteTable};
use super::runtime::{HostCalls, Instance, tailcar::plugin::host::Level};
use super::{FileSig, Loaded, OnError, PluginSpec, load_file};
use crate::event::Batch;
use crate::stats::StreamStats;
use crate::stats::plugin::{PluginStats, add};
use crate::transforms::Transform;

/// How often the plugin file is checked for a new version.
const RELOAD_CHECK: Duration = Duration::from_secs(1);
/// Back-off after consecutive failures: 0 (retry at once), then 100 ms doubling up to 30 s.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Consecutive failed batches after which the plugin counts as failing (for `/readyz`).
const FAILING_AFTER: u32 = 3;
/// Failure messages are logged at most this often per plugin (the rest are counted).
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct WasmPlugin {
    spec: Arc<PluginSpec>,
    stream: Arc<str>,
    loaded: Arc<Loaded>,
    instance: Option<Instance>,
    /// Consecutive failures that poisoned the instance.
    failures: u32,
    /// Consecutive batches that failed, for any reason.
    failed_batches: u32,
    retry_at: Option<Instant>,
    next_reload_check: Instant,
    refused: Option<FileSig>,
    routes: RouteTable,
    dead_letter_bit: u64,
    last_failure_log: Option<Instant>,
    failures_not_logged: u64,
    warned_routes: bool,
    pub stats: Arc<PluginStats>,
}

impl WasmPlugin {
    pub fn new(
        spec: Arc<PluginSpec>,
        stream: Arc<str>,
        routes: RouteTable,
        stats: Arc<PluginStats>,
    ) -> Self {
        let dead_letter_bit = spec
            .dead_letter
            .as_deref()
            .and_then(|n| routes.bit(n))
            .unwrap_or(0);
        WasmPlugin {
            loaded: Arc::clone(&spec.loaded),
            spec,
            stream,
            instance: None,
            failures: 0,
            failed_batches: 0,
            retry_at: None,
            next_reload_check: Instant::now() + RELOAD_CHECK,
            refused: None,
            routes,
            dead_letter_bit,
            last_failure_log: None,
            failures_not_logged: 0,
            warned_routes: false,
            stats,
        }
    }

    fn name(&self) -> &str {
        &self.spec.name
    }

    /// Swaps in a new version of the plugin file if it changed and the new version starts.
    fn check_reload(&mut self) {
        let now = Instant::now();
        if now < self.next_reload_check {
            return;
        }
        self.next_reload_check = now + RELOAD_CHECK;
        let Ok(sig) = FileSig::of(&self.spec.path) else {
            return; // Gone for a moment (a ConfigMap update swaps a symlink): keep running.
        };
        if sig == self.loaded.sig || Some(sig) == self.refused {
            return;
        }
        let attempt = load_file(
            &self.spec.path,
            self.spec.limits.fuel.is_some(),
            self.spec.cache_dir.as_deref(),
            (&self.spec.name, self.spec.limits.memory as u64),
        )
        .map_err(|(_, reason)| reason)
        .and_then(|loaded| {
            if loaded.hash == self.loaded.hash {
                return Ok((loaded, None));
            }
            let instance = self.spec.start(&loaded).map_err(|(_, reason)| reason)?;
            Ok((loaded, Some(instance)))
        });
        match attempt {
            Ok((loaded, None)) => self.loaded = Arc::new(loaded),
            Ok((loaded, Some(instance))) => {
                tracing::info!(
                    stream = %self.stream,
                    plugin = %self.name(),
                    path = %self.spec.path.display(),
                    hash = %format!("{:032x}", loaded.hash),
                    "plugin reloaded: the new version runs from the next batch"
                );
                self.loaded = Arc::new(loaded);
                self.instance = Some(instance);
                self.failures = 0;
                self.retry_at = None;
                self.refused = None;
                add(&self.stats.reloads, 1);
                add(&self.stats.instances, 1);
            }
            Err(reason) => {
                tracing::error!(
                    stream = %self.stream,
                    plugin = %self.name(),
                    path = %self.spec.path.display(),
                    "new version of the plugin refused, the running version continues: {reason}"
                );
                self.refused = Some(sig);
                add(&self.stats.reloads_refused, 1);
            }
        }
    }

    /// The live instance, creating one if allowed (not in back-off).
    fn instance(&mut self) -> Result<&mut Instance, String> {
        if self.instance.is_none() {
            if let Some(at) = self.retry_at
                && Instant::now() < at
            {
                return Err(format!(
                    "in back-off after {} consecutive failures",
                    self.failures
                ));
            }
            match self.spec.start(&self.loaded) {
                Ok(i) => {
                    add(&self.stats.instances, 1);
                    self.instance = Some(i);
                }
                Err((_, reason)) => {
                    self.poisoned();
                    return Err(reason);
                }
            }
        }
        Ok(self.instance.as_mut().expect("just created"))
    }

    fn poisoned(&mut self) {
        self.instance = None;
        self.failures += 1;

        let backoff = if self.failures <= 1 {
            Duration::ZERO
        } else {
            (BACKOFF_FIRST * 2u32.saturating_pow(self.failures - 2)).min(BACKOFF_MAX)
        };
        self.retry_at = Some(Instant::now() + backoff);
    }

    fn forward_output(&mut self, calls: HostCalls, stdout: Vec<u8>, stderr: Vec<u8>) {
        let (stream, plugin) = (&*self.stream, &*self.spec.name);
        for (level, message) in calls.logs {
            match level {
                Level::Trace => tracing::trace!(stream, plugin, "{message}"),
                Level::Debug => tracing::debug!(stream, plugin, "{message}"),
                Level::Info => tracing::info!(stream, plugin, "{message}"),
                Level::Warn => tracing::warn!(stream, plugin, "{message}"),
                Level::Error => tracing::error!(stream, plugin, "{message}"),
            }
        }
        if calls.logs_dropped > 0 {
            tracing::warn!(
                stream,
                plugin,
                dropped = calls.logs_dropped,
                "plugin log messages dropped (over 100 in one batch)"
            );
        }
        if !calls.counts.is_empty() {
            let mut custom = self.stats.custom.lock().unwrap_or_else(|e| e.into_inner());
            for (name, n) in calls.counts {
                if custom.len() < 64 || custom.contains_key(&name) {
                    *custom.entry(name).or_default() += n;
                }
            }
        }
        // One log event per line, each tagged with the plugin, so that a Python traceback or a
        // JavaScript stack stays attributable line by line in any log pipeline.
        for (what, bytes) in [("stdout", stdout), ("stderr", stderr)] {
            let text = String::from_utf8_lossy(&bytes);
            for line in text.trim().lines().filter(|l| !l.trim().is_empty()) {
                tracing::warn!(stream, plugin, "plugin {what}: {line}");
            }
        }
    }

    /// Counts and logs a failed batch, then applies `on_error` to its records.
    fn fail(&mut self, batch: &mut Batch, kind: &str, reason: &str) {
        self.failed_batches += 1;
        if self.failed_batches >= FAILING_AFTER {
            self.stats
                .failing
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let s = &self.stats;
        add(
            match kind {
                "timeout" => &s.timeouts,
                "fuel" => &s.fuel_exhausted,
                "memory" => &s.memory_exceeded,
                "trap" => &s.traps,
                "error" => &s.errors,
                _ => &s.bad_outputs,
            },
            1,
        );
        let n = batch.len() as u64;
        let policy = self.spec.on_error;
        let now = Instant::now();
        let log_now = self
            .last_failure_log
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY);
        if log_now {
            tracing::warn!(
                stream = %self.stream,
                plugin = %self.name(),
                kind,
                records = n,
                on_error = ?policy,
                also_since_last_report = self.failures_not_logged,
                "plugin failed on a batch: {reason}"
            );
            self.last_failure_log = Some(now);
            self.failures_not_logged = 0;
        } else {
            self.failures_not_logged += 1;
        }
        match policy {
            OnError::Pass => add(&s.failed_passed, n),
            OnError::Drop => {
                add(&s.failed_dropped, n);
                batch.retain(|_| false);
            }
            OnError::DeadLetter => {
                add(&s.failed_dead_lettered, n);
                let message = format!("{}: {reason}", self.spec.name);
                let fields = batch.fields_mut();
                for r in 0..fields.records() {
                    fields.writer(r).text("plugin_error", &message);
                }
                batch.route_all(self.dead_letter_bit);
            }
        }
    }
}

impl Transform for WasmPlugin {
    fn process(&mut self, batch: &mut Batch, _stats: &StreamStats) {
        self.check_reload();
        let n = batch.len() as u64;
        add(&self.stats.batches, 1);
        add(&self.stats.records_in, n);
        let max_output = self.spec.max_output;
        let recycle_above = self.spec.recycle_above;
        let instance = match self.instance() {
            Ok(i) => i,
            Err(reason) => {
                self.fail(batch, "start", &reason);
                add(&self.stats.records_out, batch.len() as u64);
                return;
            }
        };
        let input = convert::pack(batch);
        let started = Instant::now();
        let result = instance.process(&input.batch);
        let (calls, stdout, stderr) = instance.take_output();
        let memory = instance.memory();
        let took = started.elapsed();
        add(&self.stats.busy_ns, took.as_nanos() as u64);
        self.stats.call_seconds.observe(took.as_secs_f64());
        self.forward_output(calls, stdout, stderr);
        match result {
            Ok(out) => {
                let size = convert::output_size(&out);
                if size > max_output {
                    convert::restore(batch, input);
                    self.fail(
                        batch,
                        "output",
                        &format!(
                            "output of {size} bytes for {n} records is over limits.max_output ({max_output} bytes)"
                        ),
                    );
                } else {
                    match convert::apply(batch, input, out, &self.routes) {
                        Ok(applied) => {
                            self.failures = 0;
                            self.failed_batches = 0;
                            self.retry_at = None;
                            self.stats
                                .failing
                                .store(false, std::sync::atomic::Ordering::Relaxed);
                            if !applied.unknown_routes.is_empty() && !self.warned_routes {
                                self.warned_routes = true;
                                tracing::warn!(
                                    stream = %self.stream,
                                    plugin = %self.name(),
                                    "records routed to sinks this stream does not have ({}); sent to the stream's sinks instead (logged once)",
                                    applied.unknown_routes.join(", ")
                                );
                            }
                        }
                        Err(reason) => self.fail(batch, "output", &reason),
                    }
                }
                if memory > recycle_above {
                    tracing::info!(
                        stream = %self.stream,
                        plugin = %self.name(),
                        memory,
                        recycle_above,
                        "plugin instance recycled: its memory passed limits.recycle_above"
                    );
                    self.instance = None;
                    add(&self.stats.recycled, 1);
                }
            }
            Err(failure) => {
                convert::restore(batch, input);
                if failure.poisons() {
                    self.poisoned();
                }
                let reason = failure.to_string();
                self.fail(batch, failure.kind(), &reason);
            }
        }
        add(&self.stats.records_out, batch.len() as u64);
    }
}

impl Drop for WasmPlugin {
    fn drop(&mut self) {
        self.stats.log(&self.stream, &self.spec.name);
    }
}
