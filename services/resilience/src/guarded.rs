//! Port wrappers: [`Guarded`] implements a port around any adapter of it, every call through
//! one [`CircuitBreaker`]. While the breaker is open, calls fail at once with `Unavailable`
//! (which the callers already treat as "degrade": the API falls back to the shard, the relay
//! and the projector retry with backoff), without waiting for a dead dependency's timeout.
//!
//! The stock gate is the one port whose callers do not need it at all: a placement that
//! gets `Unavailable` from it reserves in SQL alone (the truth). Behind a breaker, a slow or
//! dead Redis costs the gate's call limit only until the breaker opens, then nothing until
//! a half-open probe finds it back.
//!
//! `health` is passed through without the breaker: it is the probe `/readyz` uses to tell
//! whether the dependency itself answers.

use std::sync::Arc;

use async_trait::async_trait;
use oc_model::aftersale::AfterSaleId;
use oc_model::aftersale::listing::{AfterSaleDocument, AfterSalePage, AfterSaleQuery};
use oc_model::ports::{Cache, ColdStore, EventBus, Page, PageRequest, SearchIndex};
use oc_model::search::{SearchDocument, SearchPage, SearchQuery};
use oc_model::stock::{GateOutcome, Sku, StockGate};
use oc_model::{DomainResult, HistoryEntry, Order, OrderEvent, OrderId, TenantId};
use time::OffsetDateTime;

use crate::breaker::CircuitBreaker;

/// `inner` behind `breaker`.
#[derive(Debug)]
pub struct Guarded<P: ?Sized> {
    inner: Arc<P>,
    breaker: Arc<CircuitBreaker>,
}

impl<P: ?Sized> Guarded<P> {
    pub fn new(inner: Arc<P>, breaker: Arc<CircuitBreaker>) -> Self {
        Guarded { inner, breaker }
    }

    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }

    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

#[async_trait]
impl<P: Cache + ?Sized> Cache for Guarded<P> {
    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>> {
        self.breaker.call(self.inner.get(tenant, id)).await
    }

    async fn put_if_newer(&self, order: &Order) -> DomainResult<bool> {
        self.breaker.call(self.inner.put_if_newer(order)).await
    }

    async fn invalidate(&self, tenant: &TenantId, id: OrderId) -> DomainResult<()> {
        self.breaker.call(self.inner.invalidate(tenant, id)).await
    }
}

#[async_trait]
impl<P: SearchIndex + ?Sized> SearchIndex for Guarded<P> {
    async fn upsert(&self, document: &SearchDocument) -> DomainResult<bool> {
        self.breaker.call(self.inner.upsert(document)).await
    }

    async fn delete(&self, tenant: &TenantId, id: OrderId) -> DomainResult<()> {
        self.breaker.call(self.inner.delete(tenant, id)).await
    }

    async fn get_version(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<u64>> {
        self.breaker.call(self.inner.get_version(tenant, id)).await
    }

    async fn search(&self, tenant: &TenantId, query: &SearchQuery) -> DomainResult<SearchPage> {
        self.breaker.call(self.inner.search(tenant, query)).await
    }

    async fn upsert_after_sale(&self, document: &AfterSaleDocument) -> DomainResult<bool> {
        self.breaker
            .call(self.inner.upsert_after_sale(document))
            .await
    }

    async fn after_sale_version(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<u64>> {
        self.breaker
            .call(self.inner.after_sale_version(tenant, id))
            .await
    }

    async fn search_after_sales(
        &self,
        tenant: &TenantId,
        query: &AfterSaleQuery,
    ) -> DomainResult<AfterSalePage> {
        self.breaker
            .call(self.inner.search_after_sales(tenant, query))
            .await
    }

    async fn refresh(&self) -> DomainResult<()> {
        self.breaker.call(self.inner.refresh()).await
    }

    async fn health(&self) -> DomainResult<()> {
        self.inner.health().await
    }
}

#[async_trait]
impl<P: ColdStore + ?Sized> ColdStore for Guarded<P> {
    async fn put(&self, order: &Order) -> DomainResult<bool> {
        self.breaker.call(self.inner.put(order)).await
    }

    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>> {
        self.breaker.call(self.inner.get(tenant, id)).await
    }

    async fn scan(
        &self,
        tenant: &TenantId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        page: PageRequest,
    ) -> DomainResult<Page<Order>> {
        self.breaker
            .call(self.inner.scan(tenant, from, to, page))
            .await
    }

    async fn put_history(
        &self,
        tenant: &TenantId,
        id: OrderId,
        history: &[HistoryEntry],
    ) -> DomainResult<()> {
        self.breaker
            .call(self.inner.put_history(tenant, id, history))
            .await
    }

    async fn history(
        &self,
        tenant: &TenantId,
        id: OrderId,
    ) -> DomainResult<Option<Vec<HistoryEntry>>> {
        self.breaker.call(self.inner.history(tenant, id)).await
    }

    async fn put_after_sales(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        after_sales: &[oc_model::archive::ArchivedAfterSale],
    ) -> DomainResult<()> {
        self.breaker
            .call(self.inner.put_after_sales(tenant, order_id, after_sales))
            .await
    }

    async fn after_sales(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Option<Vec<oc_model::archive::ArchivedAfterSale>>> {
        self.breaker
            .call(self.inner.after_sales(tenant, order_id))
            .await
    }

    async fn after_sale_order(
        &self,
        tenant: &TenantId,
        id: oc_model::aftersale::AfterSaleId,
    ) -> DomainResult<Option<OrderId>> {
        self.breaker
            .call(self.inner.after_sale_order(tenant, id))
            .await
    }
}

#[async_trait]
impl<P: EventBus + ?Sized> EventBus for Guarded<P> {
    async fn publish(&self, events: &[OrderEvent]) -> DomainResult<()> {
        self.breaker.call(self.inner.publish(events)).await
    }
}

#[async_trait]
impl<P: StockGate + ?Sized> StockGate for Guarded<P> {
    async fn admit(&self, tenant: &TenantId, wants: &[(Sku, u64)]) -> DomainResult<GateOutcome> {
        self.breaker.call(self.inner.admit(tenant, wants)).await
    }

    async fn seed(&self, tenant: &TenantId, sku: &Sku, available: u64) -> DomainResult<()> {
        self.breaker
            .call(self.inner.seed(tenant, sku, available))
            .await
    }

    async fn give_back(&self, tenant: &TenantId, sku: &Sku, quantity: u64) -> DomainResult<()> {
        self.breaker
            .call(self.inner.give_back(tenant, sku, quantity))
            .await
    }

    async fn forget(&self, tenant: &TenantId, sku: &Sku) -> DomainResult<()> {
        self.breaker.call(self.inner.forget(tenant, sku)).await
    }
}
