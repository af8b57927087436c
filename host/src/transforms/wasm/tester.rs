//! `tailcar plugin test`: runs a plugin over sample lines and shows, for each input record, what
//! came out (kept, changed, dropped, split; fields, time, route), with each batch's time, and the
//! plugin's panic message or trap reason when a batch fails. The plugin author's inner loop.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::convert::{self, RouteTable};
use super::runtime::Limits;
use super::{OnError, PluginSpec, load_file};
use crate::event::{Batch, Source};

/// What to run.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub plugin: PathBuf,
    /// The plugin's config, as JSON text.
    pub config: String,
    /// Lines per batch.
    pub batch_size: usize,
    pub limits: Limits,
    pub max_output: usize,
    pub cache_dir: Option<PathBuf>,
    /// Print only the per-batch lines and the summary.
    pub quiet: bool,
}

/// How the run went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TestSummary {
    pub batches: usize,
    pub failed_batches: usize,
    pub records_in: usize,
    pub records_out: usize,
}

fn describe_fields(batch: &Batch, record: usize) -> Option<String> {
    batch.has_fields(record).then(|| {
        let mut out = Vec::new();
        batch.fields().write_json(record, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Loads the plugin (an error is the reason it cannot start) and runs it over `input`, writing
/// the report to `out`.
pub fn run(
    opts: &TestOptions,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<TestSummary, String> {
    let started = Instant::now();
    let name: Arc<str> = opts
        .plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into())
        .into();
    let loaded = load_file(
        &opts.plugin,
        opts.limits.fuel.is_some(),
        opts.cache_dir.as_deref(),
        (&name, opts.limits.memory as u64),
    )
    .map_err(|(_, reason)| reason)?;
    let load_time = started.elapsed();
    let spec = PluginSpec {
        name: Arc::clone(&name),
        path: opts.plugin.clone(),
        config: opts.config.clone(),
        limits: opts.limits,
        max_output: opts.max_output,
        // As in a pipeline with the default `recycle_above`.
        recycle_above: opts.limits.memory / 4 * 3,
        on_error: OnError::Pass,
        dead_letter: None,
        cache_dir: opts.cache_dir.clone(),
        loaded: Arc::new(loaded),
    };
    let io = |e: std::io::Error| format!("writing the report: {e}");
    let t0 = Instant::now();
    let mut instance = spec.start(&spec.loaded).map_err(|(_, reason)| reason)?;
    let start_time = t0.elapsed();
    writeln!(
        out,
        "plugin {name} ({}, {}): {} in {:.1} ms, instantiated and initialised in {:.1} ms with config {}",
        opts.plugin.display(),
        spec.loaded.guest.describe(),
        if spec.loaded.from_cache {
            "loaded from the compile cache"
        } else {
            "compiled"
        },
        load_time.as_secs_f64() * 1e3,
        start_time.as_secs_f64() * 1e3,
        opts.config
    )
    .map_err(io)?;
    let source = Arc::new(Source {
        stream: "test".into(),
        path: Path::new("-").to_path_buf(),
        file_id: None,
    });
    let routes = RouteTable {
        names: Vec::new(),
        defaults: 0,
    };
    let mut summary = TestSummary::default();
    let (mut peak_memory, mut recycled) = (0usize, 0usize);
    let mut busy = Duration::ZERO;
    let mut lines = input.split(b'\n');
    loop {
        let mut batch = Batch::new(Arc::clone(&source), SystemTime::now());
        for line in lines.by_ref() {
            let mut line = line.map_err(|e| format!("reading the input: {e}"))?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let offset = batch.len() as u64 + 1;
            batch.push_line(&line, offset, 0);
            if batch.len() == opts.batch_size {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        summary.batches += 1;
        summary.records_in += batch.len();
        let inputs: Vec<Vec<u8>> = batch
            .records()
            .iter()
            .map(|r| batch.line(r).to_vec())
            .collect();
        let packed = convert::pack(&mut batch);
        let t0 = Instant::now();
        let result = instance.process(&packed.batch);
        let took = t0.elapsed();
        busy += took;
        let (calls, stdout, stderr) = instance.take_output();
        let result = result.map_err(|f| f.to_string()).and_then(|output| {
            let size = convert::output_size(&output);
            if size > opts.max_output {
                return Err(format!(
                    "output of {size} bytes is over the limit of {} bytes",
                    opts.max_output
                ));
            }
            convert::apply(&mut batch, packed, output, &routes)
        });
        let n = inputs.len();
        match &result {
            Ok(_) => {
                summary.records_out += batch.len();
                writeln!(
                    out,
                    "batch {}: {n} records in, {} out, {:.3} ms ({:.0} ns/record)",
                    summary.batches,
                    batch.len(),
                    took.as_secs_f64() * 1e3,
                    took.as_nanos() as f64 / n as f64
                )
                .map_err(io)?;
            }
            Err(reason) => {
                summary.failed_batches += 1;
                writeln!(
                    out,
                    "batch {} FAILED after {:.3} ms ({n} records): {reason}",
                    summary.batches,
                    took.as_secs_f64() * 1e3
                )
                .map_err(io)?;
            }
        }
        for (level, message) in calls.logs {
            writeln!(out, "  plugin log [{level:?}]: {message}").map_err(io)?;
        }
        for (counter, n) in calls.counts {
            writeln!(out, "  plugin counter {counter} += {n}").map_err(io)?;
        }
        for (what, bytes) in [("stdout", stdout), ("stderr", stderr)] {
            let text = String::from_utf8_lossy(&bytes);
            for l in text.trim().lines() {
                writeln!(out, "  plugin {what}: {l}").map_err(io)?;
            }
        }
        peak_memory = peak_memory.max(instance.memory());
        if result.is_err() {
            // A trap poisons the instance: start a fresh one for the next batch, as tailcar does.
            instance = spec.start(&spec.loaded).map_err(|(_, reason)| reason)?;
            continue;
        }
        if instance.memory() > spec.recycle_above {
            // As tailcar does after a batch that left the instance's memory this high.
            writeln!(
                out,
                "  instance recycled: its memory ({} KiB) passed recycle_above ({} KiB, 3/4 of --memory)",
                instance.memory() / 1024,
                spec.recycle_above / 1024
            )
            .map_err(io)?;
            recycled += 1;
            instance = spec.start(&spec.loaded).map_err(|(_, reason)| reason)?;
        }
        if opts.quiet {
            continue;
        }
        // Group outputs by the input they came from (offset - 1).
        let mut outputs: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (j, r) in batch.records().iter().enumerate() {
            outputs[(r.offset - 1) as usize].push(j);
        }
        for (i, line) in inputs.iter().enumerate() {
            let line = String::from_utf8_lossy(line);
            writeln!(out, "  #{} in:  {line}", i + 1).map_err(io)?;
            let outs = &outputs[i];
            if outs.is_empty() {
                writeln!(out, "     dropped").map_err(io)?;
                continue;
            }
            if outs.len() > 1 {
                writeln!(out, "     split into {} records", outs.len()).map_err(io)?;
            }
            for &j in outs {
                let r = &batch.records()[j];
                let o = String::from_utf8_lossy(batch.line(r));
                if o == line {
                    writeln!(out, "     kept").map_err(io)?;
                } else {
                    writeln!(out, "     out: {o}").map_err(io)?;
                }
                if let Some(f) = describe_fields(&batch, j) {
                    writeln!(out, "     fields: {f}").map_err(io)?;
                }
                if let Some(t) = batch.time(j) {
                    writeln!(out, "     time: {t}").map_err(io)?;
                }
            }
        }
    }
    let per_record = if summary.records_in > 0 {
        busy.as_nanos() as f64 / summary.records_in as f64
    } else {
        0.0
    };
    writeln!(
        out,
        "summary: {} batches ({} failed), {} records in, {} out, {per_record:.0} ns/record in the plugin, memory {} KiB (peak), {recycled} recycled",
        summary.batches,
        summary.failed_batches,
        summary.records_in,
        summary.records_out,
        peak_memory.max(instance.memory()) / 1024
    )
    .map_err(io)?;
    Ok(summary)
}
