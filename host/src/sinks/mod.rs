//! Sinks: where batches leave tailcar. One folder per sink (its config and implementation),
//! with what they share in [`util`].
//!
//! A sink consumes its bounded input queue of [`SinkBatch`]es and resolves each batch's
//! [`Ack`] share once that batch is delivered, at whatever time delivery is known (right after a
//! write for stdout and file; after an HTTP response for remote sinks). When its queue is closed
//! and drained it reports [`SinkExit`] and stops; on an error it cannot recover from (stdout
//! closed) it reports the error, and the application shuts down.

pub mod file;
pub mod stdout;
pub mod util;

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;

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

/// How a sink's run ended.
#[derive(Debug)]
pub struct SinkExit {
    pub sink: Arc<str>,
    pub result: anyhow::Result<()>,
}

/// The configuration of one sink, by `type`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// tailcar's standard output.
    Stdout(stdout::StdoutConfig),
    /// Appends to a file.
    File(file::FileConfig),
}

impl SinkConfig {
    /// Starts the sink reading `input`; it reports on `exit` when it stops.
    pub fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
    ) -> anyhow::Result<()> {
        match self {
            SinkConfig::Stdout(c) => c.spawn(name, input, exit),
            SinkConfig::File(c) => c.spawn(name, input, exit),
        }
    }

    /// A one-line description for `tailcar check`.
    pub fn describe(&self) -> String {
        match self {
            SinkConfig::Stdout(c) => format!("stdout, format {}", c.format),
            SinkConfig::File(c) => format!("file {}, format {}", c.path.display(), c.format),
        }
    }
}
