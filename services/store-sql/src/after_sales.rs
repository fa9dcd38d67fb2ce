//! [`AfterSaleStore`] over the shards: an after-sale's rows live in its order's shard (its id
//! carries the order's bucket), and an application, with the units it holds on the order's
//! lines, is one local transaction there.

use std::collections::BTreeMap;

use async_trait::async_trait;

use oc_model::aftersale::{
    AfterSale, AfterSaleHistoryEntry, AfterSaleId, AfterSaleRefund, AfterSaleStore,
    AfterSaleTransition, LedgerEffect, NewAfterSale,
};
use oc_model::{DomainError, DomainResult, ErrorCode, Money, OrderId, TenantId};

use crate::SqlOrderStore;
use crate::error::{WriteError, convert, is_unique_violation};
use crate::shards::begin;
use crate::tables::{after_sales, outbox, unix_ms};

/// What every new application must be before it is written.
fn check_new(new: &NewAfterSale) -> DomainResult<()> {
    let after_sale = &new.after_sale;
    if after_sale.id.bucket() != after_sale.order_id.bucket() {
        return Err(DomainError::internal(
            "an after-sale id carries its order's bucket",
        ));
    }
    if after_sale.lines.is_empty() || new.request_index.len() != after_sale.lines.len() {
        return Err(DomainError::internal(
            "an after-sale has lines, each with the request line that named it",
        ));
    }
    let mut line_nos: Vec<u32> = after_sale.lines.iter().map(|l| l.line_no).collect();
    line_nos.sort_unstable();
    line_nos.dedup();
    if line_nos.len() != after_sale.lines.len() {
        return Err(DomainError::internal(
            "an after-sale names each order line once (request lines are summed before)",
        ));
    }
    if new.event.order_id != after_sale.order_id || new.event.tenant != after_sale.tenant {
        return Err(DomainError::internal(
            "outbox event does not describe the after-sale's order",
        ));
    }
    Ok(())
}

/// Lock the order's row for the rest of the transaction; `false` when the order is not on
/// its shard (archived). MariaDB: a locking read. SQLite: a no-op write, which takes the one
/// writer's lock at once (a read first would pin a snapshot that a later write could not
/// upgrade from once another connection has written).
async fn lock_order(
    tx: &mut crate::tables::AnyTx<'_>,
    dialect: crate::config::Dialect,
    tenant: &TenantId,
    order_id: OrderId,
) -> DomainResult<bool> {
    match dialect {
        crate::config::Dialect::MySql => {
            let row =
                sqlx::query("SELECT version FROM orders WHERE tenant = ? AND id = ? FOR UPDATE")
                    .bind(tenant.as_str())
                    .bind(order_id.as_i64())
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(convert)?;
            Ok(row.is_some())
        }
        crate::config::Dialect::Sqlite => {
            let touched =
                sqlx::query("UPDATE orders SET version = version WHERE tenant = ? AND id = ?")
                    .bind(tenant.as_str())
                    .bind(order_id.as_i64())
                    .execute(&mut **tx)
                    .await
                    .map_err(convert)?
                    .rows_affected();
            Ok(touched == 1)
        }
    }
}

#[async_trait]
impl AfterSaleStore for SqlOrderStore {
    async fn apply_after_sale(&self, new: NewAfterSale) -> DomainResult<AfterSale> {
        check_new(&new)?;
        let NewAfterSale {
            mut after_sale,
            split,
            request_index,
            history,
            event,
        } = new;
        let tenant = after_sale.tenant.clone();
        let order_id = after_sale.order_id;
        // the lines' unit rows are written before the transaction: both in one turn
        let (pool, _turn) = self.shards.write_pool_for(order_id.bucket()).await;
        for line in &after_sale.lines {
            let split_line = split.line(line.line_no).ok_or_else(|| {
                DomainError::internal(format!("no split for line {}", line.line_no))
            })?;
            after_sales::open_line(pool, &tenant, order_id, split_line).await?;
        }
        // lines in line order: two applications for the same lines lock them in the same order
        let mut order: Vec<usize> = (0..after_sale.lines.len()).collect();
        order.sort_by_key(|index| after_sale.lines[*index].line_no);
        let mut tx = begin(pool).await?;
        // the order row first, as the archive's delete takes it: an application racing the
        // archive either waits for its delete and is refused here, or makes the delete wait
        // and then find an after-sale it did not copy (and leave the order hot)
        if !lock_order(&mut tx, self.shards.dialect, &tenant, order_id).await? {
            return Err(DomainError::new(
                ErrorCode::Conflict,
                "the order is archived (moved to the cold store after its retention) and can no longer change",
            ));
        }
        for index in order {
            let line = &mut after_sale.lines[index];
            match after_sales::hold(&mut tx, &tenant, order_id, line.line_no, line.quantity).await?
            {
                Some(amount) => line.amount = amount,
                None => {
                    drop(tx);
                    let left = after_sales::left(pool, &tenant, order_id, line.line_no).await?;
                    return Err(DomainError::invalid(
                        format!("/lines/{}/quantity", request_index[index]),
                        format!(
                            "line {} has {left} unit(s) left for after-sale, {} asked (live and earlier after-sales hold the rest)",
                            line.line_no, line.quantity
                        ),
                    ));
                }
            }
        }
        let currency = after_sale.refund_amount.currency;
        after_sale.refund_amount = if after_sale.kind.refunds() {
            Money::checked_sum(currency, after_sale.lines.iter().map(|l| &l.amount))
                .map_err(|e| DomainError::internal(e.to_string()))?
        } else {
            Money::zero(currency)
        };
        after_sales::insert(&mut tx, &after_sale).await?;
        after_sales::insert_history(&mut tx, &tenant, after_sale.id, &history).await?;
        outbox::insert(&mut tx, &[&event]).await?;
        tx.commit().await.map_err(convert)?;
        Ok(after_sale)
    }

    async fn get_after_sale(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<AfterSale>> {
        after_sales::get(self.shards.for_bucket(id.bucket()), tenant, id).await
    }

    async fn after_sale_history(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Vec<AfterSaleHistoryEntry>> {
        after_sales::history(self.shards.for_bucket(id.bucket()), tenant, id).await
    }

    async fn after_sales_of_order(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Vec<AfterSale>> {
        after_sales::of_order(self.shards.for_bucket(order_id.bucket()), tenant, order_id).await
    }

    async fn units_taken(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<BTreeMap<u32, u32>> {
        after_sales::taken(self.shards.for_bucket(order_id.bucket()), tenant, order_id).await
    }

    async fn transition_after_sale(
        &self,
        transition: AfterSaleTransition,
    ) -> DomainResult<AfterSale> {
        let tenant = &transition.tenant;
        let id = transition.id;
        if transition.history.version != transition.expected_version + 1 {
            return Err(DomainError::internal(
                "a transition's history entry carries the next version",
            ));
        }
        let pool = self.shards.for_bucket(id.bucket());
        let (mut tx, _turn) = self.shards.begin_write_for(id.bucket()).await?;
        // the after-sale's row first: concurrent reviews queue on it, and the first to commit
        // leaves the others a stale version
        let moved = after_sales::set_status(
            &mut tx,
            tenant,
            id,
            transition.expected_version,
            &transition.to,
            transition.reviewer,
            transition.appealed,
            unix_ms(transition.history.occurred_at),
        )
        .await?;
        if !moved {
            drop(tx);
            return match after_sales::get(pool, tenant, id).await? {
                None => Err(DomainError::not_found("after-sale not found")),
                Some(current) => Err(DomainError::new(
                    ErrorCode::PreconditionFailed,
                    format!(
                        "after-sale is no longer at version {} (now {}, {})",
                        transition.expected_version, current.version, current.status
                    ),
                )),
            };
        }
        if let Some(refund) = &transition.refund {
            match after_sales::insert_refund(
                &mut tx,
                tenant,
                id,
                refund,
                unix_ms(transition.history.occurred_at),
            )
            .await
            {
                Ok(()) => {}
                Err(WriteError::Sql(e)) if is_unique_violation(&e) => {
                    return Err(DomainError::new(
                        ErrorCode::Conflict,
                        "this after-sale was already refunded",
                    ));
                }
                Err(e) => return Err(e.into_domain()),
            }
        }
        let current = after_sales::get_in(&mut tx, tenant, id)
            .await?
            .ok_or_else(|| DomainError::internal("a moved after-sale vanished"))?;
        if transition.ledger != LedgerEffect::None {
            let settle = transition.ledger == LedgerEffect::Settle;
            let mut lines = current.lines.clone();
            lines.sort_by_key(|line| line.line_no);
            for line in &lines {
                after_sales::unhold(&mut tx, tenant, current.order_id, line, settle).await?;
            }
        }
        after_sales::insert_history(&mut tx, tenant, id, &transition.history).await?;
        outbox::insert(&mut tx, &[&transition.event]).await?;
        tx.commit().await.map_err(convert)?;
        Ok(current)
    }

    async fn after_sale_refund(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<AfterSaleRefund>> {
        after_sales::refund_of(self.shards.for_bucket(id.bucket()), tenant, id).await
    }
}
