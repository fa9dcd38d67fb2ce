//! Counters for the metrics endpoint.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a [`TieredCache`](crate::TieredCache)'s counters, monotonic since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered by the in-process moka cache.
    pub l1_hits: u64,
    /// Reads answered by Redis (the L1 is filled from them).
    pub l2_hits: u64,
    /// Reads that found nothing (including degraded reads, counted in `errors` as well).
    pub misses: u64,
    /// Redis calls that failed or timed out (reads, writes and invalidations).
    pub errors: u64,
}

impl CacheStats {
    /// The counters in the Prometheus text format, for `/metrics`: reads by outcome
    /// (`oc_cache_reads_total{outcome="l1_hit|l2_hit|miss"}`) and failed Redis calls
    /// (`oc_cache_errors_total`).
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP oc_cache_reads_total Order reads of the cache by outcome.\n");
        out.push_str("# TYPE oc_cache_reads_total counter\n");
        for (outcome, count) in [
            ("l1_hit", self.l1_hits),
            ("l2_hit", self.l2_hits),
            ("miss", self.misses),
        ] {
            let _ = writeln!(out, "oc_cache_reads_total{{outcome=\"{outcome}\"}} {count}");
        }
        out.push_str("# HELP oc_cache_errors_total Failed or timed-out Redis calls.\n");
        out.push_str("# TYPE oc_cache_errors_total counter\n");
        let _ = writeln!(out, "oc_cache_errors_total {}", self.errors);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    pub(crate) fn l1_hit(&self) {
        self.l1_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn l2_hit(&self) {
        self.l2_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            l1_hits: self.l1_hits.load(Ordering::Relaxed),
            l2_hits: self.l2_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_writes_every_counter() {
        let stats = CacheStats {
            l1_hits: 7,
            l2_hits: 3,
            misses: 2,
            errors: 1,
        };
        let mut out = String::new();
        stats.render(&mut out);
        for line in [
            "# TYPE oc_cache_reads_total counter",
            "oc_cache_reads_total{outcome=\"l1_hit\"} 7",
            "oc_cache_reads_total{outcome=\"l2_hit\"} 3",
            "oc_cache_reads_total{outcome=\"miss\"} 2",
            "oc_cache_errors_total 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }
}
