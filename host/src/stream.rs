//! A stream between its tailer and its sinks: the [`Pipeline`] a source hands each batch to.
//!
//! tail → frame (in [`crate::sources`]) → **transform chain → router** (here) → sink queues.
//! The source issues each batch's ack for the offset it read up to and hands both to the
//! pipeline, which runs the stream's transforms (parsers, filters, enrichment, plugins) on the
//! batch and routes what is left to the stream's sinks. It runs on the source's thread: a sink
//! whose queue is full (`when_full: block`) blocks the router, and so the reading of that
//! stream's files, and nothing else. A batch the transforms empty resolves its ack at once,
//! since its lines were read and dealt with.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::checkpoint::Ack;
use crate::event::Batch;
use crate::route::Router;
use crate::sources::Downstream;
use crate::stats::StreamStats;
use crate::transforms::Chain;

/// One stream's transforms and routing.
pub struct Pipeline {
    chain: Chain,
    router: Router,
    stats: Arc<StreamStats>,
}

impl Pipeline {
    pub fn new(chain: Chain, router: Router, stats: Arc<StreamStats>) -> Self {
        Pipeline {
            chain,
            router,
            stats,
        }
    }
}

impl Downstream for Pipeline {
    fn send(&mut self, mut batch: Batch, ack: Ack) {
        self.chain.process(&mut batch, &self.stats);
        self.stats.beat();
        // While the router blocks on a full queue, health reports the stream as held back by
        // its sinks, not as stuck.
        self.stats.waiting_on_sinks.store(true, Ordering::Relaxed);
        self.router.send(batch, ack);
        self.stats.waiting_on_sinks.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::SystemTime;

    use tokio::sync::mpsc;

    use super::*;
    use crate::checkpoint::{FileKey, Ledger};
    use crate::event::Source;
    use crate::queue::{SinkBatch, WhenFull};
    use crate::route::Output;
    use crate::transforms::filters::FilterSpec;
    use crate::transforms::wasm::convert::RouteTable;
    use crate::transforms::{ChainContext, TransformSpec};

    fn batch(lines: &[&str], first_offset: u64) -> Batch {
        let mut b = Batch::new(
            Arc::new(Source {
                stream: "s".into(),
                path: "/a".into(),
                file_id: None,
            }),
            SystemTime::now(),
        );
        for (i, l) in lines.iter().enumerate() {
            b.push_line(l.as_bytes(), first_offset + (i as u64 + 1) * 10, 0);
        }
        b
    }

    fn received(rx: &mut mpsc::Receiver<SinkBatch>) -> Vec<String> {
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
    fn the_chain_runs_before_routing_and_the_ack_covers_what_it_dropped() {
        let ledger = Ledger::new(vec![]);
        let key = FileKey {
            stream: "s".into(),
            dev: 1,
            inode: 1,
            fingerprint: 0,
            fingerprint_len: 0,
        };
        let id = ledger.register(key, Path::new("/a"), 0).0;
        let filter: FilterSpec =
            serde_yaml::from_str("grep: { exclude: { line: '^drop' } }").unwrap();
        let ctx = ChainContext {
            stream: "s".into(),
            telemetry: Arc::default(),
            routes: RouteTable {
                names: vec!["out".into()],
                defaults: 1,
            },
        };
        let specs = [TransformSpec::Filter(filter.0.build().unwrap())];
        let (tx, mut rx) = mpsc::channel(4);
        let stats = Arc::new(StreamStats::default());
        let mut pipeline = Pipeline::new(
            Chain::new(&specs, &ctx),
            Router::new(vec![Output {
                sink: "out".into(),
                tx,
                when_full: WhenFull::Block,
                stats: Arc::default(),
            }]),
            Arc::clone(&stats),
        );

        pipeline.send(
            batch(&["keep 1", "drop 2", "keep 3"], 0),
            ledger.issue(id, 30),
        );
        assert_eq!(ledger.committed(id), Some(0), "not delivered yet");
        assert_eq!(received(&mut rx), ["keep 1", "keep 3"]);
        assert_eq!(ledger.committed(id), Some(30));

        // A batch the chain empties reaches no sink and is acknowledged at once.
        pipeline.send(batch(&["drop 4", "drop 5"], 30), ledger.issue(id, 50));
        assert!(received(&mut rx).is_empty());
        assert_eq!(ledger.committed(id), Some(50));
        assert_eq!(stats.filtered.load(Ordering::Relaxed), 3);
        assert!(!stats.waiting_on_sinks.load(Ordering::Relaxed));
    }
}
