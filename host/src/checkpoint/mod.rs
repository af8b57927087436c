//! Acknowledgements and checkpoints: the only data that flows backwards through the pipeline.
//!
//! The tailer asks the [`Ledger`] for an [`Ack`] for every batch it sends. Each sink the batch is
//! routed to holds a share of that ack and resolves it once its copy is delivered (written, or
//! answered 2xx, ...). When every share is resolved the ledger learns the batch is done; a file's
//! committed offset advances over the longest run of done batches in read order, so an offset is
//! never committed while an earlier line is still in flight. The [`store`] persists the
//! committed offsets to disk atomically, at most every `checkpoint_interval` and on shutdown;
//! the [`lock`] keeps a second tailcar out of the same directory.

pub mod ledger;
pub mod lock;
pub mod store;

pub use ledger::{Ack, FileId, FileKey, InFlight, Ledger, Tail};
pub use lock::DirLock;
pub use store::{CheckpointStore, Entry};
