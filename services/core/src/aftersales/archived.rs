//! After-sales of archived orders: the archive moved them to the cold store with their
//! order ([`crate::archive`]), so the reads fall through to it as GET of an order does.
//! Read-only like the order: a change of an archived after-sale (review, appeal, a step,
//! a refund) and an application for an archived order answer the order's 409.

use oc_model::aftersale::AfterSaleId;
use oc_model::archive::ArchivedAfterSale;
use oc_model::{DomainError, DomainResult, Order, OrderId};

use super::{AfterSaleService, AfterSaleView};
use crate::caller::Caller;
use crate::orders::archived_error;

impl AfterSaleService {
    /// The cold store's copy of an after-sale of an archived order the caller sees, with
    /// that order.
    async fn archived_copy(
        &self,
        caller: &Caller,
        id: AfterSaleId,
    ) -> DomainResult<Option<(ArchivedAfterSale, Order)>> {
        let Some(cold) = &self.orders.read.cold else {
            return Ok(None);
        };
        let Some(order_id) = cold.after_sale_order(&caller.tenant, id).await? else {
            return Ok(None);
        };
        let order = match cold.get(&caller.tenant, order_id).await? {
            Some(order) if caller.sees(&order) => order,
            _ => return Ok(None),
        };
        Ok(cold
            .after_sales(&caller.tenant, order_id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .find(|archived| archived.after_sale.id == id)
            .map(|archived| (archived, order)))
    }

    /// What a use case answers for an after-sale its shard does not have: the archived
    /// order's 409 when the cold store holds it, `missing` (the 404) otherwise.
    pub(super) async fn archived_refusal(
        &self,
        caller: &Caller,
        id: AfterSaleId,
        missing: DomainError,
    ) -> DomainResult<DomainError> {
        Ok(match self.archived_copy(caller, id).await? {
            Some(_) => archived_error(),
            None => missing,
        })
    }

    /// GET of an after-sale the use cases refused as archived (`refused`): the cold
    /// store's copy with its history and refund, shown by the caller's role as a hot one.
    pub(super) async fn archived(
        &self,
        caller: &Caller,
        id: &str,
        refused: DomainError,
    ) -> DomainResult<AfterSaleView> {
        let Ok(id) = id.parse::<AfterSaleId>() else {
            return Err(refused);
        };
        let Some((archived, order)) = self.archived_copy(caller, id).await? else {
            return Err(refused);
        };
        AfterSaleView::of(archived.after_sale, archived.history, archived.refund)
            .shown_to(caller)
            .with_pickup_contact(&self.orders.sealer, caller, &order)
    }

    /// The after-sales of an order the write path refused as archived (`refused`, its 409):
    /// the cold store's copies, when the caller sees the archived order.
    pub(super) async fn archived_of_order(
        &self,
        caller: &Caller,
        order_id: &str,
        refused: DomainError,
    ) -> DomainResult<Vec<AfterSaleView>> {
        let Some(cold) = &self.orders.read.cold else {
            return Err(refused);
        };
        let Ok(order_id) = order_id.parse::<OrderId>() else {
            return Err(refused);
        };
        match cold.get(&caller.tenant, order_id).await? {
            Some(order) if caller.sees(&order) => {}
            _ => return Err(refused),
        }
        Ok(cold
            .after_sales(&caller.tenant, order_id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|archived| {
                AfterSaleView::of(archived.after_sale, Vec::new(), None).shown_to(caller)
            })
            .collect())
    }
}
