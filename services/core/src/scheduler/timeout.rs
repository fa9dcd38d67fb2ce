//! One due order: fire its state machine's `timeout` event through the transitions' one
//! path (compare-and-set on the version it was read at, history row, outbox event naming
//! the coupons to give back, then the release of its reservations).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use oc_model::lifecycle::TransitionWrite;
use oc_model::schedule::DueOrder;
use oc_model::{DomainResult, ErrorCode, Order, OrderEvent, OrderEventKind, TransitionEvent};
use oc_tenant_config::TenantConfig;

use super::{SOURCE_SCHEDULER, Scheduler};
use crate::transitions::Firing;

/// The event the scheduler fires (the tenant config loader checks that every business
/// identity with a payment window has it from its first state).
const TIMEOUT_EVENT: &str = "timeout";

/// What became of one due order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeout {
    /// The `timeout` transition committed.
    Fired,
    /// Another transition (a payment, a cancel, another scheduler's timeout) committed
    /// between the read and the compare-and-set: it won, nothing was written.
    Raced,
    /// Read again, the order is no longer due (paid or cancelled since it was listed) or
    /// is gone.
    NotDue,
    /// Its tenant or business identity is not in the live config (removed): left as it
    /// is, it is found again once the config has it back.
    UnknownTenant,
    /// Its state machine (the config changed since it was placed) does not allow `timeout`
    /// from its status: its deadline is cleared (a change with no transition) so it is not
    /// found again.
    NotAllowed,
}

impl Timeout {
    pub fn as_str(self) -> &'static str {
        match self {
            Timeout::Fired => "fired",
            Timeout::Raced => "raced",
            Timeout::NotDue => "not_due",
            Timeout::UnknownTenant => "unknown_tenant",
            Timeout::NotAllowed => "not_allowed",
        }
    }
}

impl Scheduler {
    /// Time out `due` if it is still due at `now`.
    pub(crate) async fn time_out(
        &self,
        due: &DueOrder,
        now: OffsetDateTime,
    ) -> DomainResult<Timeout> {
        let config = self.config.current();
        let Some(tenant) = config.tenant(&due.tenant) else {
            return Ok(Timeout::UnknownTenant);
        };
        // the truth, not the listing: a payment may have landed since
        let Some(order) = self
            .transitions
            .orders
            .store
            .get(&due.tenant, due.id)
            .await?
        else {
            return Ok(Timeout::NotDue);
        };
        if order
            .main
            .pay_deadline
            .is_none_or(|deadline| deadline > now)
        {
            return Ok(Timeout::NotDue);
        }
        let firing = Firing {
            event: TransitionEvent::parse(TIMEOUT_EVENT)?,
            reason: Some("the payment window elapsed".to_owned()),
            data: BTreeMap::new(),
            operator: SOURCE_SCHEDULER.to_owned(),
            source_system: SOURCE_SCHEDULER,
            payment: None,
        };
        match self
            .transitions
            .commit_event(tenant, order.clone(), firing)
            .await
        {
            Ok(_) => Ok(Timeout::Fired),
            // the compare-and-set lost: whoever won decided; not an error for the worker
            Err(error) if error.code == ErrorCode::PreconditionFailed => Ok(Timeout::Raced),
            Err(error) if error.code == ErrorCode::NotFound => Ok(Timeout::NotDue),
            Err(error) if error.code == ErrorCode::InvalidTransition => {
                self.clear_deadline(tenant, order).await
            }
            Err(error) => Err(error),
        }
    }

    /// Clear the deadline of an order its state machine no longer lets time out: a change
    /// that is no transition (no history row), compare-and-set like every other.
    async fn clear_deadline(&self, tenant: &TenantConfig, current: Order) -> DomainResult<Timeout> {
        tracing::warn!(order_id = %current.main.id, status = %current.main.status, "the state machine no longer allows `timeout` from the order's status: clearing its pay deadline");
        let mut next = current.clone();
        next.main.pay_deadline = None;
        let orders = &self.transitions.orders;
        orders.prepare_next_in(tenant, &current, &mut next)?;
        let event = OrderEvent::of(&next, OrderEventKind::Updated);
        let written = self
            .transitions
            .store
            .commit_transition(TransitionWrite {
                expected_version: current.main.version,
                order: next,
                event,
                history: None,
            })
            .await;
        match written {
            Ok(stored) => {
                orders.remember(&stored).await;
                Ok(Timeout::NotAllowed)
            }
            Err(error) if error.code == ErrorCode::PreconditionFailed => Ok(Timeout::Raced),
            Err(error) => Err(error),
        }
    }
}
