//! The scheduler's counters and lag, rendered at `/metrics` of the process it runs in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use oc_model::ShardId;

use super::{Swept, Timeout};

/// Counters since start and the last lag seen per shard.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    passes: AtomicU64,
    errors: AtomicU64,
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
    swept: Mutex<BTreeMap<&'static str, u64>>,
    lag_ms: Mutex<BTreeMap<ShardId, u64>>,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *map.entry(key).or_default() += 1;
}

impl SchedulerStats {
    pub(crate) fn pass(&self) {
        self.passes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fired(&self) {
        bump(&self.outcomes, Timeout::Fired.as_str());
    }

    pub(crate) fn skipped(&self, outcome: Timeout) {
        bump(&self.outcomes, outcome.as_str());
    }

    pub(crate) fn swept(&self, outcome: Swept) {
        bump(&self.swept, outcome.as_str());
    }

    pub(crate) fn set_lag(&self, shard: ShardId, lag_ms: u64) {
        let mut lags = self.lag_ms.lock().unwrap_or_else(|p| p.into_inner());
        lags.insert(shard, lag_ms);
    }

    /// Timeouts fired since start.
    pub fn fired_total(&self) -> u64 {
        let outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        outcomes.get(Timeout::Fired.as_str()).copied().unwrap_or(0)
    }

    /// The counters in the Prometheus text format: timeouts fired
    /// (`oc_scheduler_timeouts_total{outcome="fired"}`) and skipped (the other outcomes),
    /// reservations swept (`oc_scheduler_reservations_swept_total{outcome}`), the lag of each
    /// shard (`oc_scheduler_lag_ms{shard}`: the age of its oldest due order not yet timed
    /// out, when the worker last looked), passes and errors.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP oc_scheduler_timeouts_total Due orders handled by the timeout worker, by outcome (fired, or why skipped).\n# TYPE oc_scheduler_timeouts_total counter\n");
        let outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for outcome in [
            Timeout::Fired,
            Timeout::Raced,
            Timeout::NotDue,
            Timeout::UnknownTenant,
            Timeout::NotAllowed,
        ] {
            let count = outcomes.get(outcome.as_str()).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "oc_scheduler_timeouts_total{{outcome=\"{}\"}} {count}",
                outcome.as_str()
            );
        }
        out.push_str("# HELP oc_scheduler_reservations_swept_total Expired reservations the sweeper moved: orphans released, or settled as their order's history decided.\n# TYPE oc_scheduler_reservations_swept_total counter\n");
        let swept = self.swept.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for outcome in [Swept::OrphanReleased, Swept::Settled] {
            let count = swept.get(outcome.as_str()).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "oc_scheduler_reservations_swept_total{{outcome=\"{}\"}} {count}",
                outcome.as_str()
            );
        }
        out.push_str("# HELP oc_scheduler_lag_ms Age of the oldest order past its pay deadline not yet timed out, per shard, when the worker last looked.\n# TYPE oc_scheduler_lag_ms gauge\n");
        let lags = self
            .lag_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (shard, lag) in lags {
            let _ = writeln!(out, "oc_scheduler_lag_ms{{shard=\"{}\"}} {lag}", shard.0);
        }
        out.push_str("# HELP oc_scheduler_passes_total Passes over every shard.\n# TYPE oc_scheduler_passes_total counter\n");
        let _ = writeln!(
            out,
            "oc_scheduler_passes_total {}",
            self.passes.load(Ordering::Relaxed)
        );
        out.push_str("# HELP oc_scheduler_errors_total Orders, reservations or pages the scheduler failed on (retried next pass).\n# TYPE oc_scheduler_errors_total counter\n");
        let _ = writeln!(
            out,
            "oc_scheduler_errors_total {}",
            self.errors.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_writes_every_outcome_and_each_shards_lag() {
        let stats = SchedulerStats::default();
        stats.fired();
        stats.fired();
        stats.skipped(Timeout::Raced);
        stats.swept(Swept::OrphanReleased);
        stats.set_lag(ShardId(1), 1500);
        let mut out = String::new();
        stats.render(&mut out);
        for line in [
            "oc_scheduler_timeouts_total{outcome=\"fired\"} 2",
            "oc_scheduler_timeouts_total{outcome=\"raced\"} 1",
            "oc_scheduler_timeouts_total{outcome=\"not_due\"} 0",
            "oc_scheduler_reservations_swept_total{outcome=\"orphan_released\"} 1",
            "oc_scheduler_reservations_swept_total{outcome=\"settled\"} 0",
            "oc_scheduler_lag_ms{shard=\"1\"} 1500",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        assert_eq!(stats.fired_total(), 2);
    }
}
