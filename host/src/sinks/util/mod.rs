//! What sinks share: encodings of records, and the loop of sinks that write to a file
//! descriptor.

pub mod encode;
pub mod writer;
