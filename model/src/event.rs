//! Order change events: written to the outbox in the same transaction as the change,
//! relayed to the bus, consumed by the read models.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{BusinessIdentity, OrderId, OrderType, StatusCode, TenantId, TransitionEvent};
use crate::money::Money;
use crate::payment_ids::{PaymentId, ProviderName};

/// Every CloudEvents `type` of an order event starts with this.
pub const CLOUD_EVENT_TYPE_PREFIX: &str = "com.ordercenter.order.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderEventKind {
    Created,
    Updated,
    StatusChanged,
    Cancelled,
    /// A payment of the order changed (the order itself did not): the event's `payment`
    /// says what happened.
    Payment,
    /// An after-sale of the order changed (the order itself did not): the event's
    /// `after_sale` says which and how.
    AfterSale,
    /// The order moved to the cold store and left its shard (the archive): read models mark
    /// it archived, the cache drops it. The event's version is the archived copy's.
    Archived,
}

impl OrderEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderEventKind::Created => "created",
            OrderEventKind::Updated => "updated",
            OrderEventKind::StatusChanged => "status_changed",
            OrderEventKind::Cancelled => "cancelled",
            OrderEventKind::Payment => "payment",
            OrderEventKind::AfterSale => "after_sale",
            OrderEventKind::Archived => "archived",
        }
    }

    /// The CloudEvents `type` attribute of an event of this kind without a transition.
    pub fn cloud_event_type(self) -> String {
        format!("{CLOUD_EVENT_TYPE_PREFIX}{}", self.as_str())
    }
}

/// One change of one order. `(order_id, version)` identifies it: consumers apply an event
/// only when its version is newer than what they hold, so redelivery is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub tenant: TenantId,
    pub order_id: OrderId,
    pub version: u64,
    pub kind: OrderEventKind,
    pub status: StatusCode,
    pub business_identity: BusinessIdentity,
    pub order_type: OrderType,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The state-machine transition this change was (absent on creates and plain updates):
    /// event, from, to, operator, reason, event data, released marketing resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<TransitionNote>,
    /// What happened to a payment of the order (kind `payment` only). The event's `version`
    /// and `status` are the order's when it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentNote>,
    /// What happened to an after-sale of the order (kind `after_sale` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_sale: Option<AfterSaleNote>,
}

/// Every CloudEvents `type` of an after-sale event starts with this.
pub const AFTER_SALE_EVENT_TYPE_PREFIX: &str = "com.ordercenter.after_sale.";

/// An after-sale's change, carried by an order event: the record, its version and status,
/// and the event that moved it (`apply`, `approve`, `refund`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSaleNote {
    /// The after-sale id (decimal on the wire, as every id).
    #[serde(with = "crate::event::decimal")]
    pub after_sale_id: u64,
    pub version: u64,
    pub status: StatusCode,
    pub event: TransitionEvent,
}

mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl OrderEvent {
    /// The event describing `order`'s current state (its version, status and update time).
    pub fn of(order: &crate::Order, kind: OrderEventKind) -> OrderEvent {
        OrderEvent {
            tenant: order.main.tenant.clone(),
            order_id: order.main.id,
            version: order.main.version,
            kind,
            status: order.main.status.clone(),
            business_identity: order.main.business_identity.clone(),
            order_type: order.main.order_type.clone(),
            occurred_at: order.main.updated_at,
            transition: None,
            payment: None,
            after_sale: None,
        }
    }

    /// A payment event of `order` (at its current version), at `occurred_at`.
    pub fn payment(
        order: &crate::Order,
        note: PaymentNote,
        occurred_at: OffsetDateTime,
    ) -> OrderEvent {
        OrderEvent {
            occurred_at,
            payment: Some(note),
            ..OrderEvent::of(order, OrderEventKind::Payment)
        }
    }

    /// The CloudEvents `type`: `com.ordercenter.order.<name>`, where the name is the
    /// transition's event type (its target state unless the tenant config names another,
    /// e.g. `order.paid`, `order.shipped`) or, for an event that is no transition, its kind
    /// (`order.created`, `order.updated`).
    ///
    /// A payment event is `com.ordercenter.payment.<what>` (`payment.created`,
    /// `payment.mismatch`, `payment.refund_required`).
    pub fn cloud_event_type(&self) -> String {
        if let Some(note) = &self.after_sale {
            return format!("{AFTER_SALE_EVENT_TYPE_PREFIX}{}", note.event);
        }
        if let Some(note) = &self.payment {
            return format!("{PAYMENT_EVENT_TYPE_PREFIX}{}", note.what.as_str());
        }
        match &self.transition {
            Some(note) => format!("{CLOUD_EVENT_TYPE_PREFIX}{}", note.event_type),
            None => self.kind.cloud_event_type(),
        }
    }

    /// Stable, unique event id, the CloudEvents `id`: `{order_id}-{version}` for a change of
    /// the order; a payment event names its record and what happened to it
    /// (`{order_id}-payment-{payment_id}-mismatch`), a refund event its refund as well
    /// (`{order_id}-payment-{payment_id}-refund-{refund_id}-refunded`), each of which happens
    /// once.
    pub fn event_id(&self) -> String {
        if let Some(note) = &self.after_sale {
            return format!(
                "{}-after-sale-{}-{}",
                self.order_id, note.after_sale_id, note.version
            );
        }
        match &self.payment {
            None => format!("{}-{}", self.order_id, self.version),
            Some(note) => match note.refund_id {
                None => format!(
                    "{}-payment-{}-{}",
                    self.order_id,
                    note.payment_id,
                    note.what.as_str()
                ),
                Some(refund_id) => format!(
                    "{}-payment-{}-refund-{refund_id}-{}",
                    self.order_id,
                    note.payment_id,
                    note.what.as_str()
                ),
            },
        }
    }
}

/// Every CloudEvents `type` of a payment event starts with this.
pub const PAYMENT_EVENT_TYPE_PREFIX: &str = "com.ordercenter.payment.";

/// What happened to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentEventType {
    /// A payment record was created (the buyer may pay now).
    Created,
    /// The provider reported another amount or currency: nothing applied to the order.
    Mismatch,
    /// The provider reported the payment failed (or closed it unpaid): nothing applied.
    Failed,
    /// The payment passed its expiry unpaid (the active query's last query found it not paid,
    /// or could not reach the provider): nothing applied.
    Expired,
    /// Money captured for an order that cannot take it (cancelled, or already paid): it must
    /// be refunded; the order stays as it is.
    RefundRequired,
    /// A refund was requested (its amount reserved on the payment).
    RefundRequested,
    /// The provider returned a refund's money.
    Refunded,
    /// A refund failed at the provider on every attempt: its reservation went back to the
    /// payment and it waits for manual handling.
    RefundFailed,
}

impl PaymentEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentEventType::Created => "created",
            PaymentEventType::Mismatch => "mismatch",
            PaymentEventType::Failed => "failed",
            PaymentEventType::Expired => "expired",
            PaymentEventType::RefundRequired => "refund_required",
            PaymentEventType::RefundRequested => "refund_requested",
            PaymentEventType::Refunded => "refunded",
            PaymentEventType::RefundFailed => "refund_failed",
        }
    }
}

/// The payment part of a payment event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentNote {
    pub what: PaymentEventType,
    pub payment_id: PaymentId,
    pub provider: ProviderName,
    /// The payment record's amount.
    pub amount: Money,
    /// What the provider reported, when it differs (`payment.mismatch`) or was captured for
    /// an order that cannot take it (`payment.refund_required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The refund this event is about (`payment.refund_*`, `payment.refunded`): a payment
    /// has several, each with its own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<crate::payment_ids::RefundId>,
}

/// A physical shard (database) number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u16);

/// An outbox row: the event plus its per-shard sequence, the relay's cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub shard: ShardId,
    pub sequence: u64,
    pub event: OrderEvent,
}

/// What a transition does to the order's stock reservations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockEffect {
    /// Nothing.
    #[default]
    None,
    /// Reserved units become sold (`pay`).
    Confirm,
    /// Reserved (or sold) units go back to available (`cancel`, `timeout`).
    Release,
}

impl StockEffect {
    pub const ALL: [StockEffect; 3] = [
        StockEffect::None,
        StockEffect::Confirm,
        StockEffect::Release,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StockEffect::None => "none",
            StockEffect::Confirm => "confirm",
            StockEffect::Release => "release",
        }
    }

    pub fn parse(text: &str) -> Option<StockEffect> {
        StockEffect::ALL.into_iter().find(|e| e.as_str() == text)
    }

    pub fn is_none(&self) -> bool {
        *self == StockEffect::None
    }
}

impl fmt::Display for StockEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Marketing resources an order gives back when it ends unpaid: the coupons and points the
/// marketing system must unfreeze. Carried on the cancelling event for that system to follow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coupons: Vec<String>,
    #[serde(default)]
    pub points: u64,
}

impl Released {
    pub fn is_empty(&self) -> bool {
        self.coupons.is_empty() && self.points == 0
    }
}

/// The transition an outbox event records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionNote {
    pub event: TransitionEvent,
    pub from: StatusCode,
    pub to: StatusCode,
    /// The CloudEvents type's last part (`paid` → `com.ordercenter.order.paid`).
    pub event_type: String,
    /// Who fired it: the API key id, or the system part that did (`scheduler`).
    pub operator: String,
    /// Through which system: `api`, `scheduler`, `payments`, …
    pub source_system: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The event data the tenant config declares for this transition (e.g. `carrier`,
    /// `waybill_no` of a `ship`), by name, as validated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "StockEffect::is_none")]
    pub stock: StockEffect,
    /// Coupons and points to give back (a release of an unpaid order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Released>,
}
