//! Combined return pickup (issue #20 item 5, seed 000 "Return Logistics"): the pickup record an
//! order's shard keeps ([`ReturnPickup`], [`PickupStore`]) and the carrier it is booked with
//! ([`LogisticsProvider`]).
//!
//! # One pickup, one waybill
//!
//! Approved after-sales that send goods back (return and refund, exchange, repair) carry the
//! buyer's earliest pickup time. Shortly before the earliest of an order's (the lead, seed:
//! 10 minutes) the pickup worker gathers every such after-sale of the order not yet in a
//! pickup and writes **one** pickup for them: the nearest pickup time, their products and
//! total weight, in one transaction that also marks each after-sale as taken by it (a
//! conditional update per after-sale) and numbers the pickup per order (`seq`, a unique key):
//! two workers that gather the same order at once cannot both write one.
//!
//! The carrier call carries an idempotency key derived from that durable row
//! ([`ReturnPickup::idempotency_key`]: tenant, order and `seq`), so every retry — after a
//! failure, a timeout whose answer was lost, a worker killed mid-call and restarted, or a
//! second worker — asks for the same waybill and the carrier answers the one it made. The
//! buyer's contact (sealed personal data) is not copied into the pickup row; it is opened from
//! the order at each call.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aftersale::{AfterSaleHistoryEntry, AfterSaleId};
use crate::error::DomainResult;
use crate::event::{OrderEvent, ShardId};
use crate::ids::{OrderId, TenantId};
use crate::wire::wire_enum;

wire_enum!(
    /// Where a pickup stands.
    PickupStatus {
        /// Written; the carrier has not given a waybill yet (attempts go on).
        Pending => "pending",
        /// The carrier gave its waybill; it is recorded on every after-sale of the pickup.
        Booked => "booked",
        /// Every attempt failed: left for an operator, an alert raised.
        Skipped => "skipped",
    }
);

/// One product line of a pickup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupItem {
    pub after_sale_id: AfterSaleId,
    pub sku: String,
    pub product_name: String,
    pub quantity: u32,
    /// The units' weight (unit weight × quantity; 0 when the order line has none).
    pub weight_grams: u64,
}

/// The pickup an order's returns share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnPickup {
    pub tenant: TenantId,
    /// Made by the order id generator for the order's bucket (the layout of an order id).
    pub id: OrderId,
    pub order_id: OrderId,
    /// 1 for the order's first pickup, 2 for its next (returns approved after the first was
    /// written), …: unique per order.
    pub seq: u32,
    pub status: PickupStatus,
    /// The nearest pickup time of its after-sales.
    #[serde(with = "time::serde::rfc3339")]
    pub pickup_at: OffsetDateTime,
    pub items: Vec<PickupItem>,
    pub total_weight_grams: u64,
    /// Carrier calls claimed so far.
    pub attempts: u32,
    /// When the next call is due (`None`: booked or skipped).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waybill: Option<Waybill>,
    /// Why the last call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl ReturnPickup {
    /// The carrier's idempotency key: a function of the durable row only, so every call for
    /// this pickup, by any worker at any time, sends the same key.
    pub fn idempotency_key(&self) -> String {
        format!(
            "{}-{}-return-pickup-{}",
            self.tenant, self.order_id, self.seq
        )
    }

    /// The after-sales it carries, in item order, each once.
    pub fn after_sale_ids(&self) -> Vec<AfterSaleId> {
        let mut ids: Vec<AfterSaleId> = Vec::new();
        for item in &self.items {
            if !ids.contains(&item.after_sale_id) {
                ids.push(item.after_sale_id);
            }
        }
        ids
    }
}

/// A waybill: the carrier's number for the pickup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waybill {
    pub waybill_no: String,
    pub carrier: String,
}

/// Where the carrier collects: the buyer's contact, opened from the order for the call only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupContact {
    pub name: String,
    pub phone: String,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl fmt::Debug for PickupContact {
    // personal data: never in a log line
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PickupContact")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// What the carrier is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupRequest {
    /// [`ReturnPickup::idempotency_key`]: the same key answers the same waybill.
    pub idempotency_key: String,
    pub tenant: TenantId,
    pub order_id: OrderId,
    #[serde(with = "time::serde::rfc3339")]
    pub pickup_at: OffsetDateTime,
    pub contact: PickupContact,
    pub items: Vec<PickupItem>,
    pub total_weight_grams: u64,
}

/// A carrier (or a logistics platform in front of several). Adapters translate their
/// failures into `Unavailable` (retried by the worker) or `InvalidInput` (the carrier refused
/// the request; retried all the same, then skipped and raised).
#[async_trait]
pub trait LogisticsProvider: Send + Sync + fmt::Debug + 'static {
    /// The name pickups record as their carrier when the answer names none.
    fn name(&self) -> &str;

    /// Book the pickup: a waybill. Idempotent by `request.idempotency_key`: asked again with
    /// the same key, the carrier answers the waybill it made the first time.
    async fn create_pickup(&self, request: &PickupRequest) -> DomainResult<Waybill>;

    /// The waybill made under `idempotency_key`, if any.
    async fn query_pickup(&self, idempotency_key: &str) -> DomainResult<Option<Waybill>>;
}

fn _provider_object_safety(_: &dyn LogisticsProvider) {}

/// What one pickup's end writes, all or nothing: the pickup's compare-and-set from `pending`
/// to `status` (with its waybill or its last error), and on each of its after-sales the
/// waybill (booked), the version bump, a history entry and an outbox event
/// (`after_sale.pickup_booked`, or the alert `after_sale.pickup_skipped`).
#[derive(Debug, Clone, PartialEq)]
pub struct PickupOutcome {
    pub tenant: TenantId,
    pub id: OrderId,
    pub status: PickupStatus,
    pub waybill: Option<Waybill>,
    pub error: Option<String>,
    pub at: OffsetDateTime,
    pub marks: Vec<AfterSaleMark>,
}

/// One after-sale's part of a [`PickupOutcome`]: written by a compare-and-set on its version.
#[derive(Debug, Clone, PartialEq)]
pub struct AfterSaleMark {
    pub id: AfterSaleId,
    pub expected_version: u64,
    pub history: AfterSaleHistoryEntry,
    pub event: OrderEvent,
}

/// What writing a pickup did.
#[derive(Debug, Clone, PartialEq)]
pub enum PickupCreate {
    Created(Box<ReturnPickup>),
    /// Another worker took some of the after-sales, or the order's next `seq`, first:
    /// nothing written.
    Lost,
}

/// An approved after-sale waiting for a pickup: enough to find its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickupCandidate {
    pub tenant: TenantId,
    pub order_id: OrderId,
    pub earliest_pickup_at: OffsetDateTime,
}

/// Pickups and the after-sales' side of them, in the order's shard. Every method is scoped by
/// tenant; another tenant's record is `None`.
#[async_trait]
pub trait PickupStore: Send + Sync + fmt::Debug + 'static {
    /// The physical shards (the worker walks each).
    fn pickup_shards(&self) -> Vec<ShardId>;

    /// Orders of one shard with an approved after-sale in status `approved` that sends goods
    /// back, has a pickup time at or before `due_by` and no pickup yet, soonest first.
    async fn orders_due_for_pickup(
        &self,
        shard: ShardId,
        due_by: OffsetDateTime,
        limit: u32,
    ) -> DomainResult<Vec<PickupCandidate>>;

    /// Write `pickup` (its `seq` is the order's next, assigned here) and take `after_sales`
    /// for it, all or nothing: each after-sale must still be `approved`, at its version,
    /// without a pickup.
    async fn create_pickup(
        &self,
        pickup: ReturnPickup,
        after_sales: &[(AfterSaleId, u64)],
    ) -> DomainResult<PickupCreate>;

    /// Pending pickups of one shard whose next call is due at `now`, soonest first.
    async fn pickups_due(
        &self,
        shard: ShardId,
        now: OffsetDateTime,
        limit: u32,
    ) -> DomainResult<Vec<ReturnPickup>>;

    /// Claim call `seen_attempts + 1` of a pending pickup: counts it and moves the next call
    /// to `next`, only if no one claimed since (several workers may see the same due pickup).
    async fn claim_pickup_attempt(
        &self,
        tenant: &TenantId,
        id: OrderId,
        seen_attempts: u32,
        next: OffsetDateTime,
        at: OffsetDateTime,
    ) -> DomainResult<bool>;

    /// Record why a call failed (the pickup stays pending; its next call is already set).
    async fn record_pickup_failure(
        &self,
        tenant: &TenantId,
        id: OrderId,
        error: &str,
        at: OffsetDateTime,
    ) -> DomainResult<()>;

    /// End a pending pickup (see [`PickupOutcome`]); `false` when it was no longer pending
    /// (nothing written). A stale after-sale version is `PreconditionFailed`, nothing written.
    async fn finish_pickup(&self, outcome: PickupOutcome) -> DomainResult<bool>;

    async fn get_pickup(
        &self,
        tenant: &TenantId,
        id: OrderId,
    ) -> DomainResult<Option<ReturnPickup>>;

    /// The pickups of an order, by `seq`.
    async fn pickups_of_order(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Vec<ReturnPickup>>;
}

fn _store_object_safety(_: &dyn PickupStore) {}
