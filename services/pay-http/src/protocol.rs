//! The generic provider protocol: JSON over HTTP, every message (request, answer, callback)
//! signed by its sender with the account's shared secret.
//!
//! # Signing
//!
//! Three headers on every message:
//! - `oc-pay-account`: the account (the tenant as the provider knows it);
//! - `oc-pay-timestamp`: the signing time, Unix seconds;
//! - `oc-pay-signature`: `v1=` and the lowercase hex HMAC-SHA256, keyed with the account's
//!   secret, of the timestamp, a `.`, and the raw body bytes exactly as sent.
//!
//! A receiver recomputes the HMAC over the bytes it received, compares in constant time, and
//! refuses a timestamp further than its window from its clock (a replayed old message).
//!
//! # Messages
//!
//! | direction | method and path | body | answer |
//! |---|---|---|---|
//! | merchant → provider | `POST /v1/payments/create` | [`CreateBody`] | [`CreateAnswer`] |
//! | merchant → provider | `POST /v1/payments/query` | [`QueryBody`] | [`PaymentReport`] |
//! | provider → merchant | `POST {notify_url}` (callback) | [`PaymentReport`] | any 2xx |
//! | merchant → provider | `POST /v1/refunds/create` | [`RefundBody`] | [`RefundReport`] |
//! | merchant → provider | `POST /v1/refunds/query` | [`RefundQueryBody`] | [`RefundReport`] |
//! | provider → merchant | `POST {notify_url}` (refund callback) | [`RefundReport`] | any 2xx |
//!
//! `create` is idempotent by `payment_id`; a refund by (`refund_id`, `attempt`): the same
//! attempt again answers where it stands, the next attempt after a `failed` one tries again.
//! A provider retries a callback until it gets a 2xx.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use oc_model::payment::{
    CallbackRefusal, ProviderPaymentRequest, ProviderPaymentState, ProviderRefundReport,
    ProviderRefundRequest, ProviderRefundStatus,
};
use oc_model::{Money, PaymentId, RefundId};

pub const HEADER_ACCOUNT: &str = "oc-pay-account";
pub const HEADER_TIMESTAMP: &str = "oc-pay-timestamp";
pub const HEADER_SIGNATURE: &str = "oc-pay-signature";

/// `POST /v1/payments/create`: the port's request as it is, on the wire.
pub type CreateBody = ProviderPaymentRequest;

/// The answer to a create: how the buyer pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAnswer {
    pub provider_txn_id: String,
    pub pay_url: String,
    pub qr_payload: String,
}

/// `POST /v1/payments/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryBody {
    pub payment_id: PaymentId,
}

/// A payment's state at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    Pending,
    Succeeded,
    Failed,
    Unknown,
}

/// A payment as the provider reports it: the answer to a query, and a callback's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReport {
    pub account: String,
    pub payment_id: PaymentId,
    pub status: ReportStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_txn_id: Option<String>,
    /// What was captured (`succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub paid_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PaymentReport {
    /// The report as the port's state; a `succeeded` without its amount is malformed.
    pub fn state(&self) -> Result<ProviderPaymentState, String> {
        Ok(match self.status {
            ReportStatus::Pending => ProviderPaymentState::Pending,
            ReportStatus::Unknown => ProviderPaymentState::Unknown,
            ReportStatus::Failed => ProviderPaymentState::Failed {
                reason: self.reason.clone().unwrap_or_default(),
            },
            ReportStatus::Succeeded => ProviderPaymentState::Succeeded {
                provider_txn_id: self
                    .provider_txn_id
                    .clone()
                    .ok_or("succeeded without provider_txn_id")?,
                amount: self.amount.ok_or("succeeded without amount")?,
                paid_at: self.paid_at.ok_or("succeeded without paid_at")?,
            },
        })
    }
}

/// `POST /v1/refunds/create`: attempt `attempt` of a refund — the port's request as it is, on
/// the wire.
pub type RefundBody = ProviderRefundRequest;

/// `POST /v1/refunds/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundQueryBody {
    pub refund_id: RefundId,
}

/// A refund's latest attempt as the provider reports it: the answer to a refund create or
/// query, and a refund callback's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundReport {
    pub account: String,
    pub refund_id: RefundId,
    pub payment_id: PaymentId,
    pub attempt: u32,
    pub status: ProviderRefundStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RefundReport {
    pub fn report(&self) -> ProviderRefundReport {
        ProviderRefundReport {
            refund_id: self.refund_id,
            attempt: self.attempt,
            status: self.status,
            reason: self.reason.clone(),
        }
    }
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The three signing headers of a message with `body`, signed at `timestamp` (Unix seconds).
pub fn sign(
    account: &str,
    secret: &[u8],
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let signature = hex(&mac(secret, timestamp, body).finalize().into_bytes());
    [
        (HEADER_ACCOUNT, account.to_owned()),
        (HEADER_TIMESTAMP, timestamp.to_string()),
        (HEADER_SIGNATURE, format!("v1={signature}")),
    ]
}

/// The account a message names (unverified).
pub fn account_of(headers: &BTreeMap<String, String>) -> Option<String> {
    headers
        .get(HEADER_ACCOUNT)
        .filter(|account| !account.is_empty())
        .cloned()
}

/// Verify a message's signature over its raw `body` with `secret`, and its timestamp against
/// `now` and `window`. The signature is compared in constant time, and before the timestamp
/// is judged: only a correctly signed message is ever refused for its age.
pub fn verify(
    headers: &BTreeMap<String, String>,
    body: &[u8],
    secret: &[u8],
    now: OffsetDateTime,
    window: time::Duration,
) -> Result<(), CallbackRefusal> {
    let timestamp: i64 = headers
        .get(HEADER_TIMESTAMP)
        .ok_or_else(|| CallbackRefusal::Unsigned(format!("no {HEADER_TIMESTAMP} header")))?
        .trim()
        .parse()
        .map_err(|_| {
            CallbackRefusal::Unsigned(format!("{HEADER_TIMESTAMP} is not Unix seconds"))
        })?;
    let given = headers
        .get(HEADER_SIGNATURE)
        .and_then(|value| value.trim().strip_prefix("v1="))
        .and_then(unhex)
        .ok_or_else(|| {
            CallbackRefusal::Unsigned(format!("no {HEADER_SIGNATURE}: v1=<hex> header"))
        })?;
    let expected = mac(secret, timestamp, body).finalize().into_bytes();
    if !bool::from(expected.as_slice().ct_eq(given.as_slice())) {
        return Err(CallbackRefusal::BadSignature);
    }
    let skew = now.unix_timestamp() - timestamp;
    if skew.abs() > window.whole_seconds() {
        return Err(CallbackRefusal::Stale { skew_seconds: skew });
    }
    Ok(())
}

/// Headers by lowercase name, as [`verify`] reads them.
pub fn header_map(headers: &hyper::HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                name.as_str().to_ascii_lowercase(),
                value.to_str().ok()?.to_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(signed: [(&'static str, String); 3]) -> BTreeMap<String, String> {
        signed
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    #[test]
    fn a_signed_message_verifies_and_any_change_is_refused() {
        let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let window = time::Duration::minutes(5);
        let body = br#"{"x":1}"#;
        let signed = headers(sign("retail", b"secret", now.unix_timestamp(), body));
        assert_eq!(verify(&signed, body, b"secret", now, window), Ok(()));
        assert_eq!(
            verify(&signed, br#"{"x":2}"#, b"secret", now, window),
            Err(CallbackRefusal::BadSignature)
        );
        assert_eq!(
            verify(&signed, body, b"other", now, window),
            Err(CallbackRefusal::BadSignature)
        );
        let mut retimed = signed.clone();
        retimed.insert(
            HEADER_TIMESTAMP.into(),
            (now.unix_timestamp() + 1).to_string(),
        );
        assert_eq!(
            verify(&retimed, body, b"secret", now, window),
            Err(CallbackRefusal::BadSignature)
        );
        let old = headers(sign("retail", b"secret", now.unix_timestamp() - 301, body));
        assert_eq!(
            verify(&old, body, b"secret", now, window),
            Err(CallbackRefusal::Stale { skew_seconds: 301 })
        );
        let mut unsigned = signed;
        unsigned.remove(HEADER_SIGNATURE);
        assert!(matches!(
            verify(&unsigned, body, b"secret", now, window),
            Err(CallbackRefusal::Unsigned(_))
        ));
    }

    proptest::proptest! {
        /// Whatever the body, a signature verifies over exactly those bytes: flipping any
        /// bit of any byte is refused as a bad signature (not as anything weaker).
        #[test]
        fn any_changed_byte_is_refused(
            body in proptest::collection::vec(proptest::num::u8::ANY, 1..256),
            index in 0usize..256,
            bit in 0u8..8,
        ) {
            let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
            let window = time::Duration::minutes(5);
            let signed = headers(sign("retail", b"secret", now.unix_timestamp(), &body));
            proptest::prop_assert_eq!(verify(&signed, &body, b"secret", now, window), Ok(()));
            let mut changed = body.clone();
            let index = index % changed.len();
            changed[index] ^= 1 << bit;
            proptest::prop_assert_eq!(
                verify(&signed, &changed, b"secret", now, window),
                Err(CallbackRefusal::BadSignature)
            );
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_odd_or_foreign_text() {
        assert_eq!(unhex(&hex(&[0, 15, 255])), Some(vec![0, 15, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
