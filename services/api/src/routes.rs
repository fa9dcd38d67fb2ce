//! Handlers: thin wrappers that authenticate, check the role, parse, and call the core.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use oc_model::{DomainError, ErrorCode};

use crate::AppState;
use crate::access::{Authenticated, Endpoint};
use crate::dto::{
    CancelRequest, CreateOrderRequest, ListQuery, OrderView, SetStockRequest, TransitionRequest,
    UpdateOrderRequest,
};
use crate::extract::{ValidJson, ValidQuery, parse_json};
use crate::problem::{ApiError, ApiResult};

const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

fn order_response(status: StatusCode, view: OrderView) -> Response {
    let tag = etag(view.version);
    let mut response = (status, Json(view)).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    response
}

/// `If-Match: "3"` (or `3`, or `W/"3"`) → 3.
fn parse_version_header(headers: &HeaderMap, name: header::HeaderName) -> ApiResult<Option<u64>> {
    let Some(value) = headers.get(&name) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text.trim_matches('"');
    text.parse::<u64>().map(Some).map_err(|_| {
        DomainError::invalid(
            format!("/header/{name}"),
            "expected the order's ETag, e.g. \"3\"",
        )
        .into()
    })
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    let valid = !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(DomainError::invalid(
            "/header/idempotency-key",
            "1 to 128 printable ASCII characters",
        )
        .into());
    }
    Ok(Some(key.to_owned()))
}

pub async fn create_order(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: ValidJson<CreateOrderRequest>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersCreate)?;
    let key = idempotency_key(&headers)?;
    let created = state
        .core
        .orders
        .create(&caller, body.value, &body.raw, key)
        .await?;
    let location = format!("/v1/orders/{}", created.view.id);
    let replayed = created.replayed;
    let mut response = order_response(StatusCode::CREATED, created.view);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

pub async fn get_order(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersGet)?;
    let view = state.core.orders.get(&caller, &id).await?;
    Ok(order_response(StatusCode::OK, view))
}

pub async fn update_order(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: ValidJson<UpdateOrderRequest>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersUpdate)?;
    let Some(version) = parse_version_header(&headers, header::IF_MATCH)? else {
        return Err(ApiError::from(DomainError::new(
            ErrorCode::PreconditionFailed,
            "If-Match with the order's current ETag is required to change it",
        ))
        .with_status(StatusCode::PRECONDITION_REQUIRED));
    };
    let view = state
        .core
        .orders
        .update(&caller, &id, version, body.value)
        .await?;
    Ok(order_response(StatusCode::OK, view))
}

pub async fn cancel_order(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersCancel)?;
    let version = parse_version_header(&headers, header::IF_MATCH)?;
    let request: CancelRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CancelRequest::default()
    } else {
        parse_json(&body)?.0
    };
    let view = state
        .core
        .transitions
        .cancel(&caller, &id, version, request)
        .await?;
    Ok(order_response(StatusCode::OK, view))
}

/// `POST /v1/orders/{id}/transitions`: an event of the order's state machine, at the
/// version `If-Match` names (required, as for every change).
pub async fn transition_order(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: ValidJson<TransitionRequest>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersTransition)?;
    let Some(version) = parse_version_header(&headers, header::IF_MATCH)? else {
        return Err(ApiError::from(DomainError::new(
            ErrorCode::PreconditionFailed,
            "If-Match with the order's current ETag is required to change it",
        ))
        .with_status(StatusCode::PRECONDITION_REQUIRED));
    };
    let view = state
        .core
        .transitions
        .fire(&caller, &id, Some(version), body.value)
        .await?;
    Ok(order_response(StatusCode::OK, view))
}

/// `GET /v1/orders/{id}/history`: the order's status history, oldest first.
pub async fn order_history(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersGet)?;
    let history = state.core.transitions.history(&caller, &id).await?;
    Ok(Json(history).into_response())
}

pub async fn list_orders(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ValidQuery(query): ValidQuery<ListQuery>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersList)?;
    let list = state
        .core
        .orders
        .list_by_buyer(&caller, &query.buyer_id, query.cursor, query.limit)
        .await?;
    Ok(Json(list).into_response())
}

pub async fn search_orders(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ValidQuery(params): ValidQuery<std::collections::BTreeMap<String, String>>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersSearch)?;
    let result = state.core.orders.search(&caller, &params).await?;
    Ok(Json(result).into_response())
}

pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT,
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    DomainError::not_found("no such resource").into()
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::from(DomainError::new(
        ErrorCode::InvalidInput,
        "method not allowed on this resource",
    ))
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// `PUT /v1/stock/{sku}`: set the units of a SKU for sale (role endpoint `admin.stock`).
pub async fn set_stock(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(sku): Path<String>,
    body: ValidJson<SetStockRequest>,
) -> ApiResult<Response> {
    caller.require(Endpoint::AdminStock)?;
    let level = state.core.stock.set(&caller, &sku, body.value).await?;
    Ok(Json(level).into_response())
}

/// `GET /v1/stock/{sku}`: available, reserved and sold units of a SKU.
pub async fn get_stock(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(sku): Path<String>,
) -> ApiResult<Response> {
    caller.require(Endpoint::AdminStock)?;
    let level = state.core.stock.get(&caller, &sku).await?;
    Ok(Json(level).into_response())
}
