//! The configuration: the YAML file of `tailcar run`, and the same structure built from the
//! flags of `tailcar tail`.
//!
//! Loading is: read the file, substitute `${ENV}` references ([`env`]), parse with unknown keys
//! denied (errors carry the key path), then [`Config::validate`] the parts serde cannot check
//! (sinks that exist, regexes and globs that compile). Every error names the file, the key path
//! and the reason; `main` exits with code 64 on them.

pub mod env;
pub mod yaml_guard;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::admin::AdminConfig;
use crate::sinks::SinkConfig;
use crate::sources::file::discover::PathSet;
use crate::sources::file::multiline::{JoinMode, MultilineRule};
use crate::sources::file::watcher::WatchMode;
use crate::sources::file::{StartAt, TailerSettings};
use crate::transforms::TransformSpec;
use crate::transforms::enrich::EnrichConfig;
use crate::transforms::fields::AddFields;
use crate::transforms::filters::FilterSpec;
use crate::transforms::parsers::ParserSpec;
use crate::transforms::wasm::{PluginConfig, PluginSpec};
use crate::units;

/// Bytes read from a file at a time (and the largest plain batch, plus a partial line).
pub const READ_CHUNK: usize = 128 * 1024;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory for the checkpoint file. Default: `.tailcar` beside the first stream's files.
    #[serde(default)]
    pub checkpoint_dir: Option<PathBuf>,
    /// How often acknowledged offsets are written (also written on shutdown).
    #[serde(
        default = "defaults::checkpoint_interval",
        deserialize_with = "units::de_interval"
    )]
    pub checkpoint_interval: Duration,
    /// How long a shutdown may take to drain what is in flight.
    #[serde(
        default = "defaults::grace_period",
        deserialize_with = "units::de_wait"
    )]
    pub grace_period: Duration,
    /// Change detection for the whole process: `auto`, `inotify` or `poll`.
    #[serde(default)]
    pub watch: WatchMode,
    /// Where compiled plugins are cached across restarts. Default: `plugin-cache` in the
    /// checkpoint directory.
    #[serde(default)]
    pub plugin_cache_dir: Option<PathBuf>,
    /// The admin endpoint: `/metrics`, `/healthz`, `/readyz`, `POST /reload`.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The named streams: which files, how to frame them, where they go.
    pub streams: IndexMap<String, StreamConfig>,
    /// The named sinks streams send to.
    #[serde(default)]
    pub sinks: IndexMap<String, SinkConfig>,
}

/// One stream: a set of files tailed together and sent to the same sinks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Paths or globs (`/var/log/app/*.log`); files that do not exist yet are picked up when
    /// they appear.
    pub paths: Vec<String>,
    /// Globs of paths to leave out (`/var/log/app/*.gz`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The sinks this stream's records go to.
    pub sinks: Vec<String>,
    /// For files found at start with no checkpoint: `beginning` (default) or `end`.
    #[serde(default)]
    pub start_at: StartAt,
    /// Join lines into records by a start pattern (stack traces).
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    /// Longest line kept whole; longer lines are split into pieces of this size (default 1MiB).
    #[serde(
        default = "defaults::max_line_bytes",
        deserialize_with = "units::de_buffer_size"
    )]
    pub max_line_bytes: u64,
    /// How often files are checked when inotify is not in use.
    #[serde(
        default = "defaults::poll_interval",
        deserialize_with = "units::de_interval"
    )]
    pub poll_interval: Duration,
    /// How long a rotated file must stay quiet at its end before it is released.
    #[serde(default = "defaults::rotate_wait", deserialize_with = "units::de_wait")]
    pub rotate_wait: Duration,
    /// How to parse each line into fields: `json`, `{ type: regexp, pattern: ... }`, `none`.
    #[serde(default)]
    pub parser: Option<ParserSpec>,
    /// Fields set on every record: `{ cluster: prod-eu-1 }`.
    #[serde(default)]
    pub fields: IndexMap<String, serde_json::Value>,
    /// Native filters, in order: `grep`, `drop_fields`, `keep_fields`, `rename`, `throttle`.
    #[serde(default)]
    pub filters: Vec<FilterSpec>,
    /// Kubernetes enrichment from the Downward API: `{ pod: true, labels: /etc/podinfo/labels }`.
    #[serde(default)]
    pub enrich: Option<EnrichConfig>,
    /// Delete rotated files once every line of them is shipped and acknowledged.
    #[serde(default)]
    pub remove_rotated_after_ship: bool,
    /// `punch_holes`: free the disk blocks of what is acknowledged, for append-only files.
    #[serde(default)]
    pub reclaim: crate::sources::file::reclaim::Reclaim,
    /// WebAssembly plugins, in order: `- path: /plugins/nginx_parse.wasm`.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// The order `parser`, `filters` and `fields` were written in (they run in that order);
    /// filled from the YAML, `parser, filters, fields` when built in code.
    #[serde(skip)]
    pub transform_order: Vec<String>,
}

/// The stream keys that are transforms, in their default order.
const TRANSFORM_KEYS: [&str; 5] = ["parser", "filters", "plugins", "enrich", "fields"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Regex matching the first line of a record.
    pub start: String,
    /// A record with no new line for this long is emitted.
    #[serde(
        default = "defaults::multiline_timeout",
        deserialize_with = "units::de_interval"
    )]
    pub timeout: Duration,
}

pub mod defaults {
    use std::time::Duration;
    pub fn checkpoint_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn grace_period() -> Duration {
        Duration::from_secs(5)
    }
    pub fn max_line_bytes() -> u64 {
        1024 * 1024
    }
    pub fn poll_interval() -> Duration {
        Duration::from_millis(250)
    }
    pub fn rotate_wait() -> Duration {
        Duration::from_secs(5)
    }
    pub fn multiline_timeout() -> Duration {
        Duration::from_secs(1)
    }
}

pub use crate::units::{de_size, parse_size};

/// A configuration error: where (file and key path, or line) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or `command line`.
    pub origin: String,
    /// The key path (`streams.error.multiline.start`), when known.
    pub key: Option<String>,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{}: {}: {}", self.origin, k, self.reason),
            None => write!(f, "{}: {}", self.origin, self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A validated stream: its tailer settings and the sinks it feeds.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    pub tailer: TailerSettings,
    /// Parsers and enrichment, in the order they run.
    pub transforms: Vec<TransformSpec>,
    pub sinks: Vec<Arc<str>>,
    /// Sinks only this stream's plugins send to (their dead-letter sinks), not among `sinks`.
    pub extra_sinks: Vec<Arc<str>>,
}

/// What will run, validated.
#[derive(Debug, Clone)]
pub struct Topology {
    pub checkpoint_dir: Option<PathBuf>,
    pub checkpoint_interval: Duration,
    pub grace_period: Duration,
    pub watch: WatchMode,
    pub streams: Vec<StreamPlan>,
    pub sinks: Vec<(Arc<str>, SinkConfig)>,
    pub admin: AdminConfig,
    /// What looks wrong but may be meant (`check` prints these, `run` logs them at start).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads, substitutes, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Topology, ConfigError> {
        let origin = path.display().to_string();
        let err = |key: Option<String>, reason: String| ConfigError {
            origin: origin.clone(),
            key,
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
        let text = env::substitute(&text, |k| std::env::var(k).ok()).map_err(|u| {
            err(None, format!("line {}: environment variable `{}` is not set (write ${{{}:-default}} for a default)", u.line, u.var, u.var))
        })?;
        let config = Self::parse(&text).map_err(|(key, reason)| err(key, reason))?;
        let default_dir = config.default_checkpoint_dir();
        let mut topology = config.validate(&origin)?;
        if topology.checkpoint_dir.is_none() {
            topology.checkpoint_dir = default_dir;
        }
        Ok(topology)
    }

    /// Parses YAML text; the error is `(key path, reason)`.
    pub fn parse(text: &str) -> Result<Config, (Option<String>, String)> {
        yaml_guard::check(text)?;
        let de = serde_yaml::Deserializer::from_str(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let mut path = e.path().to_string();
            let reason = e.into_inner().to_string();
            // serde_yaml also puts a key path at the front of its message: keep one, as the key
            // (serde_path_to_error's, which names an unknown key itself rather than its parent).
            let (yaml_path, reason) = match reason.split_once(": ") {
                Some((p, r)) if !p.contains(' ') => (Some(p.to_string()), r.to_string()),
                _ => (None, reason),
            };
            if path == "."
                && let Some(p) = yaml_path
            {
                path = p;
            }
            if path != "." {
                path = refine_path(text, path);
            }
            ((path != ".").then_some(path), reason)
        })?;
        // The order of transform keys as written (serde does not keep it): read the mapping again.
        if let Ok(serde_yaml::Value::Mapping(root)) =
            serde_yaml::from_str::<serde_yaml::Value>(text)
            && let Some(serde_yaml::Value::Mapping(streams)) = root.get("streams")
        {
            for (name, stream) in config.streams.iter_mut() {
                if let Some(serde_yaml::Value::Mapping(m)) = streams.get(name.as_str()) {
                    stream.transform_order = m
                        .keys()
                        .filter_map(|k| k.as_str())
                        .filter(|k| TRANSFORM_KEYS.contains(k))
                        .map(str::to_string)
                        .collect();
                }
            }
        }
        Ok(config)
    }

    /// `.tailcar` in the directory of the first stream's first path.
    fn default_checkpoint_dir(&self) -> Option<PathBuf> {
        let (_, s) = self.streams.first()?;
        let set = PathSet::new(&s.paths, &[]).ok()?;
        set.watch_dirs().first().map(|w| w.dir.join(".tailcar"))
    }

    /// Checks what the types cannot: references, regexes, globs, limits.
    pub fn validate(self, origin: &str) -> Result<Topology, ConfigError> {
        let err = |key: String, reason: String| ConfigError {
            origin: origin.to_string(),
            key: Some(key),
            reason,
        };
        if self.streams.is_empty() {
            return Err(err(
                "streams".into(),
                "at least one stream is needed".into(),
            ));
        }
        let sink_names: Vec<&str> = self.sinks.keys().map(String::as_str).collect();
        let plugin_cache_dir = self.plugin_cache_dir.clone().or_else(|| {
            self.checkpoint_dir
                .clone()
                .or_else(|| self.default_checkpoint_dir())
                .map(|d| d.join("plugin-cache"))
        });
        let mut streams = Vec::new();
        for (name, s) in &self.streams {
            let at = |k: &str| format!("streams.{name}.{k}");
            if s.paths.is_empty() {
                return Err(err(at("paths"), "at least one path is needed".into()));
            }
            let paths = PathSet::new(&s.paths, &s.exclude).map_err(|e| err(at("paths"), e))?;
            if s.sinks.is_empty() {
                return Err(err(at("sinks"), "at least one sink is needed".into()));
            }
            for (i, sink) in s.sinks.iter().enumerate() {
                if !self.sinks.contains_key(sink) {
                    let defined = if sink_names.is_empty() {
                        "none".to_string()
                    } else {
                        sink_names.join(", ")
                    };
                    return Err(err(
                        at(&format!("sinks[{i}]")),
                        format!("no sink named `{sink}` (sinks defined: {defined})"),
                    ));
                }
            }
            if s.max_line_bytes == 0 || s.max_line_bytes > (1 << 30) {
                return Err(err(
                    at("max_line_bytes"),
                    "must be between 1 byte and 1GiB".into(),
                ));
            }
            let multiline = match &s.multiline {
                None => None,
                Some(m) => {
                    let start = regex::bytes::Regex::new(&m.start).map_err(|e| {
                        err(
                            at("multiline.start"),
                            format!("invalid regex: {}", one_line(&e.to_string())),
                        )
                    })?;
                    Some(MultilineRule {
                        mode: JoinMode::Start(start),
                        timeout: m.timeout,
                        max_bytes: s.max_line_bytes as usize,
                    })
                }
            };
            // Formats whose records span lines are framed by their own rule: CSV values may
            // hold newlines; CRI and Docker split long lines into partial entries.
            use crate::transforms::parsers::ParserConfig as P;
            let join = match &s.parser {
                Some(ParserSpec(P::Csv(_))) => Some(JoinMode::BalancedQuotes),
                Some(ParserSpec(P::Cri(_))) => Some(JoinMode::Cri),
                Some(ParserSpec(P::Docker(_))) => Some(JoinMode::Docker),
                _ => None,
            };
            let multiline = multiline.or_else(|| {
                join.map(|mode| MultilineRule {
                    mode,
                    timeout: defaults::multiline_timeout(),
                    max_bytes: s.max_line_bytes as usize,
                })
            });
            let mut transforms = Vec::new();
            let mut extra_sinks: Vec<Arc<str>> = Vec::new();
            let order: Vec<&str> = if s.transform_order.is_empty() {
                TRANSFORM_KEYS.to_vec()
            } else {
                s.transform_order.iter().map(String::as_str).collect()
            };
            for key in order {
                match key {
                    "parser" => {
                        if let Some(ParserSpec(p)) = &s.parser {
                            let parser = p
                                .build()
                                .map_err(|(k, reason)| err(at(&format!("parser.{k}")), reason))?;
                            transforms.extend(parser.map(TransformSpec::Parser));
                        }
                    }
                    "filters" => {
                        for (i, FilterSpec(f)) in s.filters.iter().enumerate() {
                            let filter = f.build().map_err(|(k, reason)| {
                                err(at(&format!("filters[{i}].{k}")), reason)
                            })?;
                            transforms.push(TransformSpec::Filter(filter));
                        }
                    }
                    "plugins" => {
                        for (i, p) in s.plugins.iter().enumerate() {
                            let key = |k: &str| at(&format!("plugins[{i}].{k}"));
                            if let Some(dl) = &p.dead_letter
                                && !self.sinks.contains_key(dl)
                            {
                                return Err(err(
                                    key("dead_letter"),
                                    format!("no sink named `{dl}`"),
                                ));
                            }
                            let spec = PluginSpec::load(p, plugin_cache_dir.as_deref())
                                .map_err(|(k, reason)| err(key(&k), reason))?;
                            if let Some(dl) = &spec.dead_letter
                                && !s.sinks.iter().any(|n| **n == **dl)
                                && !extra_sinks.contains(dl)
                            {
                                extra_sinks.push(Arc::clone(dl));
                            }
                            transforms.push(TransformSpec::Plugin(Arc::new(spec)));
                        }
                    }
                    "enrich" => {
                        transforms.extend(
                            s.enrich
                                .as_ref()
                                .map(|e| TransformSpec::Enrich(Box::new(e.build()))),
                        );
                    }
                    _ => {
                        if !s.fields.is_empty() {
                            let fields = s
                                .fields
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect();
                            transforms.push(TransformSpec::AddFields(AddFields { fields }));
                        }
                    }
                }
            }
            streams.push(StreamPlan {
                transforms,
                tailer: TailerSettings {
                    stream: name.as_str().into(),
                    paths,
                    start_at: s.start_at,
                    max_line_bytes: s.max_line_bytes as usize,
                    multiline,
                    poll_interval: s.poll_interval,
                    rotate_wait: s.rotate_wait,
                    read_chunk: READ_CHUNK,
                    remove_rotated_after_ship: s.remove_rotated_after_ship,
                    reclaim: s.reclaim,
                },
                sinks: s.sinks.iter().map(|n| Arc::from(n.as_str())).collect(),
                extra_sinks,
            });
        }
        for (name, sink) in &self.sinks {
            sink.validate(name, &sink_names).map_err(|e| {
                let e = e.under(&format!("sinks.{name}"));
                err(e.key, e.reason)
            })?;
        }
        // A file sink inside a stream's paths would feed tailcar its own output, forever.
        for (name, sink) in &self.sinks {
            let SinkConfig::File(f) = sink else { continue };
            let Ok(path) = std::path::absolute(&f.path) else {
                continue;
            };
            if let Some(plan) = streams.iter().find(|p| p.tailer.paths.matches_path(&path)) {
                return Err(err(
                    format!("sinks.{name}.path"),
                    format!(
                        "{} is matched by streams.{}.paths: tailcar would read what it writes \
                         and ship it again, without end; write it outside the stream's paths or \
                         add it to the stream's `exclude`",
                        path.display(),
                        plan.tailer.stream
                    ),
                ));
            }
        }
        for name in self.sinks.keys() {
            let dead_letter_of_some = self
                .sinks
                .values()
                .any(|s| s.dead_letter() == Some(name.as_str()));
            let dead_letter_of_plugin = self
                .streams
                .values()
                .flat_map(|s| &s.plugins)
                .any(|p| p.dead_letter.as_deref() == Some(name.as_str()));
            if !dead_letter_of_some
                && !dead_letter_of_plugin
                && !self.streams.values().any(|s| s.sinks.contains(name))
            {
                tracing::warn!(sink = %name, "sink is not used by any stream");
            }
        }
        let sinks: Vec<(Arc<str>, SinkConfig)> = self
            .sinks
            .into_iter()
            .map(|(n, c)| (Arc::from(n.as_str()), c))
            .collect();
        let warnings = template_warnings(&streams, &sinks);
        Ok(Topology {
            warnings,
            checkpoint_dir: self.checkpoint_dir,
            checkpoint_interval: self.checkpoint_interval,
            grace_period: self.grace_period,
            watch: self.watch,
            admin: self.admin,
            streams,
            sinks,
        })
    }
}

/// A template field no stream sending to the sink can have renders as nothing on every record
/// (a Loki label that is always empty, an index without its namespace): say so, with what the
/// streams do have. Streams with a `json` or `logfmt` parser or a plugin can have any field.
fn template_warnings(streams: &[StreamPlan], sinks: &[(Arc<str>, SinkConfig)]) -> Vec<String> {
    let names: Vec<Option<crate::transforms::FieldNames>> = streams
        .iter()
        .map(|s| crate::transforms::field_names(&s.transforms))
        .collect();
    let mut out = Vec::new();
    for (sink, config) in sinks {
        // The streams whose records reach this sink, directly or as its dead-letter sink.
        let feeds = |s: &StreamPlan| {
            s.sinks.iter().chain(&s.extra_sinks).any(|n| {
                n == sink
                    || sinks
                        .iter()
                        .any(|(m, c)| m == n && c.dead_letter() == Some(&**sink))
            })
        };
        let senders: Vec<(&StreamPlan, &Option<crate::transforms::FieldNames>)> = streams
            .iter()
            .zip(&names)
            .filter(|(s, _)| feeds(s))
            .collect();
        if senders.is_empty() {
            continue;
        }
        for (key, template) in config.templates() {
            for field in template.fields() {
                let can = senders
                    .iter()
                    .any(|(_, n)| n.as_ref().is_none_or(|n| n.fills(field)));
                if can {
                    continue;
                }
                let have: Vec<String> = senders
                    .iter()
                    .map(|(s, n)| {
                        let n = n.as_ref().map(|n| n.describe()).unwrap_or_default();
                        format!("{}: {n}", s.tailer.stream)
                    })
                    .collect();
                out.push(format!(
                    "sinks.{sink}.{key}: `{{{field}}}` names a field that no stream sending here \
                     has, so it is always empty (streams have {}); check the name, or set it \
                     with the stream's parser, `fields:` or `enrich`",
                    have.join("; ")
                ));
            }
        }
    }
    out
}

/// Serde reads a `type`-tagged section (a sink, a parser, a filter) through a buffer, so an
/// error inside it is reported at the section (`sinks.es`), not at the key (`sinks.es.batch`).
/// Find the key: the one whose removal makes that error go away or become another one.
/// Configurations are small, so trying each key is cheap.
fn refine_path(text: &str, path: String) -> String {
    use serde_yaml::Value;
    let Ok(root) = serde_yaml::from_str::<Value>(text) else {
        return path;
    };
    let steps: Vec<String> = path
        .replace('[', ".[")
        .split('.')
        .map(str::to_string)
        .collect();
    fn at<'a>(v: &'a mut Value, steps: &[String]) -> Option<&'a mut Value> {
        let Some((first, rest)) = steps.split_first() else {
            return Some(v);
        };
        let next = match first.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
            Some(i) => v.as_sequence_mut()?.get_mut(i.parse::<usize>().ok()?)?,
            None => v.as_mapping_mut()?.get_mut(first.as_str())?,
        };
        at(next, rest)
    }
    let error_at = |doc: Value| -> Option<(String, String)> {
        serde_path_to_error::deserialize::<_, Config>(doc)
            .err()
            .map(|e| (e.path().to_string(), e.into_inner().to_string()))
    };
    let mut probe = root.clone();
    let Some(Value::Mapping(section)) = at(&mut probe, &steps) else {
        return path;
    };
    if !section.contains_key("type") {
        return path;
    }
    let keys: Vec<Value> = section.keys().filter(|k| *k != "type").cloned().collect();
    let Some(baseline) = error_at(root.clone()) else {
        return path;
    };
    for key in keys {
        let mut doc = root.clone();
        if let Some(Value::Mapping(m)) = at(&mut doc, &steps) {
            m.remove(&key);
        }
        // Removing a required key only trades the error for "missing field": that says nothing.
        let gone = match error_at(doc) {
            None => true,
            Some(e) => !e.1.starts_with("missing field") && e != baseline,
        };
        if gone && let Some(k) = key.as_str() {
            return format!("{path}.{k}");
        }
    }
    path
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Topology {
    /// A human-readable summary, printed by `tailcar check`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        match &self.checkpoint_dir {
            Some(d) => out.push_str(&format!(
                "checkpoints: {} (every {})\n",
                d.display(),
                humantime::format_duration(self.checkpoint_interval)
            )),
            None => out.push_str("checkpoints: none (positions are not kept across restarts)\n"),
        }
        out.push_str(&format!(
            "grace period: {}\n",
            humantime::format_duration(self.grace_period)
        ));
        out.push_str(&format!("watch: {:?}\n", self.watch).to_lowercase());
        for s in &self.streams {
            let t = &s.tailer;
            out.push_str(&format!("stream {}:\n", t.stream));
            for w in t.paths.watch_dirs() {
                out.push_str(&format!(
                    "  watches {}{}\n",
                    w.dir.display(),
                    if w.recursive { " (recursive)" } else { "" }
                ));
                if !w.dir.is_dir() {
                    out.push_str(&format!(
                        "  warning: {} does not exist (yet?): nothing is shipped until it does; \
                         check the path for a typo\n",
                        w.dir.display()
                    ));
                }
            }
            let now: Vec<String> = t
                .paths
                .matches()
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect();
            out.push_str(&format!(
                "  files now: {}\n",
                if now.is_empty() {
                    "(none yet)".into()
                } else {
                    now.join(", ")
                }
            ));
            out.push_str(
                &format!(
                    "  start at: {:?}, max line: {} bytes\n",
                    t.start_at, t.max_line_bytes
                )
                .to_lowercase(),
            );
            if let Some(m) = &t.multiline {
                let how = match &m.mode {
                    JoinMode::Start(start) => format!("start {}", start.as_str()),
                    JoinMode::BalancedQuotes => "records end where quotes balance (csv)".into(),
                    JoinMode::Cri => "CRI partial lines joined".into(),
                    JoinMode::Docker => "Docker partial lines joined".into(),
                };
                out.push_str(&format!(
                    "  multiline: {how} (timeout {})\n",
                    humantime::format_duration(m.timeout)
                ));
            }
            for t in &s.transforms {
                out.push_str(&format!("  {}\n", t.describe()));
            }
            let sinks: Vec<&str> = s.sinks.iter().map(|s| &**s).collect();
            out.push_str(&format!("  -> {}\n", sinks.join(", ")));
        }
        for (name, c) in &self.sinks {
            out.push_str(&format!("sink {name}: {}\n", c.describe()));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"
checkpoint_dir: /var/log/app/.tailcar
streams:
  access:
    paths: [/var/log/app/access.log]
    sinks: [access_out]
  error:
    paths: [/var/log/app/error.log]
    multiline: { start: '^\d{4}-\d{2}-\d{2}' }
    sinks: [error_out]
sinks:
  access_out: { type: stdout, format: raw }
  error_out: { type: file, path: /var/log/app/shipped-errors.log, format: json }
"#;

    #[test]
    fn the_documented_example_parses_as_written() {
        let t = Config::parse(ISSUE_EXAMPLE)
            .unwrap()
            .validate("x.yaml")
            .unwrap();
        assert_eq!(t.streams.len(), 2);
        assert_eq!(t.streams[1].tailer.stream.as_ref(), "error");
        assert!(t.streams[1].tailer.multiline.is_some());
        assert_eq!(t.streams[0].tailer.max_line_bytes, 1 << 20);
        assert_eq!(t.grace_period, Duration::from_secs(5));
        assert_eq!(t.sinks[1].0.as_ref(), "error_out");
        assert!(
            matches!(&t.sinks[1].1, SinkConfig::File(f) if f.path == Path::new("/var/log/app/shipped-errors.log"))
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let text = ISSUE_EXAMPLE.replace("multiline:", "multilne:");
        let (key, reason) = Config::parse(&text).unwrap_err();
        assert_eq!(key.as_deref(), Some("streams.error.multilne"));
        assert!(reason.starts_with("unknown field `multilne`"), "{reason}");
    }

    #[test]
    fn missing_sinks_and_bad_regexes_are_rejected() {
        let text = ISSUE_EXAMPLE.replace("sinks: [error_out]", "sinks: [error_out, nope]");
        let e = Config::parse(&text)
            .unwrap()
            .validate("x.yaml")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.yaml: streams.error.sinks[1]: no sink named `nope` (sinks defined: access_out, error_out)"
        );
        let text = ISSUE_EXAMPLE.replace(r"'^\d{4}-\d{2}-\d{2}'", "'^(unclosed'");
        let e = Config::parse(&text)
            .unwrap()
            .validate("x.yaml")
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("streams.error.multiline.start"));
        assert!(e.reason.starts_with("invalid regex:"), "{}", e.reason);
    }

    #[test]
    fn the_remote_sinks_example_parses_as_written() {
        // The remote-sinks issue's example, merged into the foundation's.
        let text = r#"
streams:
  access:
    paths: [/var/log/app/access.log]
    sinks: [es, audit]
  error:
    paths: [/var/log/app/error.log]
    sinks: [loki]
sinks:
  es:
    type: elasticsearch
    url: http://elasticsearch:9200
    index: "app-logs-%Y.%m.%d"
    auth: { user: elastic, password: "s3cret" }
  loki:
    type: loki
    url: http://loki:3100
    labels: { app: demo, stream: "{stream}", pod: "web-0" }
  audit:
    type: http
    url: https://collector.example/ingest
    headers: { Authorization: "Bearer t0k" }
    batch: { max_records: 500, max_bytes: 512KiB, timeout: 2s }
    when_full: drop_newest
"#;
        let t = Config::parse(text).unwrap().validate("x").unwrap();
        let audit = &t.sinks.iter().find(|(n, _)| &**n == "audit").unwrap().1;
        match audit {
            SinkConfig::Http(h) => {
                assert_eq!(h.batch.max_records, 500);
                assert_eq!(h.batch.max_bytes, 512 * 1024);
                assert_eq!(h.batch.timeout, Duration::from_secs(2));
                assert_eq!(h.when_full, crate::queue::WhenFull::DropNewest);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            format!("{audit:?}").contains("***") && !format!("{audit:?}").contains("t0k"),
            "secrets stay hidden"
        );
    }

    #[test]
    fn a_sink_setting_that_cannot_work_is_named_by_its_whole_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing").display().to_string();
        let sink_key = |sink: &str| {
            let text = format!(
                "streams:\n  a: {{ paths: [/x/a.log], sinks: [out] }}\nsinks:\n  out: {sink}\n"
            );
            let e = Config::parse(&text)
                .unwrap()
                .validate("x.yaml")
                .unwrap_err();
            (e.key.unwrap(), e.reason)
        };
        let cases = [
            (
                format!(
                    "{{ type: elasticsearch, url: 'https://es:9200', tls: {{ ca_file: {missing} }} }}"
                ),
                "sinks.out.tls.ca_file",
                "cannot read",
            ),
            (
                format!(
                    "{{ type: loki, url: 'http://l', labels: {{ app: a }}, auth: {{ user: u, password_file: {missing} }} }}"
                ),
                "sinks.out.auth.password_file",
                "cannot read",
            ),
            (
                "{ type: otlp, url: 'http://o', auth: { user: u } }".to_string(),
                "sinks.out.auth",
                "auth takes `user` with `password`",
            ),
            (
                format!(
                    "{{ type: kafka, bootstrap_servers: ['k:9092'], topic: t, sasl: {{ mechanism: PLAIN, user: u, password_file: {missing} }} }}"
                ),
                "sinks.out.sasl.password_file",
                "cannot read",
            ),
            (
                "{ type: kafka, bootstrap_servers: ['k:9092', 'nohost'], topic: t }".to_string(),
                "sinks.out.bootstrap_servers[1]",
                "is not host:port",
            ),
            (
                "{ type: loki, url: 'http://l', labels: { app: a }, tenant: \"a\\nb\" }"
                    .to_string(),
                "sinks.out.tenant",
                "not a valid header value",
            ),
            (
                "{ type: tcp, address: 'h:1', tls: { ca_file: /nonexistent/ca.pem } }".to_string(),
                "sinks.out.tls.ca_file",
                "cannot read",
            ),
        ];
        for (sink, key, reason) in cases {
            let (k, r) = sink_key(&sink);
            assert_eq!(k, key, "{sink}: {r}");
            assert!(r.contains(reason), "{sink}: {r}");
        }
    }

    #[test]
    fn a_template_field_no_stream_has_is_warned_about() {
        let text = r#"
streams:
  web:
    paths: [/x/access.log]
    parser: nginx
    filters:
      - rename: { remote_addr: client }
    sinks: [loki, kafka]
  app:
    paths: [/x/app.log]
    parser: { type: regexp, pattern: '^(?P<level>\w+) (?P<msg>.*)$' }
    enrich: { pod: true }
    sinks: [kafka]
sinks:
  loki:
    type: loki
    url: http://127.0.0.1:3100
    labels: { job: "{stream}", method: "{method}", app: "{appname}", ip: "{remote_addr}" }
  kafka:
    type: kafka
    bootstrap_servers: [127.0.0.1:9092]
    topic: "logs-{level}"
    key: "{kubernetes.pod_name}"
    headers: { who: "{user}" }
"#;
        let t = Config::parse(text).unwrap().validate("x").unwrap();
        let keys: Vec<&str> = t
            .warnings
            .iter()
            .map(|w| w.split(':').next().unwrap())
            .collect();
        // {method} is nginx's, {level} the regexp's, {kubernetes.pod_name} from enrich;
        // remote_addr was renamed away, appname and user exist nowhere.
        assert_eq!(
            keys,
            vec![
                "sinks.loki.labels.app",
                "sinks.loki.labels.ip",
                "sinks.kafka.headers.who"
            ],
            "{:#?}",
            t.warnings
        );
        assert!(
            t.warnings[0].contains("`{appname}`") && t.warnings[0].contains("web: bytes, client,"),
            "{}",
            t.warnings[0]
        );
        assert!(t.describe().contains("warning: sinks.loki.labels.app:"));
        // A stream whose fields the lines decide (json) may have any of them.
        let open = text.replace("parser: nginx", "parser: json");
        let t = Config::parse(&open).unwrap().validate("x").unwrap();
        assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
    }

    #[test]
    fn transforms_run_in_the_order_written() {
        let text = r#"
streams:
  a:
    paths: [/x.log]
    fields: { env: prod }
    filters:
      - grep: { exclude: { line: healthz } }
      - rename: { msg: message }
    parser: json
    sinks: [o]
  b:
    paths: [/y.log]
    sinks: [o]
sinks:
  o: { type: stdout }
"#;
        let t = Config::parse(text).unwrap().validate("x").unwrap();
        let steps: Vec<String> = t.streams[0]
            .transforms
            .iter()
            .map(|t| t.describe())
            .collect();
        assert_eq!(
            steps,
            vec![
                "fields: env",
                "filter: grep (0 include, 1 exclude)",
                "filter: rename msg->message",
                "parser: json"
            ]
        );
        assert!(t.streams[1].transforms.is_empty());
        let bad = text.replace("healthz", "(");
        let e = Config::parse(&bad).unwrap().validate("x").unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("streams.a.filters[0].grep.exclude.line")
        );
    }

    #[test]
    fn sizes_and_durations_are_human() {
        let text = ISSUE_EXAMPLE.replace(
            "sinks: [access_out]",
            "sinks: [access_out]\n    max_line_bytes: 64KiB\n    rotate_wait: 250ms",
        );
        let t = Config::parse(&text).unwrap().validate("x").unwrap();
        assert_eq!(t.streams[0].tailer.max_line_bytes, 64 * 1024);
        assert_eq!(t.streams[0].tailer.rotate_wait, Duration::from_millis(250));
        let bad = ISSUE_EXAMPLE.replace(
            "sinks: [access_out]",
            "sinks: [access_out]\n    max_line_bytes: lots",
        );
        let (key, reason) = Config::parse(&bad).unwrap_err();
        assert_eq!(key.as_deref(), Some("streams.access.max_line_bytes"));
        assert!(reason.contains("invalid size `lots`"), "{reason}");
    }

    /// `check` on configurations no one would write: every line of a configuration that uses
    /// most keys gets hostile values, and bytes are flipped; loading must answer (a topology
    /// or an error with a reason), never panic.
    mod mutated {
        use super::*;
        use proptest::prelude::*;

        const BASE: &str = r#"checkpoint_dir: /tmp/tailcar-proptest/ck
checkpoint_interval: 1s
grace_period: 5s
admin: { enabled: false, address: "127.0.0.1:9", sink_failing_for: 5m }
streams:
  app:
    paths: [/tmp/tailcar-proptest/*.log]
    exclude: [/tmp/tailcar-proptest/x.log]
    start_at: end
    multiline: { start: '^\d', timeout: 1s }
    max_line_bytes: 64KiB
    poll_interval: 250ms
    rotate_wait: 5s
    parser: { type: regexp, pattern: '^(?P<a>\w+)', types: { a: int } }
    filters:
      - grep: { exclude: { line: healthz } }
      - throttle: { rate: 10 }
    fields: { env: prod }
    sinks: [out, es]
sinks:
  out: { type: file, path: /tmp/tailcar-proptest-out/out.log, format: json }
  es:
    type: elasticsearch
    url: http://127.0.0.1:9
    index: "a-{stream}-%Y"
    batch: { max_records: 10, max_bytes: 1MiB, timeout: 1s }
    retry: { initial_backoff: 10ms, max_backoff: 1s }
    request_timeout: 1s
    max_in_flight: 4
    when_full: drop_newest
  loki: { type: loki, url: http://127.0.0.1:9, labels: { a: "{stream}" }, max_label_sets: 3 }
"#;

        const HOSTILE: &[&str] = &[
            "0",
            "-1",
            "18446744073709551615",
            "1e309",
            "0s",
            "300000000000y",
            "''",
            "[]",
            "{}",
            "~",
            "&x [*x]",
            "*nope",
            "!!binary aGk=",
            "\"\\u0000\"",
            "[[[[[[]]]]]]",
            "-5GiB",
            "1ns",
            "99999999999999999999999days",
            "'%'",
            "'{'",
            "'('",
            "true",
        ];

        fn load(text: &str) {
            if let Ok(config) = Config::parse(text) {
                let _ = config.validate("proptest.yaml");
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]
            #[test]
            fn a_hostile_value_on_any_line_never_panics(
                line in 0usize..40,
                value in prop::sample::select(HOSTILE),
            ) {
                let mut lines: Vec<String> = BASE.lines().map(str::to_string).collect();
                let i = line % lines.len();
                if let Some((key, _)) = lines[i].split_once(':') {
                    lines[i] = format!("{key}: {value}");
                }
                load(&lines.join("\n"));
            }

            #[test]
            fn flipped_bytes_never_panic(flips in prop::collection::vec((0usize..2000, any::<u8>()), 1..6)) {
                let mut bytes = BASE.as_bytes().to_vec();
                for (at, b) in flips {
                    let n = bytes.len();
                    bytes[at % n] = b;
                }
                load(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}
