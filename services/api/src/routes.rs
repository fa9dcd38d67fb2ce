//! Handlers: thin wrappers that authenticate, check the role, parse, and call the core.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use oc_model::{DomainError, ErrorCode, OrderId};

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

/// What an `If-Match` header asks of an order, whose ETag is its version as a strong tag
/// (`"3"`). RFC 9110 §13.1.1: If-Match compares strongly, so a weak tag (`W/"3"`) never
/// matches, and an opaque tag matches only character by character (`"03"` is not `"3"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IfMatch {
    /// No header.
    Absent,
    /// `*`: whatever the current version is.
    Any,
    /// The one version the header's strong tags name.
    Version(u64),
    /// Well-formed, but none of its tags can match any version: answered 412 as it stands.
    Never,
}

fn malformed_if_match(message: &str) -> ApiError {
    ApiError::from(DomainError::invalid("/header/if-match", message))
        .with_status(StatusCode::BAD_REQUEST)
}

/// One entity-tag (`"xyzzy"` or `W/"xyzzy"`): whether it is weak, and its opaque text.
fn entity_tag(text: &str) -> Option<(bool, &str)> {
    let (weak, quoted) = match text.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let opaque = quoted.strip_prefix('"')?.strip_suffix('"')?;
    // etagc: %x21 / %x23-7E / obs-text; header values arrive as visible ASCII here
    let valid = opaque
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b));
    valid.then_some((weak, opaque))
}

/// `If-Match` (RFC 9110 §13.1.1): absent, `*`, or a list of entity tags. A malformed value is
/// 400 at `/header/if-match`; a list naming several of our versions is refused too, since an
/// order has one current version and the change is a compare-and-set on it.
fn if_match(headers: &HeaderMap) -> ApiResult<IfMatch> {
    let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
    if values.peek().is_none() {
        return Ok(IfMatch::Absent);
    }
    let mut elements = Vec::new();
    for value in values {
        let text = value
            .to_str()
            .map_err(|_| malformed_if_match("If-Match must be visible ASCII"))?;
        // list elements: commas outside quoted tags separate them; empty ones are ignored
        let mut rest = text;
        loop {
            let trimmed = rest.trim_start_matches([' ', '\t']);
            if trimmed.is_empty() {
                break;
            }
            if let Some(after) = trimmed.strip_prefix(',') {
                rest = after;
                continue;
            }
            let opening = if trimmed.starts_with('"') {
                Some(0)
            } else if trimmed.starts_with("W/\"") {
                Some(2)
            } else {
                None
            };
            let end = match opening {
                Some(open) => trimmed[open + 1..]
                    .find('"')
                    .map(|close| open + 1 + close + 1)
                    .unwrap_or(trimmed.len()),
                None => trimmed.find(',').unwrap_or(trimmed.len()),
            };
            let (element, after) = trimmed.split_at(end);
            elements.push(element.trim_end_matches([' ', '\t']));
            let after = after.trim_start_matches([' ', '\t']);
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(malformed_if_match(
                    "expected entity tags separated by commas, e.g. \"3\"",
                ));
            }
            rest = after;
        }
    }
    if elements == ["*"] {
        return Ok(IfMatch::Any);
    }
    let mut versions = std::collections::BTreeSet::new();
    for element in &elements {
        let Some((weak, opaque)) = entity_tag(element) else {
            return Err(malformed_if_match(
                "expected the order's ETag as sent, quoted: \"3\" (or *)",
            ));
        };
        // only a strong tag equal to a version's own decimal text can match
        let canonical = opaque
            .parse::<u64>()
            .ok()
            .filter(|v| v.to_string() == opaque);
        if let (false, Some(version)) = (weak, canonical) {
            versions.insert(version);
        }
    }
    match versions.len() {
        0 => Ok(IfMatch::Never),
        1 => Ok(versions
            .into_iter()
            .next()
            .map_or(IfMatch::Never, IfMatch::Version)),
        _ => Err(malformed_if_match(
            "an order has one current version: send its one ETag",
        )),
    }
}

fn precondition_never_matches() -> ApiError {
    DomainError::new(
        ErrorCode::PreconditionFailed,
        "If-Match names no current version of the order: ETags compare strongly (a weak W/ tag never matches); send the ETag as the order was answered",
    )
    .into()
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
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
    mark_replayed(&mut response, replayed);
    Ok(response)
}

/// `Idempotent-Replayed: true` on the answer to a retried key (the first answer again).
pub(crate) fn mark_replayed(response: &mut Response, replayed: bool) {
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
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

/// A path id no order can have is 404 before the headers are looked at: a change to it
/// fails for the id, whatever its `If-Match` (the core answers a malformed id the same way,
/// as unknown as another tenant's order).
fn order_id_shape(id: &str) -> ApiResult<()> {
    match id.parse::<OrderId>() {
        Ok(_) => Ok(()),
        Err(_) => Err(DomainError::not_found("order not found").into()),
    }
}

/// The one version a change names in `If-Match`: a change needs it (428 without, `*` names
/// no version), and a tag no version can have is 412 as it stands.
fn required_version(headers: &HeaderMap) -> ApiResult<u64> {
    match if_match(headers)? {
        IfMatch::Version(version) => Ok(version),
        IfMatch::Never => Err(precondition_never_matches()),
        IfMatch::Absent | IfMatch::Any => Err(ApiError::from(DomainError::new(
            ErrorCode::PreconditionFailed,
            "If-Match with the order's current ETag is required to change it (* names no version)",
        ))
        .with_status(StatusCode::PRECONDITION_REQUIRED)),
    }
}

pub async fn update_order(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: ValidJson<UpdateOrderRequest>,
) -> ApiResult<Response> {
    caller.require(Endpoint::OrdersUpdate)?;
    order_id_shape(&id)?;
    let version = required_version(&headers)?;
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
    order_id_shape(&id)?;
    let version = match if_match(&headers)? {
        IfMatch::Version(version) => Some(version),
        IfMatch::Never => return Err(precondition_never_matches()),
        // `*` asks only that the order exists, which the cancel finds out anyway
        IfMatch::Absent | IfMatch::Any => None,
    };
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
    order_id_shape(&id)?;
    let version = required_version(&headers)?;
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parsed(values: &[&str]) -> Result<IfMatch, u16> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::IF_MATCH, HeaderValue::from_str(value).unwrap());
        }
        if_match(&headers).map_err(|e| e.problem().status)
    }

    #[test]
    fn if_match_is_compared_strongly() {
        assert_eq!(parsed(&[]), Ok(IfMatch::Absent));
        assert_eq!(parsed(&["\"3\""]), Ok(IfMatch::Version(3)));
        assert_eq!(parsed(&[" \"3\" "]), Ok(IfMatch::Version(3)));
        assert_eq!(parsed(&["*"]), Ok(IfMatch::Any));
        // empty list elements are ignored (RFC 9110 §5.6.1.2)
        assert_eq!(parsed(&["\"3\",, "]), Ok(IfMatch::Version(3)));
        assert_eq!(parsed(&["W/\"3\", \"3\""]), Ok(IfMatch::Version(3)));
        assert_eq!(parsed(&["W/\"1\"", "\"1\""]), Ok(IfMatch::Version(1)));
        for never in ["W/\"3\"", "\"03\"", "\"+3\"", "\"x\"", "\"\"", "\"a,b\""] {
            assert_eq!(parsed(&[never]), Ok(IfMatch::Never), "{never}");
        }
        for malformed in [
            "3",
            "W/3",
            "w/\"3\"",
            "\"3",
            "\"3\" x",
            "*, \"3\"",
            "\"3\" \"4\"",
        ] {
            assert_eq!(parsed(&[malformed]), Err(400), "{malformed}");
        }
        assert_eq!(parsed(&["\"3\", \"4\""]), Err(400), "one current version");
    }

    proptest! {
        #[test]
        fn any_if_match_value_is_answered(value in "[ -~]{0,40}") {
            let _ = parsed(&[&value]);
        }
    }
}
