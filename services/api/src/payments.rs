//! Payment handlers: the order's payments (authenticated like every order route) and the
//! providers' callbacks (authenticated by their signature instead: a provider holds no API
//! key, so the callback route is outside the API-key middleware).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use oc_core::payments::{CallbackError, CreatePaymentRequest, PaymentService};
use oc_model::payment::RawCallback;
use oc_model::{DomainError, ErrorCode};

use crate::AppState;
use crate::access::{Authenticated, Endpoint};
use crate::extract::ValidJson;
use crate::problem::{ApiError, ApiResult};
use crate::routes::idempotency_key;

fn service(state: &AppState) -> ApiResult<&PaymentService> {
    state.core.payments.as_ref().ok_or_else(|| {
        ApiError::from(DomainError::unavailable(
            "payments are not configured on this server",
        ))
    })
}

/// `POST /v1/orders/{id}/payments`: a payment of the order's payable amount through a
/// provider, answered with what the buyer pays with. Idempotent by `Idempotency-Key`. Firing
/// the order's `pay` is what a payment leads to, so it takes the `orders.transition` grant.
pub async fn create_payment(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: ValidJson<CreatePaymentRequest>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersTransition)?;
    let key = idempotency_key(&headers)?;
    let created = service(&state)?
        .create(&caller, &id, body.value, &body.raw, key)
        .await?;
    let mut response = (StatusCode::CREATED, Json(&created.view)).into_response();
    if created.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /v1/orders/{id}/payments`: the order's payments, oldest first.
pub async fn list_payments(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersGet)?;
    let list = service(&state)?.list(&caller, &id).await?;
    Ok(Json(list).into_response())
}

/// `POST /v1/payments/callbacks/{provider}`: a provider's signed report. 200 once it is
/// applied (or was before: a duplicate changes nothing); 401 when the signature, account or
/// timestamp is refused, with nothing changed; 5xx makes the provider retry.
pub async fn payment_callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let callback = RawCallback {
        headers,
        body: body.to_vec(),
    };
    match service(&state)?.callback(&provider, callback).await {
        Ok((payment_id, applied)) => Ok(Json(serde_json::json!({
            "payment_id": payment_id.to_string(),
            "outcome": applied.as_str(),
        }))
        .into_response()),
        Err(CallbackError::Refused(refusal)) => Err(ApiError::from(DomainError::new(
            ErrorCode::Unauthenticated,
            refusal.to_string(),
        ))
        .with_header(header::WWW_AUTHENTICATE, "Signature")),
        Err(CallbackError::Domain(error)) => Err(error.into()),
    }
}
