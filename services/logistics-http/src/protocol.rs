//! The generic pickup protocol: JSON over HTTP.
//!
//! | method and path | headers | body | answer |
//! |---|---|---|---|
//! | `POST /v1/pickups` | `Idempotency-Key`, `Authorization: Bearer <token>` | [`PickupRequest`](oc_model::logistics::PickupRequest) | 200 [`WaybillAnswer`] |
//! | `GET /v1/pickups/{idempotency_key}` | `Authorization` | — | 200 [`WaybillAnswer`], 404 none |
//!
//! A booking is idempotent by its key: the carrier answers the waybill it made for the key the
//! first time, whatever the body says now. 5xx and 429 mean "try again" (nothing is known to
//! be made); another 4xx is a refusal (`{"detail": …}`). The key also travels in the body
//! (`idempotency_key`), so a carrier gateway may read either.

use serde::{Deserialize, Serialize};

pub const HEADER_IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The answer to a booking or a read: the waybill made under the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaybillAnswer {
    pub idempotency_key: String,
    pub waybill_no: String,
    pub carrier: String,
}
