//! What the relay reports about itself: throughput and lag, per shard, and how `/metrics`
//! shows it ([`RelayStats::render`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

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

    /// The counters in the Prometheus text format, for `/metrics`: events published
    /// (`oc_relay_published_total`) and the lag of each shard
    /// (`oc_relay_oldest_pending_age_ms{shard}`).
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP oc_relay_published_total Outbox events published to the bus.\n# TYPE oc_relay_published_total counter\n");
        let _ = writeln!(out, "oc_relay_published_total {}", self.published_total);
        out.push_str("# HELP oc_relay_oldest_pending_age_ms Age of the oldest unpublished outbox event, per shard (relay lag).\n# TYPE oc_relay_oldest_pending_age_ms gauge\n");
        for (shard, shard_stats) in &self.shards {
            let _ = writeln!(
                out,
                "oc_relay_oldest_pending_age_ms{{shard=\"{}\"}} {}",
                shard.0, shard_stats.oldest_pending_age_ms
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_writes_the_total_and_every_shards_lag() {
        let stats = RelayStats {
            published_total: 42,
            shards: [
                (
                    ShardId(0),
                    ShardStats {
                        oldest_pending_age_ms: 1500,
                        ..ShardStats::default()
                    },
                ),
                (ShardId(1), ShardStats::default()),
            ]
            .into(),
        };
        let mut out = String::new();
        stats.render(&mut out);
        for line in [
            "# TYPE oc_relay_published_total counter",
            "oc_relay_published_total 42",
            "# TYPE oc_relay_oldest_pending_age_ms gauge",
            "oc_relay_oldest_pending_age_ms{shard=\"0\"} 1500",
            "oc_relay_oldest_pending_age_ms{shard=\"1\"} 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }
}
