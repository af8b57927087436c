//! The only place that knows wasmtime: engines, the compile cache, loading and validating a
//! component against tailcar's world, and running one sandboxed instance under its limits.
//!
//! - **Engines**: one per process (two if some plugin asks for fuel, since fuel metering is an
//!   engine setting that costs every plugin). Epoch interruption is always on; a ticker thread
//!   advances the epoch every [`TICK`], and each call gets a deadline in ticks.
//! - **Compile cache**: compiling a component with Cranelift takes tens of milliseconds for a
//!   small Rust plugin and seconds for a Python one. The compiled artifact is written to the
//!   cache directory under a key made of the component's content hash, the engine's
//!   compatibility hash and tailcar's version; a restart maps it back in (well under a
//!   millisecond for a small plugin) instead of compiling again.
//! - **Sandbox**: no WASI capabilities (no preopened directories, no environment, no arguments,
//!   no sockets, no inherited stdio). The guest's stdout and stderr are captured (bounded) and
//!   logged with the plugin's name, which is how a Rust panic message reaches tailcar's log.
//!   Linear memory is capped by a [`wasmtime::ResourceLimiter`]; growing past the cap traps at
//!   once with a clear reason instead of surfacing later as an `unreachable` in the allocator.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::capture::Captured;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "tailcar:plugin/plugin@0.2.0",
});

pub use tailcar::plugin::types as wit;

/// How often the epoch advances: the granularity of per-call deadlines.
pub const TICK: Duration = Duration::from_millis(2);

/// Bytes of a plugin's stdout and stderr kept between two reads (the rest is counted, not kept).
const CAPTURE_BYTES: usize = 64 * 1024;

/// Per-store state: the capability-free WASI context, the memory limiter, and what the guest
/// logged or counted through tailcar's host interface.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    pub host: HostCalls,
}

/// What the guest sent through the `host` interface during a call.
#[derive(Default)]
pub struct HostCalls {
    pub logs: Vec<(tailcar::plugin::host::Level, String)>,
    /// Log messages dropped because the call had logged too much already.
    pub logs_dropped: u64,
    pub counts: Vec<(String, u64)>,
}

/// Log messages kept per call; the rest are counted.
const LOGS_PER_CALL: usize = 100;

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl tailcar::plugin::types::Host for State {}

impl tailcar::plugin::host::Host for State {
    fn log(&mut self, level: tailcar::plugin::host::Level, message: String) {
        if self.host.logs.len() < LOGS_PER_CALL {
            let mut message = message;
            if message.len() > 4096 {
                let mut cut = 4096;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
                message.push('…');
            }
            self.host.logs.push((level, message));
        } else {
            self.host.logs_dropped += 1;
        }
    }

    fn count(&mut self, name: String, delta: u32) {
        let counts = &mut self.host.counts;
        if let Some(c) = counts.iter_mut().find(|(n, _)| *n == name) {
            c.1 += u64::from(delta);
        } else if counts.len() < 64 && name.len() <= 64 {
            counts.push((name, u64::from(delta)));
        }
    }
}

/// Caps linear memory; remembers the peak and whether the cap was hit.
struct Limiter {
    max_memory: usize,
    memory: usize,
    exceeded: Option<usize>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.exceeded = Some(desired);
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} exceeded (the plugin asked for {})",
                size(self.max_memory),
                size(desired)
            )));
        }
        self.memory = self.memory - current.min(self.memory) + desired;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A byte count as people write it in the config (`64MiB`, `13.2MiB`).
pub fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{}MiB", bytes >> 20)
    } else if bytes >= 1 << 20 {
        format!("{:.1}MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{}KiB", bytes >> 10)
    }
}

/// An engine and the linker that satisfies tailcar's world (host interface plus WASI) in it.
pub struct Runtime {
    engine: Engine,
    linker: Linker<State>,
    fuel: bool,
    /// Components compiled (or loaded) by this process, by content hash: a plugin used by
    /// several streams, or checked again on reload, is compiled once.
    compiled: Mutex<std::collections::HashMap<u128, Component>>,
}

static RUNTIMES: OnceLock<Mutex<Vec<Arc<Runtime>>>> = OnceLock::new();

/// Plugin calls running now, in the whole process; the epoch threads tick only while some do.
static CALLS: AtomicUsize = AtomicUsize::new(0);
static TICKERS: Mutex<Vec<std::thread::Thread>> = Mutex::new(Vec::new());

/// Counts a call as running (waking the epoch threads) until dropped.
struct Running;

impl Running {
    fn start() -> Running {
        if CALLS.fetch_add(1, Ordering::AcqRel) == 0 {
            for t in TICKERS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                t.unpark();
            }
        }
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        CALLS.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Runtime {
    /// The process's runtime with or without fuel metering, created on first use.
    pub fn get(fuel: bool) -> anyhow::Result<Arc<Runtime>> {
        let all = RUNTIMES.get_or_init(|| Mutex::new(Vec::new()));
        let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rt) = all.iter().find(|r| r.fuel == fuel) {
            return Ok(Arc::clone(rt));
        }
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(fuel)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| anyhow!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow!("{e:#}"))?;
        Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("{e:#}"))?;
        let rt = Arc::new(Runtime {
            engine,
            linker,
            fuel,
            compiled: Mutex::default(),
        });
        let ticker = rt.engine.clone();
        // Without its ticks no plugin's time limit works: a panic here ends the run.
        let thread = crate::supervise::spawn_thread("wasm-epoch", move || {
            loop {
                // Tick only while some plugin call runs: an idle sidecar stays idle.
                if CALLS.load(Ordering::Acquire) == 0 {
                    std::thread::park_timeout(Duration::from_secs(1));
                    continue;
                }
                std::thread::sleep(TICK);
                ticker.increment_epoch();
            }
        })
        .context("starting the plugin epoch thread")?;
        TICKERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(thread.thread().clone());
        all.push(Arc::clone(&rt));
        Ok(rt)
    }

    /// The cache file name for `bytes` compiled by this engine.
    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        format!(
            "{:032x}-{:016x}.cwasm",
            xxhash_rust::xxh3::xxh3_128(bytes),
            h.finish()
        )
    }

    /// Compiles `bytes`, or maps the compiled artifact back from `cache_dir` if it was compiled
    /// before. Returns the component and whether it came from the cache.
    pub fn compile(
        &self,
        bytes: &[u8],
        cache_dir: Option<&Path>,
    ) -> anyhow::Result<(Component, bool)> {
        let hash = xxhash_rust::xxh3::xxh3_128(bytes);
        if let Some(c) = self.memo().get(&hash) {
            return Ok((c.clone(), true));
        }
        let (component, cached) = self.compile_or_load(bytes, cache_dir)?;
        let mut memo = self.memo();
        if memo.len() >= 16 {
            memo.clear(); // Many reloaded versions: forget the old ones.
        }
        memo.insert(hash, component.clone());
        Ok((component, cached))
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u128, Component>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn compile_or_load(
        &self,
        bytes: &[u8],
        cache_dir: Option<&Path>,
    ) -> anyhow::Result<(Component, bool)> {
        let cached = cache_dir.map(|d| d.join(self.cache_key(bytes)));
        if let Some(c) = cached.as_deref().and_then(|p| self.load_cached(p)) {
            return Ok((c, true));
        }
        // Several tailcars sharing a cache directory (or a test suite's processes) compile a
        // component once: on a miss the directory's lock is taken, and whoever waited for it
        // finds the entry the holder wrote. Without it they would each spend the seconds a
        // Python or JavaScript component takes. A lock that cannot be taken only costs that.
        let _compiling = cache_dir.and_then(lock_dir);
        if let Some(c) = cached.as_deref().and_then(|p| self.load_cached(p)) {
            return Ok((c, true));
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| anyhow!("{}", one_line(&format!("{e:#}"))))?;
        if let Some(path) = &cached
            && let Err(e) = write_atomically(path, &compiled)
        {
            tracing::warn!(path = %path.display(), "cannot cache the compiled plugin: {e:#}");
        }
        // SAFETY: `compiled` was produced just above by this very engine.
        let component = unsafe { Component::deserialize(&self.engine, &compiled) }
            .map_err(|e| anyhow!("{e:#}"))?;
        Ok((component, false))
    }

    /// The component cached at `path`, if there is a usable one.
    fn load_cached(&self, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `Engine::precompile_component` of an engine with the
        // same compatibility hash (the key says so), into tailcar's own cache directory,
        // atomically (temporary file + rename). wasmtime checks its header and settings again.
        // Anyone able to write that directory could also replace tailcar's configuration or
        // plugins, so it is trusted as much as they are.
        match unsafe { Component::deserialize_file(&self.engine, path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    "compiled plugin in the cache is unusable ({e:#}); compiling again"
                );
                None
            }
        }
    }

    /// Checks that `component` implements tailcar's world and prepares its instantiation.
    pub fn prepare(&self, component: &Component) -> anyhow::Result<PluginPre<State>> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| anyhow!("{}", one_line(&format!("{e:#}"))))?;
        PluginPre::new(pre).map_err(|e| {
            anyhow!(
                "it does not implement tailcar's world `tailcar:plugin/plugin@0.2.0`: {}",
                one_line(&format!("{e:#}"))
            )
        })
    }

    pub fn fuel(&self) -> bool {
        self.fuel
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Takes the exclusive lock (`flock`) of cache directory `dir`, waiting while another process
/// compiles into it. Locking the directory itself leaves nothing in it but compiled entries.
/// `None` when it cannot be taken (logged); the kernel releases it when the file is dropped or
/// the process dies, however it dies.
fn lock_dir(dir: &Path) -> Option<std::fs::File> {
    let taken = (|| -> anyhow::Result<std::fs::File> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let file =
            std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", dir.display()))?;
        Ok(file)
    })();
    match taken {
        Ok(file) => Some(file),
        Err(e) => {
            tracing::warn!("compiling without the plugin cache's lock: {e:#}");
            None
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp: PathBuf = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The limits one instance runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory: usize,
    pub deadline: Duration,
    pub fuel: Option<u64>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The deadline passed (epoch interruption).
    Timeout,
    /// The fuel budget ran out.
    Fuel,
    /// Linear memory would have grown past the limit.
    Memory(String),
    /// Any other trap (a panic, `unreachable`, out-of-bounds access...).
    Trap(String),
    /// The plugin returned an error.
    Error(String),
}

impl Failure {
    /// A short label for counters: `timeout`, `fuel`, `memory`, `trap`, `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Fuel => "fuel",
            Failure::Memory(_) => "memory",
            Failure::Trap(_) => "trap",
            Failure::Error(_) => "error",
        }
    }

    /// True when the instance can no longer be used.
    pub fn poisons(&self) -> bool {
        !matches!(self, Failure::Error(_))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => write!(f, "deadline exceeded (interrupted)"),
            Failure::Fuel => write!(f, "fuel budget exhausted"),
            Failure::Memory(m) => write!(f, "{m}"),
            Failure::Trap(m) => write!(f, "trapped: {m}"),
            Failure::Error(m) => write!(f, "returned an error: {m}"),
        }
    }
}

/// One live instance of a plugin, with its own store (memory, limits, captured output).
pub struct Instance {
    store: Store<State>,
    plugin: Plugin,
    limits: Limits,
    stdout: Captured,
    stderr: Captured,
}

impl Instance {
    /// Instantiates and calls `init(config)`. A failure comes with what the guest printed on
    /// stderr (a panic message, say).
    pub fn new(
        rt: &Runtime,
        pre: &PluginPre<State>,
        limits: Limits,
        config: &str,
    ) -> Result<Self, (Failure, Vec<u8>)> {
        let stdout = Captured::new(CAPTURE_BYTES);
        let stderr = Captured::new(CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut store = Store::new(
            &rt.engine,
            State {
                wasi,
                table: ResourceTable::new(),
                limiter: Limiter {
                    max_memory: limits.memory,
                    memory: 0,
                    exceeded: None,
                },
                host: HostCalls::default(),
            },
        );
        store.limiter(|s| &mut s.limiter);
        // Instantiation and init may compile regexes and the like: give them more time.
        arm(&mut store, limits, 10);
        let _running = Running::start();
        let plugin = pre
            .instantiate(&mut store)
            .map_err(|e| (classify(&store, e), stderr.take()))?;
        let mut me = Instance {
            store,
            plugin,
            limits,
            stdout,
            stderr,
        };
        match me.plugin.call_init(&mut me.store, config) {
            Ok(Ok(())) => Ok(me),
            Ok(Err(message)) => Err((Failure::Error(message), me.stderr.take())),
            Err(e) => Err((classify(&me.store, e), me.stderr.take())),
        }
    }

    /// Calls `process(batch)` under the instance's limits.
    pub fn process(&mut self, batch: &wit::Batch) -> Result<wit::Output, Failure> {
        arm(&mut self.store, self.limits, 1);
        let _running = Running::start();
        match self.plugin.call_process(&mut self.store, batch) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(message)) => Err(Failure::Error(message)),
            Err(e) => Err(classify(&self.store, e)),
        }
    }

    /// Linear memory in use (the high-water mark: wasm memory never shrinks).
    pub fn memory(&self) -> usize {
        self.store.data().limiter.memory
    }

    /// What the guest logged and counted since the last call, and its captured stdout/stderr.
    pub fn take_output(&mut self) -> (HostCalls, Vec<u8>, Vec<u8>) {
        (
            std::mem::take(&mut self.store.data_mut().host),
            self.stdout.take(),
            self.stderr.take(),
        )
    }
}

fn arm(store: &mut Store<State>, limits: Limits, factor: u32) {
    let deadline = limits.deadline * factor;
    // +1: the current tick may be almost over, so N ticks could be almost one tick short.
    let ticks = deadline.as_nanos().div_ceil(TICK.as_nanos()) as u64 + 1;
    store.set_epoch_deadline(ticks);
    if let Some(fuel) = limits.fuel {
        let _ = store.set_fuel(fuel.saturating_mul(u64::from(factor)));
    }
}

fn classify(store: &Store<State>, e: wasmtime::Error) -> Failure {
    if let Some(wanted) = store.data().limiter.exceeded {
        return Failure::Memory(format!(
            "memory limit of {} exceeded (the plugin asked for {})",
            size(store.data().limiter.max_memory),
            size(wanted)
        ));
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => Failure::Timeout,
        Some(wasmtime::Trap::OutOfFuel) => Failure::Fuel,
        Some(trap) => Failure::Trap(trap.to_string()),
        None => Failure::Trap(one_line(&format!("{e}"))),
    }
}
