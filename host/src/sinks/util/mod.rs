//! What sinks share: encodings of records, the loop of sinks that write to a file descriptor,
//! and the delivery core of remote sinks (batching, HTTP client, retries, delivery loop).

pub mod batcher;
pub mod delivery;
pub mod encode;
pub mod http;
pub mod retry;
pub mod writer;
