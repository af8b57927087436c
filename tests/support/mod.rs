//! Helpers shared by the integration tests: run the real `tailcar` binary, capture what it
//! writes, write numbered lines, and count losses and duplicates.

#![allow(dead_code)]

pub mod http_server;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tailcar");

/// A running tailcar whose stdout and stderr are collected in the background.
pub struct Tailcar {
    pub child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut r: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

impl Tailcar {
    /// Starts `tailcar ARGS` in `dir` with logs at info level.
    pub fn start(dir: &Path, args: &[&str]) -> Tailcar {
        Self::start_with(dir, args, true)
    }

    /// Starts tailcar; with `read_stdout` false its stdout pipe is never read (a stuck reader).
    pub fn start_with(dir: &Path, args: &[&str], read_stdout: bool) -> Tailcar {
        Self::start_full(dir, args, &[], read_stdout)
    }

    /// Starts tailcar with extra environment variables (the Downward API ones, say).
    pub fn start_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Tailcar {
        Self::start_full(dir, args, env, true)
    }

    fn start_full(dir: &Path, args: &[&str], env: &[(&str, &str)], read_stdout: bool) -> Tailcar {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tailcar");
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let mut readers = vec![collect(child.stderr.take().unwrap(), Arc::clone(&err))];
        if read_stdout {
            readers.push(collect(child.stdout.take().unwrap(), Arc::clone(&out)));
        }
        Tailcar {
            child,
            out,
            err,
            readers,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    pub fn stdout_lines(&self) -> usize {
        self.out
            .lock()
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    /// Waits until stdout holds at least `n` lines; panics with stderr after `timeout`.
    pub fn wait_lines(&self, n: usize, timeout: Duration) {
        let ok = wait_until(timeout, || self.stdout_lines() >= n);
        assert!(
            ok,
            "timed out waiting for {n} lines (have {}); stderr:\n{}",
            self.stdout_lines(),
            self.stderr()
        );
    }

    /// Waits until stderr contains `text`.
    pub fn wait_stderr(&self, text: &str, timeout: Duration) {
        let ok = wait_until(timeout, || self.stderr().contains(text));
        assert!(
            ok,
            "timed out waiting for `{text}` in stderr:\n{}",
            self.stderr()
        );
    }

    /// How many times stderr holds `text` so far.
    pub fn stderr_count(&self, text: &str) -> usize {
        self.stderr().matches(text).count()
    }

    /// Waits until stderr holds `text` more than `before` times (an event logged again).
    pub fn wait_stderr_after(&self, text: &str, before: usize, timeout: Duration) {
        let ok = wait_until(timeout, || self.stderr_count(text) > before);
        assert!(
            ok,
            "timed out waiting for `{text}` in stderr after the {before} seen before:\n{}",
            self.stderr()
        );
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .expect("sending a signal");
    }

    /// Waits for the process to exit, then for its output to be fully collected.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                for r in self.readers.drain(..) {
                    r.join().unwrap();
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "tailcar did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill9(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.wait(Duration::from_secs(10));
    }

    /// SIGTERM; asserts a clean exit 0.
    pub fn stop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.wait(Duration::from_secs(20));
        assert_eq!(status.code(), Some(0), "stderr:\n{}", self.stderr());
    }
}

impl Drop for Tailcar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs tailcar to completion (`--once`, `check`, bad configs): `(exit code, stdout, stderr)`.
pub fn run(dir: &Path, args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    run_env(dir, args, &[])
}

/// Like [`run`], with extra environment variables.
pub fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Vec<u8>, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("running tailcar");
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The numbered line `seq` of stream `tag`: `tag 00000042 <padding to ~150 bytes>`.
pub fn line(tag: &str, seq: u64) -> String {
    format!(
        "{tag} {seq:08} GET /api/v1/items?id={seq} HTTP/1.1 200 1234 \"-\" \"Mozilla/5.0 (X11; Linux x86_64) tailcar-test\" rt=0.012"
    )
}

/// Appends lines `range` of `tag` to `path`.
pub fn append(path: &Path, tag: &str, range: std::ops::Range<u64>) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for seq in range {
        buf.push_str(&line(tag, seq));
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

/// The complete lines of `bytes` that belong to stream `tag` (`tag ...`): other streams' lines,
/// a banner, and a last line still being written (no newline yet) are left out.
pub fn only(bytes: &[u8], tag: &str) -> Vec<u8> {
    let prefix = format!("{tag} ");
    let mut out = Vec::new();
    let (bytes, _) = complete_lines(bytes);
    for l in bytes
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(prefix.as_bytes()))
    {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// How often each sequence number of `tag` appears in `output`; panics on a line that is not a
/// well-formed numbered line (a torn or corrupted line).
pub fn seq_counts(output: &[u8], tag: &str) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for l in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let text = std::str::from_utf8(l).expect("utf-8 line");
        let seq: u64 = text
            .strip_prefix(tag)
            .and_then(|r| r.get(1..9))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("malformed line: {text:?}"));
        assert_eq!(text, line(tag, seq), "line {seq} is not intact");
        *counts.entry(seq).or_default() += 1;
    }
    counts
}

/// Asserts every sequence number in `0..n` appears at least once; returns the duplicate count.
pub fn assert_all_arrived(counts: &BTreeMap<u64, usize>, n: u64) -> usize {
    let missing: Vec<u64> = (0..n).filter(|s| !counts.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} lines lost, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let extra: Vec<&u64> = counts.keys().filter(|&&s| s >= n).collect();
    assert!(extra.is_empty(), "unexpected lines: {extra:?}");
    counts.values().map(|&c| c - 1).sum()
}

/// The committed offset of `file` in the checkpoint file of `dir`, if any.
pub fn checkpoint_offset(dir: &Path, file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("checkpoints.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let want = file.canonicalize().ok().unwrap_or(file.to_path_buf());
    v["files"].as_array()?.iter().find_map(|e| {
        let p = PathBuf::from(e["path"].as_str()?);
        (p == file || p == want)
            .then(|| e["offset"].as_u64())
            .flatten()
    })
}

pub fn file_len(p: &Path) -> u64 {
    File::open(p)
        .and_then(|f| f.metadata())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The sequence numbers of `tag` in `output`, in the order they came out.
pub fn seqs_in_order(output: &[u8], tag: &str) -> Vec<u64> {
    output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let text = std::str::from_utf8(l).expect("utf-8 line");
            text.strip_prefix(tag)
                .and_then(|r| r.get(1..9))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("malformed line: {text:?}"))
        })
        .collect()
}

/// The resident set size of process `pid`, in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// The output of a SIGKILLed process up to its last newline, and whether anything followed it:
/// a kill during a large write to a pipe can cut the last line (the restarted instance sends it
/// again, whole).
pub fn complete_lines(output: &[u8]) -> (&[u8], bool) {
    match output.iter().rposition(|&b| b == b'\n') {
        Some(i) => (&output[..=i], i + 1 < output.len()),
        None => (&[], !output.is_empty()),
    }
}

/// The plugins under `plugins/` built for `wasm32-wasip2` (once per test binary), so tests run
/// components compiled from source, never checked-in binaries. They are built under
/// `$CARGO_TARGET_DIR/plugins` when `CARGO_TARGET_DIR` is set (as `scripts/test.sh` does, which
/// builds them there first), else under the workspace's `target/plugins`.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| root.join(d).join("plugins"))
            .unwrap_or_else(|| root.join("target/plugins"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2"]);
        for p in [
            "nginx_parse",
            "drop_healthchecks",
            "json_kv_parse",
            "redact",
            "sample",
            "passthrough",
            "hostile",
            "wrong_world",
        ] {
            cmd.args(["-p", p]);
        }
        let out = cmd.output().expect("running cargo to build the plugins");
        assert!(
            out.status.success(),
            "building the plugins failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("wasm32-wasip2/plugin")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A Python or JavaScript plugin (`plugins/python/...`, `plugins/javascript/...`) built from
/// source by its language's `build.sh` with the pinned componentize-py or componentize-js (once
/// per language per test binary; the scripts skip what is up to date).
pub fn lang_plugin(lang: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|l| l == lang) {
        let out = Command::new("bash")
            .arg(root.join(format!("plugins/{lang}/build.sh")))
            .current_dir(&root)
            .output()
            .expect("running the plugin build script");
        assert!(
            out.status.success(),
            "building the {lang} plugins failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        built.push(lang.to_string());
    }
    let path = root.join(format!("target/plugins/{lang}/{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// GET `path` from the admin endpoint on 127.0.0.1:`port`: (status, body); (0, "") while
/// nothing listens there yet.
pub fn admin_get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    if s.read_to_string(&mut text).is_err() || text.len() < 12 {
        return (0, String::new());
    }
    let status = text[9..12].parse().unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of sample `series` (`name{labels}`) in an OpenMetrics text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until stream `stream` of the tailcar whose admin endpoint is on `port` is held back by
/// its sinks (`tailcar_stream_waiting_on_sinks` 1 on two scrapes in a row): its sink queues are
/// full and its reading has stopped, so whatever tailcar buffers is buffered by now.
pub fn wait_backpressured(port: u16, stream: &str, timeout: Duration) -> bool {
    let series = format!("tailcar_stream_waiting_on_sinks{{stream=\"{stream}\"}}");
    let mut in_a_row = 0;
    wait_until(timeout, || {
        let waiting = metric(&admin_get(port, "/metrics").1, &series) == Some(1.0);
        in_a_row = if waiting { in_a_row + 1 } else { 0 };
        in_a_row >= 2
    })
}

/// A plugin compile cache shared by every test of the run (and by later runs): a Python or
/// JavaScript component takes seconds of CPU to compile in the debug build, so the suite
/// compiles each one once instead of once per test. tailcar keys entries by content and engine
/// and locks the directory while compiling, so tests running at once share it safely. Tests
/// about the cache itself use a directory of their own.
pub fn plugin_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// Copies the Apache access sample (tests/fixtures) to `dir/access.log`.
pub fn copy_sample(dir: &Path) -> PathBuf {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/apache_access_10k.log"
    );
    let to = dir.join("access.log");
    std::fs::copy(sample, &to).unwrap();
    to
}

/// The JSON records of a `format: json` file sink.
pub fn json_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `line` of each record a `format: json` file sink wrote.
pub fn lines_of(path: &Path) -> Vec<String> {
    json_records(path)
        .iter()
        .map(|r| r["line"].as_str().unwrap().to_string())
        .collect()
}

/// The value of `key=N` in the last log line that mentions `context` (statistics lines).
pub fn stat(log: &str, context: &str, key: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains(context))?;
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
