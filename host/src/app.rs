//! The application: builds the topology from a validated configuration, runs it, reloads it,
//! and owns shutdown.
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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::admin::telemetry::{ReportSettings, Running, SinkView, Telemetry};
use crate::admin::{self, ReloadRequest};
use crate::checkpoint::{CheckpointStore, Ledger};
use crate::config::{Config, Topology};
use crate::route::{Output, Router};
use crate::shutdown::Shutdown;
use crate::sinks::{QUEUE_BATCHES, SinkContext, SinkExit};
use crate::sources::file::FileSource;
use crate::sources::file::watcher::Watcher;

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Everything read was delivered and checkpointed.
    Drained,
    /// The grace period ran out (or a second signal came) with lines in flight; they will be
    /// read again after a restart.
    Incomplete,
    /// A sink failed (for example stdout was closed).
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

/// Sends the stream's name when its thread ends, even by a panic.
struct DoneGuard(Arc<str>, mpsc::UnboundedSender<Arc<str>>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.1.send(Arc::clone(&self.0));
    }
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
        // The endpoint is an aid, not the job: if its port is taken, say so and ship anyway.
        if let Err(e) = admin::serve(
            admin_config.address,
            Arc::clone(&telemetry),
            reload_tx.clone(),
        )
        .await
        {
            tracing::error!("{e:#}; running without the admin endpoint");
        }
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

/// Reads and validates the configuration again; `Err` is why it was refused.
fn load_again(config_path: Option<&Path>, telemetry: &Telemetry) -> Result<Topology, String> {
    let result = match config_path {
        None => Err("reloading needs `tailcar run --config FILE`".to_string()),
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
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
    let store = match &top.checkpoint_dir {
        Some(dir) => Some(CheckpointStore::open(dir)?),
        None => None,
    };
    let loaded = store.as_ref().map(|s| s.load()).unwrap_or_default();
    let ledger = Ledger::new(loaded);

    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel::<SinkExit>();
    // Every queue first, so a sink can hold another's (a dead-letter sink) when it starts.
    let mut outputs = Vec::new();
    let mut inputs = Vec::new();
    for (name, cfg) in &top.sinks {
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let stats = telemetry.sink(name);
        outputs.push(Output {
            sink: Arc::clone(name),
            tx,
            when_full: cfg.when_full(),
            stats,
        });
        inputs.push(rx);
    }
    let ctx = SinkContext {
        inputs: outputs
            .iter()
            .map(|o| (Arc::clone(&o.sink), o.tx.clone()))
            .collect(),
        stats: outputs
            .iter()
            .map(|o| (Arc::clone(&o.sink), Arc::clone(&o.stats)))
            .collect(),
    };
    for ((name, cfg), rx) in top.sinks.iter().zip(inputs) {
        cfg.spawn(Arc::clone(name), rx, exit_tx.clone(), &ctx)
            .with_context(|| format!("starting sink `{name}`"))?;
    }
    telemetry.set_running(Running {
        streams: top
            .streams
            .iter()
            .map(|p| Arc::clone(&p.tailer.stream))
            .collect(),
        sinks: top
            .sinks
            .iter()
            .zip(&outputs)
            .map(|((name, cfg), out)| SinkView {
                name: Arc::clone(name),
                kind: cfg.kind(),
                queue: out.tx.downgrade(),
                remote: cfg.is_remote(),
            })
            .collect(),
        ledger: Some(Arc::clone(&ledger)),
    });
    drop(ctx);
    drop(exit_tx);
    let mut sinks_left = outputs.len();

    let watcher = Watcher::new(top.watch)?;
    let shutdown = Shutdown::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Arc<str>>();
    let mut wakers = Vec::new();
    for plan in &top.streams {
        let router = Router::with_extras(
            plan.sinks
                .iter()
                .chain(&plan.extra_sinks)
                .map(|n| {
                    outputs
                        .iter()
                        .find(|o| o.sink == *n)
                        .expect("validated sink")
                        .clone()
                })
                .collect(),
            plan.sinks.len(),
        );
        let stats = telemetry.stream(&plan.tailer.stream);
        stats.started.store(false, Ordering::Relaxed);
        stats.beat();
        let chain_ctx = crate::transforms::ChainContext {
            telemetry: Arc::clone(telemetry),
            stream: Arc::clone(&plan.tailer.stream),
            routes: crate::transforms::wasm::convert::RouteTable {
                names: plan
                    .sinks
                    .iter()
                    .chain(&plan.extra_sinks)
                    .cloned()
                    .collect(),
                defaults: plan.sinks.len(),
            },
        };
        let source = FileSource::new(
            plan.tailer.clone(),
            crate::transforms::Chain::new(&plan.transforms, &chain_ctx),
            Arc::clone(&ledger),
            router,
            Arc::clone(&watcher),
            shutdown.clone(),
            Arc::clone(&stats),
        );
        wakers.push(source.waker());
        let guard = DoneGuard(Arc::clone(&plan.tailer.stream), done_tx.clone());
        std::thread::Builder::new()
            .name(format!("tail-{}", plan.tailer.stream))
            .spawn(move || {
                let _guard = guard;
                source.run(once);
                stats.log(&_guard.0);
            })
            .context("spawning a tailer thread")?;
    }
    drop(done_tx);
    // Only the tailers hold sink senders now: when they all end, the sinks see their queues close.
    drop(outputs);
    let mut streams_left = top.streams.len();

    let checkpointer = store
        .clone()
        .map(|s| spawn_checkpointer(s, Arc::clone(&ledger), top.checkpoint_interval));

    let mut failure: Option<anyhow::Error> = None;
    let mut reload: Option<Box<Topology>> = None;
    loop {
        tokio::select! {
            _ = signals.term.recv() => { tracing::info!("SIGTERM received; draining"); break; }
            _ = signals.int.recv() => { tracing::info!("SIGINT received; draining"); break; }
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP received; reloading the configuration");
                if let Ok(next) = load_again(config_path, telemetry) {
                    reload = Some(Box::new(next));
                    break;
                }
            }
            Some(reply) = reload_rx.recv() => {
                tracing::info!("reload requested on the admin endpoint");
                match load_again(config_path, telemetry) {
                    Ok(next) => {
                        let _ = reply.send(Ok(()));
                        reload = Some(Box::new(next));
                        break;
                    }
                    Err(reason) => { let _ = reply.send(Err(reason)); }
                }
            }
            Some(_) = done_rx.recv() => {
                streams_left -= 1;
                if streams_left == 0 { break; }
            }
            Some(exit) = exit_rx.recv() => {
                sinks_left -= 1;
                if let Err(e) = exit.result {
                    failure = Some(e.context(format!("sink `{}` failed", exit.sink)));
                    break;
                }
            }
        }
    }

    shutdown.trigger();
    for w in &wakers {
        w.wake();
    }
    let grace = tokio::time::sleep(top.grace_period);
    tokio::pin!(grace);
    let drained = loop {
        if streams_left == 0 && sinks_left == 0 {
            break true;
        }
        tokio::select! {
            _ = &mut grace => break false,
            _ = signals.term.recv() => {
                tracing::warn!("SIGTERM during the drain; stopping without finishing it");
                reload = None;
                break false;
            }
            _ = signals.int.recv() => {
                tracing::warn!("SIGINT during the drain; stopping without finishing it");
                reload = None;
                break false;
            }
            d = done_rx.recv(), if streams_left > 0 => {
                if d.is_none() { streams_left = 0 } else { streams_left -= 1 }
            }
            e = exit_rx.recv(), if sinks_left > 0 => match e {
                Some(exit) => {
                    sinks_left -= 1;
                    if let Err(e) = exit.result {
                        failure.get_or_insert(e.context(format!("sink `{}` failed", exit.sink)));
                    }
                }
                None => sinks_left = 0,
            },
        }
    };

    if let Some((stop, handle)) = checkpointer {
        drop(stop);
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
    if let Some(store) = &store {
        let (_, entries) = ledger.snapshot();
        if let Err(e) = store.write(&entries) {
            tracing::error!(error = format!("{e:#}"), "final checkpoint write failed");
        }
    }

    telemetry.set_running(Running::default());
    if let Some(e) = failure {
        return Ok(Step::Exit(Outcome::Failed(e)));
    }
    if let Some(next) = reload {
        if !drained {
            tracing::warn!(
                "the old configuration did not finish draining within the grace period; lines \
                 not yet acknowledged are read again by the new one (duplicates, no loss)"
            );
        }
        return Ok(Step::Reload(next));
    }
    if drained {
        tracing::info!("shutdown complete; everything read was delivered");
        return Ok(Step::Exit(Outcome::Drained));
    }
    let left: Vec<String> = ledger
        .in_flight()
        .iter()
        .map(|f| {
            format!(
                "{} (acknowledged up to {}, read up to {})",
                f.path.display(),
                f.committed,
                f.issued
            )
        })
        .collect();
    tracing::error!(
        streams_still_running = streams_left,
        sinks_still_draining = sinks_left,
        in_flight = %left.join("; "),
        "grace period over before everything was delivered; checkpoints hold only acknowledged \
         lines, so the rest is read again on the next start"
    );
    Ok(Step::Exit(Outcome::Incomplete))
}

/// Writes the ledger to the store every `interval` when it changed, until `stop` is dropped.
fn spawn_checkpointer(
    store: CheckpointStore,
    ledger: Arc<Ledger>,
    interval: Duration,
) -> (crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let handle = std::thread::Builder::new()
        .name("checkpointer".into())
        .spawn(move || {
            let mut written = None;
            let mut failing = false;
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stop_rx.recv_timeout(interval)
            {
                if written == Some(ledger.version()) {
                    continue;
                }
                let (version, entries) = ledger.snapshot();
                match store.write(&entries) {
                    Ok(()) => {
                        written = Some(version);
                        if failing {
                            tracing::info!("checkpoint writes work again");
                        }
                        failing = false;
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::error!(
                            error = format!("{e:#}"),
                            "checkpoint write failed; will retry"
                        );
                    }
                    Err(_) => {}
                }
            }
        })
        .expect("spawning the checkpointer thread");
    (stop_tx, handle)
}
