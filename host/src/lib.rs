//! tailcar: a sidecar that tails the log files an application writes and ships every line where
//! it belongs.
//!
//! The data flows one way, and the modules follow it:
//!
//! - [`sources::file`]: discover, watch, read, frame (and join multiline) files → [`event::Batch`]
//! - [`transforms`]: parsers fill typed fields, enrichment adds fields (filters and WASM plugins
//!   plug in here too: later work)
//! - [`route`]: hand each batch to the stream's sinks, blocking when one is full (backpressure)
//! - [`sinks`]: deliver (`stdout`, `file`), then resolve the batch's ack
//! - [`checkpoint`]: acks flow back to the ledger, which commits offsets in read order; the store
//!   persists them atomically
//!
//! [`config`] loads and validates the YAML (or the `tail` flags); [`app`] builds the topology,
//! runs it, and owns shutdown. The binary (`main.rs`) only parses the command line.

pub mod app;
pub mod checkpoint;
pub mod config;
pub mod event;
pub mod route;
pub mod shutdown;
pub mod sinks;
pub mod sources;
pub mod stats;
pub mod transforms;
