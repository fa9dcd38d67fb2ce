//! Authentication at the HTTP edge: the bearer key of the `Authorization` header, handed to
//! the core ([`oc_core::authenticate`]: key → tenant, role, tenant config snapshot), and
//! the caller as a handler argument ([`Authenticated`]).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use oc_core::Caller;
use oc_model::{DomainError, ErrorCode};
pub use oc_tenant_config::Endpoint;

use crate::AppState;
use crate::problem::ApiError;

fn unauthenticated(error: DomainError) -> ApiError {
    ApiError::from(error).with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"ordercenter\"")
}

fn refused(message: &str) -> ApiError {
    unauthenticated(DomainError::new(ErrorCode::Unauthenticated, message))
}

/// Authenticate a request from its headers: bearer key → caller.
pub fn authenticate(headers: &axum::http::HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    let header_value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| refused("missing Authorization: Bearer <api key>"))?;
    let token = header_value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| refused("expected Authorization: Bearer <api key>"))?;
    oc_core::authenticate(&state.core.config.current(), token).map_err(unauthenticated)
}

/// The caller of a handler: the one the edge middleware authenticated (and rate-limited);
/// without the middleware (unit tests of a bare router) the request is authenticated here.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(Authenticated(caller.clone()));
        }
        authenticate(&parts.headers, state).map(Authenticated)
    }
}
