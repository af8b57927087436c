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
//!
//! Supervision ([`crate::supervise`]): a stream, sink or checkpointer that panics is logged,
//! counted and reported by `/healthz`, and the run ends as [`Outcome::Failed`] (exit code 70)
//! after draining what the others hold. The run's account ([`summary`]) is logged last and
//! decides the outcome: "everything read was delivered" only when it is true.

pub mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::admin::{self, ReloadRequest};
use crate::checkpoint::{CheckpointStore, Ledger};
use crate::config::{Config, Topology};
use crate::route::{Output, Router};
use crate::shutdown::Shutdown;
use crate::sinks::{QUEUE_BATCHES, SinkContext, SinkExit};
use crate::sources::file::FileSource;
use crate::sources::file::watcher::Watcher;
use crate::stats::telemetry::{ReportSettings, Running, SinkView, Telemetry};
use crate::stream::Pipeline;
use crate::supervise::{self, Panicked};
use summary::{Summary, Verdict};

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
    /// then a [`Panicked`]).
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

/// A stream's thread ended: normally, or by a panic.
struct StreamEnd {
    panicked: Option<Panicked>,
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
    for w in &top.warnings {
        tracing::warn!("{w}");
    }
    let store = match &top.checkpoint_dir {
        Some(dir) => Some(CheckpointStore::open(dir)?),
        None => None,
    };
    let loaded = store.as_ref().map(|s| s.load()).unwrap_or_default();
    let written = store
        .as_ref()
        .and_then(|s| s.written_at())
        .filter(|_| !loaded.is_empty());
    let ledger = Ledger::loaded_at(loaded, written);
    // The writer first: the tailers' first registrations already wait for it.
    let (fail_tx, mut fail_rx) = mpsc::unbounded_channel::<Panicked>();
    let checkpointer = store
        .clone()
        .map(|s| spawn_checkpointer(s, Arc::clone(&ledger), top.checkpoint_interval, fail_tx));

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
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<StreamEnd>();
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
        let pipeline = Pipeline::new(
            crate::transforms::Chain::new(&plan.transforms, &chain_ctx),
            router,
            Arc::clone(&stats),
        );
        let source = FileSource::new(
            plan.tailer.clone(),
            Arc::clone(&ledger),
            Box::new(pipeline),
            Arc::clone(&watcher),
            shutdown.clone(),
            Arc::clone(&stats),
        );
        wakers.push(source.waker());
        let done = done_tx.clone();
        let name = Arc::clone(&plan.tailer.stream);
        std::thread::Builder::new()
            .name(format!("tail-{name}"))
            .spawn(move || {
                let armed = supervise::failpoint(&format!("stream-panic:{name}"));
                let result = supervise::catch(&format!("stream {name}"), || {
                    assert!(!armed, "fail point stream-panic:{name}");
                    source.run(once)
                });
                stats.log(&name);
                let _ = done.send(StreamEnd {
                    panicked: result.err(),
                });
            })
            .context("spawning a tailer thread")?;
    }
    drop(done_tx);
    // Only the tailers hold sink senders now: when they all end, the sinks see their queues close.
    drop(outputs);
    let mut streams_left = top.streams.len();

    let mut failure: Option<anyhow::Error> = None;
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
            Some(end) = done_rx.recv() => {
                streams_left -= 1;
                if let Some(p) = end.panicked {
                    failure = Some(fail(telemetry, p));
                    break;
                }
                if streams_left == 0 { break; }
            }
            Some(exit) = exit_rx.recv() => {
                sinks_left -= 1;
                if let Err(e) = exit.result {
                    failure = Some(sink_failed(telemetry, &exit.sink, e));
                    break;
                }
            }
            Some(p) = fail_rx.recv() => {
                failure = Some(fail(telemetry, p));
                break;
            }
            p = supervise::reported() => {
                failure = Some(fail(telemetry, p));
                break;
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
            d = done_rx.recv(), if streams_left > 0 => match d {
                None => streams_left = 0,
                Some(end) => {
                    streams_left -= 1;
                    if let Some(p) = end.panicked {
                        let e = fail(telemetry, p);
                        failure.get_or_insert(e);
                    }
                }
            },
            e = exit_rx.recv(), if sinks_left > 0 => match e {
                Some(exit) => {
                    sinks_left -= 1;
                    if let Err(e) = exit.result {
                        let e = sink_failed(telemetry, &exit.sink, e);
                        failure.get_or_insert(e);
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
    if let Some(p) = fail_rx.try_recv().ok().or_else(supervise::take_reported) {
        let e = fail(telemetry, p);
        failure.get_or_insert(e);
    }
    if let Some(store) = &store {
        let (_, entries) = ledger.snapshot();
        if let Err(e) = store.write(&entries) {
            tracing::error!(error = format!("{e:#}"), "final checkpoint write failed");
        }
    }

    telemetry.set_running(Running::default());
    if failure.is_none()
        && let Some(next) = reload
    {
        if !drained {
            tracing::warn!(
                "the old configuration did not finish draining within the grace period; lines \
                 not yet acknowledged are read again by the new one (duplicates, no loss)"
            );
        }
        return Ok(Step::Reload(next));
    }
    if !drained {
        tracing::error!(
            streams_still_running = streams_left,
            sinks_still_draining = sinks_left,
            "grace period over before everything was delivered; checkpoints hold only \
             acknowledged lines, so the rest is read again on the next start"
        );
    }
    let summary = Summary::gather(telemetry, ledger.in_flight());
    summary.log();
    let outcome = match (failure, summary.verdict()) {
        (Some(e), _) => Outcome::Failed(e),
        (None, _) if !drained => Outcome::Incomplete,
        (None, Verdict::InFlight | Verdict::Failed) => Outcome::Incomplete,
        (None, Verdict::Lost) => Outcome::Lost(summary.lost()),
        (None, Verdict::Delivered) => Outcome::Drained,
    };
    Ok(Step::Exit(outcome))
}

/// A component died: count it, report it, and make it the run's failure.
fn fail(telemetry: &Telemetry, p: Panicked) -> anyhow::Error {
    telemetry.fail(&p);
    p.into()
}

/// A sink ended with an error: a panic is reported as one, anything else is named.
fn sink_failed(telemetry: &Telemetry, sink: &str, e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<Panicked>() {
        Ok(p) => fail(telemetry, p),
        Err(e) => e.context(format!("sink `{sink}` failed")),
    }
}

/// Writes the ledger to the store every `interval` when it changed, until `stop` is dropped.
/// A panic in it is sent on `failed`.
fn spawn_checkpointer(
    store: CheckpointStore,
    ledger: Arc<Ledger>,
    interval: Duration,
    failed: mpsc::UnboundedSender<Panicked>,
) -> (crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let (kick_tx, kick_rx) = crossbeam_channel::bounded::<()>(1);
    ledger.attach_writer(kick_tx);
    let handle = std::thread::Builder::new()
        .name("checkpointer".into())
        .spawn(move || {
            let run = || checkpoint_loop(&store, &ledger, interval, &stop_rx, &kick_rx);
            if let Err(p) = supervise::catch("checkpointer", run) {
                let _ = failed.send(p);
            }
        })
        .expect("spawning the checkpointer thread");
    (stop_tx, handle)
}

fn checkpoint_loop(
    store: &CheckpointStore,
    ledger: &Ledger,
    interval: Duration,
    stop_rx: &crossbeam_channel::Receiver<()>,
    kick_rx: &crossbeam_channel::Receiver<()>,
) {
    let mut written = None;
    let mut failing = false;
    let mut next = std::time::Instant::now() + interval;
    loop {
        // Every interval, or at once when a file's identity changed (the ledger kicks).
        crossbeam_channel::select! {
            recv(stop_rx) -> _ => return,
            recv(kick_rx) -> _ => {}
            default(next.saturating_duration_since(std::time::Instant::now())) => {
                next = std::time::Instant::now() + interval;
            }
        }
        if written == Some(ledger.version()) {
            continue;
        }
        let (version, entries) = ledger.snapshot();
        match store.write(&entries) {
            Ok(()) => {
                written = Some(version);
                ledger.set_persisted(version);
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
}
