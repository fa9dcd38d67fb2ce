//! The searchable extension fields of a tenant, by configured name and index kind: the tenant
//! config's name ↔ slot mapping as the read models need it. `oc-tenant-config` implements it
//! (over a fixed config and over the live, hot-reloaded one); the search document builder,
//! the Elasticsearch mapping and the projector ask it.

use std::fmt::Debug;

use crate::ext::Slot;
use crate::ids::{BusinessIdentity, OrderType, TenantId};
use crate::search::SearchFieldSpec;

/// Which slots hold searchable fields, under which name and kind.
pub trait SearchFields: Send + Sync + Debug + 'static {
    /// The searchable field configured at `slot` for `tenant`'s orders of `identity` and
    /// `order_type`; `None` when the slot holds no searchable field there.
    fn at_slot(
        &self,
        tenant: &TenantId,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec>;

    /// Every searchable field of `tenant`, once per name (its index mapping); empty for an
    /// unknown tenant.
    fn of_tenant(&self, tenant: &TenantId) -> Vec<SearchFieldSpec>;
}

/// No searchable extension fields (core fields, product text and personal-data blind indexes
/// are still indexed): for deployments without tenant config, and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSearchFields;

impl SearchFields for NoSearchFields {
    fn at_slot(
        &self,
        _: &TenantId,
        _: &BusinessIdentity,
        _: &OrderType,
        _: &Slot,
    ) -> Option<SearchFieldSpec> {
        None
    }

    fn of_tenant(&self, _: &TenantId) -> Vec<SearchFieldSpec> {
        Vec::new()
    }
}
