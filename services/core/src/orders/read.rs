//! Queries by id and by buyer: `get` reads through cache → shard → cold store; `list`
//! pages a buyer's orders from the buyer's shard.

use oc_model::ports::PageRequest;
use oc_model::{DomainError, DomainResult, Order, OrderId, PartyId};

use crate::caller::Caller;
use crate::orders::output::{OrderList, OrderView};
use crate::orders::service::OrderService;
use crate::orders::view::Renderer;

/// A store error about the page cursor, at the query parameter that carried it.
pub(crate) fn cursor_error(e: DomainError) -> DomainError {
    if e.field.as_deref() == Some("/cursor") {
        DomainError::invalid("/query/cursor", e.message)
    } else {
        e
    }
}

/// Where a read found an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// On its shard (or in the cache).
    Hot,
    /// Only in the cold store: archived.
    Archived,
}

impl OrderService {
    /// The order `id` as the caller may see it.
    pub async fn get(&self, caller: &Caller, id: &str) -> DomainResult<OrderView> {
        // a malformed id is as unknown as another tenant's: 404 either way
        let id: OrderId = id
            .parse()
            .map_err(|_| DomainError::not_found("order not found"))?;
        let order = self.load_for_read(caller, id).await?;
        Renderer {
            sealer: &self.sealer,
            caller,
        }
        .view(&order)
    }

    /// GET path: cache → shard → cold store, and only an order the caller sees. The cache
    /// is a read model (it may trail the shard by its staleness bound); cache errors count
    /// as misses, never as failures.
    pub(crate) async fn load_for_read(&self, caller: &Caller, id: OrderId) -> DomainResult<Order> {
        self.load_located(caller, id).await.map(|(order, _)| order)
    }

    /// [`Self::load_for_read`] and where the order was found: `Archived` when only the cold
    /// store holds it (gone from its shard).
    pub(crate) async fn load_located(
        &self,
        caller: &Caller,
        id: OrderId,
    ) -> DomainResult<(Order, Found)> {
        let (order, found) = self.read_through(caller, id).await?;
        if caller.sees(&order) {
            Ok((order, found))
        } else {
            Err(DomainError::not_found("order not found"))
        }
    }

    async fn read_through(&self, caller: &Caller, id: OrderId) -> DomainResult<(Order, Found)> {
        if let Some(cache) = &self.read.cache {
            match cache.get(&caller.tenant, id).await {
                // the projector drops an archived order from the cache, so a cached order is
                // hot (up to the cache's staleness bound)
                Ok(Some(order)) => return Ok((order, Found::Hot)),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(error = %error.message, "cache read failed; reading the shard")
                }
            }
        }
        if let Some(order) = self.store.get(&caller.tenant, id).await? {
            self.remember(&order).await;
            return Ok((order, Found::Hot));
        }
        if let Some(cold) = &self.read.cold
            && let Some(order) = cold.get(&caller.tenant, id).await?
        {
            return Ok((order, Found::Archived));
        }
        Err(DomainError::not_found("order not found"))
    }

    /// A buyer's orders, newest first, a page at a time.
    pub async fn list_by_buyer(
        &self,
        caller: &Caller,
        buyer: &str,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> DomainResult<OrderList> {
        let buyer = PartyId::parse(buyer).map_err(|e| e.under("/query/buyer_id"))?;
        let limit = limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(DomainError::invalid(
                "/query/limit",
                "limit must be 1 to 100",
            ));
        }
        let page = self
            .store
            .list_by_buyer(&caller.tenant, &buyer, PageRequest { cursor, limit })
            .await
            .map_err(cursor_error)?;
        let renderer = Renderer {
            sealer: &self.sealer,
            caller,
        };
        let items = page
            .items
            .iter()
            // a merchant-scoped key's role may not grant orders.list (the loader refuses it);
            // should one get here anyway, it still sees only its merchant's orders
            .filter(|o| caller.sees(o))
            .map(|o| renderer.view(o))
            .collect::<DomainResult<_>>()?;
        Ok(OrderList {
            items,
            next_cursor: page.next_cursor,
        })
    }
}
