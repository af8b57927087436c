//! `hostile`: a plugin that misbehaves on purpose, for tailcar's sandbox tests only.
//!
//! Config: `mode` (what it does) and `trigger` (it misbehaves on batches holding a line that
//! contains this text; every batch when absent). Modes:
//! - `loop`: never returns;
//! - `membomb`: allocates until it runs out of memory;
//! - `panic`: panics with a message naming the line;
//! - `flood`: turns each line into `copies` copies (default 100000);
//! - `fail`: returns an error for the batch;
//! - `leak`: keeps `leak_kib` KiB (default 1024) per batch forever, and passes lines through;
//! - `log`: logs each line at warn level and counts it, and passes lines through.
//!
//! Batches without the trigger pass through unchanged.

use tailcar_plugin::{Config, Emit, Level, Plugin, Record, Verdict};

pub struct Hostile {
    mode: String,
    trigger: Option<String>,
    copies: u64,
    leak_kib: u64,
    leaked: Vec<Vec<u8>>,
    armed: bool,
}

const MODES: [&str; 7] = ["loop", "membomb", "panic", "flood", "fail", "leak", "log"];

impl Plugin for Hostile {
    fn init(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["mode", "trigger", "copies", "leak_kib"])?;
        let mode = config.str("mode")?.ok_or("`mode` is required")?.to_string();
        if !MODES.contains(&mode.as_str()) {
            return Err(format!("`mode`: unknown mode `{mode}`"));
        }
        Ok(Hostile {
            mode,
            trigger: config.str("trigger")?.map(String::from),
            copies: config.u64("copies")?.unwrap_or(100_000),
            leak_kib: config.u64("leak_kib")?.unwrap_or(1024),
            leaked: Vec::new(),
            armed: false,
        })
    }

    fn begin_batch(&mut self, _batch: &tailcar_plugin::BatchInfo<'_>) {
        self.armed = self.trigger.is_none();
        if self.mode == "leak" {
            let mut block = vec![0u8; (self.leak_kib * 1024) as usize];
            // Touch every page so the memory is really used.
            for b in block.iter_mut().step_by(4096) {
                *b = 1;
            }
            self.leaked.push(block);
        }
    }

    fn process(&mut self, record: &mut Record<'_>) -> Verdict {
        if let Some(t) = &self.trigger
            && record.line().windows(t.len()).any(|w| w == t.as_bytes())
        {
            self.armed = true;
        }
        if !self.armed {
            return Verdict::Keep;
        }
        match self.mode.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "membomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = vec![1u8; 1 << 20];
                    block[0] = hoard.len() as u8;
                    hoard.push(std::hint::black_box(block));
                }
            }
            "panic" => panic!(
                "hostile plugin panicked on purpose at line `{}`",
                String::from_utf8_lossy(record.line())
            ),
            "flood" => Verdict::Split(
                (0..self.copies)
                    .map(|_| Emit::line(record.line().to_vec()))
                    .collect(),
            ),
            "fail" => Verdict::Fail(format!(
                "refusing the batch at line `{}`",
                String::from_utf8_lossy(record.line())
            )),
            "log" => {
                tailcar_plugin::log(
                    Level::Warn,
                    &format!("saw `{}`", String::from_utf8_lossy(record.line())),
                );
                tailcar_plugin::count("lines_logged", 1);
                Verdict::Keep
            }
            _ => Verdict::Keep,
        }
    }
}

tailcar_plugin::export!(Hostile);
