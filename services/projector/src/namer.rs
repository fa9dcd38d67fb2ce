//! Which extension slots are searchable, per tenant: the tenant config's answer, handed to
//! `oc_search::document_from_order` as a [`FieldNamer`] for one order's tenant.

use std::fmt::Debug;
use std::sync::Arc;

use oc_model::ext::Slot;
use oc_model::search::{SearchFieldKind, SearchFieldName, SearchFieldSpec};
use oc_model::{BusinessIdentity, OrderType, TenantId};
use oc_search::FieldNamer;
use oc_tenant_config::{ConfigHandle, ConfigSet};

/// The searchable field configured at a slot, for a tenant, business identity and order type.
pub trait TenantFieldNamer: Send + Sync + Debug + 'static {
    fn searchable_field(
        &self,
        tenant: &TenantId,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec>;
}

/// The spec of a configured field: its name and index kind, when it is searchable.
/// Encrypted fields index as blind indexes only; JSON fields are never searchable.
fn spec_of(
    config: &ConfigSet,
    tenant: &TenantId,
    identity: &BusinessIdentity,
    order_type: &OrderType,
    slot: &Slot,
) -> Option<SearchFieldSpec> {
    let field = config.field_at(tenant, identity, order_type, slot)?;
    if !field.searchable {
        return None;
    }
    let kind = SearchFieldKind::of(field.field_type, field.encrypted)?;
    match SearchFieldName::parse(field.name.clone()) {
        Ok(name) => Some(SearchFieldSpec { name, kind }),
        Err(error) => {
            tracing::warn!(%tenant, field = %field.name, error = %error.message, "configured field name is not a valid search field name; not indexed");
            None
        }
    }
}

/// A fixed config set.
impl TenantFieldNamer for ConfigSet {
    fn searchable_field(
        &self,
        tenant: &TenantId,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec> {
        spec_of(self, tenant, identity, order_type, slot)
    }
}

/// The live, hot-reloaded config: every lookup sees the current snapshot.
impl TenantFieldNamer for ConfigHandle {
    fn searchable_field(
        &self,
        tenant: &TenantId,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec> {
        spec_of(&self.current(), tenant, identity, order_type, slot)
    }
}

/// No searchable extension fields (core fields, product text and PII blind indexes are
/// still indexed): for deployments without tenant config, and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSearchableFields;

impl TenantFieldNamer for NoSearchableFields {
    fn searchable_field(
        &self,
        _: &TenantId,
        _: &BusinessIdentity,
        _: &OrderType,
        _: &Slot,
    ) -> Option<SearchFieldSpec> {
        None
    }
}

/// Binds a [`TenantFieldNamer`] to one tenant: the [`FieldNamer`] of that tenant's orders.
#[derive(Debug)]
pub(crate) struct ForTenant<'a> {
    pub namer: &'a Arc<dyn TenantFieldNamer>,
    pub tenant: &'a TenantId,
}

impl FieldNamer for ForTenant<'_> {
    fn searchable_field(
        &self,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec> {
        self.namer
            .searchable_field(self.tenant, identity, order_type, slot)
    }
}
