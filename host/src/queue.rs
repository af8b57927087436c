//! A sink's input queue, the meeting point of the two halves of a pipeline: what travels on it
//! ([`SinkBatch`]), how long it is ([`QUEUE_BATCHES`]) and what a writer does when it is full
//! ([`WhenFull`]). The router (above the sources) writes to it and the sinks read from it;
//! it sits below both so that neither imports the other.

use std::sync::Arc;

use serde::Deserialize;

use crate::checkpoint::Ack;
use crate::event::Batch;

/// Queue length, in batches, of each sink's input.
pub const QUEUE_BATCHES: usize = 8;

/// A batch routed to one sink, with that sink's share of the ack.
#[derive(Debug)]
pub struct SinkBatch {
    pub batch: Arc<Batch>,
    pub ack: Ack,
}

/// What to do when a sink's queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait: the stream's tailer stops reading until the sink catches up.
    #[default]
    Block,
    /// Drop the batch for this sink (counted), and go on.
    DropNewest,
}
