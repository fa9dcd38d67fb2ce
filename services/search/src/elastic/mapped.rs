//! [`MappedEsIndex`]: the Elasticsearch adapter that keeps each tenant's mapping in step with
//! its tenant config.
//!
//! Every tenant index has a strict mapping built from the tenant's searchable fields. Before
//! the first write of a tenant, and again whenever its configured fields change (a tenant
//! config reload adds a field), the index is ensured: created when missing, new fields
//! added when it exists. Processes that write (API, projector, backfill) therefore never need
//! a separate "apply mappings" step, and a reload needs no restart. The fields are asked for
//! on every write and compared with what was last ensured, which costs a small comparison
//! next to an HTTP round trip.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use oc_model::aftersale::AfterSaleId;
use oc_model::aftersale::listing::{AfterSaleDocument, AfterSalePage, AfterSaleQuery};
use oc_model::ports::{SearchFields, SearchIndex};
use oc_model::search::{SearchDocument, SearchFieldSpec, SearchPage, SearchQuery};
use oc_model::{DomainResult, OrderId, TenantId};

use super::client::EsSearchIndex;

/// [`EsSearchIndex`] plus a per-tenant mapping kept in step with the tenant config's
/// [`SearchFields`].
#[derive(Clone)]
pub struct MappedEsIndex {
    inner: EsSearchIndex,
    fields: Arc<dyn SearchFields>,
    /// Per tenant, the sorted fields last ensured.
    ensured: Arc<Mutex<HashMap<TenantId, Vec<SearchFieldSpec>>>>,
}

impl fmt::Debug for MappedEsIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedEsIndex")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn sorted(mut fields: Vec<SearchFieldSpec>) -> Vec<SearchFieldSpec> {
    fields.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    fields.dedup();
    fields
}

impl MappedEsIndex {
    pub fn new(inner: EsSearchIndex, fields: Arc<dyn SearchFields>) -> MappedEsIndex {
        MappedEsIndex {
            inner,
            fields,
            ensured: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn inner(&self) -> &EsSearchIndex {
        &self.inner
    }

    /// Ensure `tenant`'s index holds its configured fields (no request when it already did).
    pub async fn ensure(&self, tenant: &TenantId) -> DomainResult<()> {
        let wanted = sorted(self.fields.of_tenant(tenant));
        let current = self
            .ensured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .cloned();
        if current.as_ref() == Some(&wanted) {
            return Ok(());
        }
        // two writers may both ensure at once: create and put-mapping are idempotent
        self.inner.ensure_index(tenant, &wanted).await?;
        tracing::info!(%tenant, fields = wanted.len(), "elasticsearch mapping ensured");
        self.ensured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.clone(), wanted);
        Ok(())
    }
}

#[async_trait]
impl SearchIndex for MappedEsIndex {
    async fn upsert(&self, document: &SearchDocument) -> DomainResult<bool> {
        self.ensure(&document.tenant).await?;
        self.inner.upsert(document).await
    }

    async fn delete(&self, tenant: &TenantId, id: OrderId) -> DomainResult<()> {
        self.inner.delete(tenant, id).await
    }

    async fn get_version(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<u64>> {
        self.inner.get_version(tenant, id).await
    }

    async fn search(&self, tenant: &TenantId, query: &SearchQuery) -> DomainResult<SearchPage> {
        self.inner.search(tenant, query).await
    }

    // after-sale indexes have a fixed mapping (no configured fields): the inner adapter
    // creates them on first write
    async fn upsert_after_sale(&self, document: &AfterSaleDocument) -> DomainResult<bool> {
        self.inner.upsert_after_sale(document).await
    }

    async fn after_sale_version(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<u64>> {
        self.inner.after_sale_version(tenant, id).await
    }

    async fn search_after_sales(
        &self,
        tenant: &TenantId,
        query: &AfterSaleQuery,
    ) -> DomainResult<AfterSalePage> {
        self.inner.search_after_sales(tenant, query).await
    }

    async fn refresh(&self) -> DomainResult<()> {
        self.inner.refresh().await
    }

    async fn health(&self) -> DomainResult<()> {
        self.inner.health().await
    }
}
