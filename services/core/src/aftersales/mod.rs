//! The after-sales domain (issue #20, seeds 000 and 001): apply, read, review, appeal and
//! refund. HTTP-free; the API maps these use cases to routes.
//!
//! # No duplicate applications
//!
//! Seed 000 serialised applications of one order with a Redis lock. Here the database decides:
//! the request's lines are summed per order line (the seed's duplicate `skuA` line) and checked
//! against what live and earlier after-sales hold, for a precise refusal; then the store holds
//! the units by a conditional update per order line inside the application's transaction
//! ([`AfterSaleStore::apply_after_sale`]), so two channels racing for the last unit cannot
//! both win, whatever this process believed when it read.
//!
//! # One refund per after-sale
//!
//! The refund is claimed by the after-sale's own transition to `refunding`, which writes the
//! after-sale's one `after_sale_refunds` row (primary key: the after-sale) in the same
//! transaction; racing reviewers lose on the version or that key and get a 409. The claim
//! names the refund id and the payment, so a retry of the same after-sale re-drives the very
//! same refund record: the payments domain's [`PaymentService::refund_as`] under the claimed
//! refund id, idempotent by the refund key = the after-sale id, capped by the payment's
//! `chk_payments_refunded`, submitted to the provider. Its asynchronous answer (callback or
//! active query) settles the refund and the payments domain tells this one
//! ([`crate::payments::RefundWatcher`]), which completes the after-sale
//! ([`AfterSaleService::refund_settled`]). Should the process die between the two, a retry
//! of the refund finds the refund settled and completes the after-sale then.

mod archived;
pub mod list;
pub mod pickup;
mod view;

use std::sync::Arc;

use serde::Deserialize;

use oc_model::aftersale::{
    AfterSale, AfterSaleChannel, AfterSaleHistoryEntry, AfterSaleId, AfterSaleLine,
    AfterSaleMachines, AfterSaleRefund, AfterSaleStore, AfterSaleTransition, AfterSaleType,
    NewAfterSale, RefundSplit, RequestedLine, Reviewer, ledger_effect,
};
use oc_model::payment::PaymentStore;
use oc_model::{
    DomainError, DomainResult, ErrorCode, Money, Order, PaymentStatus, Refund, RefundId,
    RefundStatus, TenantId, TransitionEvent, UnixMillis,
};
use oc_tenant_config::Endpoint;

use crate::caller::Caller;
use crate::orders::OrderService;
use crate::payments::{PaymentService, RefundWatcher};

pub use pickup::{PickupReport, PickupSettings, PickupStats, PickupWorker};
pub use view::AfterSaleView;

/// `POST /v1/orders/{id}/after-sales`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    #[serde(rename = "type")]
    pub kind: AfterSaleType,
    /// Who applies: `user` (the business line on the buyer's behalf), `merchant` or
    /// `customer_service`. A merchant-scoped key always applies as `merchant`.
    pub channel: AfterSaleChannel,
    #[serde(default)]
    pub reason: Option<String>,
    pub lines: Vec<RequestedLine>,
    /// The earliest time a carrier may collect the goods (RFC 3339), for a type that sends
    /// goods back: once approved, the pickup worker books one pickup for the order's returns
    /// shortly before the earliest of them (`OC_PICKUP_LEAD_MS`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub pickup_at: Option<time::OffsetDateTime>,
}

/// `POST /v1/after-sales/{id}/review`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub decision: Decision,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

/// `POST /v1/after-sales/{id}/transitions`: the steps after review that have no route of
/// their own, each through the after-sale type's state machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    pub event: Step,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A step of an after-sale (the review, the appeal and the refund have their own routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The goods came back (return and refund, exchange, repair): `approved` → `returned`.
    ReceiveReturn,
    /// The replacement or the repaired goods went out (exchange, repair): `returned` →
    /// `shipped`.
    Ship,
    /// The buyer has them back (exchange, repair): `shipped` → `completed`. A refunding type
    /// completes when its refund succeeds, never by this route.
    Complete,
    /// The applicant withdraws (`applied` or `approved` → `cancelled`): the units are free again.
    Cancel,
    /// The applicant accepts a rejection (`rejected` → `closed`): the units are free again.
    Close,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::ReceiveReturn => "receive_return",
            Step::Ship => "ship",
            Step::Complete => "complete",
            Step::Cancel => "cancel",
            Step::Close => "close",
        }
    }

    /// The applicant's own steps (withdrawing, accepting a rejection) against the
    /// reviewer's (the goods' way back and forth).
    fn is_applicants(self) -> bool {
        matches!(self, Step::Cancel | Step::Close)
    }
}

/// `POST /v1/after-sales/{id}/appeal`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppealRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

const REASON_MAX: usize = 512;

fn check_reason(reason: &Option<String>, field: &str) -> DomainResult<()> {
    match reason {
        Some(text) if text.chars().count() > REASON_MAX => Err(DomainError::invalid(
            field,
            format!("at most {REASON_MAX} characters"),
        )),
        _ => Ok(()),
    }
}

fn event(name: &str) -> TransitionEvent {
    TransitionEvent::parse(name).expect("a built-in event name is valid")
}

/// The after-sales domain. Built by [`crate::Core::builder`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct AfterSaleService {
    pub(crate) orders: OrderService,
    pub(crate) store: Arc<dyn AfterSaleStore>,
    pub(crate) payments: Arc<dyn PaymentStore>,
    /// The refunds themselves: recorded, submitted and settled by the payments domain.
    pub(crate) refunds: PaymentService,
}

impl AfterSaleService {
    pub fn new(
        orders: OrderService,
        store: Arc<dyn AfterSaleStore>,
        refunds: PaymentService,
    ) -> AfterSaleService {
        AfterSaleService {
            orders,
            store,
            payments: Arc::clone(&refunds.store),
            refunds,
        }
    }

    /// The machines of a tenant whose after-sale moves without a caller (a refund's
    /// settlement): from the live tenant config, as a caller's snapshot would have them.
    fn machines_of(&self, tenant: &TenantId) -> DomainResult<AfterSaleMachines> {
        let config = self.refunds.config.current();
        let tenant = config
            .tenant(tenant)
            .ok_or_else(|| DomainError::unavailable("the after-sale's tenant is not configured"))?;
        Ok(tenant.after_sales().machines().clone())
    }

    /// The channel a caller acts through: a merchant-scoped key is the merchant whatever it
    /// says; another key may act for the user, the merchant or customer service.
    fn channel_of(caller: &Caller, requested: AfterSaleChannel) -> DomainResult<AfterSaleChannel> {
        match (&caller.merchant, requested) {
            (Some(_), AfterSaleChannel::Merchant) | (None, _) => Ok(requested),
            (Some(merchant), other) => Err(DomainError::new(
                ErrorCode::Forbidden,
                format!(
                    "this key is scoped to merchant {merchant} and applies as merchant, not {other}"
                ),
            )
            .under("/channel")),
        }
    }

    /// Apply for an after-sale of an order.
    pub async fn apply(
        &self,
        caller: &Caller,
        order_id: &str,
        request: ApplyRequest,
    ) -> DomainResult<AfterSaleView> {
        caller.require(Endpoint::AfterSalesApply)?;
        check_reason(&request.reason, "/reason")?;
        if request.pickup_at.is_some() && !request.kind.returns_goods() {
            return Err(DomainError::invalid(
                "/pickup_at",
                format!("a {} after-sale sends no goods back", request.kind),
            ));
        }
        let channel = Self::channel_of(caller, request.channel)?;
        let order = self.orders.load(caller, order_id).await?;
        if let Some(machine) = caller
            .tenant_config()
            .state_machine(&order.main.business_identity)
            && &order.main.status == machine.initial()
        {
            return Err(DomainError::new(
                ErrorCode::InvalidTransition,
                format!(
                    "order is {}: nothing was paid or delivered yet (cancel it instead)",
                    order.main.status
                ),
            ));
        }
        let split = RefundSplit::of_order(&order);
        let taken = self
            .store
            .units_taken(&caller.tenant, order.main.id)
            .await?;
        // and the request line a refusal names for each order line: the last that took of it
        let (resolved, request_of) = split.resolve_attributed(&request.lines, &taken)?;
        let now = self.orders.now_ms();
        let id = AfterSaleId::generated(
            self.orders
                .ids
                .next(order.main.id.bucket(), UnixMillis::floor(now).as_u64()),
        );
        // the caller's tenant's rules (its config snapshot), seed 000's where it set none
        let rules = caller.tenant_config().after_sales();
        let reviewer = rules.routing().reviewer(channel);
        let machine = rules.machines().of(request.kind);
        // seed 000: the merchant's own application is approved at once
        let (apply_event, status) = if reviewer == Reviewer::None {
            let approve = event("approve");
            let approved = machine.next(machine.initial(), &approve)?.clone();
            (approve, approved)
        } else {
            (event("apply"), machine.initial().clone())
        };
        let currency = order.finance.currency;
        let mut lines = Vec::with_capacity(resolved.len());
        let mut request_index = Vec::with_capacity(resolved.len());
        for (line_no, quantity) in &resolved {
            let line = order
                .lines
                .iter()
                .find(|line| line.line_no == *line_no)
                .ok_or_else(|| DomainError::internal("a resolved line vanished"))?;
            lines.push(AfterSaleLine {
                line_no: *line_no,
                sku: line.sku.clone(),
                promotion_type: line.promotion_type.clone(),
                unit_price: line.unit_price,
                quantity: *quantity,
                amount: Money::zero(currency),
            });
            request_index.push(request_of.get(line_no).copied().unwrap_or(0));
        }
        let after_sale = AfterSale {
            tenant: caller.tenant.clone(),
            id,
            order_id: order.main.id,
            kind: request.kind,
            channel,
            applicant: caller.key_id.clone(),
            reviewer,
            status,
            version: 1,
            appealed: false,
            reason: request.reason.clone(),
            lines,
            refund_amount: Money::zero(currency),
            pickup_at: request.pickup_at,
            pickup_id: None,
            waybill_no: None,
            created_at: now,
            updated_at: now,
        };
        let history = AfterSaleHistoryEntry {
            version: 1,
            from: None,
            to: after_sale.status.clone(),
            event: apply_event.clone(),
            channel,
            operator: caller.key_id.clone(),
            reason: request.reason,
            occurred_at: now,
        };
        let written = self
            .store
            .apply_after_sale(NewAfterSale {
                event: after_sale.order_event(&order, &apply_event),
                history,
                split,
                request_index,
                after_sale,
            })
            .await?;
        AfterSaleView::of(written, Vec::new(), None)
            .shown_to(caller)
            .with_pickup_contact(&self.orders.sealer, caller, &order)
    }

    /// The after-sale and the order it belongs to, as the caller may see them (another
    /// tenant's, another merchant's or a malformed id: 404).
    /// The order of an after-sale the service already holds (a worker's or a callback's, no
    /// caller): from its shard, where it must be.
    pub(crate) async fn order_of(
        &self,
        tenant: &TenantId,
        order_id: oc_model::OrderId,
    ) -> DomainResult<Order> {
        self.orders
            .store
            .get(tenant, order_id)
            .await?
            .ok_or_else(|| DomainError::internal("an after-sale's order vanished"))
    }

    async fn load(&self, caller: &Caller, id: &str) -> DomainResult<(AfterSale, Order)> {
        let not_found = || DomainError::not_found("after-sale not found");
        let id: AfterSaleId = id.parse().map_err(|_| not_found())?;
        let Some(after_sale) = self.store.get_after_sale(&caller.tenant, id).await? else {
            return Err(self.archived_refusal(caller, id, not_found()).await?);
        };
        let order = self
            .orders
            .load(caller, &after_sale.order_id.to_string())
            .await
            .map_err(|e| {
                if e.code == ErrorCode::NotFound {
                    not_found()
                } else {
                    e
                }
            })?;
        Ok((after_sale, order))
    }

    /// One after-sale with its history and refund.
    pub async fn get(&self, caller: &Caller, id: &str) -> DomainResult<AfterSaleView> {
        caller.require(Endpoint::AfterSalesGet)?;
        let (after_sale, order) = match self.load(caller, id).await {
            Err(e) if e.code == ErrorCode::Conflict => return self.archived(caller, id, e).await,
            loaded => loaded?,
        };
        self.view(caller, &order, after_sale).await
    }

    /// A single read as `caller` may see it: history, refund, reasons and pickup contact by
    /// the caller's PII view.
    async fn view(
        &self,
        caller: &Caller,
        order: &Order,
        after_sale: AfterSale,
    ) -> DomainResult<AfterSaleView> {
        let history = self
            .store
            .after_sale_history(&after_sale.tenant, after_sale.id)
            .await?;
        let refund = self
            .store
            .after_sale_refund(&after_sale.tenant, after_sale.id)
            .await?;
        AfterSaleView::of(after_sale, history, refund)
            .shown_to(caller)
            .with_pickup_contact(&self.orders.sealer, caller, order)
    }

    /// The after-sales of an order, oldest first.
    pub async fn of_order(
        &self,
        caller: &Caller,
        order_id: &str,
    ) -> DomainResult<Vec<AfterSaleView>> {
        caller.require(Endpoint::AfterSalesList)?;
        let order = match self.orders.load(caller, order_id).await {
            Err(e) if e.code == ErrorCode::Conflict => {
                return self.archived_of_order(caller, order_id, e).await;
            }
            loaded => loaded?,
        };
        let found = self
            .store
            .after_sales_of_order(&caller.tenant, order.main.id)
            .await?;
        Ok(found
            .into_iter()
            .map(|after_sale| AfterSaleView::of(after_sale, Vec::new(), None).shown_to(caller))
            .collect())
    }

    /// Fire `event_name` on the after-sale through its type's machine, with the ledger
    /// effect of the state it reaches.
    #[allow(clippy::too_many_arguments)]
    async fn fire(
        &self,
        machines: &AfterSaleMachines,
        order: &Order,
        after_sale: &AfterSale,
        event_name: &str,
        channel: AfterSaleChannel,
        operator: &str,
        reason: Option<String>,
        reviewer: Reviewer,
        appealed: bool,
        refund: Option<AfterSaleRefund>,
    ) -> DomainResult<AfterSale> {
        let machine = machines.of(after_sale.kind);
        let fired = event(event_name);
        let to = machine.next(&after_sale.status, &fired)?.clone();
        let now = self.orders.now_ms();
        let mut next = after_sale.clone();
        next.version += 1;
        next.status = to.clone();
        next.updated_at = now;
        next.reviewer = reviewer;
        next.appealed = appealed;
        self.store
            .transition_after_sale(AfterSaleTransition {
                tenant: after_sale.tenant.clone(),
                id: after_sale.id,
                expected_version: after_sale.version,
                to: to.clone(),
                reviewer,
                appealed,
                ledger: ledger_effect(machine, after_sale.kind, &to),
                history: AfterSaleHistoryEntry {
                    version: next.version,
                    from: Some(after_sale.status.clone()),
                    to,
                    event: fired.clone(),
                    channel,
                    operator: operator.to_owned(),
                    reason,
                    occurred_at: now,
                },
                event: next.order_event(order, &fired),
                refund,
            })
            .await
    }

    /// The reviewer's channel: a merchant-scoped key reviews as the merchant, another key as
    /// customer service (the console).
    fn reviewer_channel(caller: &Caller) -> AfterSaleChannel {
        if caller.merchant.is_some() {
            AfterSaleChannel::Merchant
        } else {
            AfterSaleChannel::CustomerService
        }
    }

    /// Approve or reject an application (or, as customer service, an appeal).
    pub async fn review(
        &self,
        caller: &Caller,
        id: &str,
        request: ReviewRequest,
    ) -> DomainResult<AfterSaleView> {
        caller.require(Endpoint::AfterSalesReview)?;
        check_reason(&request.reason, "/reason")?;
        let (after_sale, order) = self.load(caller, id).await?;
        let channel = Self::reviewer_channel(caller);
        if after_sale.appealed && channel == AfterSaleChannel::Merchant {
            return Err(DomainError::new(
                ErrorCode::Forbidden,
                "an appeal is decided by customer service, not the merchant",
            ));
        }
        if after_sale.reviewer == Reviewer::CustomerService && channel == AfterSaleChannel::Merchant
        {
            return Err(DomainError::new(
                ErrorCode::Forbidden,
                "this after-sale is routed to customer service for review",
            ));
        }
        let name = match request.decision {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        };
        let moved = self
            .fire(
                caller.tenant_config().after_sales().machines(),
                &order,
                &after_sale,
                name,
                channel,
                &caller.key_id,
                request.reason,
                after_sale.reviewer,
                after_sale.appealed,
                None,
            )
            .await?;
        self.view(caller, &order, moved).await
    }

    /// Appeal a rejection, once, to customer service as arbiter.
    pub async fn appeal(
        &self,
        caller: &Caller,
        id: &str,
        request: AppealRequest,
    ) -> DomainResult<AfterSaleView> {
        caller.require(Endpoint::AfterSalesApply)?;
        check_reason(&request.reason, "/reason")?;
        let (after_sale, order) = self.load(caller, id).await?;
        if after_sale.appealed {
            return Err(DomainError::new(
                ErrorCode::InvalidTransition,
                "this after-sale was appealed once already; customer service's decision is final",
            ));
        }
        let moved = self
            .fire(
                caller.tenant_config().after_sales().machines(),
                &order,
                &after_sale,
                "appeal",
                after_sale.channel,
                &caller.key_id,
                request.reason,
                Reviewer::CustomerService,
                true,
                None,
            )
            .await?;
        self.view(caller, &order, moved).await
    }

    /// Fire a step (see [`Step`]): the applicant's (`cancel`, `close`) need the role endpoint
    /// `after_sales.apply`, the reviewer's (`receive_return`, `ship`, `complete`)
    /// `after_sales.review`; each goes through the type's machine with its ledger effect (a
    /// terminal state gives the units back), compare-and-set on the after-sale's version.
    pub async fn step(
        &self,
        caller: &Caller,
        id: &str,
        request: StepRequest,
    ) -> DomainResult<AfterSaleView> {
        let step = request.event;
        caller.require(if step.is_applicants() {
            Endpoint::AfterSalesApply
        } else {
            Endpoint::AfterSalesReview
        })?;
        check_reason(&request.reason, "/reason")?;
        let (after_sale, order) = self.load(caller, id).await?;
        if step == Step::Complete && after_sale.kind.refunds() {
            return Err(DomainError::new(
                ErrorCode::InvalidTransition,
                format!(
                    "a {} after-sale completes when its refund succeeds",
                    after_sale.kind
                ),
            ));
        }
        let channel = if step.is_applicants() {
            // a merchant-scoped key acts as the merchant; another key for the applicant
            match caller.merchant {
                Some(_) => AfterSaleChannel::Merchant,
                None => after_sale.channel,
            }
        } else {
            Self::reviewer_channel(caller)
        };
        let moved = self
            .fire(
                caller.tenant_config().after_sales().machines(),
                &order,
                &after_sale,
                step.as_str(),
                channel,
                &caller.key_id,
                request.reason,
                after_sale.reviewer,
                after_sale.appealed,
                None,
            )
            .await?;
        self.view(caller, &order, moved).await
    }

    /// Refund an approved after-sale (a return once the goods are back): claim its one refund,
    /// record it on a captured payment (the ledger check), ask the provider. A retry of an
    /// after-sale already `refunding` re-drives the same refund record; a second claim of the
    /// refund is 409.
    pub async fn refund(&self, caller: &Caller, id: &str) -> DomainResult<AfterSaleView> {
        caller.require(Endpoint::AfterSalesReview)?;
        let (after_sale, order) = self.load(caller, id).await?;
        if !after_sale.kind.refunds() {
            return Err(DomainError::new(
                ErrorCode::InvalidTransition,
                format!("a {} after-sale refunds nothing", after_sale.kind),
            ));
        }
        let claimed = match self
            .store
            .after_sale_refund(&caller.tenant, after_sale.id)
            .await?
        {
            Some(claimed) => {
                if after_sale.status.as_str() != "refunding" {
                    return Err(DomainError::new(
                        ErrorCode::Conflict,
                        format!(
                            "this after-sale was already refunded (now {})",
                            after_sale.status
                        ),
                    ));
                }
                claimed
            }
            None => {
                let machines = caller.tenant_config().after_sales().machines();
                machines
                    .of(after_sale.kind)
                    .next(&after_sale.status, &event("refund"))?;
                let payment = self.payment_for(&order, after_sale.refund_amount).await?;
                let now = self.orders.now_ms();
                let claim = AfterSaleRefund {
                    refund_id: RefundId::generated(
                        self.orders
                            .ids
                            .next(order.main.id.bucket(), UnixMillis::floor(now).as_u64()),
                    ),
                    payment_id: payment,
                    amount: after_sale.refund_amount,
                };
                self.fire(
                    machines,
                    &order,
                    &after_sale,
                    "refund",
                    Self::reviewer_channel(caller),
                    &caller.key_id,
                    None,
                    after_sale.reviewer,
                    after_sale.appealed,
                    Some(claim.clone()),
                )
                .await
                .map_err(|e| match e.code {
                    ErrorCode::PreconditionFailed | ErrorCode::Conflict => DomainError::new(
                        ErrorCode::Conflict,
                        "this after-sale's refund is already in progress or done",
                    ),
                    _ => e,
                })?;
                claim
            }
        };
        if claimed.amount.minor > 0 {
            let created = self
                .refunds
                .refund_as(
                    caller,
                    &order.main.id.to_string(),
                    &claimed.payment_id.to_string(),
                    &after_sale.id.to_string(),
                    claimed.amount,
                    Some(format!("after-sale {}", after_sale.id)),
                    Some(claimed.refund_id),
                )
                .await
                .map_err(|error| match error.code {
                    // the ledger refused (another refund drew on the payment since the
                    // check): the after-sale stays `refunding` with its claim for an operator
                    ErrorCode::InvalidInput => DomainError::new(
                        ErrorCode::Conflict,
                        format!(
                            "{}; the after-sale is held for manual handling",
                            error.message
                        ),
                    ),
                    _ => error,
                })?;
            // a retry after the refund settled (the process died before completing the
            // after-sale): complete it now
            if created.view.status == RefundStatus::Succeeded.as_str() {
                self.refund_settled(&caller.tenant, after_sale.id, true)
                    .await?;
            }
        } else {
            // nothing to pay back (a line fully paid by earlier difference refunds)
            self.refund_settled(&caller.tenant, after_sale.id, true)
                .await?;
        }
        let (current, order) = self.load(caller, id).await?;
        self.view(caller, &order, current).await
    }

    /// A captured payment of the order with at least `amount` left to refund, oldest first.
    async fn payment_for(&self, order: &Order, amount: Money) -> DomainResult<oc_model::PaymentId> {
        let payments = self
            .payments
            .payments_of_order(&order.main.tenant, order.main.id)
            .await?;
        let mut left_most = 0;
        for payment in payments.iter().filter(|p| {
            p.status == PaymentStatus::Succeeded && p.amount.currency == amount.currency
        }) {
            let refunded = self
                .payments
                .refunded(&payment.tenant, payment.id)
                .await?
                .unwrap_or(0);
            let left = payment.captured - refunded;
            if left >= amount.minor {
                return Ok(payment.id);
            }
            left_most = left_most.max(left);
        }
        Err(DomainError::new(
            ErrorCode::Conflict,
            format!(
                "no captured payment of the order has {} left to refund (at most {left_most})",
                amount.minor
            ),
        ))
    }

    /// The provider's result of an after-sale's refund: success completes the after-sale
    /// (its units stay taken for good); a failure leaves it `refunding` for a retry or an
    /// operator. Applied once: a second report finds the after-sale moved on.
    pub async fn refund_settled(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
        succeeded: bool,
    ) -> DomainResult<Option<AfterSale>> {
        let Some(after_sale) = self.store.get_after_sale(tenant, id).await? else {
            return Err(DomainError::not_found("after-sale not found"));
        };
        if !succeeded || after_sale.status.as_str() != "refunding" {
            return Ok(None);
        }
        let order = self.order_of(tenant, after_sale.order_id).await?;
        let machines = self.machines_of(tenant)?;
        match self
            .fire(
                &machines,
                &order,
                &after_sale,
                "complete",
                after_sale.channel,
                "payments",
                None,
                after_sale.reviewer,
                after_sale.appealed,
                None,
            )
            .await
        {
            Ok(done) => Ok(Some(done)),
            Err(e) if e.code == ErrorCode::PreconditionFailed => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The payments domain tells the after-sales one of a refund settled for good: a refund
/// whose key is an after-sale id completes that after-sale when it succeeded; a refund that
/// failed on every attempt leaves it `refunding` for an operator (the refund is on the
/// payments' manual-handling list). Refunds of other callers (keys that are no after-sale
/// id) are none of its business.
impl RefundWatcher for AfterSaleService {
    fn refund_settled<'a>(
        &'a self,
        refund: &'a Refund,
        succeeded: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let Ok(id) = refund.refund_key.parse::<AfterSaleId>() else {
                return;
            };
            if let Err(error) = self.refund_settled(&refund.tenant, id, succeeded).await {
                // the after-sale stays `refunding`; a retry of its refund completes it
                tracing::warn!(%error, after_sale = %id, refund_id = %refund.id, "completing an after-sale after its refund failed");
            }
        })
    }
}
