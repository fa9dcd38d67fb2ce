//! Payments: the payment records an order's shard keeps, and the ports the payments domain
//! works through — the store of those records ([`PaymentStore`]), the payment channel
//! ([`PaymentProvider`]) and where the tenants' provider secrets come from
//! ([`PaymentSecrets`]).
//!
//! # A payment record and its states
//!
//! A [`Payment`] is one attempt to collect an order's payable amount through one provider.
//! It is created `pending` (with the provider's pay URL / QR payload once the provider
//! answered), and the provider's word — a signed callback, or the answer to an active query —
//! moves it exactly once, by a compare-and-set on `pending`, to `succeeded` (money captured)
//! or `mismatch` (the provider reported another amount or currency than the record asked for:
//! nothing is applied to the order, the reported amount is kept for an operator), or to
//! `failed` (the provider reported it failed) or `expired` (the active query's last query, at
//! the payment's expiry, found it unpaid or could not reach the provider). A report of
//! captured money arriving after `failed` / `expired` still settles it (see
//! [`PaymentStatus::settles_from`]): the money is recorded and pays the order if the order
//! still waits for payment, else it is `refund_required`.
//!
//! What a captured payment did to its order ([`OrderEffect`]) is decided in the same
//! transaction: `applied` when the order's `pay` transition committed with it (the order's
//! compare-and-set, history row and `order.paid` event are written by the same transaction as
//! the payment's), `refund_required` when the order could no longer take it (cancelled by the
//! timeout worker, or paid already): the money is recorded, a `payment.refund_required` event
//! is raised, and the order is left as it is.
//!
//! Payment ids are 64-bit and carry the order's shard bucket (the layout of an [`OrderId`]),
//! so a callback naming one finds the order's shard without a lookup table.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DomainResult;
use crate::event::{OrderEvent, ShardId};
use crate::ids::{OrderId, TenantId};
use crate::lifecycle::TransitionWrite;
use crate::money::Money;

pub use crate::payment_ids::{PaymentId, ProviderName, RefundId};
use crate::wire::wire_enum;

wire_enum!(
    /// Where a payment stands with its provider.
    PaymentStatus {
        /// Created; the provider has not reported money yet.
        Pending => "pending",
        /// The provider captured the money (`captured`).
        Succeeded => "succeeded",
        /// The provider reported an amount or currency other than the record's: nothing was
        /// applied to the order; the reported amount is kept for an operator.
        Mismatch => "mismatch",
        /// The provider reported it failed (or closed it unpaid); nothing was applied.
        Failed => "failed",
        /// It passed its expiry unpaid (the active query's last query found it not paid, or
        /// could not reach the provider); nothing was applied.
        Expired => "expired",
    }
);

impl PaymentStatus {
    /// The statuses a settlement into `self` moves a payment from (its compare-and-set).
    ///
    /// Captured money (`succeeded`, `mismatch`) settles a payment that is `pending`, and also
    /// one we gave up on (`failed`, `expired`): the provider's word that money moved wins
    /// over our inference that it would not, and the money must be recorded either way (it
    /// pays the order if it still waits for payment, else it is `refund_required`). A
    /// failure or an expiry only settles a `pending` payment: it never undoes captured money.
    pub fn settles_from(self) -> &'static [PaymentStatus] {
        match self {
            PaymentStatus::Succeeded | PaymentStatus::Mismatch => &[
                PaymentStatus::Pending,
                PaymentStatus::Failed,
                PaymentStatus::Expired,
            ],
            PaymentStatus::Failed | PaymentStatus::Expired => &[PaymentStatus::Pending],
            PaymentStatus::Pending => &[],
        }
    }

    /// Whether a report of captured money still settles a payment in this status.
    pub fn takes_capture(self) -> bool {
        PaymentStatus::Succeeded.settles_from().contains(&self)
    }
}

wire_enum!(
    /// What a captured payment did to its order.
    OrderEffect {
        /// Nothing (nothing captured, or a mismatch).
        None => "none",
        /// The order's `pay` transition committed with the payment.
        Applied => "applied",
        /// The order could not take it (cancelled, or already paid): the money must be
        /// refunded; the order is left as it is.
        RefundRequired => "refund_required",
    }
);

/// What the provider answered to a create: how the buyer pays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The provider's transaction id, when it assigns one at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_txn_id: Option<String>,
    /// A URL the buyer opens to pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_url: Option<String>,
    /// The text a QR code encodes for the buyer's wallet app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_payload: Option<String>,
}

impl Checkout {
    /// Whether the provider has not answered yet (nothing for the buyer to pay with).
    pub fn is_empty(&self) -> bool {
        self.pay_url.is_none() && self.qr_payload.is_none()
    }
}

/// A payment record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub tenant: TenantId,
    pub id: PaymentId,
    pub order_id: OrderId,
    pub provider: ProviderName,
    /// What the record asks for (the order's payable amount).
    pub amount: Money,
    pub status: PaymentStatus,
    pub checkout: Checkout,
    /// Minor units the provider captured (0 until `succeeded`).
    pub captured: i64,
    /// What the provider reported when it did not match (`mismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<Money>,
    pub effect: OrderEffect,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// After this the provider takes no money for it; the active query stops.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
    /// When the active query asks the provider next (`None`: no more queries).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_query_at: Option<OffsetDateTime>,
    pub query_attempts: u32,
}

wire_enum!(
    /// Where a refund stands.
    RefundStatus {
        /// Written, its amount reserved on the payment; the provider has not answered.
        Requested => "requested",
        /// Money returned.
        Succeeded => "succeeded",
        /// The provider refused it; its reservation went back to the payment.
        Failed => "failed",
    }
);

/// A refund of (part of) a captured payment. Its amount is reserved on the payment
/// (`refunded`) in the transaction that writes it, by an update that only matches while
/// `refunded + amount <= captured`, and the table carries the same rule as a `CHECK`: however
/// many refunds run at once, their sum never exceeds what was captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub tenant: TenantId,
    pub id: RefundId,
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    /// The caller's id of this refund (an after-sale id): a retry with it is the same refund.
    pub refund_key: String,
    pub amount: Money,
    pub status: RefundStatus,
    /// Why the caller refunds (shown to operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Submissions to the provider it accepted (attempt `n` is the `n`-th).
    pub attempts: u32,
    /// Attempts the provider reported failed. While `failures == attempts` no attempt is
    /// live at the provider and the next step is a submission; otherwise it is a query.
    pub failures: u32,
    /// The provider's last failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// When the worker submits or queries it next (`None`: settled).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_query_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Refund {
    /// Whether an attempt is at the provider now (submitted and not reported failed).
    pub fn live_attempt(&self) -> Option<u32> {
        (self.status == RefundStatus::Requested && self.attempts > self.failures)
            .then_some(self.attempts)
    }
}

/// The provider's word on a `requested` refund, written by a compare-and-set on `requested`
/// with its outbox events (`payment.refunded`, `payment.refund_failed`); a `failed` one gives
/// its reservation back to the payment in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundSettlement {
    pub tenant: TenantId,
    pub id: RefundId,
    pub status: RefundStatus,
    /// Why it failed (`failed`).
    pub failure: Option<String>,
    /// The attempt the settling report is about: the refund's `attempts` are raised to it.
    /// A provider's callback can arrive before the submitter has recorded the attempt it
    /// answers, and the settled refund must still say how many attempts were made.
    pub attempt: u32,
    pub at: OffsetDateTime,
    pub events: Vec<OrderEvent>,
}

/// What a refund request did.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundInsert {
    Created(Refund),
    /// The refund key was used before on this payment: that refund (whatever its amount).
    Replayed(Refund),
    /// Refused, nothing written: more than is left to refund (`refundable` minor units), or
    /// the payment captured nothing.
    Exceeds {
        refundable: i64,
    },
}

/// An idempotency claim on a payment create: the key (scoped to tenant and order) and the
/// hash of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIdempotency {
    pub key: String,
    pub request_hash: String,
}

/// A payment create: the record, its idempotency claim and its outbox event
/// (`payment.created`), one transaction on the order's shard.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPayment {
    pub payment: Payment,
    pub idempotency: Option<PaymentIdempotency>,
    pub event: OrderEvent,
}

/// What a payment create did.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentInsert {
    Created(Payment),
    /// The idempotency key was used with the same request: the first payment.
    Replayed(Payment),
}

/// The provider's word on a pending payment, written by a compare-and-set on `pending` in one
/// transaction with the order's transition (when the payment is applied to the order) and
/// the outbox events.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentSettlement {
    pub tenant: TenantId,
    pub id: PaymentId,
    pub status: PaymentStatus,
    /// Minor units captured (0 for a mismatch).
    pub captured: i64,
    pub provider_txn_id: Option<String>,
    pub reported: Option<Money>,
    pub effect: OrderEffect,
    pub paid_at: Option<OffsetDateTime>,
    pub at: OffsetDateTime,
    /// The order's `pay` transition, committed with the payment or not at all.
    pub transition: Option<TransitionWrite>,
    /// Payment events (`payment.mismatch`, `payment.refund_required`).
    pub events: Vec<OrderEvent>,
}

/// What a settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Written, with the transition and events.
    Settled,
    /// The payment was no longer pending (settled by a duplicate before): nothing written.
    AlreadySettled,
}

/// The payments domain's records, in the order's shard. Every method is scoped by tenant;
/// another tenant's record is `None`.
#[async_trait]
pub trait PaymentStore: Send + Sync + fmt::Debug + 'static {
    /// Write a new payment with its event (and idempotency claim): one transaction. A reused
    /// key with another request hash is `Conflict`.
    async fn insert_payment(&self, new: NewPayment) -> DomainResult<PaymentInsert>;

    /// Record the provider's answer to the create (kept only while the payment is pending
    /// and has none yet).
    async fn set_checkout(
        &self,
        tenant: &TenantId,
        id: PaymentId,
        checkout: &Checkout,
        at: OffsetDateTime,
    ) -> DomainResult<()>;

    async fn get_payment(&self, tenant: &TenantId, id: PaymentId) -> DomainResult<Option<Payment>>;

    /// The payments of an order, oldest first.
    async fn payments_of_order(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Vec<Payment>>;

    /// Settle a pending payment (see [`PaymentSettlement`]): the payment's compare-and-set on
    /// `pending` first (concurrent duplicates queue on its row), then the order's transition
    /// (a stale order version is `PreconditionFailed` and nothing is written), then the events.
    async fn settle_payment(&self, settlement: PaymentSettlement) -> DomainResult<SettleOutcome>;

    /// Pending payments of one shard whose next query is due at `now`, soonest first.
    async fn payments_due(
        &self,
        shard: ShardId,
        now: OffsetDateTime,
        limit: u32,
    ) -> DomainResult<Vec<Payment>>;

    /// Claim the next query of a payment: moves `next_query_at` from `seen` to `next` (`None`:
    /// no more queries) and counts the attempt, only if no one moved it since (several
    /// workers may see the same due payment; one asks the provider).
    async fn claim_payment_query(
        &self,
        tenant: &TenantId,
        id: PaymentId,
        seen: OffsetDateTime,
        next: Option<OffsetDateTime>,
    ) -> DomainResult<bool>;

    /// The physical shards (the query worker walks each).
    fn payment_shards(&self) -> Vec<ShardId>;

    /// Write a `requested` refund and reserve its amount on its (succeeded) payment, with its
    /// outbox events, all or nothing (see [`Refund`]); idempotent by (payment, refund key).
    async fn insert_refund(
        &self,
        refund: Refund,
        events: Vec<OrderEvent>,
    ) -> DomainResult<RefundInsert>;

    /// Settle a `requested` refund as `succeeded` or `failed` (see [`RefundSettlement`]);
    /// `false` when it was no longer requested (nothing written).
    async fn settle_refund(&self, settlement: RefundSettlement) -> DomainResult<bool>;

    async fn get_refund(&self, tenant: &TenantId, id: RefundId) -> DomainResult<Option<Refund>>;

    /// The refunds of a payment, oldest first.
    async fn refunds_of_payment(
        &self,
        tenant: &TenantId,
        payment_id: PaymentId,
    ) -> DomainResult<Vec<Refund>>;

    /// A tenant's refunds in `status` on one shard, newest first (the manual-handling list
    /// is the `failed` ones of every shard).
    async fn refunds_with_status(
        &self,
        shard: ShardId,
        tenant: &TenantId,
        status: RefundStatus,
        limit: u32,
    ) -> DomainResult<Vec<Refund>>;

    /// Requested refunds of one shard whose next step (submit or query) is due at `now`.
    async fn refunds_due(
        &self,
        shard: ShardId,
        now: OffsetDateTime,
        limit: u32,
    ) -> DomainResult<Vec<Refund>>;

    /// Claim the next step of a refund: `next_query_at` from `seen` to `next`, only if no
    /// one moved it since (as [`Self::claim_payment_query`]).
    async fn claim_refund_step(
        &self,
        tenant: &TenantId,
        id: RefundId,
        seen: OffsetDateTime,
        next: OffsetDateTime,
    ) -> DomainResult<bool>;

    /// Record that the provider accepted submission `attempt` (`attempts` from `attempt - 1`
    /// to `attempt`, while no attempt is live); `false` when someone recorded it first.
    async fn record_refund_attempt(
        &self,
        tenant: &TenantId,
        id: RefundId,
        attempt: u32,
        at: OffsetDateTime,
    ) -> DomainResult<bool>;

    /// Record that the provider reported the live attempt `attempt` failed (`failures` to
    /// `attempt`) and when to submit the next; `false` when it was not the live attempt (a
    /// duplicate or stale report: nothing written).
    async fn record_refund_failure(
        &self,
        tenant: &TenantId,
        id: RefundId,
        attempt: u32,
        failure: &str,
        next: OffsetDateTime,
        at: OffsetDateTime,
    ) -> DomainResult<bool>;

    /// Minor units reserved by refunds that did not fail, on a payment.
    async fn refunded(&self, tenant: &TenantId, id: PaymentId) -> DomainResult<Option<i64>>;
}

/// A tenant's account with a provider: the account name the provider knows it by and the
/// shared secret requests and callbacks are signed with. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderCredentials {
    pub account: String,
    secret: Vec<u8>,
}

impl ProviderCredentials {
    pub fn new(account: impl Into<String>, secret: Vec<u8>) -> ProviderCredentials {
        ProviderCredentials {
            account: account.into(),
            secret,
        }
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for ProviderCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderCredentials")
            .field("account", &self.account)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Where the tenants' provider secrets come from (a secrets file, a key ring): never the
/// tenant YAML, which is readable by operators and kept in version control.
pub trait PaymentSecrets: Send + Sync + fmt::Debug + 'static {
    /// The tenant's credentials with `provider`, if it has an account there.
    fn credentials(
        &self,
        tenant: &TenantId,
        provider: &ProviderName,
    ) -> Option<ProviderCredentials>;

    /// The tenant whose account with `provider` is `account` (a callback names the account
    /// it is for; its signature is then checked with that tenant's secret).
    fn tenant_of_account(&self, provider: &ProviderName, account: &str) -> Option<TenantId>;
}

/// A payment as the provider is asked to create it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderPaymentRequest {
    pub payment_id: PaymentId,
    pub amount: Money,
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Where the provider sends its callbacks.
    pub notify_url: String,
}

/// A payment as the provider reports it (in a callback or a query answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderPaymentState {
    /// Not paid yet.
    Pending,
    /// Paid: the amount the provider captured, in its currency.
    Succeeded {
        provider_txn_id: String,
        amount: Money,
        paid_at: OffsetDateTime,
    },
    /// Failed, or closed unpaid at the provider.
    Failed { reason: String },
    /// The provider does not know this payment.
    Unknown,
}

/// A refund as the provider is asked to make it: attempt `attempt` of our refund (a retry
/// after a reported failure is the next attempt; a repeat of one attempt is idempotent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRefundRequest {
    pub refund_id: RefundId,
    pub payment_id: PaymentId,
    pub attempt: u32,
    pub amount: Money,
    /// Where the provider sends the refund's callbacks.
    pub notify_url: String,
}

/// Where a refund stands at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderRefundStatus {
    /// Accepted, not done yet.
    Pending,
    Succeeded,
    Failed,
    /// The provider does not know this refund (or attempt).
    Unknown,
}

/// A refund as the provider reports it (the answer to a submission or a query, a callback):
/// about which attempt, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefundReport {
    pub refund_id: RefundId,
    pub attempt: u32,
    pub status: ProviderRefundStatus,
    /// Why it failed (`failed`).
    pub reason: Option<String>,
}

/// A verified callback about one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderNotification {
    pub payment_id: PaymentId,
    pub state: ProviderPaymentState,
}

/// A received callback before verification: the raw body (the signature covers its exact
/// bytes) and the headers by lowercase name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCallback {
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Why a callback was refused. Nothing is changed by a refused callback.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefusal {
    /// No, or a malformed, signature, timestamp or account.
    #[error("callback is not signed: {0}")]
    Unsigned(String),
    /// The signature does not verify with the account's secret (or the account is unknown).
    #[error("callback signature does not verify")]
    BadSignature,
    /// The signed timestamp is outside the accepted window (a replay, or a skewed clock).
    #[error("callback timestamp is {skew_seconds} s away from now, outside the window")]
    Stale { skew_seconds: i64 },
    /// Signed, but not a callback this protocol knows.
    #[error("callback body is malformed: {0}")]
    Malformed(String),
}

/// A payment channel (one adapter per external system; the composition root wires them by
/// name). Every call carries the tenant's credentials; adapters sign and verify with them.
///
/// Contract: `create` is idempotent by our payment id (a retry of an uncertain call is
/// safe); answers and callbacks are authenticated by the adapter before they are returned;
/// an unreachable or failing provider is `Unavailable`.
#[async_trait]
pub trait PaymentProvider: Send + Sync + fmt::Debug + 'static {
    fn name(&self) -> &ProviderName;

    async fn create(
        &self,
        credentials: &ProviderCredentials,
        request: &ProviderPaymentRequest,
    ) -> DomainResult<Checkout>;

    async fn query(
        &self,
        credentials: &ProviderCredentials,
        payment_id: PaymentId,
    ) -> DomainResult<ProviderPaymentState>;

    /// The account a callback claims to come for (unverified: it only selects the secret
    /// to verify with).
    fn callback_account(&self, callback: &RawCallback) -> Option<String>;

    /// Verify a callback with the account's credentials and decode it: a signed timestamp
    /// further than `window` from `now` (either way) is [`CallbackRefusal::Stale`]; the
    /// signature is compared in constant time.
    fn verify_callback(
        &self,
        credentials: &ProviderCredentials,
        callback: &RawCallback,
        now: OffsetDateTime,
        window: time::Duration,
    ) -> Result<ProviderNotification, CallbackRefusal>;

    /// Submit attempt `request.attempt` of a refund. Idempotent by (refund id, attempt); the
    /// result usually comes later (a refund callback, or [`Self::refund_query`]).
    async fn refund(
        &self,
        credentials: &ProviderCredentials,
        request: &ProviderRefundRequest,
    ) -> DomainResult<ProviderRefundReport>;

    /// The refund's latest attempt as the provider holds it.
    async fn refund_query(
        &self,
        credentials: &ProviderCredentials,
        refund_id: RefundId,
    ) -> DomainResult<ProviderRefundReport>;

    /// Verify a refund callback as [`Self::verify_callback`] does a payment's.
    fn verify_refund_callback(
        &self,
        credentials: &ProviderCredentials,
        callback: &RawCallback,
        now: OffsetDateTime,
        window: time::Duration,
    ) -> Result<ProviderRefundReport, CallbackRefusal>;
}

/// What a new payment of an order asks for (issue #15 item 1), in minor units of the order's
/// currency: `captured` is what the order's payments captured so far (its
/// `finance.payments`), so what is left to pay is `payable - captured`.
///
/// Without a `requested` amount: everything left. With one: an order type that takes partial
/// payments (`partial_payments` in the tenant config, e.g. a pre-sale's deposit) takes any
/// amount from one minor unit up to what is left; any other order type takes only everything
/// left. A refusal names the field (`/amount/currency`, `/amount/minor`, `/amount`).
pub fn payment_amount(
    payable: Money,
    captured: i64,
    requested: Option<Money>,
    partial_payments: bool,
) -> DomainResult<Money> {
    let left = payable.minor.checked_sub(captured).unwrap_or(0);
    if left <= 0 {
        return Err(crate::DomainError::invalid(
            "/amount",
            "nothing is left to pay on this order",
        ));
    }
    let left = Money::new(left, payable.currency);
    let Some(requested) = requested else {
        return Ok(left);
    };
    if requested.currency != payable.currency {
        return Err(crate::DomainError::invalid(
            "/amount/currency",
            format!("the order is paid in {}", payable.currency.code()),
        ));
    }
    if !partial_payments {
        return if requested.minor == left.minor {
            Ok(left)
        } else {
            Err(crate::DomainError::invalid(
                "/amount/minor",
                format!(
                    "this order type takes no partial payments: the amount is what is left to pay, {} minor units",
                    left.minor
                ),
            ))
        };
    }
    if requested.minor < 1 || requested.minor > left.minor {
        return Err(crate::DomainError::invalid(
            "/amount/minor",
            format!(
                "a payment of this order is between 1 and {} minor units (what is left to pay)",
                left.minor
            ),
        ));
    }
    Ok(requested)
}

/// What captured money does to its order, given what the order's payments captured before it
/// (see [`payment_amount`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentShare {
    /// Less than what is left to pay (a deposit): recorded on the order, which still waits.
    Part,
    /// Exactly what is left: the order is paid (its `pay` transition fires).
    Completes,
    /// More than what is left (another payment got there first): the money must be refunded.
    Exceeds,
}

impl PaymentShare {
    pub fn of(payable: i64, captured_before: i64, reported: i64) -> PaymentShare {
        match captured_before.saturating_add(reported).cmp(&payable) {
            std::cmp::Ordering::Less => PaymentShare::Part,
            std::cmp::Ordering::Equal => PaymentShare::Completes,
            std::cmp::Ordering::Greater => PaymentShare::Exceeds,
        }
    }
}

#[allow(dead_code)]
fn _object_safety(_: &dyn PaymentStore, _: &dyn PaymentProvider, _: &dyn PaymentSecrets) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Bucket, OrderIdGenerator};

    #[test]
    fn payment_ids_carry_the_order_bucket_and_round_trip() {
        let generator = OrderIdGenerator::new(1).unwrap();
        let bucket = Bucket::new(613).unwrap();
        let payment = PaymentId::generated(generator.next(bucket, 1_790_000_000_000));
        assert_eq!(payment.bucket(), bucket);
        assert_eq!(payment.to_string().parse::<PaymentId>().unwrap(), payment);
        let json = serde_json::to_string(&payment).unwrap();
        assert_eq!(json, format!("\"{payment}\""));
        assert!("abc".parse::<PaymentId>().is_err());
        assert!(PaymentId::from_raw(0).is_err());
    }

    #[test]
    fn names_and_states_parse_what_they_print() {
        assert!(ProviderName::parse("sandbox").is_ok());
        for bad in ["", "Sandbox", "-x", &"x".repeat(33)] {
            assert!(ProviderName::parse(bad).is_err(), "{bad:?}");
        }
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(*status));
        }
        for effect in OrderEffect::ALL {
            assert_eq!(OrderEffect::parse(effect.as_str()), Some(*effect));
        }
    }

    mod amounts {
        use super::super::*;
        use crate::money::Currency;
        use proptest::prelude::*;

        fn cny(minor: i64) -> Money {
            Money::new(minor, Currency::parse("CNY").unwrap())
        }

        proptest! {
            /// Payments asked for by the rule (each any allowed amount, or everything left),
            /// captured one after the other, pay the order exactly: every share but the last
            /// is a part, the last completes it, and together they are the payable amount.
            #[test]
            fn partial_payments_taken_by_the_rule_pay_the_order_exactly(
                payable in 1i64..10_000_000,
                picks in proptest::collection::vec((any::<bool>(), 1i64..10_000_000), 0..12),
            ) {
                let mut captured = 0i64;
                let mut shares = Vec::new();
                for (whole, pick) in picks.iter().copied().chain(std::iter::once((true, 0))) {
                    let left = payable - captured;
                    let requested = (!whole).then(|| cny(1 + pick % left));
                    let amount = payment_amount(cny(payable), captured, requested, true).unwrap();
                    prop_assert!(amount.minor >= 1 && amount.minor <= left);
                    shares.push(PaymentShare::of(payable, captured, amount.minor));
                    captured += amount.minor;
                    if captured == payable {
                        break;
                    }
                }
                prop_assert_eq!(captured, payable);
                prop_assert_eq!(shares.last(), Some(&PaymentShare::Completes));
                prop_assert!(shares[..shares.len() - 1].iter().all(|s| *s == PaymentShare::Part));
                // the order is paid: nothing more can be asked, and more money exceeds it
                prop_assert!(payment_amount(cny(payable), captured, None, true).is_err());
                prop_assert_eq!(PaymentShare::of(payable, captured, 1), PaymentShare::Exceeds);
            }

            /// Outside what is left, in another currency, or partial where the order type
            /// takes none: refused, naming the field.
            #[test]
            fn amounts_outside_the_rule_are_refused_at_their_field(
                payable in 2i64..10_000_000,
                captured_part in 0i64..10_000_000,
                raw in -10i64..20_000_000,
                edge in 0u8..3,
                offset in -2i64..=2,
            ) {
                let captured = captured_part % payable;
                let left = payable - captured;
                // two cases in three at the edges: 1 and what is left, give or take two
                let requested = match edge {
                    0 => raw,
                    1 => left + offset,
                    _ => 1 + offset,
                };
                let answer = payment_amount(cny(payable), captured, Some(cny(requested)), true);
                if (1..=left).contains(&requested) {
                    prop_assert_eq!(answer.unwrap(), cny(requested));
                } else {
                    prop_assert_eq!(answer.unwrap_err().field, Some("/amount/minor".to_owned()));
                }
                let whole_only = payment_amount(cny(payable), captured, Some(cny(requested)), false);
                if requested == left {
                    prop_assert_eq!(whole_only.unwrap(), cny(left));
                } else {
                    prop_assert_eq!(whole_only.unwrap_err().field, Some("/amount/minor".to_owned()));
                }
                let usd = Money::new(left, Currency::parse("USD").unwrap());
                let other = payment_amount(cny(payable), captured, Some(usd), true);
                prop_assert_eq!(other.unwrap_err().field, Some("/amount/currency".to_owned()));
                prop_assert_eq!(payment_amount(cny(payable), captured, None, false).unwrap(), cny(left));
            }
        }
    }

    #[test]
    fn credentials_never_print_their_secret() {
        let credentials = ProviderCredentials::new("retail", b"s3cret-bytes".to_vec());
        let printed = format!("{credentials:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("retail"));
    }
}
