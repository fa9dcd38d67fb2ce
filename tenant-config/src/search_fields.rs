//! The tenant config as the read models' [`SearchFields`]: which slot holds which searchable
//! field. One codec: [`ResolvedField::search_spec`](crate::ResolvedField::search_spec) says
//! how a configured field is indexed, here and everywhere else.

use oc_model::ports::SearchFields;
use oc_model::search::SearchFieldSpec;
use oc_model::{BusinessIdentity, OrderType, Slot, TenantId};

use crate::reload::ConfigHandle;
use crate::set::ConfigSet;

/// A fixed config set.
impl SearchFields for ConfigSet {
    fn at_slot(
        &self,
        tenant: &TenantId,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec> {
        self.field_at(tenant, identity, order_type, slot)?
            .search_spec()
    }

    fn of_tenant(&self, tenant: &TenantId) -> Vec<SearchFieldSpec> {
        self.tenant(tenant)
            .map(|config| config.search_fields())
            .unwrap_or_default()
    }
}

/// The live, hot-reloaded config: every lookup sees the current snapshot.
impl SearchFields for ConfigHandle {
    fn at_slot(
        &self,
        tenant: &TenantId,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec> {
        self.current().at_slot(tenant, identity, order_type, slot)
    }

    fn of_tenant(&self, tenant: &TenantId) -> Vec<SearchFieldSpec> {
        self.current().of_tenant(tenant)
    }
}
