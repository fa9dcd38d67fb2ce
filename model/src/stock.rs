//! Stock: a level per SKU, the reservations orders hold against it, and the ports that keep
//! them: the SQL store (the truth) and, for hot SKUs, an optional admission gate in front of
//! it ([`StockGate`]).
//!
//! # Counting
//!
//! A SKU's units are always in exactly one bucket: `available` (for sale), `reserved` (held
//! by an order waiting for payment) or `sold`. Every change moves units between buckets in
//! one conditional statement (never read-then-write), so `available + reserved + sold` only
//! changes when a tenant admin sets the stock.

use std::fmt::{self, Debug};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{DomainError, DomainResult};
use crate::ids::{OrderId, TenantId};

/// Longest SKU, in characters (the width of the `sku` columns).
pub const MAX_SKU_LEN: usize = 128;

/// A stock keeping unit of a tenant: 1..=128 characters, not blank, no control characters
/// (what an order line's `sku` accepts).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    pub fn parse(value: impl Into<String>) -> Result<Sku, DomainError> {
        let value = value.into();
        let length = value.chars().count();
        if value.trim().is_empty() || length > MAX_SKU_LEN || value.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "",
                format!(
                    "a SKU is 1 to {MAX_SKU_LEN} characters, not blank, without control characters"
                ),
            ));
        }
        Ok(Sku(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sku {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Sku::parse(raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// The stock of one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    pub tenant: TenantId,
    pub sku: Sku,
    /// For sale, counted in SQL.
    pub available: u64,
    /// Held by reservations of orders not yet paid.
    pub reserved: u64,
    pub sold: u64,
    pub updated_at: OffsetDateTime,
}

impl StockLevel {
    /// Every unit of the SKU, whatever bucket it is in.
    pub fn total(&self) -> u64 {
        self.available + self.reserved + self.sold
    }
}

/// A reservation to write: `quantity` units of `sku` for `order_id` until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub tenant: TenantId,
    pub order_id: OrderId,
    pub sku: Sku,
    pub quantity: u64,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// What `reserve` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The units moved to `reserved` and the reservation row was written.
    Reserved,
    /// Not enough units available: nothing changed. The level as read after the refusal,
    /// `None` when the SKU has no stock row.
    Short(Option<StockLevel>),
}

/// The state of a reservation row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Units held for the order.
    Reserved,
    /// Units sold to the order (paid).
    Confirmed,
    /// Units returned to `available`.
    Released,
}

impl ReservationState {
    pub const ALL: [ReservationState; 3] = [
        ReservationState::Reserved,
        ReservationState::Confirmed,
        ReservationState::Released,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Reserved => "reserved",
            ReservationState::Confirmed => "confirmed",
            ReservationState::Released => "released",
        }
    }

    pub fn parse(text: &str) -> Option<ReservationState> {
        ReservationState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for ReservationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reservation row: one order's units of one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub tenant: TenantId,
    pub order_id: OrderId,
    pub sku: Sku,
    pub quantity: u64,
    pub state: ReservationState,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What a confirm or release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The reservation moved, and its units with it.
    Done,
    /// It was already in this state, or in one the move does not start from: nothing changed.
    Already(ReservationState),
    /// The order holds no reservation of the SKU: nothing changed.
    Missing,
}

/// Stock levels and reservations: levels sharded by `(tenant, sku)` through the order
/// store's bucket map, reservation rows beside their SKU's level.
#[async_trait]
pub trait StockStore: Send + Sync + Debug + 'static {
    /// Set the units for sale to `available` (creating the SKU's level if needed); reserved
    /// and sold units stay as they are.
    async fn set_available(
        &self,
        tenant: &TenantId,
        sku: &Sku,
        available: u64,
        now: OffsetDateTime,
    ) -> DomainResult<StockLevel>;

    /// The level of a SKU, `None` when no stock was ever set for it.
    async fn stock_level(&self, tenant: &TenantId, sku: &Sku) -> DomainResult<Option<StockLevel>>;

    /// The levels of `skus`, in their order (`None`: no stock was ever set), read with one
    /// statement per shard that holds any of them: a placement learns which of its SKUs are
    /// tracked, and which are already short, before it opens a transaction for any.
    async fn stock_levels(
        &self,
        tenant: &TenantId,
        skus: &[Sku],
    ) -> DomainResult<Vec<Option<StockLevel>>>;

    /// Move `hold.quantity` units from `available` to `reserved` with a conditional
    /// decrement (never read-then-write) and write the reservation row, in one transaction.
    async fn reserve(&self, hold: &Hold) -> DomainResult<ReserveOutcome>;

    /// Reserved → confirmed: the units are sold. Idempotent.
    async fn confirm(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        sku: &Sku,
        now: OffsetDateTime,
    ) -> DomainResult<Settle>;

    /// Reserved or confirmed → released: the units go back to `available`. Idempotent.
    async fn release(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        sku: &Sku,
        now: OffsetDateTime,
    ) -> DomainResult<Settle>;

    /// One reservation row.
    async fn reservation(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        sku: &Sku,
    ) -> DomainResult<Option<Reservation>>;
}

/// What a [`StockGate`] said about a set of wanted units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    /// Every SKU had the units; they were taken from the gate's counters, all at once.
    Admitted,
    /// The gate has no counter for these SKUs (never seeded, expired, or the gate restarted
    /// empty): nothing was taken. Seed them from SQL and ask again.
    Missing(Vec<Sku>),
    /// This SKU's counter has fewer units than wanted: nothing was taken.
    Short { sku: Sku, available: u64 },
}

/// An admission counter of available units per SKU in front of the SQL stock, for hot
/// SKUs: a buyer of a sold-out SKU is refused here without touching the SKU's row.
///
/// The gate is never the truth. SQL's conditional decrement still decides every
/// reservation, so a gate counter that is too high cannot oversell (SQL refuses, the units
/// are given back to the gate). A counter that is too low (units released by a process
/// that did not tell the gate) would refuse buyers while SQL has units, so counters are
/// seeded from SQL's `available` when missing and live only a short while before they are
/// rebuilt. A gate that lost everything (Redis restarted empty) reports `Missing` and is
/// rebuilt from SQL: no unit is lost and none is sold twice.
#[async_trait]
pub trait StockGate: Send + Sync + Debug + 'static {
    /// Take `quantity` units of every `(sku, quantity)` from the counters, all or nothing,
    /// atomically (one buyer's SKUs are never half taken).
    async fn admit(&self, tenant: &TenantId, wants: &[(Sku, u64)]) -> DomainResult<GateOutcome>;

    /// Create the counter of `sku` with `available` units unless it exists (the first
    /// seeder wins; a counter in use is never overwritten).
    async fn seed(&self, tenant: &TenantId, sku: &Sku, available: u64) -> DomainResult<()>;

    /// Return `quantity` units to the counter of `sku` if it exists (a missing counter is
    /// rebuilt from SQL, which already has them).
    async fn give_back(&self, tenant: &TenantId, sku: &Sku, quantity: u64) -> DomainResult<()>;

    /// Drop the counter of `sku` (the stock was set: the next admission rebuilds it).
    async fn forget(&self, tenant: &TenantId, sku: &Sku) -> DomainResult<()>;
}
