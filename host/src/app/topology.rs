//! A running topology as a value: [`RunningTopology::start`] builds and starts everything a
//! validated configuration describes (checkpoint writer, sink queues and sinks, one pipeline
//! and tailer per stream), [`RunningTopology::ended`] waits for it to stop by itself (every
//! stream done with `--once`, or a component failing), and [`RunningTopology::drain`] stops it:
//! the tailers stop reading and emit what they hold, the sinks deliver what is queued, all
//! within a deadline, then the checkpoints are written one last time.
//!
//! Signals, reloads and the run's outcome belong to the caller ([`super`]); a reload is a
//! drain followed by a start from the checkpoints. Nothing here needs a process of its own, so
//! the unit tests below start, drain and restart real topologies (files, file sinks, an HTTP
//! sink held by a server that never answers) inside the test.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::checkpoint::{CheckpointStore, Ledger};
use crate::config::Topology;
use crate::route::{Output, Router};
use crate::shutdown::Shutdown;
use crate::sinks::{QUEUE_BATCHES, SinkContext, SinkExit};
use crate::sources::file::FileSource;
use crate::sources::file::watcher::{Wake, Watcher};
use crate::stats::telemetry::{Running, SinkView, Telemetry};
use crate::stream::Pipeline;
use crate::supervise::{self, Panicked};

/// A stream's thread ended: normally, or by a panic.
struct StreamEnd {
    panicked: Option<Panicked>,
}

/// How a drain ended.
#[derive(Debug)]
pub struct Drained {
    /// Every stream and sink finished within the deadline.
    pub complete: bool,
    /// The interrupt fired before that (a second signal).
    pub interrupted: bool,
    /// Streams and sinks still running when the drain gave up.
    pub streams_left: usize,
    pub sinks_left: usize,
    /// The first component that failed, before or during the drain.
    pub failure: Option<anyhow::Error>,
    /// The ledger, for the run's account (what is still in flight).
    pub ledger: Arc<Ledger>,
}

/// Everything one start of a configuration runs.
pub struct RunningTopology {
    telemetry: Arc<Telemetry>,
    store: Option<CheckpointStore>,
    ledger: Arc<Ledger>,
    checkpointer: Option<(crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>)>,
    fail_rx: mpsc::UnboundedReceiver<Panicked>,
    exit_rx: mpsc::UnboundedReceiver<SinkExit>,
    done_rx: mpsc::UnboundedReceiver<StreamEnd>,
    streams_left: usize,
    sinks_left: usize,
    shutdown: Shutdown,
    wakers: Vec<Arc<Wake>>,
    failure: Option<anyhow::Error>,
}

impl RunningTopology {
    /// Starts `top`: the checkpoint writer first (the tailers' first registrations wait for
    /// it), then every sink queue and sink, then one tailer thread per stream. With `once`,
    /// each stream ends when its files are read to their end. Must run inside the tokio
    /// runtime (remote sinks are tasks).
    pub fn start(top: &Topology, once: bool, telemetry: &Arc<Telemetry>) -> Result<Self> {
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
        let (fail_tx, fail_rx) = mpsc::unbounded_channel::<Panicked>();
        let checkpointer = store
            .clone()
            .map(|s| spawn_checkpointer(s, Arc::clone(&ledger), top.checkpoint_interval, fail_tx));

        let (exit_tx, exit_rx) = mpsc::unbounded_channel::<SinkExit>();
        // Every queue first, so a sink can hold another's (a dead-letter sink) when it starts.
        let mut outputs = Vec::new();
        let mut inputs = Vec::new();
        for (name, cfg) in &top.sinks {
            let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
            outputs.push(Output {
                sink: Arc::clone(name),
                tx,
                when_full: cfg.when_full(),
                stats: telemetry.sink(name),
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
        let sinks_left = outputs.len();

        let watcher = Watcher::new(top.watch)?;
        let shutdown = Shutdown::default();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<StreamEnd>();
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
        // Only the tailers hold sink senders now: when they all end, the sinks see their
        // queues close.
        drop(outputs);
        Ok(RunningTopology {
            telemetry: Arc::clone(telemetry),
            store,
            ledger,
            checkpointer,
            fail_rx,
            exit_rx,
            done_rx,
            streams_left: top.streams.len(),
            sinks_left,
            shutdown,
            wakers,
            failure: None,
        })
    }

    /// Waits until the topology stops by itself: every stream has ended (`--once`), or a
    /// stream, sink or the checkpointer failed (kept for [`Self::drain`] to report). Safe to
    /// cancel (in a `select!` beside the signals): what it received is already accounted for.
    pub async fn ended(&mut self) {
        loop {
            tokio::select! {
                Some(end) = self.done_rx.recv(), if self.streams_left > 0 => {
                    self.streams_left -= 1;
                    if let Some(p) = end.panicked {
                        self.failure = Some(fail(&self.telemetry, p));
                        return;
                    }
                    if self.streams_left == 0 {
                        return;
                    }
                }
                Some(exit) = self.exit_rx.recv(), if self.sinks_left > 0 => {
                    self.sinks_left -= 1;
                    if let Err(e) = exit.result {
                        self.failure = Some(sink_failed(&self.telemetry, &exit.sink, e));
                        return;
                    }
                }
                Some(p) = self.fail_rx.recv() => {
                    self.failure = Some(fail(&self.telemetry, p));
                    return;
                }
                p = supervise::reported() => {
                    self.failure = Some(fail(&self.telemetry, p));
                    return;
                }
            }
        }
    }

    /// Stops the topology: the tailers stop reading and emit what they hold, then the sinks
    /// deliver what is queued. Waits up to `grace` for every stream and sink to finish, or
    /// until `interrupt` completes; then stops the checkpoint writer and writes the
    /// checkpoints one last time (they hold only acknowledged offsets, whatever was left).
    pub async fn drain(mut self, grace: Duration, interrupt: impl Future<Output = ()>) -> Drained {
        self.shutdown.trigger();
        for w in &self.wakers {
            w.wake();
        }
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline, interrupt);
        let mut interrupted = false;
        let complete = loop {
            if self.streams_left == 0 && self.sinks_left == 0 {
                break true;
            }
            tokio::select! {
                _ = &mut deadline => break false,
                _ = &mut interrupt => {
                    interrupted = true;
                    break false;
                }
                d = self.done_rx.recv(), if self.streams_left > 0 => match d {
                    None => self.streams_left = 0,
                    Some(end) => {
                        self.streams_left -= 1;
                        if let Some(p) = end.panicked {
                            let e = fail(&self.telemetry, p);
                            self.failure.get_or_insert(e);
                        }
                    }
                },
                e = self.exit_rx.recv(), if self.sinks_left > 0 => match e {
                    Some(exit) => {
                        self.sinks_left -= 1;
                        if let Err(e) = exit.result {
                            let e = sink_failed(&self.telemetry, &exit.sink, e);
                            self.failure.get_or_insert(e);
                        }
                    }
                    None => self.sinks_left = 0,
                },
            }
        };

        if let Some((stop, handle)) = self.checkpointer.take() {
            drop(stop);
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        if let Some(p) = self
            .fail_rx
            .try_recv()
            .ok()
            .or_else(supervise::take_reported)
        {
            let e = fail(&self.telemetry, p);
            self.failure.get_or_insert(e);
        }
        if let Some(store) = &self.store {
            let (_, entries) = self.ledger.snapshot();
            if let Err(e) = store.write(&entries) {
                tracing::error!(error = format!("{e:#}"), "final checkpoint write failed");
            }
        }
        self.telemetry.set_running(Running::default());
        Drained {
            complete,
            interrupted,
            streams_left: self.streams_left,
            sinks_left: self.sinks_left,
            failure: self.failure,
            ledger: self.ledger,
        }
    }
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

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const T: Duration = Duration::from_secs(30);

    fn topology(dir: &Path, body: &str) -> Topology {
        let path = dir.join("tailcar.yaml");
        let text = format!(
            "checkpoint_dir: {d}/state\ncheckpoint_interval: 50ms\nadmin: {{ enabled: false }}\n{body}",
            d = dir.display()
        );
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    fn append(path: &Path, from: u64, to: u64) {
        let mut text = String::new();
        for i in from..to {
            writeln!(text, "line {i:06}").unwrap();
        }
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn line_count(path: &Path) -> usize {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Waits (in the runtime, so the topology's tasks run) until `cond` holds.
    async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + T;
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The checkpointed offset of every file of the checkpoint directory.
    fn checkpointed(dir: &Path) -> Vec<u64> {
        let store = CheckpointStore::open(&dir.join("state")).unwrap();
        store.load().iter().map(|e| e.offset).collect()
    }

    fn file_stream(dir: &Path) -> Topology {
        topology(
            dir,
            &format!(
                "streams:\n  app:\n    paths: [{d}/app.log]\n    sinks: [out]\nsinks:\n  out: {{ type: file, path: {d}/out.log }}\n",
                d = dir.display()
            ),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_drain_in_time_delivers_and_checkpoints_everything() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(&d.join("app.log"), 0, 500);
        let top = file_stream(d);
        let telemetry = Arc::new(Telemetry::default());
        let running = RunningTopology::start(&top, false, &telemetry).unwrap();
        wait_for("500 lines delivered", || {
            line_count(&d.join("out.log")) == 500
        })
        .await;
        let drained = running.drain(T, std::future::pending()).await;
        assert!(drained.complete && !drained.interrupted);
        assert!(drained.failure.is_none());
        assert!(drained.ledger.in_flight().is_empty());
        let size = std::fs::metadata(d.join("app.log")).unwrap().len();
        assert_eq!(checkpointed(d), [size]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn with_once_it_ends_by_itself_when_the_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(&d.join("app.log"), 0, 300);
        let top = file_stream(d);
        let telemetry = Arc::new(Telemetry::default());
        let mut running = RunningTopology::start(&top, true, &telemetry).unwrap();
        tokio::time::timeout(T, running.ended())
            .await
            .expect("every stream ends");
        let drained = running.drain(T, std::future::pending()).await;
        assert!(drained.complete && drained.failure.is_none());
        assert_eq!(line_count(&d.join("out.log")), 300);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_restart_from_the_checkpoints_resumes_where_the_drain_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(&d.join("app.log"), 0, 200);
        let telemetry = Arc::new(Telemetry::default());
        let first = RunningTopology::start(&file_stream(d), false, &telemetry).unwrap();
        wait_for("the first 200 lines", || {
            line_count(&d.join("out.log")) == 200
        })
        .await;
        assert!(first.drain(T, std::future::pending()).await.complete);

        // Written between the two: read by the second topology, from the checkpoint.
        append(&d.join("app.log"), 200, 350);
        let second = RunningTopology::start(&file_stream(d), false, &telemetry).unwrap();
        wait_for("350 lines", || line_count(&d.join("out.log")) >= 350).await;
        assert!(second.drain(T, std::future::pending()).await.complete);
        let out = std::fs::read_to_string(d.join("out.log")).unwrap();
        let expected: String = (0..350).map(|i| format!("line {i:06}\n")).collect();
        assert_eq!(out, expected, "each line once, in order");
    }

    /// A server that accepts connections and never answers: a sink stuck on its requests.
    fn black_hole() -> (std::net::TcpListener, std::net::SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// Stream `app` (`app.log`) to an HTTP sink at `addr`.
    fn stuck_stream(d: &Path, addr: std::net::SocketAddr) -> Topology {
        topology(
            d,
            &format!(
                "streams:\n  app:\n    paths: [{d}/app.log]\n    sinks: [remote]\nsinks:\n  remote: {{ type: http, url: 'http://{addr}/', batch: {{ timeout: 10ms }} }}\n",
                d = d.display()
            ),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_stuck_sink_runs_the_drain_out_of_time_and_nothing_is_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (_server, addr) = black_hole();
        append(&d.join("app.log"), 0, 100);
        let top = stuck_stream(d, addr);
        let telemetry = Arc::new(Telemetry::default());
        let running = RunningTopology::start(&top, false, &telemetry).unwrap();
        let stats = telemetry.stream(&"app".into());
        wait_for("the lines read", || {
            stats.lines.load(Ordering::Relaxed) == 100
        })
        .await;
        let drained = running
            .drain(Duration::from_millis(300), std::future::pending())
            .await;
        assert!(!drained.complete, "the sink cannot finish");
        // (The tailer may or may not have ended within the 300 ms on a loaded machine.)
        assert_eq!(drained.sinks_left, 1);
        assert!(!drained.ledger.in_flight().is_empty());
        assert!(drained.failure.is_none());
        assert_eq!(checkpointed(d), [0], "only acknowledged offsets");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_interrupt_ends_the_drain_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (_server, addr) = black_hole();
        append(&d.join("app.log"), 0, 10);
        let top = stuck_stream(d, addr);
        let telemetry = Arc::new(Telemetry::default());
        let running = RunningTopology::start(&top, false, &telemetry).unwrap();
        let drained = tokio::time::timeout(T, running.drain(Duration::from_secs(3600), async {}))
            .await
            .expect("not the hour of grace");
        assert!(drained.interrupted && !drained.complete);
    }
}
