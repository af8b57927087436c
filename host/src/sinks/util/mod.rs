//! What sinks share: encodings of records, the loop of sinks that write to a file descriptor,
//! the delivery core of remote sinks (batching, retries, delivery loop) and what their
//! transports use (HTTP client, TCP/TLS/UDP connections, per-record templates).

pub mod batcher;
pub mod delivery;
pub mod encode;
pub mod http;
pub mod net;
pub mod retry;
pub mod template;
pub mod writer;
