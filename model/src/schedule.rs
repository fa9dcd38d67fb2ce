//! The scheduler's port: what the timeout worker and the reservation sweeper read from the
//! shards. Both only *find* work here; every change they make goes through the ports that
//! guard it (the transition's compare-and-set on the order version, the reservation's
//! conditional state change), so any number of scheduler instances may find the same work
//! and still change each order and each reservation at most once.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::DomainResult;
use crate::event::ShardId;
use crate::ids::{OrderId, TenantId};
use crate::millis::UnixMillis;
use crate::stock::{Reservation, Sku};

/// An order whose payment deadline has passed, as listed from its shard: where it is and
/// when it was due. Listing order (and the cursor of the next page): deadline, tenant, id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DueOrder {
    pub pay_deadline: UnixMillis,
    pub tenant: TenantId,
    pub id: OrderId,
}

/// Where a page of expired reservations ends: expiry, tenant, order, SKU.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReservationCursor {
    pub expires_at: UnixMillis,
    pub tenant: TenantId,
    pub order_id: OrderId,
    pub sku: Sku,
}

impl ReservationCursor {
    pub fn of(reservation: &Reservation) -> ReservationCursor {
        ReservationCursor {
            expires_at: UnixMillis::floor(reservation.expires_at),
            tenant: reservation.tenant.clone(),
            order_id: reservation.order_id,
            sku: reservation.sku.clone(),
        }
    }
}

/// The reads of the timeout worker and the reservation sweeper, per shard.
#[async_trait]
pub trait ScheduleStore: Send + Sync + Debug + 'static {
    /// The physical shards (the same as the order store's).
    fn shards(&self) -> Vec<ShardId>;

    /// Up to `limit` orders of `shard` with a payment deadline at or before `now`, after
    /// `after` (exclusive; `None`: from the earliest), ascending by (deadline, tenant, id),
    /// through an index on the deadline. Fewer than `limit` means there are no more.
    async fn due_orders(
        &self,
        shard: ShardId,
        now: UnixMillis,
        after: Option<&DueOrder>,
        limit: u32,
    ) -> DomainResult<Vec<DueOrder>>;

    /// The earliest payment deadline of any order of `shard` still waiting for one.
    async fn earliest_deadline(&self, shard: ShardId) -> DomainResult<Option<UnixMillis>>;

    /// Up to `limit` reservations on `shard` still `reserved` whose expiry is at or before
    /// `now`, after `after` (exclusive), ascending by (expiry, tenant, order, SKU), through
    /// an index on (state, expiry), whatever their tenant. Fewer than `limit` means there
    /// are no more.
    async fn expired_reservations(
        &self,
        shard: ShardId,
        now: UnixMillis,
        after: Option<&ReservationCursor>,
        limit: u32,
    ) -> DomainResult<Vec<Reservation>>;

    /// Whether the order exists on its shard (one primary-key read).
    async fn order_exists(&self, tenant: &TenantId, id: OrderId) -> DomainResult<bool>;
}
