//! The `stdout` sink: tailcar's standard output, so `kubectl logs POD -c CONTAINER` shows the
//! stream. Writes go straight to file descriptor 1 through a large buffer (not Rust's
//! line-buffered `Stdout`), and when stdout is a pipe its capacity is raised to 1 MiB so the
//! reader is woken less often. A write error (EPIPE: the reader went away) stops the sink with
//! an error, and tailcar shuts down with that message.

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::{encode::Format, writer};
use super::{SinkBatch, SinkExit};

/// Pipe capacity asked for when stdout is a pipe (Linux's default maximum for unprivileged
/// processes, `/proc/sys/fs/pipe-max-size`).
const PIPE_SIZE: usize = 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// `raw` (the line as written) or `json`.
    #[serde(default)]
    pub format: Format,
}

impl super::Sink for StdoutConfig {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &crate::sinks::SinkContext,
    ) -> anyhow::Result<()> {
        let stats = ctx.stats(&name);
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stdout")?;
        // Best effort: fails harmlessly when stdout is not a pipe or the limit is lower.
        let _ = rustix::pipe::fcntl_setpipe_size(&fd, PIPE_SIZE);
        writer::spawn(
            name,
            writer::Destination {
                what: "stdout".into(),
                writer: File::from(fd),
                format: self.format,
                sync: None,
            },
            input,
            exit,
            stats,
        )
    }

    fn describe(&self) -> String {
        format!("stdout, format {}", self.format)
    }
}
