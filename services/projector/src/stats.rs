//! Counters of a projector, per sink, readable while it runs.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

pub use oc_model::ports::SinkKind;

/// What one sink did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// Writes that changed the read model (a newer version).
    pub applied: u64,
    /// Writes the read model refused as the same or an older version (replays, duplicates).
    pub skipped_stale: u64,
    /// Failed attempts (each was retried).
    pub failures: u64,
    /// Orders refused for good (invalid for this read model, e.g. a value that does not fit
    /// its configured search kind) by a projector without a dead-letter record: counted,
    /// logged, skipped.
    pub rejected: u64,
    /// Orders recorded as dead letters (refused for good, or failing while other orders
    /// went through) and passed over.
    pub dead_lettered: u64,
    pub last_error: Option<String>,
}

/// A snapshot of a projector's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectorStats {
    /// Events taken from the stream (before de-duplication per batch).
    pub events: u64,
    /// Batches fully applied (and committed, when run from a stream).
    pub batches: u64,
    /// Orders re-read from the store and applied.
    pub orders: u64,
    /// Orders no longer in the store when re-read (archived): skipped.
    pub missing: u64,
    /// Failed store reads and stream polls/commits (each was retried).
    pub store_failures: u64,
    pub stream_failures: u64,
    pub last_error: Option<String>,
    /// Records behind the stream's end, as of the last poll, when the stream tells.
    pub lag: Option<u64>,
    /// Open dead letters (all sinks, all tenants) as last counted, when there is a record.
    pub dead_letters_open: Option<u64>,
    pub search: Option<SinkStats>,
    pub cold: Option<SinkStats>,
    pub cache: Option<SinkStats>,
}

impl ProjectorStats {
    pub fn sink(&self, kind: SinkKind) -> Option<&SinkStats> {
        match kind {
            SinkKind::Search => self.search.as_ref(),
            SinkKind::Cold => self.cold.as_ref(),
            SinkKind::Cache => self.cache.as_ref(),
        }
    }

    /// The counters in the Prometheus text format, for `/metrics`: events taken
    /// (`oc_projector_events_total`), the lag behind the stream (`oc_projector_lag_records`,
    /// when the stream tells) and the writes per read model and outcome
    /// (`oc_projector_writes_total{sink,outcome}`), the orders dead-lettered per read model
    /// (`oc_projector_dead_letters_total{sink}`) and the open dead letters
    /// (`oc_projector_dead_letters_open`, when there is a record).
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP oc_projector_events_total Events taken from the stream.\n# TYPE oc_projector_events_total counter\n");
        let _ = writeln!(out, "oc_projector_events_total {}", self.events);
        out.push_str("# HELP oc_projector_lag_records Records behind the end of the stream, as of the last poll.\n# TYPE oc_projector_lag_records gauge\n");
        if let Some(lag) = self.lag {
            let _ = writeln!(out, "oc_projector_lag_records {lag}");
        }
        out.push_str("# HELP oc_projector_writes_total Read-model writes by sink and outcome.\n# TYPE oc_projector_writes_total counter\n");
        for kind in SinkKind::ALL {
            if let Some(sink) = self.sink(kind) {
                for (outcome, count) in [
                    ("applied", sink.applied),
                    ("stale", sink.skipped_stale),
                    ("failed", sink.failures),
                    ("rejected", sink.rejected),
                ] {
                    let _ = writeln!(
                        out,
                        "oc_projector_writes_total{{sink=\"{kind}\",outcome=\"{outcome}\"}} {count}"
                    );
                }
            }
        }
        out.push_str("# HELP oc_projector_dead_letters_total Orders a read model refused, recorded as dead letters and passed over.\n# TYPE oc_projector_dead_letters_total counter\n");
        for kind in SinkKind::ALL {
            if let Some(sink) = self.sink(kind) {
                let _ = writeln!(
                    out,
                    "oc_projector_dead_letters_total{{sink=\"{kind}\"}} {}",
                    sink.dead_lettered
                );
            }
        }
        out.push_str("# HELP oc_projector_dead_letters_open Dead letters not yet replayed, as last counted.\n# TYPE oc_projector_dead_letters_open gauge\n");
        if let Some(open) = self.dead_letters_open {
            let _ = writeln!(out, "oc_projector_dead_letters_open {open}");
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct SinkCounters {
    pub applied: AtomicU64,
    pub skipped_stale: AtomicU64,
    pub failures: AtomicU64,
    pub rejected: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Successful writes (applied or stale) so far: an order failing while this moves was
    /// failing while the sink worked (see `Projector::sink_write`).
    pub successes: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

pub(crate) fn set_error(slot: &Mutex<Option<String>>, error: String) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
}

fn get_error(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

impl SinkCounters {
    pub fn written(&self, written: bool) {
        self.successes.fetch_add(1, Ordering::Relaxed);
        if written {
            self.applied.fetch_add(1, Ordering::Relaxed);
        } else {
            self.skipped_stale.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> SinkStats {
        SinkStats {
            applied: self.applied.load(Ordering::Relaxed),
            skipped_stale: self.skipped_stale.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            last_error: get_error(&self.last_error),
        }
    }
}

/// `u64::MAX` stands for "unknown lag".
const NO_LAG: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Counters {
    pub events: AtomicU64,
    pub batches: AtomicU64,
    pub orders: AtomicU64,
    pub missing: AtomicU64,
    pub store_failures: AtomicU64,
    pub stream_failures: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    lag: AtomicU64,
    /// `NO_LAG` (unknown) until counted.
    dead_letters_open: AtomicU64,
    pub search: SinkCounters,
    pub cold: SinkCounters,
    pub cache: SinkCounters,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            events: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            orders: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            store_failures: AtomicU64::new(0),
            stream_failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            lag: AtomicU64::new(NO_LAG),
            dead_letters_open: AtomicU64::new(NO_LAG),
            search: SinkCounters::default(),
            cold: SinkCounters::default(),
            cache: SinkCounters::default(),
        }
    }
}

impl Counters {
    pub fn sink(&self, kind: SinkKind) -> &SinkCounters {
        match kind {
            SinkKind::Search => &self.search,
            SinkKind::Cold => &self.cold,
            SinkKind::Cache => &self.cache,
        }
    }

    pub fn set_lag(&self, lag: Option<u64>) {
        self.lag.store(lag.unwrap_or(NO_LAG), Ordering::Relaxed);
    }

    pub fn set_dead_letters_open(&self, open: u64) {
        self.dead_letters_open
            .store(open.min(NO_LAG - 1), Ordering::Relaxed);
    }

    pub fn snapshot(&self, configured: [bool; 3]) -> ProjectorStats {
        let lag = self.lag.load(Ordering::Relaxed);
        let open = self.dead_letters_open.load(Ordering::Relaxed);
        let sink =
            |index: usize, counters: &SinkCounters| configured[index].then(|| counters.snapshot());
        ProjectorStats {
            events: self.events.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            orders: self.orders.load(Ordering::Relaxed),
            missing: self.missing.load(Ordering::Relaxed),
            store_failures: self.store_failures.load(Ordering::Relaxed),
            stream_failures: self.stream_failures.load(Ordering::Relaxed),
            last_error: get_error(&self.last_error),
            lag: (lag != NO_LAG).then_some(lag),
            dead_letters_open: (open != NO_LAG).then_some(open),
            search: sink(0, &self.search),
            cold: sink(1, &self.cold),
            cache: sink(2, &self.cache),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_writes_events_lag_and_the_writes_of_each_configured_sink() {
        let stats = ProjectorStats {
            events: 9,
            lag: Some(4),
            dead_letters_open: Some(3),
            search: Some(SinkStats {
                applied: 5,
                skipped_stale: 2,
                failures: 1,
                dead_lettered: 3,
                ..SinkStats::default()
            }),
            ..ProjectorStats::default()
        };
        let mut out = String::new();
        stats.render(&mut out);
        for line in [
            "# TYPE oc_projector_events_total counter",
            "oc_projector_events_total 9",
            "oc_projector_lag_records 4",
            "oc_projector_writes_total{sink=\"search\",outcome=\"applied\"} 5",
            "oc_projector_writes_total{sink=\"search\",outcome=\"stale\"} 2",
            "oc_projector_writes_total{sink=\"search\",outcome=\"failed\"} 1",
            "oc_projector_writes_total{sink=\"search\",outcome=\"rejected\"} 0",
            "# TYPE oc_projector_dead_letters_total counter",
            "oc_projector_dead_letters_total{sink=\"search\"} 3",
            "# TYPE oc_projector_dead_letters_open gauge",
            "oc_projector_dead_letters_open 3",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        assert!(
            !out.contains("sink=\"cold\""),
            "a sink that is not configured has no lines:\n{out}"
        );
    }
}
