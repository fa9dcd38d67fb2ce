//! What the payment use cases answer.

use serde::Serialize;
use time::OffsetDateTime;

use oc_model::{Money, Payment};

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
