//! Routing: hands each batch of a stream to the sinks the stream is configured to feed.
//!
//! Every sink gets the same batch (shared, not copied) and its own share of the batch's ack.
//! Sending blocks while a sink's queue is full: that is the backpressure that reaches the
//! stream's tailer. A sink that has stopped (its queue is closed) gets nothing and its share is
//! dropped unresolved, so the batch's lines are not checkpointed and are read again next start.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::checkpoint::Ack;
use crate::event::Batch;
use crate::sinks::SinkBatch;

/// One sink's input queue.
#[derive(Debug, Clone)]
pub struct Output {
    pub sink: Arc<str>,
    pub tx: mpsc::Sender<SinkBatch>,
}

/// The outputs of one stream.
#[derive(Debug)]
pub struct Router {
    outputs: Vec<Output>,
}

impl Router {
    pub fn new(outputs: Vec<Output>) -> Self {
        Router { outputs }
    }

    /// Sends `batch` to every output, blocking while a queue is full. Must not be called from an
    /// async context (tailers run on their own threads).
    pub fn send(&self, batch: Batch, ack: Ack) {
        if batch.is_empty() {
            ack.delivered();
            return;
        }
        let batch = Arc::new(batch);
        for out in &self.outputs {
            let msg = SinkBatch {
                batch: Arc::clone(&batch),
                ack: ack.share(),
            };
            if out.tx.blocking_send(msg).is_err() {
                tracing::debug!(sink = %out.sink, "sink has stopped; batch not delivered to it");
            }
        }
        ack.delivered();
    }
}
