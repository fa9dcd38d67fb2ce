//! After-sale handlers (issue #20): HTTP only; the use cases are `oc_core::aftersales`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use oc_core::aftersales::{
    AfterSaleService, AppealRequest, ApplyRequest, ReviewRequest, StepRequest,
};
use oc_model::DomainError;

use crate::AppState;
use crate::access::Authenticated;
use crate::extract::ValidJson;
use crate::problem::{ApiError, ApiResult};

fn service(state: &AppState) -> ApiResult<&AfterSaleService> {
    state.core.after_sales.as_ref().ok_or_else(|| {
        ApiError::from(DomainError::unavailable(
            "after-sales are not configured on this server",
        ))
    })
}

/// `POST /v1/orders/{id}/after-sales`: apply (201). A merchant's own application is approved
/// at once; units another live after-sale holds are refused with a problem naming the line.
pub async fn apply(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: ValidJson<ApplyRequest>,
) -> ApiResult<Response> {
    let view = service(&state)?.apply(&caller, &id, body.value).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /v1/orders/{id}/after-sales`: the order's after-sales, oldest first.
pub async fn list_of_order(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let items = service(&state)?.of_order(&caller, &id).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// `GET /v1/after-sales/{id}`: one after-sale with its history and refund.
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(service(&state)?.get(&caller, &id).await?).into_response())
}

/// `POST /v1/after-sales/{id}/review`: approve or reject.
pub async fn review(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: ValidJson<ReviewRequest>,
) -> ApiResult<Response> {
    Ok(Json(service(&state)?.review(&caller, &id, body.value).await?).into_response())
}

/// `POST /v1/after-sales/{id}/appeal`: appeal a rejection once, to customer service.
pub async fn appeal(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: ValidJson<AppealRequest>,
) -> ApiResult<Response> {
    Ok(Json(service(&state)?.appeal(&caller, &id, body.value).await?).into_response())
}

/// `POST /v1/after-sales/{id}/refund`: issue the after-sale's one refund.
pub async fn refund(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(service(&state)?.refund(&caller, &id).await?).into_response())
}

/// `POST /v1/after-sales/{id}/transitions`: `receive_return`, `ship`, `complete` (the
/// reviewer's), `cancel`, `close` (the applicant's), through the type's state machine.
pub async fn step(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    body: ValidJson<StepRequest>,
) -> ApiResult<Response> {
    Ok(Json(service(&state)?.step(&caller, &id, body.value).await?).into_response())
}
