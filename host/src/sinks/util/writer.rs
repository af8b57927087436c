//! The loop shared by sinks that write to a file descriptor (stdout, files): a dedicated thread
//! drains the sink's queue into a large buffer, flushes it, and only then resolves the acks of
//! the batches it wrote, so an acknowledged line has been handed to the kernel.

use std::io::{BufWriter, Write};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use super::encode::{Format, encode_batch};
use crate::sinks::{SinkBatch, SinkExit};
use crate::stats::SinkStats;

/// Buffer size: large writes keep syscalls (and pipe wake-ups) few.
const BUFFER: usize = 256 * 1024;
/// Batches written before a flush even if more are queued, to bound ack latency.
const MAX_BATCHES_PER_FLUSH: usize = 32;

/// Where a writer sink writes, and how.
pub struct Destination<W> {
    /// Names the destination in errors ("stdout", "file /x/y.log").
    pub what: String,
    pub writer: W,
    pub format: Format,
    /// Called after each flush (`fsync` for files that ask for it).
    pub sync: Option<Box<dyn FnMut() -> std::io::Result<()> + Send>>,
}

/// Runs a writer sink on its own thread named `sink-NAME`.
pub fn spawn<W: Write + Send + 'static>(
    name: Arc<str>,
    dest: Destination<W>,
    mut input: mpsc::Receiver<SinkBatch>,
    exit: mpsc::UnboundedSender<SinkExit>,
    stats: Arc<SinkStats>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || {
            let Destination {
                what,
                writer,
                format,
                sync,
            } = dest;
            let component = format!("sink {name}");
            let armed = crate::supervise::failpoint(&format!("sink-panic:{name}"));
            let result = match crate::supervise::catch(&component, || {
                run(&mut input, writer, format, sync, &stats, armed)
            }) {
                Ok(written) => written.with_context(|| format!("writing to {what}")),
                Err(panicked) => Err(panicked.into()),
            };
            // Close the queue so senders see the sink has stopped instead of blocking on it.
            input.close();
            let _ = exit.send(SinkExit { sink: name, result });
        })
        .context("spawning sink thread")?;
    Ok(())
}

fn run<W: Write>(
    input: &mut mpsc::Receiver<SinkBatch>,
    writer: W,
    format: Format,
    mut sync: Option<Box<dyn FnMut() -> std::io::Result<()> + Send>>,
    stats: &SinkStats,
    failpoint: bool,
) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(BUFFER, writer);
    let mut acks = Vec::with_capacity(MAX_BATCHES_PER_FLUSH);
    while let Some(first) = input.blocking_recv() {
        assert!(!failpoint, "fail point sink-panic at the first batch");
        encode_batch(&first.batch, format, &mut out)?;
        acks.push((first.ack, first.batch.len() as u64));
        while acks.len() < MAX_BATCHES_PER_FLUSH {
            let Ok(next) = input.try_recv() else { break };
            encode_batch(&next.batch, format, &mut out)?;
            acks.push((next.ack, next.batch.len() as u64));
        }
        out.flush()?;
        if let Some(sync) = sync.as_mut() {
            sync()?;
        }
        let mut records = 0u64;
        for (ack, n) in acks.drain(..) {
            ack.delivered();
            records += n;
        }
        SinkStats::add(&stats.delivered, records);
    }
    Ok(())
}
