//! `GET /v1/after-sales`: after-sale lists for the merchant and customer-service consoles
//! (issue #20 item 6). HTTP only; the use case is `oc_core::aftersales::list`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use oc_model::DomainError;

use crate::AppState;
use crate::access::Authenticated;
use crate::extract::ValidQuery;
use crate::problem::{ApiError, ApiResult};

/// `GET /v1/after-sales?status=&type=&channel=&merchant=&order=&sku=&from=&to=&cursor=&limit=`:
/// the tenant's after-sales, newest first; `"degraded": true` when the shards answered
/// because the index was unavailable.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ValidQuery(params): ValidQuery<BTreeMap<String, String>>,
) -> ApiResult<Response> {
    let lists = state.core.after_sale_lists.as_ref().ok_or_else(|| {
        ApiError::from(DomainError::unavailable(
            "after-sale lists are not configured on this server",
        ))
    })?;
    Ok(Json(lists.list(&caller, &params).await?).into_response())
}
