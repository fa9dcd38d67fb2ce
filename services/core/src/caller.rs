//! The caller of a use case: who it is (tenant, key, role, merchant scope), what it may do
//! (endpoints, PII view) and the tenant config it is served under.
//!
//! The tenant config is snapshotted once, when the key is authenticated, and every use case
//! of the request reads that snapshot: one lookup per request instead of one per layer, and
//! a config reload in the middle of a request cannot serve half of it under the old config
//! and half under the new.

use std::collections::BTreeSet;
use std::sync::Arc;

use oc_model::{DomainError, DomainResult, ErrorCode, Order, PartyId, RoleName, TenantId};
use oc_tenant_config::{ConfigSet, Endpoint, PiiAccess, TenantConfig};

/// How a role sees personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiView {
    Full,
    Masked,
    None,
}

impl PiiView {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiView::Full => "full",
            PiiView::Masked => "masked",
            PiiView::None => "none",
        }
    }
}

impl From<PiiAccess> for PiiView {
    fn from(access: PiiAccess) -> PiiView {
        match access {
            PiiAccess::Full => PiiView::Full,
            PiiAccess::Masked => PiiView::Masked,
            PiiAccess::None => PiiView::None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub key_id: String,
    pub role: RoleName,
    /// Set for a merchant-scoped key: only this merchant's orders exist for the caller.
    pub merchant: Option<PartyId>,
    pub pii: PiiView,
    /// Whether the caller may filter searches by personal data (its role sees PII in full,
    /// or the tenant config grants it `pii_filters`).
    pub pii_filters: bool,
    endpoints: BTreeSet<Endpoint>,
    /// The caller's tenant config as it was when the key was authenticated.
    config: Arc<TenantConfig>,
}

/// Authenticate an API key (the bearer token) against the tenant config: tenant, key id,
/// role, merchant scope and a snapshot of the tenant's config. Every refusal is
/// `Unauthenticated`.
pub fn authenticate(config: &ConfigSet, token: &str) -> DomainResult<Caller> {
    let unauthenticated = |message: &str| DomainError::new(ErrorCode::Unauthenticated, message);
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
        pii: role.pii.into(),
        pii_filters: role.may_filter_by_pii(),
        endpoints: role.endpoints.clone(),
        tenant: principal.tenant.clone(),
        key_id: principal.key_id.clone(),
        role: principal.role.clone(),
        merchant: principal.merchant.clone(),
        config: Arc::clone(tenant),
    })
}

impl Caller {
    /// A caller acting for the operator rather than an API key (the `ordercenter export`
    /// command): the tenant's config, an id saying who it is, and how it sees PII.
    pub fn operator(config: Arc<TenantConfig>, who: impl Into<String>, pii: PiiView) -> Caller {
        Caller {
            tenant: config.id().clone(),
            key_id: who.into(),
            role: RoleName::parse("operator").expect("a valid role name"),
            merchant: None,
            pii,
            pii_filters: pii == PiiView::Full,
            endpoints: BTreeSet::new(),
            config,
        }
    }

    /// The caller's tenant config (the snapshot taken at authentication).
    pub fn tenant_config(&self) -> &TenantConfig {
        &self.config
    }

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
    ) -> DomainResult<Option<PartyId>> {
        self.merchant_scope(requested, field, |own, requested| {
            format!(
                "this key is scoped to merchant {own} and may not write orders of merchant {requested}"
            )
        })
    }

    /// The merchant a search or list by this caller is limited to: the key's own for a
    /// merchant-scoped key (asking for another merchant is refused at `field`), else
    /// `requested`.
    pub fn merchant_for_read(
        &self,
        requested: Option<PartyId>,
        field: &str,
    ) -> DomainResult<Option<PartyId>> {
        self.merchant_scope(requested, field, |own, _| {
            format!("this key is scoped to merchant {own}")
        })
    }

    fn merchant_scope(
        &self,
        requested: Option<PartyId>,
        field: &str,
        refusal: impl FnOnce(&PartyId, &PartyId) -> String,
    ) -> DomainResult<Option<PartyId>> {
        match (&self.merchant, requested) {
            (None, requested) => Ok(requested),
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(own), Some(requested)) if &requested == own => Ok(Some(requested)),
            (Some(own), Some(requested)) => {
                Err(DomainError::new(ErrorCode::Forbidden, refusal(own, &requested)).under(field))
            }
        }
    }

    /// `Forbidden` (at `field`) unless the caller may filter searches by personal data: a
    /// filter on a party's name or phone or on an encrypted field confirms a guessed value,
    /// so a role that sees such data masked (or not at all) could otherwise learn it, one
    /// search at a time.
    pub fn require_pii_filters(&self, field: &str) -> DomainResult<()> {
        if self.pii_filters {
            return Ok(());
        }
        let name = field.rsplit('/').next().unwrap_or(field);
        Err(DomainError::new(
            ErrorCode::Forbidden,
            format!(
                "role {} sees personal data {}: it may not filter by {name}, which would confirm a guessed value; a role with pii: full (or one granted pii_filters in the tenant config) may",
                self.role,
                match self.pii {
                    PiiView::Full => "in full",
                    PiiView::Masked => "masked",
                    PiiView::None => "not at all",
                }
            ),
        )
        .under(field))
    }

    /// `Forbidden` unless the caller's role is granted `endpoint`.
    pub fn require(&self, endpoint: Endpoint) -> DomainResult<()> {
        if self.endpoints.contains(&endpoint) {
            Ok(())
        } else {
            Err(DomainError::new(
                ErrorCode::Forbidden,
                format!("role {} may not call {}", self.role, endpoint.as_str()),
            ))
        }
    }
}
