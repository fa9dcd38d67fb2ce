//! The purge jobs: outbox rows and idempotency records past their retention are deleted
//! in bounded batches, each batch one statement (see [`RetentionStore`]), so a scheduler
//! killed mid-purge leaves whole batches done and the next pass goes on.
//!
//! An outbox row is deleted only once it is published (the relay is done with it) and was
//! published longer ago than the retention; in single-node mode also only once the
//! single-node projector's durable position (the next outbox sequence it reads, kept under
//! its consumer group in an [`OffsetStore`]) is past it: that projector reads the outbox
//! itself, published or not. A shard it has no position for yet keeps all its rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use oc_model::ports::OffsetStore;
use oc_model::retention::RetentionStore;
use oc_model::{DomainResult, ShardId, UnixMillis};

/// What the purge jobs keep, and how much one statement deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeSettings {
    /// Outbox rows are kept this long after they were published.
    pub outbox_retention: time::Duration,
    /// Idempotency records are kept this long after their create: a retry with the same
    /// key within it answers the first order, after it makes a new one.
    pub idempotency_retention: time::Duration,
    /// Rows one statement deletes at most.
    pub batch_size: u32,
    /// Statements one pass runs at most per table and shard: a backlog is worked off over
    /// several passes rather than holding one pass up.
    pub max_batches_per_pass: u32,
}

impl Default for PurgeSettings {
    fn default() -> Self {
        PurgeSettings {
            outbox_retention: time::Duration::days(7),
            idempotency_retention: time::Duration::days(7),
            batch_size: 500,
            max_batches_per_pass: 20,
        }
    }
}

/// Where the single-node projector keeps its outbox position: the consumer group and topic
/// its [`OffsetStore`] holds it under (partition = shard, value = the next sequence).
#[derive(Debug, Clone)]
pub struct OutboxReader {
    pub offsets: Arc<dyn OffsetStore>,
    pub group: String,
    pub topic: String,
}

/// Rows one pass purged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    pub outbox: u64,
    pub idempotency: u64,
}

/// The purge jobs over every shard of a [`RetentionStore`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Purger {
    store: Arc<dyn RetentionStore>,
    settings: PurgeSettings,
    /// Single-node: the projector reading the outbox, whose position bounds the purge.
    reader: Option<OutboxReader>,
    stats: Arc<PurgeStats>,
}

/// Rows purged since start, per table.
#[derive(Debug, Default)]
pub struct PurgeStats {
    outbox: AtomicU64,
    idempotency: AtomicU64,
}

impl PurgeStats {
    /// `oc_scheduler_purged_total{table}`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str("# HELP oc_scheduler_purged_total Rows the purge jobs deleted past their retention, per table.\n# TYPE oc_scheduler_purged_total counter\n");
        for (table, count) in [("outbox", &self.outbox), ("idempotency", &self.idempotency)] {
            let _ = writeln!(
                out,
                "oc_scheduler_purged_total{{table=\"{table}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
    }
}

impl Purger {
    pub fn new(
        store: Arc<dyn RetentionStore>,
        settings: PurgeSettings,
        reader: Option<OutboxReader>,
    ) -> Purger {
        Purger {
            store,
            settings,
            reader,
            stats: Arc::new(PurgeStats::default()),
        }
    }

    pub fn stats(&self) -> Arc<PurgeStats> {
        Arc::clone(&self.stats)
    }

    /// One pass over every shard at `now`: the outbox, then the idempotency records.
    pub async fn pass(&self, now: UnixMillis) -> DomainResult<Purged> {
        let mut purged = Purged::default();
        let positions = match &self.reader {
            Some(reader) => Some(reader.offsets.load(&reader.group, &reader.topic).await?),
            None => None,
        };
        let outbox_cutoff = before(now, self.settings.outbox_retention);
        let idempotency_cutoff = before(now, self.settings.idempotency_retention);
        for shard in self.store.shards() {
            // single node: below the projector's next sequence; none stored yet, nothing
            let below = positions.as_ref().map(|positions| {
                positions
                    .get(&i32::from(shard.0))
                    .and_then(|next| u64::try_from(*next).ok())
                    .unwrap_or(0)
            });
            purged.outbox += self
                .batches(|limit| self.store.purge_outbox(shard, outbox_cutoff, below, limit))
                .await?;
            purged.idempotency += self
                .batches(|limit| {
                    self.store
                        .purge_idempotency(shard, idempotency_cutoff, limit)
                })
                .await?;
        }
        self.stats
            .outbox
            .fetch_add(purged.outbox, Ordering::Relaxed);
        self.stats
            .idempotency
            .fetch_add(purged.idempotency, Ordering::Relaxed);
        Ok(purged)
    }

    /// Batches of one table on one shard until one comes back short, at most
    /// `max_batches_per_pass` of them.
    async fn batches<F, Fut>(&self, mut purge: F) -> DomainResult<u64>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = DomainResult<u64>>,
    {
        let limit = self.settings.batch_size;
        let mut total = 0;
        for _ in 0..self.settings.max_batches_per_pass {
            let deleted = purge(limit).await?;
            total += deleted;
            if deleted < u64::from(limit) {
                break;
            }
        }
        Ok(total)
    }

    /// The shards this purger walks (for messages).
    pub fn shards(&self) -> Vec<ShardId> {
        self.store.shards()
    }
}

/// `now - retention`, at the epoch at the earliest.
fn before(now: UnixMillis, retention: time::Duration) -> UnixMillis {
    let retention = i64::try_from(retention.whole_milliseconds()).unwrap_or(i64::MAX);
    UnixMillis::new(now.get().saturating_sub(retention).max(0))
}
