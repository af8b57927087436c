//! The application: runs a validated configuration, reloads it, and owns signals, shutdown and
//! the run's outcome. One start of a configuration is a [`topology::RunningTopology`] (start,
//! wait for it to end, drain within the grace period); this module decides when to stop it
//! and what comes next (exit, or a reload: drain, then start the new one from the checkpoints).
//!
//! Threads: one per stream (the tailer, see [`crate::sources::file`]), one per writer sink, one
//! checkpoint writer, and a one-worker tokio runtime for signals, the remote sinks and the admin
//! endpoint.
//!
//! Reload (SIGHUP, or `POST /reload` on the admin endpoint): the configuration file is read and
//! validated again (plugins included); a bad one is refused with its error and the running
//! topology goes on untouched. A good one replaces the running topology the way a restart
//! would, without the process exiting: everything in flight is drained and checkpointed, then
//! the new topology starts from the checkpoints, so every stream (changed or not) resumes at
//! its position. The admin endpoint and the counters live on across reloads.
//! Shutdown (SIGTERM/SIGINT, the end of `--once`, or a sink failing): the tailers stop reading
//! and emit their pending partial and multiline records; dropping their routers closes the sink
//! queues; the sinks drain, deliver and resolve their acks; the checkpoints are written one last
//! time. All within the grace period: what is left after it is logged, and the checkpoints
//! still hold only acknowledged offsets.
//!
//! Supervision ([`crate::supervise`]): a stream, sink or checkpointer that panics is logged,
//! counted and reported by `/healthz`, and the run ends as [`Outcome::Failed`] (exit code 70)
//! after draining what the others hold. The run's account ([`summary`]) is logged last and
//! decides the outcome: "everything read was delivered" only when it is true.

pub mod summary;
pub mod topology;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::admin::{self, ReloadRequest};
use crate::config::{Config, Topology};
use crate::stats::telemetry::{ReportSettings, Telemetry};
use summary::{Summary, Verdict};
use topology::RunningTopology;

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Everything read was delivered (or dead-lettered) and checkpointed.
    Drained,
    /// Records were rejected for good or dropped (`when_full: drop_newest`) with no dead-letter
    /// sink to take them: counted in the summary, and lost.
    Lost(u64),
    /// The grace period ran out (or a second signal came) with lines in flight, or some lines
    /// read were never acknowledged; they will be read again after a restart.
    Incomplete,
    /// A sink failed (for example stdout was closed), or a component panicked (the error is
    /// then a [`Panicked`](crate::supervise::Panicked)).
    Failed(anyhow::Error),
}

/// Runs `topology` until a signal, or with `once` until every file has been read to its end.
/// With `config_path`, SIGHUP and `POST /reload` reload the configuration from it.
pub fn run(topology: Topology, once: bool, config_path: Option<PathBuf>) -> Result<Outcome> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tailcar-rt")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = rt.block_on(run_async(topology, once, config_path));
    // Threads stuck on a dead sink must not hold the process: do not wait for them.
    rt.shutdown_background();
    outcome
}

/// The signals tailcar acts on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// What ended one run of a topology.
enum Step {
    Exit(Outcome),
    Reload(Box<Topology>),
}

async fn run_async(top: Topology, once: bool, config_path: Option<PathBuf>) -> Result<Outcome> {
    // Signals first, so a SIGTERM during start-up is not lost.
    let mut signals = Signals {
        term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
    };
    let telemetry = Arc::new(Telemetry::default());
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let admin_config = top.admin.clone();
    if admin_config.enabled {
        telemetry.set_settings(ReportSettings {
            file_labels: admin_config.file_labels,
            sink_failing_for: admin_config.sink_failing_for,
        });
        // Probes point at this port: if it cannot be bound (another container of the pod has
        // it), running on would let them silently probe someone else. Refuse to start.
        admin::serve(
            admin_config.address,
            Arc::clone(&telemetry),
            reload_tx.clone(),
        )
        .await
        .context("the admin endpoint is enabled (`admin.enabled`) but cannot start")?;
    }
    drop(reload_tx);
    let mut top = top;
    loop {
        let step = run_topology(
            top,
            once,
            &mut signals,
            &telemetry,
            &mut reload_rx,
            config_path.as_deref(),
        )
        .await?;
        match step {
            Step::Exit(outcome) => return Ok(outcome),
            Step::Reload(next) => {
                if next.admin != admin_config {
                    tracing::warn!(
                        "admin endpoint settings changed: they take effect at the next restart"
                    );
                }
                telemetry.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "configuration reloaded; starting the new topology from the checkpoints"
                );
                top = *next;
            }
        }
    }
}

/// Reads and validates the configuration again; `Err` is why it was refused. The checkpoint
/// directory cannot change: this process holds the lock of the one it started with.
fn load_again(
    config_path: Option<&Path>,
    telemetry: &Telemetry,
    checkpoint_dir: Option<&Path>,
) -> Result<Topology, String> {
    let result = match config_path {
        None => Err("reloading needs `tailcar run --config FILE`".to_string()),
        Some(path) => Config::load(path).map_err(|e| e.to_string()).and_then(|t| {
            if t.checkpoint_dir.as_deref() == checkpoint_dir {
                Ok(t)
            } else {
                Err(format!(
                    "{}: checkpoint_dir: cannot change while tailcar runs (restart it to \
                         move the checkpoints)",
                    path.display()
                ))
            }
        }),
    };
    if let Err(reason) = &result {
        telemetry.reloads_refused.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            "configuration reload refused, the running configuration continues: {reason}"
        );
    }
    result
}

async fn run_topology(
    top: Topology,
    once: bool,
    signals: &mut Signals,
    telemetry: &Arc<Telemetry>,
    reload_rx: &mut mpsc::Receiver<ReloadRequest>,
    config_path: Option<&Path>,
) -> Result<Step> {
    let mut running = RunningTopology::start(&top, once, telemetry)?;
    let mut reload: Option<Box<Topology>> = None;
    loop {
        tokio::select! {
            _ = signals.term.recv() => { tracing::info!("SIGTERM received; draining"); break; }
            _ = signals.int.recv() => { tracing::info!("SIGINT received; draining"); break; }
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP received; reloading the configuration");
                if let Ok(next) = load_again(config_path, telemetry, top.checkpoint_dir.as_deref()) {
                    reload = Some(Box::new(next));
                    break;
                }
            }
            Some(reply) = reload_rx.recv() => {
                tracing::info!("reload requested on the admin endpoint");
                match load_again(config_path, telemetry, top.checkpoint_dir.as_deref()) {
                    Ok(next) => {
                        let _ = reply.send(Ok(()));
                        reload = Some(Box::new(next));
                        break;
                    }
                    Err(reason) => { let _ = reply.send(Err(reason)); }
                }
            }
            _ = running.ended() => break,
        }
    }

    // A second SIGTERM or SIGINT cuts the drain short.
    let second_signal = async {
        tokio::select! {
            _ = signals.term.recv() => {
                tracing::warn!("SIGTERM during the drain; stopping without finishing it");
            }
            _ = signals.int.recv() => {
                tracing::warn!("SIGINT during the drain; stopping without finishing it");
            }
        }
    };
    let drained = running.drain(top.grace_period, second_signal).await;
    if drained.interrupted {
        reload = None;
    }
    if drained.failure.is_none()
        && let Some(next) = reload
    {
        if !drained.complete {
            tracing::warn!(
                "the old configuration did not finish draining within the grace period; lines \
                 not yet acknowledged are read again by the new one (duplicates, no loss)"
            );
        }
        return Ok(Step::Reload(next));
    }
    if !drained.complete {
        tracing::error!(
            streams_still_running = drained.streams_left,
            sinks_still_draining = drained.sinks_left,
            "grace period over before everything was delivered; checkpoints hold only \
             acknowledged lines, so the rest is read again on the next start"
        );
    }
    let summary = Summary::gather(telemetry, drained.ledger.in_flight());
    summary.log();
    let outcome = match (drained.failure, summary.verdict()) {
        (Some(e), _) => Outcome::Failed(e),
        (None, _) if !drained.complete => Outcome::Incomplete,
        (None, Verdict::InFlight | Verdict::Failed) => Outcome::Incomplete,
        (None, Verdict::Lost) => Outcome::Lost(summary.lost()),
        (None, Verdict::Delivered) => Outcome::Drained,
    };
    Ok(Step::Exit(outcome))
}
