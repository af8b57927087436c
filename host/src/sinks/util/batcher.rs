//! Batching for remote sinks: gathers the records of routed batches into requests of at most
//! `max_records` records and about `max_bytes` bytes, or whatever arrived within `timeout`.
//!
//! A routed batch may be split across requests: each request holds [`Part`]s (a record range of
//! a batch) with their own share of the batch's ack, so a batch is acknowledged only when every
//! request carrying some of it is delivered.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::checkpoint::Ack;
use crate::event::Batch;
use crate::queue::SinkBatch;

/// Bytes counted per record on top of its line (fields, metadata, framing): an estimate.
const RECORD_OVERHEAD: usize = 64;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most records per request.
    #[serde(default = "max_records", deserialize_with = "crate::units::de_count")]
    pub max_records: usize,
    /// About the most bytes per request (before compression).
    #[serde(
        default = "max_bytes",
        deserialize_with = "crate::units::de_buffer_size"
    )]
    pub max_bytes: u64,
    /// Longest a record waits for its request to fill.
    #[serde(default = "timeout", deserialize_with = "crate::units::de_interval")]
    pub timeout: Duration,
}

fn max_records() -> usize {
    1000
}
fn max_bytes() -> u64 {
    1024 * 1024
}
fn timeout() -> Duration {
    Duration::from_secs(1)
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_records: max_records(),
            max_bytes: max_bytes(),
            timeout: timeout(),
        }
    }
}

/// Some records of one routed batch, with a share of its ack.
#[derive(Debug)]
pub struct Part {
    pub batch: Arc<Batch>,
    pub range: Range<usize>,
    pub ack: Ack,
}

/// The records of one request.
#[derive(Debug, Default)]
pub struct Request {
    pub parts: Vec<Part>,
    pub records: usize,
    pub bytes: usize,
}

/// Cuts routed batches into requests.
#[derive(Debug)]
pub struct Batcher {
    config: BatchConfig,
    open: Request,
}

impl Batcher {
    pub fn new(config: BatchConfig) -> Self {
        Batcher {
            config,
            open: Request::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.open.parts.is_empty()
    }

    /// Adds a routed batch; returns the requests that became full.
    pub fn add(&mut self, sb: SinkBatch) -> Vec<Request> {
        let mut full = Vec::new();
        let n = sb.batch.len();
        let mut start = 0;
        let mut i = 0;
        while i < n {
            let size = sb.batch.records()[i].len as usize + RECORD_OVERHEAD;
            let over_records = self.open.records + (i - start) + 1 > self.config.max_records;
            let over_bytes = self.open.bytes + size > self.config.max_bytes as usize;
            if (over_records || over_bytes) && (self.open.records > 0 || i > start) {
                if i > start {
                    self.push_part(&sb, start..i);
                    start = i;
                }
                full.push(std::mem::take(&mut self.open));
                continue;
            }
            self.open.bytes += size;
            i += 1;
        }
        if start < n {
            self.push_part(&sb, start..n);
        }
        sb.ack.delivered(); // every record is now carried by a part with its own share
        full
    }

    fn push_part(&mut self, sb: &SinkBatch, range: Range<usize>) {
        self.open.records += range.len();
        self.open.parts.push(Part {
            batch: Arc::clone(&sb.batch),
            range,
            ack: sb.ack.share(),
        });
    }

    /// The open request, if it has records.
    pub fn take(&mut self) -> Option<Request> {
        (!self.open.parts.is_empty()).then(|| std::mem::take(&mut self.open))
    }

    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FileKey, Ledger};
    use crate::event::Source;
    use std::path::Path;
    use std::time::SystemTime;

    fn routed(ledger: &Arc<Ledger>, lines: usize, len: usize) -> SinkBatch {
        let key = FileKey {
            stream: "s".into(),
            dev: 1,
            inode: 1,
            fingerprint: 0,
            fingerprint_len: 0,
        };
        let id = ledger
            .candidates("s", 1, 1)
            .first()
            .map(|c| c.0)
            .unwrap_or_else(|| ledger.register(key, Path::new("/a"), 0).0);
        let mut b = Batch::new(
            Arc::new(Source {
                stream: "s".into(),
                path: "/a".into(),
                file_id: None,
            }),
            SystemTime::now(),
        );
        let line = vec![b'x'; len];
        for i in 0..lines {
            b.push_line(&line, (i + 1) as u64, 0);
        }
        let end = b.end_offset().unwrap();
        SinkBatch {
            batch: Arc::new(b),
            ack: ledger.issue(id, end),
        }
    }

    #[test]
    fn splits_by_records_and_acks_only_when_every_part_is_delivered() {
        let ledger = Ledger::new(vec![]);
        let mut batcher = Batcher::new(BatchConfig {
            max_records: 4,
            ..Default::default()
        });
        let full = batcher.add(routed(&ledger, 10, 10));
        assert_eq!(
            full.iter().map(|r| r.records).collect::<Vec<_>>(),
            vec![4, 4]
        );
        let rest = batcher.take().unwrap();
        assert_eq!(rest.records, 2);
        assert_eq!(rest.parts[0].range, 8..10);
        let id = ledger.candidates("s", 1, 1)[0].0;
        let mut requests: Vec<Request> = full.into_iter().chain([rest]).collect();
        for p in requests.remove(0).parts {
            p.ack.delivered();
        }
        for p in requests.remove(1).parts {
            p.ack.delivered();
        }
        assert_eq!(
            ledger.committed(id),
            Some(0),
            "the middle request is not delivered yet"
        );
        for p in requests.remove(0).parts {
            p.ack.delivered();
        }
        assert_eq!(ledger.committed(id), Some(10));
    }

    #[test]
    fn splits_by_bytes_and_joins_small_batches() {
        let ledger = Ledger::new(vec![]);
        let mut batcher = Batcher::new(BatchConfig {
            max_bytes: 1000,
            ..Default::default()
        });
        assert!(batcher.add(routed(&ledger, 2, 100)).is_empty());
        assert!(
            batcher.add(routed(&ledger, 2, 100)).is_empty(),
            "4 x 164 bytes fit"
        );
        let full = batcher.add(routed(&ledger, 3, 100));
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].records, 6);
        assert_eq!(full[0].parts.len(), 3);
        assert_eq!(batcher.take().unwrap().records, 1);
    }
}
