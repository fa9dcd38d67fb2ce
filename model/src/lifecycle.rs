//! The forward flow's records and their port: what a state-machine transition adds to its
//! outbox event ([`TransitionNote`]), the status history row ([`HistoryEntry`]), and the store
//! that writes a transition in one local transaction ([`TransitionStore`]).
//!
//! A transition is one local transaction on the order's shard: the order row
//! (compare-and-set on its version), one history row and one outbox event. Everything a
//! transition decides about stock (confirm or release the order's reservations) is recorded
//! in its history row as a [`StockEffect`], so whoever settles a reservation later (after a
//! crash between the order's commit and the stock update) reads the decision from the
//! order's own shard instead of guessing it.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{DomainError, DomainResult};
use crate::event::OrderEvent;
pub use crate::event::{Released, StockEffect, TransitionNote};
use crate::ids::{OrderId, StatusCode, TenantId, TransitionEvent};
use crate::order::Order;

/// One row of an order's status history: the transition that produced `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub tenant: TenantId,
    pub order_id: OrderId,
    /// The order version this transition wrote.
    pub version: u64,
    pub from: StatusCode,
    pub to: StatusCode,
    pub event: TransitionEvent,
    pub operator: String,
    pub source_system: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "StockEffect::is_none")]
    pub stock: StockEffect,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

impl HistoryEntry {
    /// The note of this entry for the outbox event.
    pub fn note(&self, event_type: String, released: Option<Released>) -> TransitionNote {
        TransitionNote {
            event: self.event.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            event_type,
            operator: self.operator.clone(),
            source_system: self.source_system.clone(),
            reason: self.reason.clone(),
            data: self.data.clone(),
            stock: self.stock,
            released,
        }
    }
}

/// The stock decision recorded last in a history: what the order's reservations should be.
pub fn settled_stock(history: &[HistoryEntry]) -> StockEffect {
    history
        .iter()
        .rev()
        .map(|entry| entry.stock)
        .find(|effect| !effect.is_none())
        .unwrap_or_default()
}

/// Everything one transition writes, in one local transaction on the order's shard.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionWrite {
    /// The version the stored order must still be at.
    pub expected_version: u64,
    /// The order after the transition, at `expected_version + 1`.
    pub order: Order,
    pub event: OrderEvent,
    /// The history row; `None` for a change that is no transition (a stale pay deadline
    /// cleared by the timeout worker).
    pub history: Option<HistoryEntry>,
}

impl TransitionWrite {
    /// What every store must refuse before writing: an event or history row of another
    /// order or version, a version that does not move by exactly one.
    pub fn check(&self) -> DomainResult<()> {
        let main = &self.order.main;
        if main.version != self.expected_version + 1 {
            return Err(DomainError::internal(
                "a transition bumps the version by exactly one",
            ));
        }
        if self.event.order_id != main.id
            || self.event.tenant != main.tenant
            || self.event.version != main.version
        {
            return Err(DomainError::internal(
                "outbox event does not describe the order being written",
            ));
        }
        if let Some(history) = &self.history
            && (history.order_id != main.id
                || history.tenant != main.tenant
                || history.version != main.version
                || history.to != main.status)
        {
            return Err(DomainError::internal(
                "history row does not describe the order being written",
            ));
        }
        Ok(())
    }
}

/// The transition side of the order store: transitions and the history.
#[async_trait]
pub trait TransitionStore: Send + Sync + Debug + 'static {
    /// Compare-and-set on the version: the order's main row (status, version, update time,
    /// pay deadline, body), the history row and the outbox event, in one transaction; a
    /// stale version is `PreconditionFailed` (a missing order `NotFound`) and writes nothing.
    /// Lines and identifiers are not written: a transition does not change them.
    async fn commit_transition(&self, write: TransitionWrite) -> DomainResult<Order>;

    /// The order's history, oldest first (another tenant's order: empty).
    async fn history(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Vec<HistoryEntry>>;
}
