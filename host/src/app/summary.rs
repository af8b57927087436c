//! The account of a run: what was read, delivered, rejected, dropped, dead-lettered and left in
//! flight, taken from the counters and the ledger when the run ends. Its last line is the one an
//! operator trusts, so it says "everything read was delivered" only when that is true, and the
//! exit code follows from it (see [`Verdict`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::checkpoint::InFlight;
use crate::stats::telemetry::Telemetry;

/// One sink's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkLine {
    pub name: String,
    pub delivered: u64,
    /// Rejected for good with no dead-letter sink (and records a server said it refused).
    pub rejected: u64,
    /// Dropped because the sink's queue was full (`when_full: drop_newest`).
    pub dropped: u64,
    pub dead_lettered: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Records read by all streams (lines, multiline records, pieces of split lines).
    pub read: u64,
    pub sinks: Vec<SinkLine>,
    /// Records plugins dropped or dead-lettered after failing (their `on_error`).
    pub plugin_failed: u64,
    /// Files whose lines were read but not all acknowledged: read again at the next start.
    pub in_flight: Vec<InFlight>,
    /// Components that panicked.
    pub failures: Vec<String>,
}

/// What the summary says about the run, strongest first; each has its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every record read was delivered (or went to a dead-letter sink as configured).
    Delivered,
    /// Records were rejected for good or dropped, and no dead-letter sink took them.
    Lost,
    /// Lines read were not all acknowledged: they are read again at the next start.
    InFlight,
    /// A component panicked: the run did not finish its work.
    Failed,
}

impl Summary {
    /// Gathers the figures of the whole process (counters survive reloads).
    pub fn gather(telemetry: &Telemetry, in_flight: Vec<InFlight>) -> Summary {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            read: telemetry.streams().iter().map(|(_, s)| g(&s.lines)).sum(),
            sinks: telemetry
                .sinks()
                .iter()
                .map(|(name, s)| SinkLine {
                    name: name.to_string(),
                    delivered: g(&s.delivered),
                    rejected: g(&s.rejected) + g(&s.server_rejected),
                    dropped: g(&s.dropped),
                    dead_lettered: g(&s.dead_lettered),
                })
                .collect(),
            plugin_failed: telemetry
                .plugins()
                .iter()
                .map(|(_, _, p)| g(&p.failed_dropped) + g(&p.failed_dead_lettered))
                .sum(),
            in_flight,
            failures: telemetry.failures(),
        }
    }

    /// Records lost for good (rejected or dropped with nowhere else to go).
    pub fn lost(&self) -> u64 {
        self.sinks.iter().map(|s| s.rejected + s.dropped).sum()
    }

    pub fn verdict(&self) -> Verdict {
        if !self.failures.is_empty() {
            Verdict::Failed
        } else if !self.in_flight.is_empty() {
            Verdict::InFlight
        } else if self.lost() > 0 {
            Verdict::Lost
        } else {
            Verdict::Delivered
        }
    }

    /// The closing lines: one per sink, then the verdict in words.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("read {} records", self.read)];
        for s in &self.sinks {
            out.push(format!(
                "sink {}: delivered {}, rejected {}, dropped {}, dead-lettered {}",
                s.name, s.delivered, s.rejected, s.dropped, s.dead_lettered
            ));
        }
        if self.plugin_failed > 0 {
            out.push(format!(
                "plugins: {} records of failed batches dropped or dead-lettered (on_error)",
                self.plugin_failed
            ));
        }
        for f in &self.failures {
            out.push(format!("failed: {f}"));
        }
        for f in &self.in_flight {
            out.push(format!(
                "in flight: {} (acknowledged up to {}, read up to {}): read again at the next \
                 start",
                f.path.display(),
                f.committed,
                f.issued
            ));
        }
        out.push(match self.verdict() {
            Verdict::Delivered => "everything read was delivered".to_string(),
            Verdict::Lost => format!(
                "{} records were rejected or dropped and not delivered (no dead-letter sink took \
                 them)",
                self.lost()
            ),
            Verdict::InFlight => "not everything read was acknowledged; the rest is read again \
                                  at the next start"
                .to_string(),
            Verdict::Failed => "a component failed (above); lines not acknowledged are read \
                                again at the next start"
                .to_string(),
        });
        out
    }

    /// Logs the closing lines (at error level when something was not delivered).
    pub fn log(&self) {
        let bad = self.verdict() != Verdict::Delivered;
        for line in self.lines() {
            if bad {
                tracing::error!("summary: {line}");
            } else {
                tracing::info!("summary: {line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_says_delivered_only_when_nothing_was_lost_or_left() {
        let mut s = Summary {
            read: 10,
            sinks: vec![SinkLine {
                name: "es".into(),
                delivered: 10,
                ..SinkLine::default()
            }],
            ..Summary::default()
        };
        assert_eq!(s.verdict(), Verdict::Delivered);
        assert_eq!(s.lines().last().unwrap(), "everything read was delivered");
        s.sinks[0].rejected = 3;
        assert_eq!(s.verdict(), Verdict::Lost);
        assert!(
            s.lines()
                .last()
                .unwrap()
                .starts_with("3 records were rejected")
        );
        assert!(
            s.lines()
                .contains(&"sink es: delivered 10, rejected 3, dropped 0, dead-lettered 0".into())
        );
        s.in_flight.push(InFlight {
            path: "/x.log".into(),
            committed: 5,
            issued: 9,
        });
        assert_eq!(s.verdict(), Verdict::InFlight);
    }
}
