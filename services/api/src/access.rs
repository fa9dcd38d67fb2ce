//! Authentication (API key → tenant + role) and authorisation (role → endpoints, PII view).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use oc_model::{DomainError, ErrorCode, RoleName, TenantId};
pub use oc_tenant_config::Endpoint;

use oc_tenant_config::PiiAccess;

use crate::AppState;
use crate::pii::PiiView;
use crate::problem::ApiError;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub key_id: String,
    pub role: RoleName,
    pub pii: PiiView,
    endpoints: std::collections::BTreeSet<Endpoint>,
}

impl Caller {
    /// 403 unless the caller's role is granted `endpoint`.
    pub fn require(&self, endpoint: Endpoint) -> Result<(), ApiError> {
        if self.endpoints.contains(&endpoint) {
            Ok(())
        } else {
            Err(DomainError::new(
                ErrorCode::Forbidden,
                format!("role {} may not call {}", self.role, endpoint.as_str()),
            )
            .into())
        }
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::from(DomainError::new(ErrorCode::Unauthenticated, message))
        .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"ordercenter\"")
}

/// Authenticate a request from its headers: bearer key → tenant, key id, role.
pub fn authenticate(headers: &axum::http::HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    let header_value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthenticated("missing Authorization: Bearer <api key>"))?;
    let token = header_value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("expected Authorization: Bearer <api key>"))?;
    let config = state.service.config.current();
    let principal = config
        .authenticate(token)
        .ok_or_else(|| unauthenticated("unknown API key"))?;
    let tenant = config
        .tenant(&principal.tenant)
        .ok_or_else(|| unauthenticated("unknown API key"))?;
    let role = tenant
        .role(&principal.role)
        .ok_or_else(|| unauthenticated("the key's role is not configured"))?;
    Ok(Caller {
        pii: match role.pii {
            PiiAccess::Full => PiiView::Full,
            PiiAccess::Masked => PiiView::Masked,
            PiiAccess::None => PiiView::None,
        },
        endpoints: role.endpoints.clone(),
        tenant: principal.tenant.clone(),
        key_id: principal.key_id.clone(),
        role: principal.role.clone(),
    })
}

/// Handlers take the caller the edge middleware authenticated (and rate-limited); without
/// the middleware (unit tests of a bare router) they authenticate themselves.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        authenticate(&parts.headers, state)
    }
}
