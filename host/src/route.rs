//! Routing: hands each batch of a stream to the sinks the stream is configured to feed.
//!
//! Every sink gets the same batch (shared, not copied) and its own share of the batch's ack.
//! What happens when a sink's queue is full is the sink's `when_full`: `block` (the default)
//! waits, which is the backpressure that reaches the stream's tailer; `drop_newest` drops the
//! batch for that sink only, counts it, and resolves its share, so a dead sink costs its own
//! records and never stalls the stream or its checkpoints. A sink that has stopped (its queue
//! is closed) gets nothing and its share is dropped unresolved, so the batch's lines are not
//! checkpointed and are read again next start.
//!
//! A plugin may route records ([`Batch::routes`]): then each output gets a copy holding only the
//! records meant for it, and a plugin's dead-letter sink (an output beyond the stream's own
//! sinks) gets only what the plugin sent there.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::checkpoint::Ack;
use crate::event::Batch;
use crate::queue::SinkBatch;
pub use crate::queue::WhenFull;

/// One sink's input queue.
#[derive(Debug, Clone)]
pub struct Output {
    pub sink: Arc<str>,
    pub tx: mpsc::Sender<SinkBatch>,
    pub when_full: WhenFull,
    pub stats: Arc<crate::stats::SinkStats>,
}

/// The outputs of one stream: its sinks first, then the sinks only its plugins route to (their
/// dead-letter sinks).
#[derive(Debug)]
pub struct Router {
    outputs: Vec<Output>,
    /// `outputs[..defaults]` are the stream's sinks: where records without a route go.
    defaults: usize,
}

impl Router {
    pub fn new(outputs: Vec<Output>) -> Self {
        let defaults = outputs.len();
        Router { outputs, defaults }
    }

    /// A router whose first `defaults` outputs are the stream's sinks and the rest reachable
    /// only by a plugin's route.
    pub fn with_extras(outputs: Vec<Output>, defaults: usize) -> Self {
        Router { outputs, defaults }
    }

    /// Sends `batch` to every output, blocking while a queue is full. Must not be called from an
    /// async context (tailers run on their own threads).
    pub fn send(&self, batch: Batch, ack: Ack) {
        if batch.is_empty() {
            ack.delivered();
            return;
        }
        if !batch.is_routed() {
            let batch = Arc::new(batch);
            for out in &self.outputs[..self.defaults] {
                self.deliver(out, Arc::clone(&batch), &ack);
            }
        } else {
            // A plugin chose sinks for some records: each output gets the records meant for it.
            let n = batch.len();
            let mut whole: Option<Arc<Batch>> = None;
            for (j, out) in self.outputs.iter().enumerate().take(64) {
                let bit = 1u64 << j;
                let defaults = self.defaults;
                let goes = |i: usize| match batch.route(i) {
                    0 => j < defaults,
                    m => m & bit != 0,
                };
                let count = (0..n).filter(|&i| goes(i)).count();
                if count == 0 {
                    continue;
                }
                let part = if count == n {
                    Arc::clone(whole.get_or_insert_with(|| Arc::new(batch.subset(|_| true))))
                } else {
                    Arc::new(batch.subset(goes))
                };
                self.deliver(out, part, &ack);
            }
        }
        ack.delivered();
    }

    fn deliver(&self, out: &Output, batch: Arc<Batch>, ack: &Ack) {
        let msg = SinkBatch {
            batch,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FileKey, Ledger};
    use crate::event::Source;
    use std::path::Path;
    use std::time::SystemTime;

    fn output(name: &str) -> (Output, mpsc::Receiver<SinkBatch>) {
        let (tx, rx) = mpsc::channel(4);
        (
            Output {
                sink: name.into(),
                tx,
                when_full: WhenFull::Block,
                stats: Arc::default(),
            },
            rx,
        )
    }

    fn lines(rx: &mut mpsc::Receiver<SinkBatch>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            for r in m.batch.records() {
                out.push(String::from_utf8_lossy(m.batch.line(r)).into_owned());
            }
            m.ack.delivered();
        }
        out
    }

    #[test]
    fn routed_records_reach_only_the_outputs_named_and_the_ack_waits_for_all() {
        let ledger = Ledger::new(vec![]);
        let key = FileKey {
            stream: "s".into(),
            dev: 1,
            inode: 1,
            fingerprint: 0,
            fingerprint_len: 0,
        };
        let id = ledger.register(key, Path::new("/a"), 0).0;
        let (a, mut rx_a) = output("a");
        let (b, mut rx_b) = output("b");
        let (dlq, mut rx_dlq) = output("dlq");
        let router = Router::with_extras(vec![a, b, dlq], 2);
        let mut batch = Batch::new(
            Arc::new(Source {
                stream: "s".into(),
                path: "/a".into(),
                file_id: None,
            }),
            SystemTime::now(),
        );
        for (i, l) in ["both", "only-b", "dead", "a-and-dead"].iter().enumerate() {
            batch.push_line(l.as_bytes(), (i + 1) as u64 * 10, 0);
        }
        batch.set_routes(vec![0, 0b010, 0b100, 0b101]);
        router.send(batch, ledger.issue(id, 40));
        assert_eq!(lines(&mut rx_a), ["both", "a-and-dead"]);
        assert_eq!(lines(&mut rx_b), ["both", "only-b"]);
        assert_eq!(lines(&mut rx_dlq), ["dead", "a-and-dead"]);
        assert_eq!(ledger.committed(id), Some(40));

        // Without routes, the extra output gets nothing.
        let mut plain = Batch::new(
            Arc::new(Source {
                stream: "s".into(),
                path: "/a".into(),
                file_id: None,
            }),
            SystemTime::now(),
        );
        plain.push_line(b"x", 50, 0);
        router.send(plain, ledger.issue(id, 50));
        assert_eq!(lines(&mut rx_a), ["x"]);
        assert_eq!(lines(&mut rx_b), ["x"]);
        assert!(lines(&mut rx_dlq).is_empty());
        assert_eq!(ledger.committed(id), Some(50));
    }
}
