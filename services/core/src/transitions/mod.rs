//! The transitions domain: an order moves through its business identity's state machine
//! (tenant config) one event at a time — `pay`, `ship`, `receive`, `complete`, `cancel`, … —
//! and every move is one local transaction on the order's shard: the order row
//! (compare-and-set on its version), a status-history row and an outbox event typed after the
//! transition (`com.ordercenter.order.paid`), which inventory, logistics and finance systems
//! follow on the bus. A transition's stock decision (tenant config: `pay` confirms, `cancel`
//! and `timeout` release) is recorded in the history row and then applied to the order's
//! reservations.
//!
//! | use case | file |
//! |---|---|
//! | fire an event, cancel (the `cancel` event), read the history | `mod.rs` |
//! | the event's data: checked against the config, written into the order | `data.rs` |

mod data;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use oc_model::lifecycle::{TransitionStore, TransitionWrite};
use oc_model::order::PaymentItem;
use oc_model::sealing::SealedSite;
use oc_model::{
    DomainError, DomainResult, HistoryEntry, Order, OrderEvent, OrderEventKind, OrderId, Protected,
    Released, StockEffect, TransitionEvent,
};
use oc_tenant_config::{InventoryConfig, TenantConfig};

use crate::caller::Caller;
use crate::orders::input::CancelRequest;
use crate::orders::output::OrderView;
use crate::orders::{MAX_TEXT, OrderService, optional_text, stale};

/// The system a transition fired through the HTTP API is recorded under.
pub const SOURCE_API: &str = "api";

/// One event to fire, and who fires it.
#[derive(Debug, Clone)]
pub(crate) struct Firing {
    pub(crate) event: TransitionEvent,
    pub(crate) reason: Option<String>,
    pub(crate) data: BTreeMap<String, serde_json::Value>,
    /// The API key id, or the system part that fired it (`scheduler`).
    pub(crate) operator: String,
    pub(crate) source_system: &'static str,
    /// The payment a `pay` fired by the payments domain records on the order.
    pub(crate) payment: Option<PaymentItem>,
}

/// A transition decided and not yet written (see [`TransitionService::prepare_event`]).
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) write: TransitionWrite,
    /// The stock decision to apply once it committed.
    pub(crate) stock: StockEffect,
    /// The identity's inventory settings the decision is applied under (the stock gate
    /// of an accelerated SKU hears of it too).
    pub(crate) inventory: InventoryConfig,
}

/// The coupons and points an order holds, to give back when it ends unpaid.
fn released_of(order: &Order) -> Released {
    Released {
        coupons: order
            .marketing
            .coupons
            .iter()
            .map(|coupon| coupon.code.clone())
            .collect(),
        points: order.marketing.points_used,
    }
}

/// `POST /v1/orders/{id}/transitions`: an event of the order's state machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The event, e.g. `pay`, `ship`.
    pub event: String,
    /// Why (kept in the history and the event; a cancel's reason is also the order's
    /// `operation.cancel_reason`).
    #[serde(default)]
    pub reason: Option<String>,
    /// The values the tenant config declares for this transition, by name (e.g. `ship`'s
    /// `carrier` and `waybill_no`).
    #[serde(default)]
    pub data: BTreeMap<String, serde_json::Value>,
}

/// One row of an order's status history as answered by `GET /v1/orders/{id}/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryView {
    /// The order version the transition wrote.
    pub version: u64,
    pub from: String,
    pub to: String,
    pub event: String,
    /// The API key (or system part) that fired it.
    pub operator: String,
    pub source_system: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

impl From<HistoryEntry> for HistoryView {
    fn from(entry: HistoryEntry) -> HistoryView {
        HistoryView {
            version: entry.version,
            from: entry.from.to_string(),
            to: entry.to.to_string(),
            event: entry.event.to_string(),
            operator: entry.operator,
            source_system: entry.source_system,
            reason: entry.reason,
            data: entry.data,
            occurred_at: entry.occurred_at,
        }
    }
}

/// An order's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryList {
    pub order_id: String,
    /// Oldest first.
    pub items: Vec<HistoryView>,
}

/// The transitions domain. Built by [`crate::Core::builder`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct TransitionService {
    pub(crate) orders: OrderService,
    pub(crate) store: Arc<dyn TransitionStore>,
}

impl TransitionService {
    /// Fire `request.event` on the order at version `if_match` (any version when `None`).
    /// An event the state machine does not allow from the order's status is
    /// `InvalidTransition` naming the status and the events it allows; a stale version is
    /// `PreconditionFailed`; bad data is `InvalidInput` naming `/data/<name>`. Nothing
    /// changes on any refusal.
    pub async fn fire(
        &self,
        caller: &Caller,
        id: &str,
        if_match: Option<u64>,
        request: TransitionRequest,
    ) -> DomainResult<OrderView> {
        let event =
            TransitionEvent::parse(request.event.as_str()).map_err(|e| e.under("/event"))?;
        optional_text("/reason", &request.reason, MAX_TEXT)?;
        let current = self.orders.load(caller, id).await?;
        if let Some(expected) = if_match
            && expected != current.main.version
        {
            return Err(stale(&current, expected));
        }
        let stored = self
            .commit_event(
                caller.tenant_config(),
                current,
                Firing {
                    event,
                    reason: request.reason,
                    data: request.data,
                    operator: caller.key_id.clone(),
                    source_system: SOURCE_API,
                    payment: None,
                },
            )
            .await?;
        self.orders.render(caller, &stored)
    }

    /// Move `current` through `firing.event` under `tenant`'s config: the one path of every
    /// transition, whoever fires it (the API, the timeout worker, a payment). The order row's
    /// compare-and-set is on `current`'s version, so of two racing transitions exactly one
    /// commits and the other is `PreconditionFailed` with nothing written. After the commit
    /// the transition's stock decision is applied to the order's reservations.
    pub(crate) async fn commit_event(
        &self,
        tenant: &TenantConfig,
        current: Order,
        firing: Firing,
    ) -> DomainResult<Order> {
        let prepared = self.prepare_event(tenant, &current, firing)?;
        let (stock, inventory) = (prepared.stock, prepared.inventory);
        let stored = self.store.commit_transition(prepared.write).await?;
        self.finish(&stored, stock, &inventory).await;
        Ok(stored)
    }

    /// Everything a transition writes, decided but not written: the next order, its history
    /// row and outbox event. Whoever commits it (the transition store alone, or a payment's
    /// settlement with the payment's row) then calls [`Self::finish`].
    pub(crate) fn prepare_event(
        &self,
        tenant: &TenantConfig,
        current: &Order,
        firing: Firing,
    ) -> DomainResult<Prepared> {
        let Firing {
            event,
            reason,
            data: raw_data,
            operator,
            source_system,
            payment,
        } = firing;
        let identity = tenant
            .business_identity(&current.main.business_identity)
            .ok_or_else(|| {
                DomainError::internal("order's business identity is no longer configured")
            })?;
        let machine = identity.state_machine();
        let from = current.main.status.clone();
        let to = machine.next(&from, &event)?.clone();
        let config = identity
            .transition(&from, &event)
            .ok_or_else(|| DomainError::internal("state machine and transitions disagree"))?;
        let mut accepted = data::accept(config, &raw_data)?;

        let mut next = current.clone();
        let remark_sealed = tenant
            .order_type(&current.main.business_identity, &current.main.order_type)
            .is_some_and(|fields| fields.remark_encrypted());
        data::apply(&accepted, &mut next, |text| {
            if remark_sealed {
                let (tenant, id) = (&current.main.tenant, current.main.id);
                self.orders
                    .sealer
                    .seal_party(tenant, id, &SealedSite::Remark, text)
            } else {
                Ok(Protected::Plain(text.to_owned()))
            }
        })?;
        if remark_sealed {
            accepted.withhold_remark();
        }
        next.main.status = to.clone();
        // a pay deadline is kept only while the order waits in the status it was set for
        if to != from {
            next.main.pay_deadline = None;
        }
        if event.as_str() == "cancel" {
            next.operation.cancel_reason = reason.clone();
        }
        // the money a payment brought, on the order's finance group (refunds count against it)
        if let Some(item) = payment {
            next.finance.payments.push(item);
        }
        next.operation.updated_by = Some(operator.clone());
        self.orders.prepare_next_in(tenant, current, &mut next)?;

        // the stock decision is recorded only where stock is kept
        let stock = if identity.inventory().is_builtin() {
            config.stock
        } else {
            StockEffect::None
        };
        let entry = HistoryEntry {
            tenant: current.main.tenant.clone(),
            order_id: current.main.id,
            version: next.main.version,
            from: from.clone(),
            to,
            event: event.clone(),
            operator,
            source_system: source_system.to_owned(),
            reason,
            data: accepted.into_json(),
            stock,
            occurred_at: next.main.updated_at,
        };
        let kind = match event.as_str() {
            "cancel" | "timeout" => OrderEventKind::Cancelled,
            _ => OrderEventKind::StatusChanged,
        };
        // an order that ends before it was paid gives its coupons and points back: the
        // marketing system follows the cancelling event to unfreeze them
        let released = (kind == OrderEventKind::Cancelled && &from == machine.initial())
            .then(|| released_of(current))
            .filter(|released| !released.is_empty());
        let mut outbox = OrderEvent::of(&next, kind);
        outbox.transition = Some(entry.note(config.event_type.clone(), released));
        Ok(Prepared {
            write: TransitionWrite {
                expected_version: current.main.version,
                order: next,
                event: outbox,
                history: Some(entry),
            },
            stock,
            inventory: identity.inventory().clone(),
        })
    }

    /// After a transition committed: the cache write-through and the stock decision.
    pub(crate) async fn finish(
        &self,
        stored: &Order,
        stock: StockEffect,
        inventory: &InventoryConfig,
    ) {
        self.orders.remember(stored).await;
        // The history row holds the decision; settling is idempotent, so a failure here
        // (logged) leaves the reservations for the sweeper, which settles an expired
        // reservation as its order's history decided (`crate::scheduler`), never a wrong
        // count.
        if let Err(error) = self
            .orders
            .reserver
            .settle(stored, stock, inventory, self.orders.now_ms())
            .await
        {
            tracing::error!(order_id = %stored.main.id, %stock, error = %error.message, "settling the order's stock failed");
        }
    }

    /// Cancel an order: its state machine's `cancel` event, through [`Self::fire`].
    pub async fn cancel(
        &self,
        caller: &Caller,
        id: &str,
        if_match: Option<u64>,
        request: CancelRequest,
    ) -> DomainResult<OrderView> {
        self.fire(
            caller,
            id,
            if_match,
            TransitionRequest {
                event: "cancel".to_owned(),
                reason: request.reason,
                data: BTreeMap::new(),
            },
        )
        .await
    }

    /// The order's status history, oldest first (an order the caller does not see: 404).
    pub async fn history(&self, caller: &Caller, id: &str) -> DomainResult<HistoryList> {
        // the read path (cache, shard, cold store): an archived order keeps its history
        let id: OrderId = id
            .parse()
            .map_err(|_| DomainError::not_found("order not found"))?;
        let order = self.orders.load_for_read(caller, id).await?;
        let mut entries = self.store.history(&caller.tenant, order.main.id).await?;
        if entries.is_empty()
            && let Some(cold) = &self.orders.read.cold
        {
            entries = cold
                .history(&caller.tenant, order.main.id)
                .await?
                .unwrap_or_default();
        }
        Ok(HistoryList {
            order_id: order.main.id.to_string(),
            items: entries.into_iter().map(HistoryView::from).collect(),
        })
    }
}
