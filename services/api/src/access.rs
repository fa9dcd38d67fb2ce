//! Authentication (API key → tenant + role) and authorisation (role → endpoints, PII view).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use oc_model::{DomainError, ErrorCode, Order, PartyId, RoleName, TenantId};
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
    /// Set for a merchant-scoped key: only this merchant's orders exist for the caller.
    pub merchant: Option<PartyId>,
    pub pii: PiiView,
    endpoints: std::collections::BTreeSet<Endpoint>,
}

impl Caller {
    /// Whether the caller may see `order` at all (a merchant-scoped key sees only its
    /// merchant's orders; every other order answers 404, like another tenant's).
    pub fn sees(&self, order: &Order) -> bool {
        match &self.merchant {
            None => true,
            Some(merchant) => order.main.merchant_id.as_ref() == Some(merchant),
        }
    }

    /// The merchant an order written by this caller must belong to: the key's own for a
    /// merchant-scoped key (naming another merchant is refused at `field`), else `requested`.
    pub fn merchant_for_write(
        &self,
        requested: Option<PartyId>,
        field: &str,
    ) -> Result<Option<PartyId>, DomainError> {
        match (&self.merchant, requested) {
            (None, requested) => Ok(requested),
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(own), Some(requested)) if &requested == own => Ok(Some(requested)),
            (Some(own), Some(requested)) => Err(DomainError::new(
                ErrorCode::Forbidden,
                format!("this key is scoped to merchant {own} and may not write orders of merchant {requested}"),
            )
            .under(field)),
        }
    }

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
        merchant: principal.merchant.clone(),
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
