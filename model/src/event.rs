//! Order change events: written to the outbox in the same transaction as the change,
//! relayed to the bus, consumed by the read models.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{BusinessIdentity, OrderId, OrderType, StatusCode, TenantId};
use crate::lifecycle::TransitionNote;

/// Every CloudEvents `type` of an order event starts with this.
pub const CLOUD_EVENT_TYPE_PREFIX: &str = "com.ordercenter.order.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderEventKind {
    Created,
    Updated,
    StatusChanged,
    Cancelled,
}

impl OrderEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderEventKind::Created => "created",
            OrderEventKind::Updated => "updated",
            OrderEventKind::StatusChanged => "status_changed",
            OrderEventKind::Cancelled => "cancelled",
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
        }
    }

    /// The CloudEvents `type`: `com.ordercenter.order.<name>`, where the name is the
    /// transition's event type (its target state unless the tenant config names another,
    /// e.g. `order.paid`, `order.shipped`) or, for an event that is no transition, its kind
    /// (`order.created`, `order.updated`).
    pub fn cloud_event_type(&self) -> String {
        match &self.transition {
            Some(note) => format!("{CLOUD_EVENT_TYPE_PREFIX}{}", note.event_type),
            None => self.kind.cloud_event_type(),
        }
    }

    /// Stable, unique event id (`{order_id}-{version}`), the CloudEvents `id`.
    pub fn event_id(&self) -> String {
        format!("{}-{}", self.order_id, self.version)
    }
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
