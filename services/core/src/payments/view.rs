//! What the payment use cases answer.

use serde::Serialize;
use time::OffsetDateTime;

use oc_model::{Money, Payment, Refund};

/// A payment as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentView {
    pub id: String,
    pub order_id: String,
    pub provider: String,
    /// What the payment asks for (the order's payable amount), in minor units.
    pub amount: Money,
    /// `pending`, `succeeded` or `mismatch`.
    pub status: String,
    /// What it did to the order: `none`, `applied` or `refund_required`.
    pub effect: String,
    /// Minor units the provider captured.
    pub captured: i64,
    /// What the provider reported when it did not match, or captured for an order that
    /// could not take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported: Option<Money>,
    /// A URL the buyer opens to pay (absent until the provider answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay_url: Option<String>,
    /// The text a QR code encodes for the buyer's wallet app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_txn_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub paid_at: Option<OffsetDateTime>,
}

impl From<&Payment> for PaymentView {
    fn from(payment: &Payment) -> PaymentView {
        PaymentView {
            id: payment.id.to_string(),
            order_id: payment.order_id.to_string(),
            provider: payment.provider.to_string(),
            amount: payment.amount,
            status: payment.status.as_str().to_owned(),
            effect: payment.effect.as_str().to_owned(),
            captured: payment.captured,
            reported: payment.reported,
            pay_url: payment.checkout.pay_url.clone(),
            qr_payload: payment.checkout.qr_payload.clone(),
            provider_txn_id: payment.checkout.provider_txn_id.clone(),
            created_at: payment.created_at,
            expires_at: payment.expires_at,
            paid_at: payment.paid_at,
        }
    }
}

/// A created (or replayed) payment.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentCreated {
    pub view: PaymentView,
    /// The Idempotency-Key was seen with the same request: the first payment.
    pub replayed: bool,
}

/// An order's payments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentList {
    pub order_id: String,
    /// Oldest first.
    pub items: Vec<PaymentView>,
}

/// A refund as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundView {
    pub id: String,
    pub payment_id: String,
    pub order_id: String,
    /// The caller's id of the refund (an after-sale id).
    pub refund_key: String,
    pub amount: Money,
    /// `requested`, `succeeded` or `failed` (every attempt failed: the amount went back to
    /// the payment; manual handling).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Attempts submitted to the provider.
    pub attempts: u32,
    /// The provider's last failure reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Refund> for RefundView {
    fn from(refund: &Refund) -> RefundView {
        RefundView {
            id: refund.id.to_string(),
            payment_id: refund.payment_id.to_string(),
            order_id: refund.order_id.to_string(),
            refund_key: refund.refund_key.clone(),
            amount: refund.amount,
            status: refund.status.as_str().to_owned(),
            reason: refund.reason.clone(),
            attempts: refund.attempts,
            failure: refund.failure.clone(),
            created_at: refund.created_at,
            updated_at: refund.updated_at,
        }
    }
}

/// A requested (or replayed) refund.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundCreated {
    pub view: RefundView,
    /// The refund key was used before with the same amount: that refund.
    pub replayed: bool,
}

/// Refunds (of a payment oldest first; the manual-handling list newest first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefundList {
    pub items: Vec<RefundView>,
}
