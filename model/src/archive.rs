//! The archive's port: what the archive worker reads from and deletes in the shards.
//!
//! An order is archived in three steps, each safe to repeat: its full state and status
//! history are written to the cold store ([`crate::ports::ColdStore`]) as version `v + 1`,
//! read back and compared, and only then is it deleted from its shard in one local
//! transaction with an `order.archived` outbox event ([`ArchiveStore::delete_archived`]),
//! guarded by the version `v` it was copied at. Why `v + 1`: archiving is a change of the
//! order's life (its event needs its own `(order id, version)` identity, and the read models,
//! which keep the highest version they were given, must take the archived state over the
//! hot one); the order's content is unchanged.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::DomainResult;
use crate::event::{OrderEvent, ShardId};
use crate::ids::{OrderId, StatusCode, TenantId};
use crate::millis::UnixMillis;

/// An order that may be due for the archive, as listed from its shard. Listing order (and
/// the cursor of the next page): last change, id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchiveCandidate {
    pub updated_at: UnixMillis,
    pub id: OrderId,
}

/// The archive's reads and its delete, per shard.
#[async_trait]
pub trait ArchiveStore: Send + Sync + Debug + 'static {
    /// The physical shards (the same as the order store's).
    fn shards(&self) -> Vec<ShardId>;

    /// Up to `limit` orders of `tenant` on `shard` in `status` last changed before
    /// `updated_before`, after `after` (exclusive), ascending by (last change, id), through
    /// an index on (tenant, status, updated_at, id). Fewer than `limit`: no more.
    async fn archivable(
        &self,
        shard: ShardId,
        tenant: &TenantId,
        status: &StatusCode,
        updated_before: UnixMillis,
        after: Option<&ArchiveCandidate>,
        limit: u32,
    ) -> DomainResult<Vec<ArchiveCandidate>>;

    /// One local transaction on the order's shard: delete the order (main row, lines,
    /// identifiers, status history, settled stock reservations) if it is still at
    /// `expected_version`, and write `event` to the outbox. `false`: the order is at another
    /// version or gone, and nothing was written.
    async fn delete_archived(
        &self,
        tenant: &TenantId,
        id: OrderId,
        expected_version: u64,
        event: &OrderEvent,
    ) -> DomainResult<bool>;
}
