//! tailcar: a sidecar that tails the log files an application writes and ships every line where
//! it belongs.
//!
//! The data flows one way, and the modules follow it:
//!
//! - [`sources::file`]: discover, watch, read, frame (and join multiline) files → [`event::Batch`]
//! - [`transforms`]: parsers fill typed fields, filters drop, enrichment adds fields, WASM
//!   plugins do any of it sandboxed
//! - [`route`]: hand each batch to the stream's sinks, blocking when one is full (backpressure)
//! - [`sinks`]: deliver (`stdout`, `file`, `http`, `elasticsearch`, `loki`), then resolve the
//!   batch's ack
//! - [`checkpoint`]: acks flow back to the ledger, which commits offsets in read order; the store
//!   persists them atomically
//!
//! [`config`] loads and validates the YAML (or the `tail` flags); [`app`] builds the topology,
//! runs it, reloads it, and owns shutdown, with every thread and task under [`supervise`]'s
//! rule (a panic is caught, named, counted and fails the run); [`admin`] serves metrics,
//! health and reload over HTTP; [`inject`] adds tailcar sidecars to Kubernetes workloads. The binary (`main.rs`) only
//! parses the command line.

pub mod admin;
pub mod app;
pub mod checkpoint;
pub mod config;
pub mod event;
pub mod inject;
#[cfg(test)]
mod layering;
pub mod queue;
pub mod route;
pub mod shutdown;
pub mod sinks;
pub mod sources;
pub mod stats;
pub mod stream;
pub mod supervise;
pub mod transforms;
pub mod units;
