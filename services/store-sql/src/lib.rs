#![doc = include_str!("../README.md")]

mod after_sale_lists;
mod after_sales;
mod archive;
mod change;
mod config;
mod create;
mod error;
mod group_commit;
mod level_reads;
mod migrate;
mod open;
mod payments;
mod pickups;
mod read;
mod retention;
pub mod router;
mod schedule;
mod shards;
mod stock;
mod tables;
mod transitions;

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::AnyPool;

use oc_model::ports::{
    CreatedWindow, DeadLetter, DeadLetters, InsertOutcome, NewOrder, OffsetStore, OrderKey,
    OrderStore, Page, PageRequest, ShardScan, SinkKind,
};
use oc_model::{
    DomainError, DomainResult, Order, OrderEvent, OrderId, OutboxEntry, PartyId, ShardId, TenantId,
};

pub use crate::config::{Dialect, GroupCommit, StoreConfig};
use crate::group_commit::Writers;
use crate::level_reads::LevelReaders;
pub use crate::open::open;
pub use crate::router::{BucketMap, BucketRange};
use crate::shards::Shards;
pub use crate::tables::key_ring_reports::KeyRingReport;
pub use crate::tables::slot_ledger::SlotLedgerEntry;
use crate::tables::{consumer_offsets, dead_letters, key_ring_reports, orders, outbox};

/// How many schema migrations this build applies to every shard.
pub fn migration_count() -> usize {
    migrate::count()
}

/// Shard 0 holds what is kept once per deployment rather than per order: consumer positions
/// and key ring reports (every shard has the tables).
const SHARD_ZERO: ShardId = ShardId(0);

/// How long [`SqlOrderStore::close`] waits for checked-out connections.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The order store over N shards, MySQL/MariaDB or SQLite. Implements [`OrderStore`], and for
/// the read-model tooling [`ShardScan`] (key ranges, version windows) and [`OffsetStore`]
/// (consumer positions, in shard 0).
#[derive(Debug, Clone)]
pub struct SqlOrderStore {
    shards: Shards,
    /// The group-commit writers of every shard; `None` when group commit is off.
    group_commit: Option<Writers>,
    /// Coalesced stock level reads (`level_reads.rs`); on with group commit, `None` when
    /// it is off (each read is its own statement then).
    level_readers: Option<LevelReaders>,
}

impl SqlOrderStore {
    /// Connect to every shard and apply pending migrations.
    pub async fn connect(config: StoreConfig) -> DomainResult<SqlOrderStore> {
        let shards = Shards::connect(&config).await?;
        let group_commit = config
            .group_commit
            .map(|settings| Writers::spawn(&shards, settings))
            .transpose()?;
        let level_readers = group_commit.as_ref().map(|_| LevelReaders::spawn(&shards));
        Ok(SqlOrderStore {
            shards,
            group_commit,
            level_readers,
        })
    }

    /// (create transactions committed, creates in them) by the group-commit writers, `None`
    /// when group commit is off.
    pub fn group_commit_stats(&self) -> Option<(u64, u64)> {
        self.group_commit
            .as_ref()
            .map(|writers| writers.stats.snapshot())
    }

    pub fn dialect(&self) -> Dialect {
        self.shards.dialect
    }

    pub fn bucket_map(&self) -> &BucketMap {
        &self.shards.map
    }

    /// Raw access to one shard's pool, for tests that inspect or damage rows on purpose.
    /// Everything else goes through the ports: no other crate writes SQL against the store.
    pub fn shard_pool(&self, shard: ShardId) -> DomainResult<&AnyPool> {
        self.shards.pool(shard)
    }

    /// Writes back an order whose sealed values were re-encrypted (key rotation), if and only
    /// if the stored row is still at `order.main.version`: `Ok(false)` when a concurrent write
    /// moved it on (that write wins; re-read and try again). The version is not bumped and no
    /// outbox event is written: the order did not change, only the key its personal data is
    /// encrypted under. The main row, lines and identifiers are replaced in one transaction
    /// that holds the main row's lock, as an update does.
    pub async fn rewrite_sealed(&self, order: &Order) -> DomainResult<bool> {
        change::rewrite_sealed(&self.shards, order).await
    }

    /// Write (or replace) a server's key ring report (see [`KeyRingReport`]).
    pub async fn put_key_ring_report(&self, report: &KeyRingReport) -> DomainResult<()> {
        let _turn = self.shards.write_turn(SHARD_ZERO).await;
        key_ring_reports::put(self.shards.pool(SHARD_ZERO)?, report).await
    }

    /// Every report, oldest process id first (including those of processes long gone: the
    /// reader decides by `reported_at_ms` which are live).
    pub async fn key_ring_reports(&self) -> DomainResult<Vec<KeyRingReport>> {
        key_ring_reports::list(self.shards.pool(SHARD_ZERO)?).await
    }

    /// Remove the report of `process_id` (it stops).
    pub async fn remove_key_ring_report(&self, process_id: &str) -> DomainResult<()> {
        let _turn = self.shards.write_turn(SHARD_ZERO).await;
        key_ring_reports::remove(self.shards.pool(SHARD_ZERO)?, process_id).await
    }

    /// Close every pool: new acquires fail at once, idle connections are closed, and each
    /// pool waits for its checked-out connections, up to [`CLOSE_WAIT`] in all. sqlx's close
    /// waits for a dropped connection's return (it pings the server first) without a
    /// bound; a connection whose query was abandoned mid-way can keep that wait open, and a
    /// command or test then hangs on its way out (seen once in CI after a test had aborted
    /// relay and projector tasks mid-query). Past the bound the rest close with the process.
    pub async fn close(&self) {
        let all = async {
            for pool in self.shards.all() {
                pool.close().await;
            }
        };
        if tokio::time::timeout(CLOSE_WAIT, all).await.is_err() {
            tracing::warn!(
                waited_ms = CLOSE_WAIT.as_millis() as u64,
                "shard pools not closed in time: a connection was not returned; leaving it to close with the process"
            );
        }
    }
}

#[async_trait]
impl OrderStore for SqlOrderStore {
    async fn insert(&self, new_order: NewOrder) -> DomainResult<InsertOutcome> {
        create::check_new_order(&new_order)?;
        let shard = self.shards.shard_of(new_order.order.main.id.bucket());
        match &self.group_commit {
            Some(writers) => writers.submit(shard, new_order).await,
            None => create::insert_alone(&self.shards, new_order).await,
        }
    }

    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>> {
        read::get(&self.shards, tenant, id).await
    }

    async fn get_many(&self, keys: &[(TenantId, OrderId)]) -> DomainResult<Vec<Option<Order>>> {
        read::get_many(&self.shards, keys).await
    }

    async fn update(
        &self,
        expected_version: u64,
        order: Order,
        event: OrderEvent,
    ) -> DomainResult<Order> {
        change::update(&self.shards, expected_version, order, event).await
    }

    async fn list_by_buyer(
        &self,
        tenant: &TenantId,
        buyer: &PartyId,
        page: PageRequest,
    ) -> DomainResult<Page<Order>> {
        read::list_by_buyer(&self.shards, tenant, buyer, page).await
    }

    fn shards(&self) -> Vec<ShardId> {
        self.shards.ids()
    }

    async fn health(&self) -> DomainResult<()> {
        for (index, pool) in self.shards.all().iter().enumerate() {
            sqlx::query("SELECT 1")
                .fetch_one(pool)
                .await
                .map_err(|e| DomainError::unavailable(format!("shard {index}: {e}")))?;
        }
        Ok(())
    }

    async fn pending_outbox(&self, shard: ShardId, limit: u32) -> DomainResult<Vec<OutboxEntry>> {
        outbox::pending(self.shards.pool(shard)?, shard, limit).await
    }

    async fn mark_published(&self, shard: ShardId, sequences: &[u64]) -> DomainResult<()> {
        let _turn = self.shards.write_turn(shard).await;
        outbox::mark_published(self.shards.pool(shard)?, sequences).await
    }
}

#[async_trait]
impl ShardScan for SqlOrderStore {
    async fn order_keys(
        &self,
        shard: ShardId,
        tenant: Option<&TenantId>,
        after: Option<&OrderKey>,
        limit: u32,
    ) -> DomainResult<Vec<OrderKey>> {
        orders::keys(self.shards.pool(shard)?, tenant, after, limit).await
    }

    async fn versions_created(
        &self,
        shard: ShardId,
        window: &CreatedWindow,
        after: Option<OrderId>,
        limit: u32,
    ) -> DomainResult<Vec<(OrderId, u64)>> {
        orders::versions_created(self.shards.pool(shard)?, window, after, limit).await
    }

    async fn outbox_after(
        &self,
        shard: ShardId,
        after: Option<u64>,
        limit: u32,
    ) -> DomainResult<Vec<OutboxEntry>> {
        outbox::after(self.shards.pool(shard)?, shard, after, limit).await
    }
}

/// Dead letters of the read models in shard 0.
#[async_trait]
impl DeadLetters for SqlOrderStore {
    async fn record(&self, letter: &DeadLetter) -> DomainResult<()> {
        let _turn = self.shards.write_turn(SHARD_ZERO).await;
        dead_letters::record(self.shards.pool(SHARD_ZERO)?, letter).await
    }

    async fn list(&self, tenant: Option<&TenantId>, limit: u32) -> DomainResult<Vec<DeadLetter>> {
        dead_letters::list(self.shards.pool(SHARD_ZERO)?, tenant, limit).await
    }

    async fn remove(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        sink: SinkKind,
    ) -> DomainResult<()> {
        let _turn = self.shards.write_turn(SHARD_ZERO).await;
        dead_letters::remove(self.shards.pool(SHARD_ZERO)?, tenant, order_id, sink).await
    }

    async fn count(&self) -> DomainResult<u64> {
        dead_letters::count(self.shards.pool(SHARD_ZERO)?).await
    }
}

/// Consumer positions in shard 0.
#[async_trait]
impl OffsetStore for SqlOrderStore {
    async fn load(&self, group: &str, topic: &str) -> DomainResult<BTreeMap<i32, i64>> {
        consumer_offsets::load(self.shards.pool(SHARD_ZERO)?, group, topic).await
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> DomainResult<()> {
        let _turn = self.shards.write_turn(SHARD_ZERO).await;
        consumer_offsets::commit(self.shards.pool(SHARD_ZERO)?, group, topic, offsets).await
    }
}
