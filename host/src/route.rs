//! Routing: hands each batch of a stream to the sinks the stream is configured to feed.
//!
//! Every sink gets the same batch (shared, not copied) and its own share of the batch's ack.
//! What happens when a sink's queue is full is the sink's `when_full`: `block` (the default)
//! waits, which is the backpressure that reaches the stream's tailer; `drop_newest` drops the
//! batch for that sink only, counts it, and resolves its share, so a dead sink costs its own
//! records and never stalls the stream or its checkpoints. A sink that has stopped (its queue
//! is closed) gets nothing and its share is dropped unresolved, so the batch's lines are not
//! checkpointed and are read again next start.

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::checkpoint::Ack;
use crate::event::Batch;
use crate::sinks::SinkBatch;

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

/// One sink's input queue.
#[derive(Debug, Clone)]
pub struct Output {
    pub sink: Arc<str>,
    pub tx: mpsc::Sender<SinkBatch>,
    pub when_full: WhenFull,
    pub stats: Arc<crate::stats::SinkStats>,
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
            let sent = match out.when_full {
                WhenFull::Block => out.tx.blocking_send(msg).map_err(|e| e.0),
                WhenFull::DropNewest => match out.tx.try_send(msg) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(msg)) => {
                        let n = msg.batch.len() as u64;
                        if out
                            .stats
                            .dropped
                            .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
                            == 0
                        {
                            tracing::warn!(sink = %out.sink, "sink queue full; dropping records for this sink (when_full: drop_newest)");
                        }
                        msg.ack.delivered();
                        Ok(())
                    }
                    Err(mpsc::error::TrySendError::Closed(msg)) => Err(msg),
                },
            };
            if sent.is_err() {
                tracing::debug!(sink = %out.sink, "sink has stopped; batch not delivered to it");
            }
        }
        ack.delivered();
    }
}
