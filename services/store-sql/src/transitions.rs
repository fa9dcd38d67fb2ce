//! [`TransitionStore`] over the shards: a transition is one local transaction on the order's
//! shard — the main row's compare-and-set, the history row, the outbox event.

use async_trait::async_trait;

use oc_model::lifecycle::{TransitionStore, TransitionWrite};
use oc_model::ports::OrderStore;
use oc_model::{DomainError, DomainResult, ErrorCode, HistoryEntry, Order, OrderId, TenantId};

use crate::SqlOrderStore;
use crate::error::convert;
use crate::shards::begin_read;
use crate::tables::orders::assert_sealed;
use crate::tables::{AnyTx, order_history as history, orders, outbox};

/// A transition's writes inside `tx`: the main row's compare-and-set, then (only when it
/// matched) the history row and the outbox event. `false`: the order is not at the expected
/// version (or missing), and nothing was written. Shared by a plain transition and a payment
/// settlement, which commits the order's `pay` with the payment's own row.
pub(crate) async fn write_transition(
    tx: &mut AnyTx<'_>,
    write: &TransitionWrite,
) -> DomainResult<bool> {
    write.check()?;
    let order = &write.order;
    order.check_invariants()?;
    assert_sealed(order)?;
    if !orders::update_for_transition(tx, order, write.expected_version).await? {
        return Ok(false);
    }
    if let Some(entry) = &write.history {
        history::bind(sqlx::query(&history::INSERT), entry)?
            .execute(&mut **tx)
            .await
            .map_err(convert)?;
    }
    outbox::insert(tx, &[&write.event]).await?;
    Ok(true)
}

#[async_trait]
impl TransitionStore for SqlOrderStore {
    async fn commit_transition(&self, write: TransitionWrite) -> DomainResult<Order> {
        let main = &write.order.main;
        let (mut tx, _turn) = self.shards.begin_write_for(main.id.bucket()).await?;
        if !write_transition(&mut tx, &write).await? {
            drop(tx);
            return Err(match self.get(&main.tenant, main.id).await? {
                None => DomainError::not_found("order not found"),
                Some(current) => DomainError::new(
                    ErrorCode::PreconditionFailed,
                    format!(
                        "order is at version {}, not {}",
                        current.main.version, write.expected_version
                    ),
                ),
            });
        }
        tx.commit().await.map_err(convert)?;
        Ok(write.order)
    }

    async fn history(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Vec<HistoryEntry>> {
        let pool = self.shards.for_bucket(id.bucket());
        let mut tx = begin_read(pool, self.shards.dialect).await?;
        let rows = sqlx::query(&history::SELECT_OF_ORDER)
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .fetch_all(&mut *tx)
            .await
            .map_err(convert)?;
        tx.commit().await.map_err(convert)?;
        rows.iter().map(history::decode).collect()
    }
}
