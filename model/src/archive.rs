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
//!
//! The order's after-sales (each with its lines, status history and the refund it issued)
//! go with it ([`ArchivedAfterSale`]): copied, verified, and deleted in the same guarded
//! transaction. Its payments and their refunds stay on the shard (see
//! [`ArchiveStore::delete_archived`]).

use std::fmt::Debug;

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use crate::aftersale::{AfterSale, AfterSaleHistoryEntry, AfterSaleId, AfterSaleRefund};
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

/// One after-sale of an archived order as the cold store keeps it: the record with its
/// lines, its status history and the refund it issued, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedAfterSale {
    pub after_sale: AfterSale,
    pub history: Vec<AfterSaleHistoryEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<AfterSaleRefund>,
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

    /// Whether something still in flight keeps the order hot whatever its status: a stock
    /// reservation not settled, an after-sale still holding units, a payment pending or a
    /// refund requested. Read before the copy, so such an order is not copied pass after
    /// pass; [`ArchiveStore::delete_archived`] checks the same again under its lock.
    async fn in_flight(&self, tenant: &TenantId, id: OrderId) -> DomainResult<bool>;

    /// One local transaction on the order's shard: delete the order (main row, lines,
    /// identifiers, status history, settled stock reservations, and its after-sales with
    /// their lines, history, refund records and unit ledger) if it is still at
    /// `expected_version` and its after-sales are exactly `after_sales` (id, version): the
    /// ones the cold store was given. Write `event` to the outbox. `false`: the order is at
    /// another version or gone, an after-sale was applied or changed since the copy, or
    /// something still in flight keeps it hot (a stock reservation not settled, an
    /// after-sale still holding units, a payment pending or a refund requested), and nothing
    /// was written.
    ///
    /// Payments and their refunds are never deleted: they are the money ledger (the refund
    /// cap, the provider's callbacks and reconciliation are by payment id), so they stay
    /// with the payments domain; a change through them of an archived order is refused by
    /// the order's read-only rule.
    async fn delete_archived(
        &self,
        tenant: &TenantId,
        id: OrderId,
        expected_version: u64,
        after_sales: &[(AfterSaleId, u64)],
        event: &OrderEvent,
    ) -> DomainResult<bool>;
}
