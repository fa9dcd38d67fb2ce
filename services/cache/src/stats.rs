//! Counters for the metrics endpoint.

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
