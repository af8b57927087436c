//! The `tailcar` command: parses the command line and hands over to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indexmap::IndexMap;
use tailcar::admin::AdminConfig;
use tailcar::app::{self, Outcome};
use tailcar::config::{self, Config, ConfigError, MultilineConfig, StreamConfig, Topology};
use tailcar::sinks::SinkConfig;
use tailcar::sinks::stdout::StdoutConfig;
use tailcar::sinks::util::encode::Format;
use tailcar::sources::file::StartAt;
use tailcar::sources::file::watcher::WatchMode;

/// jemalloc, not glibc's malloc: a batch's lines and fields are allocated on its stream's thread
/// and freed on its sinks' threads, which glibc serialises on arena locks (measured with
/// `bench/parsed.sh`: see docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// Exit codes (the README's table). 1: a sink failed for good (stdout closed) or start-up
// failed (the admin address taken).
/// Configuration and usage errors, refused before anything starts (EX_USAGE).
const EXIT_CONFIG: u8 = 64;
/// Records were rejected for good or dropped with no dead-letter sink to take them
/// (EX_DATAERR).
const EXIT_LOST: u8 = 65;
/// A stream, sink or thread panicked (EX_SOFTWARE).
const EXIT_PANIC: u8 = 70;
/// Lines read were not all acknowledged (the grace period ran out, or a batch failed): they are
/// read again after a restart (EX_TEMPFAIL).
const EXIT_INCOMPLETE: u8 = 75;

#[derive(Parser)]
#[command(
    name = "tailcar",
    version,
    about = "Tails log files and ships every line where it belongs"
)]
struct Cli {
    /// Log level of tailcar's own logs (on stderr): error, warn, info, debug, trace, or a
    /// RUST_LOG-style filter. Default: RUST_LOG, else info.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream files to stdout, following rotations: a drop-in for `tail -n+1 -F` in a sidecar.
    Tail(TailArgs),
    /// Run the streams and sinks of a configuration file.
    Run {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Read every file to its end, deliver, checkpoint, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Validate a configuration file and print what would run.
    Check {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Add tailcar sidecars to Kubernetes workloads (Pod, Deployment, StatefulSet, DaemonSet,
    /// Job, CronJob) read from a file or stdin; writes them to stdout, like `linkerd inject`:
    /// `kubectl get deploy web -o yaml | tailcar inject --stream access=/var/log/app/access.log - | kubectl apply -f -`
    Inject(InjectArgs),
    /// Work with WebAssembly plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Args)]
struct InjectArgs {
    /// The YAML to read: a file, or `-` for stdin.
    #[arg(default_value = "-")]
    input: PathBuf,
    /// A stream to tail: `NAME=PATH` (repeat for more); the sidecar is named `NAME-log`.
    #[arg(long = "stream", value_name = "NAME=PATH", required = true, value_parser = tailcar::inject::parse_stream)]
    streams: Vec<(String, PathBuf)>,
    /// The tailcar image.
    #[arg(long, default_value = tailcar::inject::IMAGE)]
    image: String,
    /// Serve /readyz from each sidecar for a startup probe, on ports from this one up.
    #[arg(long)]
    admin_port: Option<u16>,
}

fn inject(args: InjectArgs) -> ExitCode {
    let input = if args.input == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
    } else {
        std::fs::read_to_string(&args.input)
    };
    let input = match input {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tailcar: error: cannot read {}: {e}", args.input.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let opts = tailcar::inject::InjectOptions {
        streams: args.streams,
        image: args.image,
        admin_port: args.admin_port,
    };
    match tailcar::inject::inject(&input, &opts) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tailcar: inject: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run a plugin over sample lines and show what comes out of each, with timings and the
    /// plugin's panic message or trap reason when a batch fails. Exits 1 if a batch failed.
    Test(PluginTestArgs),
}

#[derive(Args)]
struct PluginTestArgs {
    /// The plugin component (`.wasm`).
    plugin: PathBuf,
    /// Sample lines: a file, or `-` for stdin.
    #[arg(default_value = "-")]
    input: PathBuf,
    /// The plugin's configuration, as JSON (what `config:` holds in the YAML).
    #[arg(long, default_value = "{}")]
    config: String,
    /// Lines per batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Linear memory limit.
    #[arg(long, default_value = "64MiB", value_parser = config::parse_size)]
    memory: u64,
    /// Time allowed per batch.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// Instruction budget per batch.
    #[arg(long)]
    fuel: Option<u64>,
    /// Largest output of one batch.
    #[arg(long, default_value = "16MiB", value_parser = config::parse_size)]
    max_output: u64,
    /// Cache compiled plugins here.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print only one line per batch and the summary.
    #[arg(long)]
    quiet: bool,
}

fn plugin_test(args: PluginTestArgs) -> ExitCode {
    use tailcar::transforms::wasm::{runtime::Limits, tester};
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&args.config) {
        eprintln!("tailcar: error: --config is not JSON: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let opts = tester::TestOptions {
        plugin: args.plugin,
        config: args.config,
        batch_size: args.batch_size as usize,
        limits: Limits {
            memory: args.memory as usize,
            deadline: args.deadline,
            fuel: args.fuel,
        },
        max_output: args.max_output as usize,
        cache_dir: args.cache_dir,
        quiet: args.quiet,
    };
    let mut input: Box<dyn std::io::BufRead> = if args.input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.input) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("tailcar: error: cannot read {}: {e}", args.input.display());
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = tester::run(&opts, &mut input, &mut out);
    let _ = std::io::Write::flush(&mut out);
    match result {
        Ok(s) if s.failed_batches == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tailcar: error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

#[derive(Args)]
struct TailArgs {
    /// Files or globs to follow; files that do not exist yet are picked up when they appear.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Keep positions here so a restart resumes where it stopped (default: none kept).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Start files found at start-up from their beginning (the default).
    #[arg(long, conflicts_with = "from_end")]
    from_start: bool,
    /// Start files found at start-up from their end.
    #[arg(long)]
    from_end: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    format: Format,
    /// Regex matching the first line of a multiline record (e.g. a timestamp).
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    multiline_start: Option<String>,
    /// Emit a multiline record after this long without a new line.
    #[arg(long, default_value = "1s", value_parser = tailcar::units::parse_interval)]
    multiline_timeout: Duration,
    /// Read the files to their end, deliver, checkpoint, and exit 0.
    #[arg(long)]
    once: bool,
    /// Longest line kept whole; longer lines are split into pieces of this size.
    #[arg(long, default_value = "1MiB", value_parser = parse_line_bytes)]
    max_line_bytes: u64,
    /// Change detection.
    #[arg(long, value_enum, default_value_t = WatchMode::Auto)]
    watch: WatchMode,
    /// Poll interval when inotify is not in use.
    #[arg(long, default_value = "250ms", value_parser = tailcar::units::parse_interval)]
    poll_interval: Duration,
    /// How long a rotated file must stay quiet at its end before it is released.
    #[arg(long, default_value = "5s", value_parser = tailcar::units::parse_wait)]
    rotate_wait: Duration,
    /// How long shutdown may take to drain what is in flight.
    #[arg(long, default_value = "5s", value_parser = tailcar::units::parse_wait)]
    grace_period: Duration,
    /// How often positions are written to the checkpoint directory.
    #[arg(long, default_value = "1s", value_parser = tailcar::units::parse_interval)]
    checkpoint_interval: Duration,
    /// Stream name in JSON output (default: the first file's name without extension).
    #[arg(long)]
    stream: Option<String>,
    /// Serve the admin endpoint (/metrics, /healthz, /readyz) here, e.g. `0.0.0.0:9095`
    /// (default: none).
    #[arg(long, value_name = "ADDRESS")]
    admin: Option<std::net::SocketAddr>,
}

fn parse_line_bytes(s: &str) -> Result<u64, String> {
    let n = config::parse_size(s)?;
    if n == 0 || n > 1 << 30 {
        return Err(format!(
            "{n} is out of range: must be between 1 byte and 1GiB"
        ));
    }
    Ok(n)
}

fn parse_regex(s: &str) -> Result<String, String> {
    regex::bytes::Regex::new(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

impl TailArgs {
    fn topology(self) -> Result<Topology, ConfigError> {
        let stream = self.stream.clone().unwrap_or_else(|| {
            Path::new(&self.paths[0])
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.contains(['*', '?', '[']))
                .unwrap_or_else(|| "tail".into())
        });
        let stream_config = StreamConfig {
            paths: self.paths,
            exclude: Vec::new(),
            sinks: vec!["stdout".into()],
            start_at: if self.from_end {
                StartAt::End
            } else {
                StartAt::Beginning
            },
            multiline: self.multiline_start.map(|start| MultilineConfig {
                start,
                timeout: self.multiline_timeout,
            }),
            max_line_bytes: self.max_line_bytes,
            poll_interval: self.poll_interval,
            rotate_wait: self.rotate_wait,
            parser: None,
            fields: IndexMap::new(),
            filters: Vec::new(),
            enrich: None,
            plugins: Vec::new(),
            remove_rotated_after_ship: false,
            reclaim: Default::default(),
            transform_order: Vec::new(),
        };
        let config = Config {
            checkpoint_dir: self.checkpoint_dir,
            checkpoint_interval: self.checkpoint_interval,
            grace_period: self.grace_period,
            watch: self.watch,
            plugin_cache_dir: None,
            admin: AdminConfig {
                enabled: self.admin.is_some(),
                address: self.admin.unwrap_or_else(tailcar::admin::defaults::address),
                ..AdminConfig::default()
            },
            streams: IndexMap::from([(stream, stream_config)]),
            sinks: IndexMap::from([(
                "stdout".to_string(),
                SinkConfig::Stdout(StdoutConfig {
                    format: self.format,
                }),
            )]),
        };
        config.validate("command line")
    }
}

fn init_logs(level: Option<&str>) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => {
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
        }
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_CONFIG),
            };
        }
    };
    init_logs(cli.log_level.as_deref());
    tailcar::supervise::install_panic_hook();
    let (topology, once, config_path) = match cli.command {
        Command::Tail(args) => {
            let once = args.once;
            (args.topology(), once, None)
        }
        Command::Run { config, once } => (Config::load(&config), once, Some(config)),
        Command::Plugin {
            command: PluginCommand::Test(args),
        } => return plugin_test(args),
        Command::Inject(args) => return inject(args),
        Command::Check { config } => {
            return match Config::load(&config) {
                Ok(t) => {
                    print!("{}", t.describe());
                    println!("configuration OK");
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(&e),
            };
        }
    };
    let topology = match topology {
        Ok(t) => t,
        Err(e) => return config_error(&e),
    };
    // Held until the process ends: no other tailcar may write these checkpoints meanwhile.
    let _lock = match &topology.checkpoint_dir {
        Some(dir) => match tailcar::checkpoint::DirLock::acquire(dir) {
            Ok(lock) => Some(lock),
            Err(reason) => {
                let (origin, key) = match &config_path {
                    Some(p) => (p.display().to_string(), "checkpoint_dir"),
                    None => ("command line".to_string(), "--checkpoint-dir"),
                };
                return config_error(&ConfigError {
                    origin,
                    key: Some(key.into()),
                    reason,
                });
            }
        },
        None => None,
    };
    match app::run(topology, once, config_path) {
        Ok(Outcome::Drained) => ExitCode::SUCCESS,
        Ok(Outcome::Lost(_)) => ExitCode::from(EXIT_LOST),
        Ok(Outcome::Incomplete) => ExitCode::from(EXIT_INCOMPLETE),
        Ok(Outcome::Failed(e)) if e.is::<tailcar::supervise::Panicked>() => {
            eprintln!("tailcar: error: {e:#}");
            ExitCode::from(EXIT_PANIC)
        }
        Ok(Outcome::Failed(e)) | Err(e) => {
            eprintln!("tailcar: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("tailcar: configuration error: {e}");
    ExitCode::from(EXIT_CONFIG)
}
