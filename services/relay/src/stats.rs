//! What the relay reports about itself: throughput and lag, per shard. The Prometheus
//! endpoint will read these.

use std::collections::BTreeMap;

use oc_model::ShardId;
use time::OffsetDateTime;

/// One shard's relay counters and lag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Events published and marked on this shard since start.
    pub published_total: u64,
    /// Batches published and marked.
    pub batches_total: u64,
    /// When the last batch was published and marked.
    pub last_batch_at: Option<OffsetDateTime>,
    /// When the outbox was last read (successfully), batch or not.
    pub last_poll_at: Option<OffsetDateTime>,
    /// Age of the oldest unpublished event as of the last read (`now - occurred_at` of the
    /// first pending row), 0 when the outbox was empty. The relay lag of this shard.
    pub oldest_pending_age_ms: u64,
    /// Rows the last read returned (equal to the batch size: more are waiting).
    pub last_claim_size: usize,
    /// Failed rounds since start (store or bus errors, timeouts).
    pub failures_total: u64,
    /// Failed rounds since the last success (what the backoff is at).
    pub consecutive_failures: u32,
    /// The last error, until the next success.
    pub last_error: Option<String>,
}

/// The relay's counters: totals and each shard's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub published_total: u64,
    pub shards: BTreeMap<ShardId, ShardStats>,
}

impl RelayStats {
    /// The worst shard's lag.
    pub fn max_oldest_pending_age_ms(&self) -> u64 {
        self.shards
            .values()
            .map(|shard| shard.oldest_pending_age_ms)
            .max()
            .unwrap_or(0)
    }
}
