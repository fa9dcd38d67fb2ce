//! Payment handlers: the order's payments (authenticated like every order route) and the
//! providers' callbacks (authenticated by their signature instead: a provider holds no API
//! key, so the callback route is outside the API-key middleware).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde::Deserialize;

use oc_core::payments::{CallbackError, CreatePaymentRequest, CreateRefundRequest, PaymentService};
use oc_model::payment::RawCallback;
use oc_model::{DomainError, ErrorCode};

use crate::AppState;
use crate::access::{Authenticated, Endpoint};
use crate::extract::{ValidJson, ValidQuery};
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
    Ok(created_response(&created.view, created.replayed))
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

/// `POST /v1/orders/{id}/payments/{payment_id}/refunds`: refund (part of) a captured payment
/// at its provider. Idempotent by the refund key (`refund_key` in the body, else the
/// `Idempotency-Key` header). 201 with the refund `requested`; the provider's result arrives
/// asynchronously.
pub async fn create_refund(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((id, payment_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: ValidJson<CreateRefundRequest>,
) -> ApiResult<Response> {
    caller.require(Endpoint::PaymentsRefund)?;
    let request = body.value;
    let key = match request.refund_key {
        Some(key) => key,
        None => idempotency_key(&headers)?.ok_or_else(|| {
            DomainError::invalid(
                "/refund_key",
                "required (or an Idempotency-Key header): the caller's id of this refund",
            )
        })?,
    };
    let created = service(&state)?
        .refund(
            &caller,
            &id,
            &payment_id,
            &key,
            request.amount,
            request.reason,
        )
        .await?;
    Ok(created_response(&created.view, created.replayed))
}

/// `GET /v1/orders/{id}/payments/{payment_id}/refunds`: the payment's refunds, oldest first.
pub async fn list_refunds(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((id, payment_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersGet)?;
    let list = service(&state)?.refunds(&caller, &id, &payment_id).await?;
    Ok(Json(list).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedRefundsQuery {
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /v1/payments/refunds/failed`: the tenant's refunds that failed at the provider on
/// every attempt (amount released to the payment), newest first: the manual-handling list.
pub async fn failed_refunds(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ValidQuery(query): ValidQuery<FailedRefundsQuery>,
) -> ApiResult<Response> {
    caller.require(Endpoint::PaymentsRefund)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(DomainError::invalid("/query/limit", "1 to 500").into());
    }
    let list = service(&state)?.failed_refunds(&caller, limit).await?;
    Ok(Json(list).into_response())
}

/// 201 with `view`, marked `idempotent-replayed` when a retry answered the first one.
fn created_response(view: &impl serde::Serialize, replayed: bool) -> Response {
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    crate::routes::mark_replayed(&mut response, replayed);
    response
}

fn raw_callback(headers: &HeaderMap, body: &Bytes) -> RawCallback {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    RawCallback {
        headers,
        body: body.to_vec(),
    }
}

fn refused(refusal: oc_model::payment::CallbackRefusal) -> ApiError {
    ApiError::from(DomainError::new(
        ErrorCode::Unauthenticated,
        refusal.to_string(),
    ))
    .with_header(header::WWW_AUTHENTICATE, "Signature")
}

/// A callback's answer: 200 naming what it was about (`field`) and what it did; 401 when it
/// was refused (nothing changed); a domain error as usual (5xx makes the provider retry).
fn callback_answer(
    field: &str,
    result: Result<(String, &'static str), CallbackError>,
) -> ApiResult<Response> {
    match result {
        Ok((id, outcome)) => Ok(Json(serde_json::json!({
            field: id,
            "outcome": outcome,
        }))
        .into_response()),
        Err(CallbackError::Refused(refusal)) => Err(refused(refusal)),
        Err(CallbackError::Domain(error)) => Err(error.into()),
    }
}

/// `POST /v1/payments/refund-callbacks/{provider}`: a provider's signed refund report,
/// verified and answered as a payment callback is.
pub async fn refund_callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let result = service(&state)?
        .refund_callback(&provider, raw_callback(&headers, &body))
        .await;
    callback_answer(
        "refund_id",
        result.map(|(id, applied)| (id.to_string(), applied.as_str())),
    )
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
    let result = service(&state)?
        .callback(&provider, raw_callback(&headers, &body))
        .await;
    callback_answer(
        "payment_id",
        result.map(|(id, applied)| (id.to_string(), applied.as_str())),
    )
}
