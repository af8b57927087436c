//! Sources: where records enter the pipeline. Today there is one, [`file`], the tailer. A source
//! hands each batch it reads, with the ack that commits its offsets once every sink has it, to a
//! [`Downstream`] it is given; it never knows what runs after it.

pub mod file;

use crate::checkpoint::Ack;
use crate::event::Batch;

/// Where a source hands its batches. Called on the source's thread; it may block, and that is
/// how backpressure reaches the reading. Dropping it tells everything after it that the
/// source is done.
pub trait Downstream: Send {
    fn send(&mut self, batch: Batch, ack: Ack);
}
