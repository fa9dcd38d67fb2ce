//! The payments domain (seed 003, "Payment"): the order service creates a payment record and
//! answers what the buyer pays with (the provider's pay URL or QR payload); the provider
//! reports asynchronously (a signed callback); the report is verified and applied exactly
//! once, which fires the order's `pay` transition through the transitions' one path; lost
//! callbacks are found by an active query of the provider.
//!
//! # Exactly once
//!
//! A provider's report of captured money is applied by one transaction on the order's shard
//! (`PaymentStore::settle_payment`): the payment row's compare-and-set on `pending` first —
//! concurrent duplicates (a provider's retries, a callback racing the active query) queue on
//! that row and find it settled — then the order's `pay` transition (its own compare-and-set
//! on the order version, history row, `order.paid` outbox event), then the payment's events.
//! Either everything commits or nothing does: a paid order always has its settled payment,
//! and a duplicate finds nothing left to do and changes nothing.
//!
//! What cannot be applied is still recorded: an amount or currency other than the record's
//! settles the payment `mismatch` (the order is not paid; `payment.mismatch` event), money
//! captured for an order that can no longer take it (timed out, cancelled, or paid by another
//! payment) settles it `succeeded` with the effect `refund_required` and a
//! `payment.refund_required` event; the order is not revived.
//!
//! | use case | file |
//! |---|---|
//! | create, list, the shared apply path, the callback | `mod.rs` |
//! | the active query of pending payments and refunds | `query.rs` |
//! | refunds at the provider | `refund.rs` |
//! | what the use cases take and answer | `view.rs` |

mod query;
mod refund;
mod stats;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use oc_model::lifecycle::TransitionWrite;
use oc_model::order::PaymentItem;
use oc_model::payment::{
    CallbackRefusal, NewPayment, PaymentIdempotency, PaymentInsert, PaymentProvider,
    PaymentSecrets, PaymentSettlement, PaymentShare, PaymentStore, ProviderCredentials,
    ProviderPaymentRequest, ProviderPaymentState, RawCallback, SettleOutcome, payment_amount,
};
use oc_model::{
    DomainError, DomainResult, ErrorCode, Money, Order, OrderEffect, OrderEvent, OrderEventKind,
    Payment, PaymentEventType, PaymentId, PaymentNote, PaymentStatus, ProviderName, TenantId,
    TransitionEvent, UnixMillis,
};
use oc_tenant_config::{ConfigHandle, TenantConfig};

use crate::caller::Caller;
use crate::orders::request_hash;
use crate::transitions::{Firing, TransitionService};

pub use query::Queried;
pub use refund::{RefundApplied, RefundWatcher};
pub use stats::PaymentStats;
pub use view::{PaymentCreated, PaymentList, PaymentView, RefundCreated, RefundList, RefundView};

/// The operator and source system of the transitions a payment fires.
pub const SOURCE_PAYMENTS: &str = "payments";

/// The event a captured payment fires.
const PAY_EVENT: &str = "pay";

/// How often a settlement that lost the order's compare-and-set to another transition is
/// tried again (re-reading the order: the other transition may have cancelled it).
const SETTLE_ATTEMPTS: u32 = 5;

/// The payment settings (the settings table: `OC_PAYMENT_*`).
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// How long a payment can be paid (seed 003: 30 minutes); the active query stops then.
    pub expiry: time::Duration,
    /// A payment pending this long is queried at the provider (its callback may be lost).
    pub query_delay: time::Duration,
    /// The pause between two queries of one payment (seed 003: every minute).
    pub query_interval: time::Duration,
    /// A callback's signed timestamp may be this far from now, either way.
    pub callback_window: time::Duration,
    /// Where providers send callbacks: `{public_url}/v1/payments/callbacks/{provider}`.
    pub public_url: String,
    /// The active query worker's pause between two passes over the shards.
    pub poll_interval: Duration,
    /// Payments read per page by the active query.
    pub batch_size: u32,
    /// Attempts of a refund at the provider before it is raised for manual handling.
    pub refund_attempts: u32,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            expiry: time::Duration::minutes(30),
            query_delay: time::Duration::minutes(1),
            query_interval: time::Duration::minutes(1),
            callback_window: time::Duration::minutes(5),
            public_url: "http://127.0.0.1:8080".to_owned(),
            poll_interval: Duration::from_secs(5),
            batch_size: 200,
            refund_attempts: 3,
        }
    }
}

/// The providers the composition root wired, by name, and where their secrets come from.
#[derive(Debug, Clone)]
pub struct PaymentProviders {
    providers: BTreeMap<ProviderName, Arc<dyn PaymentProvider>>,
    secrets: Arc<dyn PaymentSecrets>,
}

impl PaymentProviders {
    pub fn new(secrets: Arc<dyn PaymentSecrets>) -> PaymentProviders {
        PaymentProviders {
            providers: BTreeMap::new(),
            secrets,
        }
    }

    pub fn with(mut self, provider: Arc<dyn PaymentProvider>) -> PaymentProviders {
        self.providers.insert(provider.name().clone(), provider);
        self
    }

    fn get(&self, name: &ProviderName) -> Option<&Arc<dyn PaymentProvider>> {
        self.providers.get(name)
    }

    pub fn names(&self) -> Vec<ProviderName> {
        self.providers.keys().cloned().collect()
    }
}

/// `POST /v1/orders/{id}/payments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentRequest {
    /// A configured provider's name (`sandbox`).
    pub provider: String,
    /// What this payment asks for; absent: everything left to pay. Less than that only where
    /// the order type takes partial payments (see `oc_model::payment::payment_amount`).
    #[serde(default)]
    pub amount: Option<Money>,
}

/// `POST /v1/orders/{id}/payments/{payment_id}/refunds`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRefundRequest {
    /// The caller's id of this refund (an after-sale id); the `Idempotency-Key` header when
    /// absent.
    #[serde(default)]
    pub refund_key: Option<String>,
    /// Minor units in the payment's currency.
    pub amount: Money,
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a provider's report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Applied {
    /// The payment settled and the order's `pay` transition committed with it.
    Paid,
    /// The payment had been settled before (a duplicate): nothing changed.
    Duplicate,
    /// Amount or currency differ from the record: settled `mismatch`, the order not paid.
    Mismatch,
    /// Money recorded for an order that cannot take it: `refund_required`, the order as it is.
    RefundRequired,
    /// Part of the order's payable amount (a deposit) recorded on the order, which still
    /// waits for the rest.
    Part,
    /// The provider reports no captured money yet (pending, unknown): nothing changed.
    NotPaid,
    /// The provider reports the payment failed: settled `failed`, the order as it is.
    Failed,
    /// The payment passed its expiry unpaid: settled `expired`, the order as it is.
    Expired,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Paid => "paid",
            Applied::Duplicate => "duplicate",
            Applied::Mismatch => "mismatch",
            Applied::RefundRequired => "refund_required",
            Applied::Part => "part",
            Applied::NotPaid => "not_paid",
            Applied::Failed => "failed",
            Applied::Expired => "expired",
        }
    }
}

/// Why a callback was refused, for the edge: nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackError {
    /// Not signed, not verifiable, outside the window, or malformed.
    Refused(CallbackRefusal),
    /// Verified, but not applicable (unknown provider or payment, a store failure).
    Domain(DomainError),
}

impl From<DomainError> for CallbackError {
    fn from(error: DomainError) -> Self {
        CallbackError::Domain(error)
    }
}

/// The payments domain. Built by [`crate::Core::builder`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct PaymentService {
    pub(crate) transitions: TransitionService,
    pub(crate) store: Arc<dyn PaymentStore>,
    pub(crate) providers: PaymentProviders,
    pub(crate) config: Arc<ConfigHandle>,
    pub(crate) settings: PaymentSettings,
    pub(crate) stats: Arc<PaymentStats>,
    /// Told when a refund settles for good (the after-sales domain); set once by the builder.
    pub(crate) refund_watcher: Arc<std::sync::OnceLock<Arc<dyn refund::RefundWatcher>>>,
}

impl PaymentService {
    pub fn settings(&self) -> &PaymentSettings {
        &self.settings
    }

    /// Its counters, for `/metrics`.
    pub fn stats(&self) -> Arc<PaymentStats> {
        Arc::clone(&self.stats)
    }

    fn now(&self) -> OffsetDateTime {
        self.transitions.orders.now_ms()
    }

    fn credentials(
        &self,
        tenant: &TenantId,
        provider: &ProviderName,
    ) -> Option<ProviderCredentials> {
        self.providers.secrets.credentials(tenant, provider)
    }

    /// Create a payment for the order's payable amount through `request.provider` and answer
    /// what the buyer pays with. Idempotent by `key` (scoped to the order): a replay answers
    /// the first payment (asking the provider again only if it had not answered then).
    pub async fn create(
        &self,
        caller: &Caller,
        order_id: &str,
        request: CreatePaymentRequest,
        raw: &serde_json::Value,
        key: Option<String>,
    ) -> DomainResult<PaymentCreated> {
        let provider_name =
            ProviderName::parse(request.provider.as_str()).map_err(|e| e.under("/provider"))?;
        let provider = self.providers.get(&provider_name).ok_or_else(|| {
            DomainError::invalid(
                "/provider",
                format!(
                    "no payment provider {provider_name} is configured (configured: [{}])",
                    self.providers
                        .names()
                        .iter()
                        .map(ProviderName::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let credentials = self
            .credentials(&caller.tenant, &provider_name)
            .ok_or_else(|| {
                DomainError::invalid(
                    "/provider",
                    format!("the tenant has no account with payment provider {provider_name}"),
                )
            })?;
        let order = self.transitions.orders.load(caller, order_id).await?;
        payable_in(caller.tenant_config(), &order)?;
        let partial = takes_partial_payments(caller.tenant_config(), &order);
        let amount = payment_amount(
            order.finance.payable,
            if partial { captured_on(&order) } else { 0 },
            request.amount,
            partial,
        )?;
        let now = self.now();
        let id = PaymentId::generated(
            self.transitions
                .orders
                .ids
                .next(order.main.id.bucket(), UnixMillis::floor(now).as_u64()),
        );
        let payment = Payment {
            tenant: caller.tenant.clone(),
            id,
            order_id: order.main.id,
            provider: provider_name.clone(),
            amount,
            status: PaymentStatus::Pending,
            checkout: Default::default(),
            captured: 0,
            reported: None,
            effect: OrderEffect::None,
            created_at: now,
            updated_at: now,
            expires_at: now + self.settings.expiry,
            paid_at: None,
            next_query_at: Some(now + self.settings.query_delay),
            query_attempts: 0,
        };
        let event = OrderEvent::payment(
            &order,
            payment_note(&payment, PaymentEventType::Created, None, None),
            now,
        );
        let idempotency = key.map(|key| PaymentIdempotency {
            key,
            request_hash: request_hash(raw),
        });
        let (mut payment, replayed) = match self
            .store
            .insert_payment(NewPayment {
                payment,
                idempotency,
                event,
            })
            .await?
        {
            PaymentInsert::Created(payment) => (payment, false),
            PaymentInsert::Replayed(payment) => (payment, true),
        };
        if payment.checkout.is_empty() && payment.status == PaymentStatus::Pending {
            let checkout = provider
                .create(
                    &credentials,
                    &ProviderPaymentRequest {
                        payment_id: payment.id,
                        amount: payment.amount,
                        description: format!("order {}", payment.order_id),
                        expires_at: payment.expires_at,
                        notify_url: format!(
                            "{}/v1/payments/callbacks/{}",
                            self.settings.public_url.trim_end_matches('/'),
                            payment.provider
                        ),
                    },
                )
                .await?;
            self.store
                .set_checkout(&payment.tenant, payment.id, &checkout, self.now())
                .await?;
            payment.checkout = checkout;
        }
        Ok(PaymentCreated {
            view: PaymentView::from(&payment),
            replayed,
        })
    }

    /// The order's payments, oldest first (an order the caller does not see: 404).
    pub async fn list(&self, caller: &Caller, order_id: &str) -> DomainResult<PaymentList> {
        let order = self.transitions.orders.load(caller, order_id).await?;
        let payments = self
            .store
            .payments_of_order(&caller.tenant, order.main.id)
            .await?;
        Ok(PaymentList {
            order_id: order.main.id.to_string(),
            items: payments.iter().map(PaymentView::from).collect(),
        })
    }

    /// A provider's callback: verified with the secret of the tenant whose account it names
    /// (at the timestamp it signs, inside the window), then applied through [`Self::apply`].
    /// A refused callback changes nothing.
    pub async fn callback(
        &self,
        provider: &str,
        callback: RawCallback,
    ) -> Result<(PaymentId, Applied), CallbackError> {
        let result = self.verify_and_apply(provider, callback).await;
        match &result {
            Ok((_, applied)) => self.stats.applied("callback", applied.as_str()),
            Err(CallbackError::Refused(refusal)) => self.count_refusal(refusal),
            Err(CallbackError::Domain(_)) => {}
        }
        result
    }

    /// The adapter, tenant and credentials a callback to `provider` is verified with. An
    /// unknown account is refused exactly as a bad signature is: no oracle of accounts.
    fn callback_party(
        &self,
        provider: &str,
        callback: &RawCallback,
    ) -> Result<
        (
            Arc<dyn PaymentProvider>,
            ProviderName,
            TenantId,
            ProviderCredentials,
        ),
        CallbackError,
    > {
        let name = ProviderName::parse(provider)
            .map_err(|_| DomainError::not_found("no such payment provider"))?;
        let adapter = self
            .providers
            .get(&name)
            .ok_or_else(|| DomainError::not_found("no such payment provider"))?
            .clone();
        let account = adapter.callback_account(callback).ok_or_else(|| {
            CallbackError::Refused(CallbackRefusal::Unsigned("no account".into()))
        })?;
        let tenant = self
            .providers
            .secrets
            .tenant_of_account(&name, &account)
            .ok_or(CallbackError::Refused(CallbackRefusal::BadSignature))?;
        let credentials = self
            .credentials(&tenant, &name)
            .ok_or(CallbackError::Refused(CallbackRefusal::BadSignature))?;
        Ok((adapter, name, tenant, credentials))
    }

    fn count_refusal(&self, refusal: &CallbackRefusal) {
        self.stats.refused(match refusal {
            CallbackRefusal::Unsigned(_) => "unsigned",
            CallbackRefusal::BadSignature => "bad_signature",
            CallbackRefusal::Stale { .. } => "stale",
            CallbackRefusal::Malformed(_) => "malformed",
        })
    }

    /// A provider's refund callback: verified as a payment callback is, then applied through
    /// the refunds' one exactly-once path. A refused callback changes nothing.
    pub async fn refund_callback(
        &self,
        provider: &str,
        callback: RawCallback,
    ) -> Result<(oc_model::RefundId, RefundApplied), CallbackError> {
        let result = async {
            let (adapter, _, tenant, credentials) = self.callback_party(provider, &callback)?;
            let report = adapter
                .verify_refund_callback(
                    &credentials,
                    &callback,
                    self.transitions.orders.clock.now(),
                    self.settings.callback_window,
                )
                .map_err(CallbackError::Refused)?;
            let id = report.refund_id;
            let applied = self.apply_refund_report(tenant, report, "callback").await?;
            Ok((id, applied))
        }
        .await;
        if let Err(CallbackError::Refused(refusal)) = &result {
            self.count_refusal(refusal);
        }
        result
    }

    async fn verify_and_apply(
        &self,
        provider: &str,
        callback: RawCallback,
    ) -> Result<(PaymentId, Applied), CallbackError> {
        let (adapter, name, tenant, credentials) = self.callback_party(provider, &callback)?;
        let notification = adapter
            .verify_callback(
                &credentials,
                &callback,
                self.transitions.orders.clock.now(),
                self.settings.callback_window,
            )
            .map_err(CallbackError::Refused)?;
        let payment = self
            .store
            .get_payment(&tenant, notification.payment_id)
            .await?
            .filter(|payment| payment.provider == name)
            .ok_or_else(|| DomainError::not_found("payment not found"))?;
        let applied = self.apply(payment, notification.state).await?;
        Ok((notification.payment_id, applied))
    }

    /// Apply a provider's word on `payment` (from a callback or an active query): the one,
    /// exactly-once path (see the module documentation).
    pub async fn apply(
        &self,
        mut payment: Payment,
        state: ProviderPaymentState,
    ) -> DomainResult<Applied> {
        let (provider_txn_id, amount, paid_at) = match state {
            ProviderPaymentState::Succeeded {
                provider_txn_id,
                amount,
                paid_at,
            } => (provider_txn_id, amount, paid_at),
            _ if payment.status != PaymentStatus::Pending => return Ok(Applied::Duplicate),
            ProviderPaymentState::Failed { reason } => {
                return self
                    .settle_unpaid(&payment, PaymentStatus::Failed, &reason)
                    .await;
            }
            ProviderPaymentState::Pending | ProviderPaymentState::Unknown => {
                return Ok(Applied::NotPaid);
            }
        };
        for _ in 0..SETTLE_ATTEMPTS {
            // captured money also settles a payment given up on (`failed`, `expired`): see
            // `PaymentStatus::settles_from`
            if !payment.status.takes_capture() {
                return Ok(Applied::Duplicate);
            }
            let order = self.order_of(&payment).await?;
            match self
                .settle(&payment, &order, &provider_txn_id, amount, paid_at)
                .await
            {
                Err(error) if error.code == ErrorCode::PreconditionFailed => {
                    // another transition (a timeout, a cancel) moved the order first: read
                    // both again and decide on what is there now
                    payment = self
                        .store
                        .get_payment(&payment.tenant, payment.id)
                        .await?
                        .ok_or_else(|| DomainError::internal("a settling payment vanished"))?;
                }
                other => return other,
            }
        }
        Err(DomainError::new(
            ErrorCode::Retryable,
            "the order kept changing while the payment settled; retry",
        ))
    }

    /// The payment's order as stored now (a payment's order never goes away).
    async fn order_of(&self, payment: &Payment) -> DomainResult<Order> {
        self.transitions
            .orders
            .store
            .get(&payment.tenant, payment.order_id)
            .await?
            .ok_or_else(|| DomainError::internal("a payment's order is missing"))
    }

    /// Settle a pending payment `failed` or `expired` (`status`): no money, nothing applied
    /// to the order; `payment.failed` / `payment.expired` with `reason`. Exactly once by the
    /// same compare-and-set on `pending` as a capture: a duplicate, or a capture that settled
    /// it first, finds nothing to do.
    pub(crate) async fn settle_unpaid(
        &self,
        payment: &Payment,
        status: PaymentStatus,
        reason: &str,
    ) -> DomainResult<Applied> {
        let (what, applied) = match status {
            PaymentStatus::Failed => (PaymentEventType::Failed, Applied::Failed),
            PaymentStatus::Expired => (PaymentEventType::Expired, Applied::Expired),
            _ => {
                return Err(DomainError::internal(
                    "an unpaid settlement fails or expires",
                ));
            }
        };
        let order = self.order_of(payment).await?;
        let now = self.now();
        tracing::info!(payment_id = %payment.id, status = status.as_str(), reason, "payment settled unpaid");
        let settlement = PaymentSettlement {
            tenant: payment.tenant.clone(),
            id: payment.id,
            status,
            captured: 0,
            provider_txn_id: None,
            reported: None,
            effect: OrderEffect::None,
            paid_at: None,
            at: now,
            transition: None,
            events: vec![OrderEvent::payment(
                &order,
                payment_note(payment, what, None, Some(reason.to_owned())),
                now,
            )],
        };
        Ok(match self.store.settle_payment(settlement).await? {
            SettleOutcome::Settled => applied,
            SettleOutcome::AlreadySettled => Applied::Duplicate,
        })
    }

    async fn settle(
        &self,
        payment: &Payment,
        order: &Order,
        provider_txn_id: &str,
        reported: Money,
        paid_at: OffsetDateTime,
    ) -> DomainResult<Applied> {
        let now = self.now();
        let note = |what: PaymentEventType, reported: Option<Money>, reason: &str| {
            payment_note(payment, what, reported, Some(reason.to_owned()))
        };
        let mut settlement = PaymentSettlement {
            tenant: payment.tenant.clone(),
            id: payment.id,
            status: PaymentStatus::Succeeded,
            captured: reported.minor,
            provider_txn_id: Some(provider_txn_id.to_owned()),
            reported: None,
            effect: OrderEffect::Applied,
            paid_at: Some(paid_at),
            at: now,
            transition: None,
            events: Vec::new(),
        };
        let mut prepared = None;
        let mut part = None;
        let refund_required = |settlement: &mut PaymentSettlement, why: String| {
            settlement.effect = OrderEffect::RefundRequired;
            settlement.reported = Some(reported);
            settlement.events.push(OrderEvent::payment(
                order,
                note(PaymentEventType::RefundRequired, Some(reported), &why),
                now,
            ));
            Applied::RefundRequired
        };
        let applied = if reported != payment.amount {
            tracing::warn!(payment_id = %payment.id, expected = ?payment.amount, ?reported, "provider reported another amount or currency: not applied");
            settlement.status = PaymentStatus::Mismatch;
            settlement.captured = 0;
            settlement.reported = Some(reported);
            settlement.effect = OrderEffect::None;
            settlement.events.push(OrderEvent::payment(
                order,
                note(
                    PaymentEventType::Mismatch,
                    Some(reported),
                    "the provider reported another amount or currency than the payment's",
                ),
                now,
            ));
            Applied::Mismatch
        } else {
            let config = self.config.current();
            let tenant = config.tenant(&payment.tenant).ok_or_else(|| {
                DomainError::unavailable("the payment's tenant is not configured")
            })?;
            let item = PaymentItem {
                payment_id: payment.id.to_string(),
                channel: payment.provider.to_string(),
                amount: reported,
                refunded: Money::zero(reported.currency),
                paid_at,
            };
            // where the order type takes partial payments, the order is paid by the payment
            // that makes its captured payments reach its payable amount; otherwise every
            // payment asks for the whole payable and completes it
            let share = if takes_partial_payments(tenant, order) {
                PaymentShare::of(
                    order.finance.payable.minor,
                    captured_on(order),
                    reported.minor,
                )
            } else {
                PaymentShare::Completes
            };
            let cannot_take_it = || {
                format!(
                    "money captured for an order in status {} that cannot take it",
                    order.main.status
                )
            };
            match share {
                PaymentShare::Completes => {
                    let firing = Firing {
                        event: TransitionEvent::parse(PAY_EVENT)?,
                        reason: Some(format!("payment {} captured", payment.id)),
                        data: BTreeMap::new(),
                        operator: SOURCE_PAYMENTS.to_owned(),
                        source_system: SOURCE_PAYMENTS,
                        payment: Some(item),
                    };
                    match self.transitions.prepare_event(tenant, order, firing) {
                        Ok(p) => {
                            settlement.transition = Some(p.write.clone());
                            prepared = Some(p);
                            Applied::Paid
                        }
                        // the order cannot be paid any more (cancelled, timed out, paid
                        // already): the money is recorded and must go back; the order stays
                        Err(error) if error.code == ErrorCode::InvalidTransition => {
                            refund_required(&mut settlement, cannot_take_it())
                        }
                        Err(error) => return Err(error),
                    }
                }
                // a deposit for an order still waiting for payment: recorded on the order
                // (`finance.payments`) by a change that is no transition, compare-and-set on
                // the order's version like one, so two parts settling at once are serialised
                // and the second sees the first
                PaymentShare::Part if payable_in(tenant, order).is_ok() => {
                    let mut next = order.clone();
                    next.finance.payments.push(item);
                    next.operation.updated_by = Some(SOURCE_PAYMENTS.to_owned());
                    self.transitions
                        .orders
                        .prepare_next_in(tenant, order, &mut next)?;
                    let event = OrderEvent::of(&next, OrderEventKind::Updated);
                    settlement.transition = Some(TransitionWrite {
                        expected_version: order.main.version,
                        order: next.clone(),
                        event,
                        history: None,
                    });
                    part = Some(next);
                    Applied::Part
                }
                PaymentShare::Part => refund_required(&mut settlement, cannot_take_it()),
                PaymentShare::Exceeds => refund_required(
                    &mut settlement,
                    format!(
                        "more than is left to pay on the order ({} of {} minor units captured before)",
                        captured_on(order),
                        order.finance.payable.minor
                    ),
                ),
            }
        };
        match self.store.settle_payment(settlement).await? {
            SettleOutcome::AlreadySettled => Ok(Applied::Duplicate),
            SettleOutcome::Settled => {
                if let Some(next) = part {
                    self.transitions.orders.remember(&next).await;
                }
                if let Some(prepared) = prepared {
                    self.transitions
                        .finish(&prepared.write.order, prepared.stock, &prepared.inventory)
                        .await;
                }
                Ok(applied)
            }
        }
    }
}

/// A payment event's note: the payment, its provider and amount, what the provider
/// reported (if it differs) and why.
fn payment_note(
    payment: &Payment,
    what: PaymentEventType,
    reported: Option<Money>,
    reason: Option<String>,
) -> PaymentNote {
    PaymentNote {
        what,
        payment_id: payment.id,
        provider: payment.provider.clone(),
        amount: payment.amount,
        reported,
        reason,
        refund_id: None,
    }
}

/// Whether the order's type takes partial payments (a deposit, then the balance).
fn takes_partial_payments(tenant: &TenantConfig, order: &Order) -> bool {
    tenant
        .order_type(&order.main.business_identity, &order.main.order_type)
        .is_some_and(|order_type| order_type.partial_payments())
}

/// Minor units the order's payments captured so far (its `finance.payments` in its currency).
fn captured_on(order: &Order) -> i64 {
    order
        .finance
        .payments
        .iter()
        .filter(|item| item.amount.currency == order.finance.payable.currency)
        .map(|item| item.amount.minor)
        .sum()
}

/// Whether `order` can take a payment now: in a status its state machine lets `pay` from.
fn payable_in(tenant: &TenantConfig, order: &Order) -> DomainResult<()> {
    let identity = tenant
        .business_identity(&order.main.business_identity)
        .ok_or_else(|| {
            DomainError::internal("order's business identity is no longer configured")
        })?;
    identity
        .state_machine()
        .next(&order.main.status, &TransitionEvent::parse(PAY_EVENT)?)
        .map(|_| ())
        .map_err(|_| {
            DomainError::new(
                ErrorCode::InvalidTransition,
                format!("an order in status {} takes no payment", order.main.status),
            )
        })
}
