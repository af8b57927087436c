//! The `file` sink: appends records to a file (creating it and its directory). A batch is
//! acknowledged once written to the kernel; with `fsync: true`, once on disk.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::util::{encode::Format, writer};
use super::{SinkBatch, SinkExit};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file to append to.
    pub path: PathBuf,
    /// `raw` (the line as written) or `json`.
    #[serde(default)]
    pub format: Format,
    /// Acknowledge only after `fsync` (survives a node crash, costs a disk flush per write).
    #[serde(default)]
    pub fsync: bool,
}

impl super::Sink for FileConfig {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn spawn(
        &self,
        name: Arc<str>,
        input: mpsc::Receiver<SinkBatch>,
        exit: mpsc::UnboundedSender<SinkExit>,
        ctx: &crate::sinks::SinkContext,
    ) -> anyhow::Result<()> {
        let stats = ctx.stats(&name);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating directory {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {} for appending", self.path.display()))?;
        let sync = if self.fsync {
            let f = file.try_clone().context("duplicating file handle")?;
            Some(Box::new(move || f.sync_data()) as Box<dyn FnMut() -> std::io::Result<()> + Send>)
        } else {
            None
        };
        let what = format!("file {}", self.path.display());
        let dest = writer::Destination {
            what,
            writer: file,
            format: self.format,
            sync,
        };
        writer::spawn(name, dest, input, exit, stats)
    }

    fn describe(&self) -> String {
        format!("file {}, format {}", self.path.display(), self.format)
    }
}
