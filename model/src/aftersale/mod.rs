//! After-sales (issue #20, seeds 000 and 001): refund-only, return-and-refund, exchange and
//! repair applications against an order, applied from three channels, reviewed by the
//! merchant or customer service, appealable once, and the per-unit refund split they draw on.
//!
//! An after-sale lives in its order's shard (its id carries the order's bucket gene), with its
//! lines, status history and outbox events written in one local transaction. Units under
//! after-sale are counted per order line by the store in that same transaction
//! ([`AfterSaleStore::apply`]): however many channels apply at once, the units held by live
//! after-sales plus those already returned never exceed what was bought.

pub mod listing;
mod machine;
pub mod split;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{DomainError, DomainResult};
use crate::event::OrderEvent;
use crate::ids::{OrderId, StatusCode, TenantId, TransitionEvent};
use crate::money::Money;
use crate::payment_ids::{PaymentId, RefundId};

pub use machine::{AfterSaleMachines, MachineGap, ReviewRouting, ledger_effect};
pub use split::{LineSplit, RefundSplit, RequestedLine, SplitKey};

use crate::wire::wire_enum;

wire_enum!(
    /// The four after-sale scenarios of seed 000.
    AfterSaleType {
        /// Money back, the goods stay with the buyer (missing items, a pick error).
        RefundOnly => "refund_only",
        /// The goods go back, then the money.
        ReturnAndRefund => "return_and_refund",
        /// The goods go back and a replacement comes.
        Exchange => "exchange",
        /// The goods go back, are repaired and come back.
        Repair => "repair",
    }
);

impl AfterSaleType {
    /// Whether this type ends in a refund.
    pub fn refunds(self) -> bool {
        matches!(
            self,
            AfterSaleType::RefundOnly | AfterSaleType::ReturnAndRefund
        )
    }

    /// Whether the goods go back (and so may be collected by a carrier's pickup).
    pub fn returns_goods(self) -> bool {
        !matches!(self, AfterSaleType::RefundOnly)
    }
}

wire_enum!(
    /// Who applied (seed 000: user app, merchant portal, customer-service console).
    AfterSaleChannel {
        /// The business line's app, on the buyer's behalf.
        User => "user",
        Merchant => "merchant",
        CustomerService => "customer_service",
    }
);

wire_enum!(
    /// Who reviews an application.
    Reviewer {
        /// Nobody: approved at once (the merchant's own application).
        None => "none",
        Merchant => "merchant",
        CustomerService => "customer_service",
    }
);

/// An after-sale's id: carries the order's bucket; a decimal string on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AfterSaleId(OrderId);

impl AfterSaleId {
    /// An id made by the order id generator for the order's bucket.
    pub fn generated(id: OrderId) -> AfterSaleId {
        AfterSaleId(id)
    }

    pub fn from_raw(raw: u64) -> DomainResult<AfterSaleId> {
        OrderId::from_raw(raw)
            .map(AfterSaleId)
            .map_err(|_| DomainError::invalid("", format!("{raw} is not an after-sale id")))
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }

    pub fn as_i64(self) -> i64 {
        self.0.as_i64()
    }

    pub fn bucket(self) -> crate::ids::Bucket {
        self.0.bucket()
    }
}

impl fmt::Display for AfterSaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for AfterSaleId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id: OrderId = s
            .parse()
            .map_err(|_| DomainError::invalid("", format!("{s:?} is not an after-sale id")))?;
        Ok(AfterSaleId(id))
    }
}

impl Serialize for AfterSaleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.get())
    }
}

impl<'de> Deserialize<'de> for AfterSaleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse()
            .map_err(|e: DomainError| serde::de::Error::custom(e.message))
    }
}

/// One line of an after-sale: units of one order line and what they are worth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSaleLine {
    pub line_no: u32,
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_type: Option<String>,
    pub unit_price: Money,
    pub quantity: u32,
    /// What these units were paid, from the order's split ([`LineSplit::take`]): the refund of
    /// a refunding type; for an exchange or repair, the value held while it is live.
    pub amount: Money,
}

/// The after-sale aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSale {
    pub tenant: TenantId,
    pub id: AfterSaleId,
    pub order_id: OrderId,
    pub kind: AfterSaleType,
    pub channel: AfterSaleChannel,
    /// Who applied, within the channel (the API key id, a console user).
    pub applicant: String,
    pub reviewer: Reviewer,
    pub status: StatusCode,
    /// Starts at 1, bumped by every transition.
    pub version: u64,
    /// Whether the one appeal to customer service was made.
    pub appealed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub lines: Vec<AfterSaleLine>,
    /// Sum of the lines' amounts for a refunding type, zero otherwise.
    pub refund_amount: Money,
    /// The earliest time a carrier may collect the goods (a type that sends goods back):
    /// approved, it is gathered into its order's combined pickup ([`crate::logistics`]).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub pickup_at: Option<OffsetDateTime>,
    /// The combined pickup that collects the goods, once one was written for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_id: Option<OrderId>,
    /// The carrier's waybill of that pickup, once booked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waybill_no: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One status change of an after-sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSaleHistoryEntry {
    pub version: u64,
    /// `None` for the application itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<StatusCode>,
    pub to: StatusCode,
    pub event: TransitionEvent,
    pub channel: AfterSaleChannel,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

/// What a transition does to the order's units under after-sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerEffect {
    None,
    /// The after-sale ended without taking its units (rejected for good, cancelled, or an
    /// exchange or repair done): they can be applied for again.
    Release,
    /// The units were refunded: they stay taken for good.
    Settle,
}

/// A new application, written in one transaction: the after-sale (its lines' amounts are
/// filled by the store from the split and what is held), its first history entry and its
/// outbox event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAfterSale {
    pub after_sale: AfterSale,
    /// The order's split, for the units' amounts and the ledger rows of lines never applied
    /// for before.
    pub split: RefundSplit,
    /// For each after-sale line, the request line that named it (the field path of a refusal).
    pub request_index: Vec<usize>,
    pub history: AfterSaleHistoryEntry,
    pub event: OrderEvent,
}

/// A status change, written by a compare-and-set on the after-sale's version.
#[derive(Debug, Clone, PartialEq)]
pub struct AfterSaleTransition {
    pub tenant: TenantId,
    pub id: AfterSaleId,
    pub expected_version: u64,
    pub to: StatusCode,
    pub reviewer: Reviewer,
    pub appealed: bool,
    pub ledger: LedgerEffect,
    pub history: AfterSaleHistoryEntry,
    pub event: OrderEvent,
    /// The refund this transition starts (at most one per after-sale, a unique key).
    pub refund: Option<AfterSaleRefund>,
}

/// The refund an after-sale issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSaleRefund {
    pub refund_id: RefundId,
    /// The payment it is drawn from.
    pub payment_id: PaymentId,
    pub amount: Money,
}

/// After-sales' records, in the order's shard; every method is tenant-scoped, another
/// tenant's record is `None`.
#[async_trait]
pub trait AfterSaleStore: Send + Sync + fmt::Debug + 'static {
    /// Write an application: hold its units on their order lines (a conditional update per
    /// line that only matches while held + returned + asked ≤ bought; a line that does not
    /// match refuses the whole application as `InvalidInput` at `/lines/{i}/quantity`, nothing
    /// written), the after-sale with its lines' amounts, its history and its event.
    async fn apply_after_sale(&self, new: NewAfterSale) -> DomainResult<AfterSale>;

    async fn get_after_sale(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<AfterSale>>;

    async fn after_sale_history(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Vec<AfterSaleHistoryEntry>>;

    /// The after-sales of an order, oldest first.
    async fn after_sales_of_order(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Vec<AfterSale>>;

    /// Units held (live after-sales) plus returned, by order line.
    async fn units_taken(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<std::collections::BTreeMap<u32, u32>>;

    /// Apply a transition; a stale version is `PreconditionFailed` and nothing is written;
    /// a second refund of one after-sale is `Conflict`.
    async fn transition_after_sale(
        &self,
        transition: AfterSaleTransition,
    ) -> DomainResult<AfterSale>;

    /// The refund an after-sale issued, if any.
    async fn after_sale_refund(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<AfterSaleRefund>>;
}

fn _object_safety(_: &dyn AfterSaleStore) {}

impl AfterSale {
    /// The outbox event of this after-sale's change to `self.status` at `self.version` by
    /// `event`: an order event of kind `after_sale` carrying the order's version and status.
    pub fn order_event(&self, order: &crate::Order, event: &TransitionEvent) -> OrderEvent {
        OrderEvent {
            occurred_at: self.updated_at,
            after_sale: Some(crate::event::AfterSaleNote {
                after_sale_id: self.id.get(),
                version: self.version,
                status: self.status.clone(),
                event: event.clone(),
            }),
            ..OrderEvent::of(order, crate::event::OrderEventKind::AfterSale)
        }
    }
}
