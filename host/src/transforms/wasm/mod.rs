//! WebAssembly plugins: user parsers and filters, compiled to components against `wit/`, run
//! sandboxed in a stream's chain.
//!
//! - [`PluginConfig`] is a stream's `plugins:` entry in the YAML; [`PluginSpec::load`] validates
//!   it at start: the file is read, compiled (or taken from the compile cache), checked against
//!   tailcar's world, instantiated and initialised with its `config` once, so a wrong world, a
//!   malformed file or a refused configuration stops tailcar with the plugin's path and the
//!   reason.
//! - [`transform::WasmPlugin`] is the running transform: one long-lived instance per stream,
//!   called once per batch on the stream's own thread (so a slow plugin slows its own stream
//!   and nothing else), re-created after a trap with a back-off, recycled when its memory passes
//!   a high-water mark, and swapped for a new version when its file changes.
//! - [`runtime`] is the only module that touches wasmtime; [`convert`] packs batches for the
//!   boundary; [`capture`] keeps what a plugin prints.

pub mod capture;
pub mod convert;
pub mod guest;
pub mod runtime;
pub mod tester;
pub mod transform;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use guest::Guest;
use runtime::{Failure, Instance, Limits, PluginPre, Runtime, State};

/// A stream's `plugins:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.wasm` component.
    pub path: PathBuf,
    /// The name used in logs and metrics; the file name without `.wasm` by default.
    #[serde(default)]
    pub name: Option<String>,
    /// Passed to the plugin's `init` as JSON.
    #[serde(default)]
    pub config: Option<serde_yaml::Value>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub on_error: OnError,
    /// The sink that gets a failed batch's records when `on_error: dead_letter`.
    #[serde(default)]
    pub dead_letter: Option<String>,
}

/// Per-plugin limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Maximum linear memory.
    #[serde(
        default = "defaults::memory",
        deserialize_with = "crate::units::de_size"
    )]
    pub memory: u64,
    /// Wall-clock time allowed per batch.
    #[serde(default = "defaults::deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// Optional instruction budget per batch (fuel). Costs every plugin some speed.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Maximum size of one batch's output (lines, fields and records).
    #[serde(
        default = "defaults::max_output",
        deserialize_with = "crate::units::de_size"
    )]
    pub max_output: u64,
    /// Re-create the instance (losing its state) once its memory passes this size;
    /// three quarters of `memory` by default.
    #[serde(default, deserialize_with = "de_opt_size")]
    pub recycle_above: Option<u64>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            memory: defaults::memory(),
            deadline: defaults::deadline(),
            fuel: None,
            max_output: defaults::max_output(),
            recycle_above: None,
        }
    }
}

fn de_opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    crate::units::de_size(d).map(Some)
}

pub mod defaults {
    use std::time::Duration;
    pub fn memory() -> u64 {
        64 << 20
    }
    pub fn deadline() -> Duration {
        Duration::from_millis(500)
    }
    pub fn max_output() -> u64 {
        16 << 20
    }
}

/// What happens to a batch's records when its plugin fails on it (trap, timeout, memory, error,
/// invalid or oversized output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Send them on unchanged, as if the plugin were not there (nothing is lost).
    #[default]
    Pass,
    /// Drop them (counted).
    Drop,
    /// Send them, unchanged, with a `plugin_error` field, to the `dead_letter` sink only.
    DeadLetter,
}

/// The identity of a plugin file on disk, to notice when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSig {
    len: u64,
    modified: Option<SystemTime>,
    ino: u64,
}

impl FileSig {
    pub fn of(path: &Path) -> std::io::Result<FileSig> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileSig {
            len: m.len(),
            modified: m.modified().ok(),
            ino: m.ino(),
        })
    }
}

/// One compiled and validated version of a plugin file.
pub struct Loaded {
    pub runtime: Arc<Runtime>,
    pub pre: PluginPre<State>,
    pub sig: FileSig,
    pub hash: u128,
    pub from_cache: bool,
    pub compile_time: Duration,
    /// The language runtime the component embeds.
    pub guest: Guest,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("hash", &format_args!("{:032x}", self.hash))
            .field("from_cache", &self.from_cache)
            .finish()
    }
}

/// A validated plugin, ready to run in a stream.
#[derive(Debug)]
pub struct PluginSpec {
    pub name: Arc<str>,
    pub path: PathBuf,
    /// The `config` as JSON text.
    pub config: String,
    pub limits: Limits,
    pub max_output: usize,
    pub recycle_above: usize,
    pub on_error: OnError,
    pub dead_letter: Option<Arc<str>>,
    pub cache_dir: Option<PathBuf>,
    pub loaded: Arc<Loaded>,
}

impl PluginSpec {
    /// Validates a `plugins:` entry: reads, compiles and checks the component, then creates one
    /// instance and calls `init` with the config. Errors are `(key, reason)`, the key relative to
    /// the entry.
    pub fn load(
        cfg: &PluginConfig,
        cache_dir: Option<&Path>,
    ) -> Result<PluginSpec, (String, String)> {
        let name: Arc<str> = match &cfg.name {
            Some(n) if n.trim().is_empty() => {
                return Err(("name".into(), "must not be empty".into()));
            }
            Some(n) => n.as_str().into(),
            None => cfg
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "plugin".into())
                .into(),
        };
        let l = &cfg.limits;
        if l.memory < 1 << 20 || l.memory > 4 << 30 {
            return Err((
                "limits.memory".into(),
                "must be between 1MiB and 4GiB".into(),
            ));
        }
        if l.deadline.is_zero() || l.deadline > Duration::from_secs(60) {
            return Err((
                "limits.deadline".into(),
                "must be more than zero and at most 60s".into(),
            ));
        }
        if l.fuel == Some(0) {
            return Err(("limits.fuel".into(), "must be more than zero".into()));
        }
        if l.max_output < 1024 {
            return Err(("limits.max_output".into(), "must be at least 1KiB".into()));
        }
        let recycle_above = l.recycle_above.unwrap_or(l.memory / 4 * 3);
        if recycle_above > l.memory {
            return Err((
                "limits.recycle_above".into(),
                format!("must not be above limits.memory ({} bytes)", l.memory),
            ));
        }
        match (cfg.on_error, &cfg.dead_letter) {
            (OnError::DeadLetter, None) => {
                return Err((
                    "dead_letter".into(),
                    "`on_error: dead_letter` needs the name of a sink here".into(),
                ));
            }
            (OnError::Pass | OnError::Drop, Some(_)) => {
                return Err((
                    "dead_letter".into(),
                    "is only used with `on_error: dead_letter`".into(),
                ));
            }
            _ => {}
        }
        let config = match &cfg.config {
            None => "{}".to_string(),
            Some(v) => serde_json::to_string(v).map_err(|e| {
                (
                    "config".to_string(),
                    format!("cannot be turned into JSON: {e}"),
                )
            })?,
        };
        let limits = Limits {
            memory: l.memory as usize,
            deadline: l.deadline,
            fuel: l.fuel,
        };
        let loaded = load_file(
            &cfg.path,
            limits.fuel.is_some(),
            cache_dir,
            (&name, l.memory),
        )
        .map_err(|(key, reason)| (key.to_string(), reason))?;
        let spec = PluginSpec {
            name,
            path: cfg.path.clone(),
            config,
            limits,
            max_output: l.max_output as usize,
            recycle_above: recycle_above as usize,
            on_error: cfg.on_error,
            dead_letter: cfg.dead_letter.as_deref().map(Arc::from),
            cache_dir: cache_dir.map(Path::to_path_buf),
            loaded: Arc::new(loaded),
        };
        spec.start(&spec.loaded)
            .map_err(|(key, reason)| (key.to_string(), reason))?;
        Ok(spec)
    }

    /// Creates an instance of `loaded` with this plugin's limits and config. The error is the
    /// config key to blame and why, with the plugin's name.
    pub fn start(&self, loaded: &Loaded) -> Result<Instance, (&'static str, String)> {
        match Instance::new(&loaded.runtime, &loaded.pre, self.limits, &self.config) {
            Ok(i) => Ok(i),
            Err((Failure::Error(message), _)) => Err((
                "config",
                format!("plugin `{}` refused its config: {message}", self.name),
            )),
            Err((f, printed)) => {
                let printed = String::from_utf8_lossy(&printed);
                let printed = printed.trim();
                let also = if printed.is_empty() {
                    String::new()
                } else {
                    format!(" (it printed: {})", printed.replace('\n', " | "))
                };
                let key = if matches!(f, Failure::Memory(_)) {
                    "limits.memory"
                } else {
                    "path"
                };
                Err((
                    key,
                    format!("plugin `{}` failed to start: {f}{also}", self.name),
                ))
            }
        }
    }
}

/// Reads, checks and compiles (or loads from the cache) one plugin file. The error is the
/// config key to blame (`path`, or `limits.memory` when `memory` is below what the language
/// runtime the file embeds needs: checked before compiling, which takes seconds for a Python or
/// JavaScript component) and why.
pub fn load_file(
    path: &Path,
    fuel: bool,
    cache_dir: Option<&Path>,
    memory: (&str, u64),
) -> Result<Loaded, (&'static str, String)> {
    let unusable = |reason: String| ("path", reason);
    let sig =
        FileSig::of(path).map_err(|e| unusable(format!("cannot read {}: {e}", path.display())))?;
    let bytes = std::fs::read(path)
        .map_err(|e| unusable(format!("cannot read {}: {e}", path.display())))?;
    let guest = Guest::detect(&bytes);
    let (name, limit) = memory;
    guest
        .check_memory(name, limit)
        .map_err(|reason| ("limits.memory", reason))?;
    let runtime = Runtime::get(fuel)
        .map_err(|e| unusable(format!("cannot start the WebAssembly runtime: {e:#}")))?;
    let started = std::time::Instant::now();
    let (component, from_cache) = runtime.compile(&bytes, cache_dir).map_err(|e| {
        unusable(format!(
            "{}: not a valid WebAssembly component: {e:#}",
            path.display()
        ))
    })?;
    let compile_time = started.elapsed();
    let pre = runtime
        .prepare(&component)
        .map_err(|e| unusable(format!("{}: {e:#}", path.display())))?;
    tracing::debug!(
        path = %path.display(),
        from_cache,
        took_ms = compile_time.as_secs_f64() * 1e3,
        "plugin loaded"
    );
    Ok(Loaded {
        runtime,
        pre,
        sig,
        hash: xxhash_rust::xxh3::xxh3_128(&bytes),
        guest,
        from_cache,
        compile_time,
    })
}
