//! Reads of the shards for read-model maintenance: walks of the order keys by primary-key
//! range (backfill, re-encryption) and version windows by creation time (reconciliation).
//! The store implements them with its own SQL; no other crate queries its tables.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::DomainResult;
use crate::event::{OutboxEntry, ShardId};
use crate::ids::{OrderId, TenantId};
use crate::millis::UnixMillis;
use crate::ports::OrderStore;

/// An order's primary key in its shard: `(tenant, id)`, ordered as the shard orders it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    pub tenant: TenantId,
    pub id: OrderId,
}

/// The created-at window `[from, to)` of one tenant's orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedWindow {
    pub tenant: TenantId,
    pub from: UnixMillis,
    pub to: UnixMillis,
}

/// Key-range and version-window reads of each shard of an order store (its
/// [`OrderStore::shards`]).
#[async_trait]
pub trait ShardScan: OrderStore {
    /// Up to `limit` order keys of `shard` after `after` (exclusive; `None`: from the first),
    /// ascending by `(tenant, id)`; only `tenant`'s when given. Fewer than `limit` keys means
    /// the shard is walked to its end.
    async fn order_keys(
        &self,
        shard: ShardId,
        tenant: Option<&TenantId>,
        after: Option<&OrderKey>,
        limit: u32,
    ) -> DomainResult<Vec<OrderKey>>;

    /// `(id, version)` of up to `limit` orders of `shard` in `window`, ascending by id, after
    /// `after` (exclusive). Fewer than `limit` means the window is read to its end.
    async fn versions_created(
        &self,
        shard: ShardId,
        window: &CreatedWindow,
        after: Option<OrderId>,
        limit: u32,
    ) -> DomainResult<Vec<(OrderId, u64)>>;

    /// Up to `limit` outbox rows of `shard` after sequence `after` (exclusive; `None`: from
    /// the first), published or not, ascending by sequence. Where a shard commits one writer
    /// at a time (SQLite, single-node), sequence order is commit order, so a reader that
    /// remembers the last sequence it applied misses nothing.
    async fn outbox_after(
        &self,
        shard: ShardId,
        after: Option<u64>,
        limit: u32,
    ) -> DomainResult<Vec<OutboxEntry>>;
}
