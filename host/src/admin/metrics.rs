//! `/metrics`: tailcar's counters in the Prometheus/OpenMetrics text format, encoded by the
//! `prometheus-client` crate from the live counters at each scrape (a collector, so nothing is
//! copied between scrapes). Labels are stream, sink and plugin names, never file paths unless
//! `admin.file_labels` asks for them.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::stats::PluginStats;
use crate::stats::telemetry::Telemetry;

/// Encodes every metric as OpenMetrics text.
pub fn render(telemetry: &Arc<Telemetry>) -> String {
    let mut registry = Registry::with_prefix("tailcar");
    registry.register_collector(Box::new(TelemetryCollector(Arc::clone(telemetry))));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct TelemetryCollector(Arc<Telemetry>);

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Writes one counter family: `name` (the encoder adds `_total`) with a value per label set.
fn counters<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in values {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in values {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

type L1 = [(&'static str, String); 1];
type L2 = [(&'static str, String); 2];
type L3 = [(&'static str, String); 3];

impl Collector for TelemetryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.0;
        let settings = t.settings();
        let streams = t.streams();
        let s1 = |name: &Arc<str>| -> L1 { [("stream", name.to_string())] };
        macro_rules! stream_counter {
            ($field:ident, $name:literal, $help:literal) => {
                counters(
                    &mut encoder,
                    $name,
                    $help,
                    streams.iter().map(|(n, s)| (s1(n), get(&s.$field))),
                )?;
            };
        }
        stream_counter!(
            lines,
            "stream_records",
            "Records read (lines, multiline records, pieces of split lines)."
        );
        stream_counter!(bytes, "stream_read_bytes", "Bytes read from files.");
        stream_counter!(
            split,
            "stream_split_lines",
            "Lines longer than max_line_bytes, split into pieces."
        );
        stream_counter!(files_opened, "stream_files_opened", "Files opened.");
        stream_counter!(rotations, "stream_rotations", "Rotations followed.");
        stream_counter!(
            truncations,
            "stream_truncations",
            "Truncations (copytruncate) followed."
        );
        stream_counter!(
            parse_errors,
            "stream_parse_errors",
            "Lines a parser could not parse (kept, with parse_error)."
        );
        stream_counter!(
            time_errors,
            "stream_time_errors",
            "Records whose time field was missing or unreadable."
        );
        stream_counter!(
            filtered,
            "stream_filtered",
            "Records dropped by grep filters."
        );
        stream_counter!(
            throttled,
            "stream_throttled",
            "Records dropped by throttle filters."
        );

        gauges(
            &mut encoder,
            "stream_files",
            "Files the stream is tailing now (0 while its paths match nothing: alert on it).",
            streams.iter().map(|(n, s)| (s1(n), get(&s.files) as i64)),
        )?;
        gauges(
            &mut encoder,
            "stream_waiting_on_sinks",
            "1 while the stream's reading waits for a sink queue to make room (backpressure: the \
             files are the buffer), 0 otherwise.",
            streams.iter().map(|(n, s)| {
                let waiting = s
                    .waiting_on_sinks
                    .load(std::sync::atomic::Ordering::Relaxed);
                (s1(n), i64::from(waiting))
            }),
        )?;

        // Lag: file size minus the acknowledged offset, per stream (or per file when asked).
        let lag = lag(t, settings.file_labels);
        if settings.file_labels {
            gauges(
                &mut encoder,
                "file_lag_bytes",
                "Bytes written to a file and not yet acknowledged by every sink.",
                lag.into_iter()
                    .map(|(s, f, v)| -> (L2, i64) { ([("stream", s), ("file", f)], v) }),
            )?;
        } else {
            let mut per_stream: Vec<(String, i64)> = Vec::new();
            for (s, _, v) in lag {
                match per_stream.iter_mut().find(|(n, _)| *n == s) {
                    Some(e) => e.1 += v,
                    None => per_stream.push((s, v)),
                }
            }
            gauges(
                &mut encoder,
                "stream_lag_bytes",
                "Bytes written to the stream's files and not yet acknowledged by every sink.",
                per_stream
                    .into_iter()
                    .map(|(s, v)| -> (L1, i64) { ([("stream", s)], v) }),
            )?;
        }

        let sinks = t.sinks();
        let k1 = |name: &Arc<str>| -> L1 { [("sink", name.to_string())] };
        macro_rules! sink_counter {
            ($field:ident, $name:literal, $help:literal) => {
                counters(
                    &mut encoder,
                    $name,
                    $help,
                    sinks.iter().map(|(n, s)| (k1(n), get(&s.$field))),
                )?;
            };
        }
        sink_counter!(
            delivered,
            "sink_records",
            "Records delivered: acknowledged by the server, or written and flushed."
        );
        sink_counter!(
            retries,
            "sink_retries",
            "Failed attempts (requests) that were retried."
        );
        sink_counter!(
            rejected,
            "sink_rejected_records",
            "Records rejected for good with no dead-letter sink."
        );
        sink_counter!(
            dead_lettered,
            "sink_dead_lettered_records",
            "Records rejected for good and sent to the dead-letter sink."
        );
        sink_counter!(
            dropped,
            "sink_dropped_records",
            "Records not queued because the queue was full (when_full: drop_newest)."
        );
        sink_counter!(
            truncated,
            "sink_truncated_records",
            "Records cut to the sink's message size limit."
        );
        sink_counter!(
            server_rejected,
            "sink_server_rejected_records",
            "Records the server refused inside a successful answer (OTLP partial success)."
        );
        sink_counter!(requests, "sink_requests", "Requests sent.");
        {
            let mut m = encoder.encode_descriptor(
                "sink_request_duration_seconds",
                "Time from sending a request to its response.",
                None,
                MetricType::Histogram,
            )?;
            for (n, s) in &sinks {
                if get(&s.requests) > 0 {
                    s.latency.encode(m.encode_family(&k1(n))?)?;
                }
            }
        }
        let running: Vec<_> = t.running().sinks.clone();
        gauges(
            &mut encoder,
            "sink_queue_batches",
            "Batches waiting in the sink's queue.",
            running.iter().filter_map(|v| {
                let tx = v.queue.upgrade()?;
                let depth = tx.max_capacity() - tx.capacity();
                Some((k1(&v.name), depth as i64))
            }),
        )?;

        let plugins = t.plugins();
        let p2 = |s: &Arc<str>, p: &Arc<str>| -> L2 {
            [("stream", s.to_string()), ("plugin", p.to_string())]
        };
        macro_rules! plugin_counter {
            ($field:ident, $name:literal, $help:literal) => {
                counters(
                    &mut encoder,
                    $name,
                    $help,
                    plugins.iter().map(|(s, p, st)| (p2(s, p), get(&st.$field))),
                )?;
            };
        }
        plugin_counter!(batches, "plugin_calls", "Batches given to the plugin.");
        plugin_counter!(
            records_in,
            "plugin_records_in",
            "Records given to the plugin."
        );
        plugin_counter!(
            records_out,
            "plugin_records_out",
            "Records that came out of the plugin (or of its on_error policy)."
        );
        plugin_counter!(
            instances,
            "plugin_instances",
            "Instances created (first, after failures, recycling, reloads)."
        );
        plugin_counter!(
            recycled,
            "plugin_recycled",
            "Instances re-created because their memory passed recycle_above."
        );
        {
            let mut m = encoder.encode_descriptor(
                "plugin_busy_seconds",
                "Time spent in the plugin, boundary crossing included.",
                None,
                MetricType::Counter,
            )?;
            for (s, p, st) in &plugins {
                ConstCounter::new(get(&st.busy_ns) as f64 / 1e9)
                    .encode(m.encode_family(&p2(s, p))?)?;
            }
        }
        type Split = fn(&PluginStats) -> Vec<(&'static str, &AtomicU64)>;
        let splits: [(&str, &str, &str, Split); 3] = [
            (
                "plugin_failures",
                "Batches the plugin failed on, by reason.",
                "reason",
                |st| {
                    vec![
                        ("timeout", &st.timeouts),
                        ("fuel", &st.fuel_exhausted),
                        ("memory", &st.memory_exceeded),
                        ("trap", &st.traps),
                        ("error", &st.errors),
                        ("output", &st.bad_outputs),
                    ]
                },
            ),
            (
                "plugin_failed_records",
                "Records of failed batches, by what on_error did with them.",
                "policy",
                |st| {
                    vec![
                        ("pass", &st.failed_passed),
                        ("drop", &st.failed_dropped),
                        ("dead_letter", &st.failed_dead_lettered),
                    ]
                },
            ),
            (
                "plugin_reloads",
                "New versions of the plugin file, by result.",
                "result",
                |st| vec![("ok", &st.reloads), ("refused", &st.reloads_refused)],
            ),
        ];
        for (name, help, label, split) in splits {
            counters(
                &mut encoder,
                name,
                help,
                plugins.iter().flat_map(|(s, p, st)| {
                    split(st).into_iter().map(move |(value, c)| -> (L3, u64) {
                        (
                            [
                                ("stream", s.to_string()),
                                ("plugin", p.to_string()),
                                (label, value.to_string()),
                            ],
                            get(c),
                        )
                    })
                }),
            )?;
        }
        {
            let mut m = encoder.encode_descriptor(
                "plugin_call_duration_seconds",
                "Time of one plugin call (one batch).",
                None,
                MetricType::Histogram,
            )?;
            for (s, p, st) in &plugins {
                if get(&st.batches) > 0 {
                    st.call_seconds.encode(m.encode_family(&p2(s, p))?)?;
                }
            }
        }
        let custom: Vec<(L3, u64)> = plugins
            .iter()
            .flat_map(|(s, p, st)| {
                st.custom
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(name, v)| {
                        (
                            [
                                ("stream", s.to_string()),
                                ("plugin", p.to_string()),
                                ("name", name.clone()),
                            ],
                            *v,
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        counters(
            &mut encoder,
            "plugin_counter",
            "Counters the plugin keeps itself (the `count` host call).",
            custom,
        )?;

        counters(
            &mut encoder,
            "config_reloads",
            "Configuration reloads (SIGHUP or POST /reload), by result.",
            [
                ([("result", "ok".to_string())], get(&t.reloads)),
                ([("result", "refused".to_string())], get(&t.reloads_refused)),
            ],
        )?;
        counters(
            &mut encoder,
            "component_panics",
            "Streams, sinks and threads that panicked (each one ends the run with exit code 70).",
            [([] as [(&str, String); 0], get(&t.panics))],
        )?;
        Ok(())
    }
}

/// `(stream, path, bytes not yet acknowledged)` for each tracked file still at its path.
fn lag(t: &Telemetry, _with_paths: bool) -> Vec<(String, String, i64)> {
    let Some(ledger) = t.running().ledger.clone() else {
        return Vec::new();
    };
    let (_, entries) = ledger.snapshot();
    entries
        .into_iter()
        .filter_map(|e| {
            let meta = std::fs::metadata(&e.path).ok()?;
            // The path may hold a newer file after a rotation: only the same file counts.
            (meta.dev() == e.dev && meta.ino() == e.inode).then(|| {
                (
                    e.stream,
                    e.path.display().to_string(),
                    meta.len().saturating_sub(e.offset) as i64,
                )
            })
        })
        .collect()
}
