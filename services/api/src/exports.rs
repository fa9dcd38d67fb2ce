//! Export handlers (issue #16): HTTP only; the use case is `oc_core::exports`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use oc_core::exports::{ExportRequest, Exporter};
use oc_model::DomainError;

use crate::AppState;
use crate::access::{Authenticated, Endpoint};
use crate::extract::ValidJson;
use crate::problem::{ApiError, ApiResult};

/// `POST /v1/exports` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateExportRequest {
    /// First day of the window (UTC), `YYYY-MM-DD`, included.
    pub from: String,
    /// Last day of the window, excluded.
    pub to: String,
    /// `parquet` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
    /// `plain` asks for plaintext personal data (a role with `pii: full` only); absent: the
    /// tenant's `exports.pii` policy.
    #[serde(default)]
    pub pii: Option<String>,
}

fn exporter(state: &AppState) -> ApiResult<&Exporter> {
    state.exports.as_ref().ok_or_else(|| {
        ApiError::from(DomainError::unavailable(
            "exports are not configured on this server (OC_EXPORT_DIR)",
        ))
    })
}

/// `POST /v1/exports`: record an export job and start it (202, `Location` of the job).
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: ValidJson<CreateExportRequest>,
) -> ApiResult<Response> {
    caller.require(Endpoint::ExportsCreate)?;
    let body = body.value;
    let plaintext = match body.pii.as_deref() {
        None => false,
        Some("plain") => true,
        Some(_) => {
            return Err(DomainError::invalid(
                "/pii",
                "pii is `plain` or absent (the tenant's policy)",
            )
            .into());
        }
    };
    let request = ExportRequest::parse(
        &body.from,
        &body.to,
        body.format.as_deref().unwrap_or("parquet"),
        plaintext,
    )?;
    let job = exporter(&state)?.start_job(&caller, request)?;
    let location = format!("/v1/exports/{}", job.id);
    let mut response = (StatusCode::ACCEPTED, Json(job)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /v1/exports/{id}`: the job: status, progress, who asked, the PII policy applied and,
/// once it succeeded, its files.
pub async fn get(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Endpoint::ExportsCreate)?;
    Ok(Json(exporter(&state)?.job(&caller, &id)?).into_response())
}
