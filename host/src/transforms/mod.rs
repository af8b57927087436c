//! Transforms: what happens to a stream's batches between framing and routing — parsers that
//! fill typed fields from the line, enrichment, filters, and WebAssembly plugins ([`wasm`]).
//!
//! A transform works on a whole [`Batch`] at a time, on the stream's own thread. It may set
//! fields and drop records ([`Batch::retain`]); a plugin may also rewrite, split and route them.
//! None changes which bytes of the file the batch covers, so the batch's acknowledgement (issued
//! for its end offset before the chain runs) still commits lines that a filter dropped. A line a parser cannot parse is kept, with a
//! `parse_error` field, and counted: nothing is dropped silently.

pub mod enrich;
pub mod fields;
pub mod filters;
pub mod parsers;
pub mod time;
pub mod wasm;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::event::Batch;
use crate::stats::StreamStats;

/// One step of a stream's chain.
pub trait Transform: Send {
    /// Transforms `batch` in place, counting what it did into `stats`.
    fn process(&mut self, batch: &mut Batch, stats: &StreamStats);
}

/// A validated transform configuration, built into a [`Transform`] when the stream starts.
#[derive(Debug, Clone)]
pub enum TransformSpec {
    Parser(parsers::Parser),
    AddFields(fields::AddFields),
    Filter(filters::Filter),
    Enrich(Box<enrich::Enrich>),
    Plugin(Arc<wasm::PluginSpec>),
}

/// What a stream's transforms need to know about where they run.
#[derive(Debug, Clone)]
pub struct ChainContext {
    pub stream: Arc<str>,
    /// Where plugins find their counters.
    pub telemetry: Arc<crate::stats::telemetry::Telemetry>,
    /// The router's outputs, for plugins that route records.
    pub routes: wasm::convert::RouteTable,
}

impl TransformSpec {
    /// A one-line description for `tailcar check`.
    pub fn describe(&self) -> String {
        match self {
            TransformSpec::Parser(p) => format!("parser: {}", p.describe()),
            TransformSpec::Filter(f) => format!("filter: {}", f.describe()),
            TransformSpec::Enrich(e) => format!("enrich: {}", e.describe()),
            TransformSpec::Plugin(p) => format!(
                "plugin {}: {} (memory {} MiB, deadline {}, on_error {:?}{})",
                p.name,
                p.path.display(),
                p.limits.memory >> 20,
                humantime::format_duration(p.limits.deadline),
                p.on_error,
                if p.loaded.from_cache {
                    ", compiled: cached"
                } else {
                    ""
                }
            )
            .to_lowercase(),
            TransformSpec::AddFields(f) => {
                let keys: Vec<&str> = f.fields.keys().map(String::as_str).collect();
                format!("fields: {}", keys.join(", "))
            }
        }
    }

    pub fn build(&self, ctx: &ChainContext) -> Box<dyn Transform> {
        match self {
            TransformSpec::Plugin(p) => Box::new(wasm::transform::WasmPlugin::new(
                Arc::clone(p),
                Arc::clone(&ctx.stream),
                ctx.routes.clone(),
                ctx.telemetry.plugin(&ctx.stream, &p.name),
            )),
            TransformSpec::Parser(p) => Box::new(p.clone()),
            TransformSpec::AddFields(f) => Box::new(f.clone()),
            TransformSpec::Filter(f) => Box::new(f.clone()),
            TransformSpec::Enrich(e) => Box::new((**e).clone()),
        }
    }
}

/// The top-level field names a stream's records can carry after its transforms, as far as the
/// configuration tells; see [`field_names`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldNames {
    names: BTreeSet<String>,
    /// Families of names (`column_` for the extra columns of a CSV line).
    prefixes: Vec<String>,
}

impl FieldNames {
    /// Whether a record may have the field `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name) || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }

    /// Whether a template's `{name}` can be filled: the field itself, or for `{a.b}` the object
    /// `a` it reaches into.
    pub fn fills(&self, name: &str) -> bool {
        self.contains(name)
            || name
                .split_once('.')
                .is_some_and(|(top, _)| self.contains(top))
    }

    /// The names, for messages (`a, b, column_*`).
    pub fn describe(&self) -> String {
        let mut all: Vec<String> = self.names.iter().cloned().collect();
        all.extend(self.prefixes.iter().map(|p| format!("{p}*")));
        if all.is_empty() {
            "no fields".into()
        } else {
            all.join(", ")
        }
    }

    fn insert(&mut self, name: &str) {
        self.names.insert(name.to_string());
    }
}

/// The fields records can have after `specs` run: `None` when one of them can set any name (a
/// `json` or `logfmt` parser, a plugin), so that nothing can be said.
pub fn field_names(specs: &[TransformSpec]) -> Option<FieldNames> {
    let mut out = FieldNames::default();
    for spec in specs {
        match spec {
            TransformSpec::Parser(p) => {
                let (names, prefix) = p.field_names()?;
                for n in names {
                    out.insert(n);
                }
                out.prefixes.extend(prefix.map(String::from));
                out.insert(parsers::PARSE_ERROR);
            }
            TransformSpec::AddFields(f) => f.fields.keys().for_each(|k| out.insert(k)),
            TransformSpec::Enrich(e) => e.field_names().into_iter().for_each(|k| out.insert(k)),
            TransformSpec::Plugin(_) => return None,
            TransformSpec::Filter(f) => match f {
                filters::Filter::DropFields(names) => {
                    for n in names {
                        out.names.remove(n);
                    }
                }
                filters::Filter::KeepFields(names) => {
                    let kept = names.iter().filter(|n| out.contains(n)).cloned().collect();
                    out = FieldNames {
                        names: kept,
                        prefixes: Vec::new(),
                    };
                }
                filters::Filter::Rename(pairs) => {
                    for (from, to) in pairs {
                        if out.contains(from) {
                            out.names.remove(from);
                            out.insert(to);
                        }
                    }
                }
                filters::Filter::Grep { .. } | filters::Filter::Throttle { .. } => {}
            },
        }
    }
    Some(out)
}

/// Runs every transform of a stream, in order.
pub struct Chain(Vec<Box<dyn Transform>>);

impl Chain {
    pub fn new(specs: &[TransformSpec], ctx: &ChainContext) -> Self {
        Chain(specs.iter().map(|s| s.build(ctx)).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn process(&mut self, batch: &mut Batch, stats: &StreamStats) {
        for t in &mut self.0 {
            if batch.is_empty() {
                return;
            }
            t.process(batch, stats);
        }
    }
}
