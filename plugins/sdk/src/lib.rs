//! `tailcar-plugin`: write tailcar parser and filter plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`] plus one [`export!`] line. tailcar calls the plugin
//! once per batch; this crate turns the batch columns of the WIT interface (`wit/plugin.wit`) into
//! one [`Record`] at a time and builds the output columns from what [`Plugin::process`] decides.
//! Nothing is copied for a record that is kept unchanged, and field values are borrowed from the
//! batch until a plugin changes them.
//!
//! ```ignore
//! use tailcar_plugin::{Config, Plugin, Record, Verdict};
//!
//! struct DropDebug;
//!
//! impl Plugin for DropDebug {
//!     fn init(_config: Config) -> Result<Self, String> {
//!         Ok(DropDebug)
//!     }
//!     fn process(&mut self, record: &mut Record<'_>) -> Verdict {
//!         if record.line().starts_with(b"DEBUG") { Verdict::Drop } else { Verdict::Keep }
//!     }
//! }
//!
//! tailcar_plugin::export!(DropDebug);
//! ```
//!
//! Plugins are tested natively with [`testing::Harness`] (`cargo test`, no wasm needed), and built
//! with `cargo build --release --target wasm32-wasip2`.

mod columns;
mod output;
mod record;
pub mod testing;
mod value;

use std::cell::RefCell;
use std::thread::LocalKey;

pub use record::{BatchInfo, Emit, Record, Verdict};
pub use value::Value;

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated code
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "tailcar:plugin/plugin@0.2.0",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "tailcar_plugin::bindings",
    });
}

use bindings::tailcar::plugin::types as wit;

/// A point in time, as the interface carries it: seconds since the Unix epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}

/// The plugin's `config:` from tailcar's YAML, as JSON.
#[derive(Debug, Clone)]
pub struct Config(pub serde_json::Value);

impl Config {
    /// Parses the JSON text tailcar passes to `init`.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text)
            .map(Config)
            .map_err(|e| format!("config is not JSON: {e}"))
    }

    /// A string option, if present.
    pub fn str(&self, key: &str) -> Result<Option<&str>, String> {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("`{key}` must be a string, not {other}")),
        }
    }

    /// An unsigned integer option (numbers, or strings of digits as YAML sometimes gives them).
    pub fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(serde_json::Value::String(s)) if s.parse::<u64>().is_ok() => Ok(s.parse().ok()),
            Some(other) => Err(format!(
                "`{key}` must be a non-negative integer, not {other}"
            )),
        }
    }

    /// A list of strings, given as a YAML list or as one comma-separated string.
    pub fn list(&self, key: &str) -> Result<Option<Vec<String>>, String> {
        match self.0.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            )),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    other => Err(format!("`{key}` must hold strings, not {other}")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(format!("`{key}` must be a list of strings, not {other}")),
        }
    }

    /// Refuses keys other than `known`, so that a typo in the YAML is an error, not a silent
    /// default.
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), String> {
        match &self.0 {
            serde_json::Value::Object(map) => {
                for k in map.keys() {
                    if !known.contains(&k.as_str()) {
                        return Err(format!(
                            "unknown option `{k}` (known: {})",
                            known.join(", ")
                        ));
                    }
                }
                Ok(())
            }
            serde_json::Value::Null => Ok(()),
            other => Err(format!("config must be a mapping, not {other}")),
        }
    }
}

/// A parser or filter. tailcar creates one instance per stream and calls [`Plugin::process`] for
/// each record of each batch, in file order.
pub trait Plugin: Sized + 'static {
    /// Builds the plugin from its configuration; an error refuses it (tailcar reports the message
    /// with the plugin's name and does not start the stream).
    fn init(config: Config) -> Result<Self, String>;

    /// Decides what becomes of one record: keep it (with any changes made through `record`),
    /// drop it, or split it into several.
    fn process(&mut self, record: &mut Record<'_>) -> Verdict;

    /// Called before the records of each batch.
    fn begin_batch(&mut self, _batch: &BatchInfo<'_>) {}
}

/// Log levels for [`log`].
pub use bindings::tailcar::plugin::host::Level;

/// Writes `message` to tailcar's log, tagged with the plugin's name. Outside wasm (in native
/// tests) it goes to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::tailcar::plugin::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

thread_local! {
    static COUNTS: RefCell<Vec<(String, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Adds `delta` to the plugin's counter `name` in tailcar's metrics. Cheap enough to call per
/// record: counts are summed in the plugin and handed to tailcar once per batch. Outside wasm
/// (in native tests) they are kept by [`testing`].
pub fn count(name: &str, delta: u32) {
    COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        match c.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = slot.1.saturating_add(delta),
            None => c.push((name.to_string(), delta)),
        }
    });
}

/// Hands the batch's counts to tailcar.
pub(crate) fn flush_counts() {
    COUNTS.with(|c| {
        for (name, n) in c.borrow_mut().drain(..) {
            if n == 0 {
                continue;
            }
            #[cfg(target_arch = "wasm32")]
            bindings::tailcar::plugin::host::count(&name, n);
            #[cfg(not(target_arch = "wasm32"))]
            testing::record_count(&name, n);
        }
    });
}

#[doc(hidden)]
pub fn __init<P: Plugin>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    config: String,
) -> Result<(), String> {
    let config = Config::parse(if config.trim().is_empty() {
        "{}"
    } else {
        &config
    })?;
    let plugin = P::init(config)?;
    slot.with(|s| *s.borrow_mut() = Some(plugin));
    Ok(())
}

#[doc(hidden)]
pub fn __process<P: Plugin>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    batch: wit::Batch,
) -> Result<wit::Output, String> {
    slot.with(|s| {
        let mut s = s.borrow_mut();
        let plugin = s
            .as_mut()
            .ok_or_else(|| "process called before init".to_string())?;
        output::run(plugin, &batch)
    })
}

/// Exports a [`Plugin`] type as the component's implementation of tailcar's world.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static SLOT: ::std::cell::RefCell<Option<$plugin>> =
                    const { ::std::cell::RefCell::new(None) };
            }
            struct Exports;
            impl $crate::bindings::Guest for Exports {
                fn init(config: String) -> Result<(), String> {
                    $crate::__init::<$plugin>(&SLOT, config)
                }
                fn process(
                    batch: $crate::bindings::tailcar::plugin::types::Batch,
                ) -> Result<$crate::bindings::tailcar::plugin::types::Output, String> {
                    $crate::__process::<$plugin>(&SLOT, batch)
                }
            }
    $crate::bindings::export_world!(Exports with_types_in $crate::bindings);
        };
    };
}
