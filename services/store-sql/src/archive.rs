//! [`ArchiveStore`] over the shards: the archive worker's page of candidates (index
//! `idx_orders_archive` of migration 0012) and the delete of an archived order with its
//! after-sales, one local transaction with its outbox event.

use async_trait::async_trait;
use oc_model::aftersale::AfterSaleId;
use oc_model::archive::{ArchiveCandidate, ArchiveStore};
use oc_model::{DomainResult, OrderEvent, OrderId, ShardId, StatusCode, TenantId, UnixMillis};

use crate::SqlOrderStore;
use crate::config::Dialect;
use crate::error::convert;

use crate::tables::{corrupt, int, outbox};

/// The first page. Binds: tenant, status, updated before, limit.
const SELECT_FIRST: &str = "SELECT updated_at_ms, id FROM orders WHERE tenant = ? AND status = ? AND updated_at_ms < ? ORDER BY updated_at_ms, id LIMIT ?";

/// A later page, after the cursor (updated_at_ms, id); the redundant lower bound on
/// `updated_at_ms` lets both engines seek in the index before the row comparison.
/// Binds: tenant, status, updated before, cursor updated, cursor (updated, id), limit.
const SELECT_AFTER: &str = "SELECT updated_at_ms, id FROM orders WHERE tenant = ? AND status = ? AND updated_at_ms < ? AND updated_at_ms >= ? AND (updated_at_ms, id) > (?, ?) ORDER BY updated_at_ms, id LIMIT ?";

/// The main row, only at the version the cold copy was made of. Binds: tenant, id, version.
const DELETE_ORDER: &str = "DELETE FROM orders WHERE tenant = ? AND id = ? AND version = ?";

/// The rows that hang off an order, by (tenant, order id). Payments (and their refunds) are
/// the payments domain's records and stay (see [`ArchiveStore::delete_archived`]).
const DELETE_CHILDREN: [&str; 3] = [
    "DELETE FROM order_lines WHERE tenant = ? AND order_id = ?",
    "DELETE FROM order_identifiers WHERE tenant = ? AND order_id = ?",
    "DELETE FROM order_history WHERE tenant = ? AND order_id = ?",
];

/// Settled reservations go with the order; a reservation still `reserved` belongs to the
/// sweeper (its settlement reads the order's history), so it keeps the order hot.
const DELETE_SETTLED_RESERVATIONS: &str =
    "DELETE FROM stock_reservations WHERE tenant = ? AND order_id = ? AND state <> 'reserved'";
const COUNT_UNSETTLED: &str =
    "SELECT COUNT(*) AS n FROM stock_reservations WHERE tenant = ? AND order_id = ?";

/// The order's after-sales as this transaction sees them. On MariaDB a locking read: its
/// next-key locks on `idx_after_sales_order` hold off an application inserted meanwhile
/// until this transaction ends (an application also locks the order row first, see
/// `apply_after_sale`); SQLite runs one writer at a time.
fn select_after_sales(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::MySql => {
            "SELECT id, version FROM after_sales WHERE tenant = ? AND order_id = ? ORDER BY id FOR UPDATE"
        }
        Dialect::Sqlite => {
            "SELECT id, version FROM after_sales WHERE tenant = ? AND order_id = ? ORDER BY id"
        }
    }
}

/// What keeps an order hot whatever its status: units still held by a live after-sale
/// (a terminal after-sale has released or settled its units), a payment still pending
/// (its outcome moves the order) or a refund requested and not settled (its outcome
/// completes an after-sale or tells the order). Binds: tenant, order id, three times.
const COUNT_IN_FLIGHT: &str = "SELECT (SELECT COUNT(*) FROM after_sale_units WHERE tenant = ? AND order_id = ? AND held > 0) + (SELECT COUNT(*) FROM payments WHERE tenant = ? AND order_id = ? AND status = 'pending') + (SELECT COUNT(*) FROM payment_refunds WHERE tenant = ? AND order_id = ? AND status = 'requested') AS n";

/// [`COUNT_IN_FLIGHT`] and the reservations not settled, outside a transaction. Binds:
/// tenant, order id, four times.
const COUNT_IN_FLIGHT_ALL: &str = "SELECT (SELECT COUNT(*) FROM stock_reservations WHERE tenant = ? AND order_id = ? AND state = 'reserved') + (SELECT COUNT(*) FROM after_sale_units WHERE tenant = ? AND order_id = ? AND held > 0) + (SELECT COUNT(*) FROM payments WHERE tenant = ? AND order_id = ? AND status = 'pending') + (SELECT COUNT(*) FROM payment_refunds WHERE tenant = ? AND order_id = ? AND status = 'requested') AS n";

/// The after-sale rows of an order, by (tenant, order id): children first, the records
/// last (the children find theirs through them). Binds: tenant, tenant, order id.
const DELETE_AFTER_SALES: [&str; 3] = [
    "DELETE FROM after_sale_lines WHERE tenant = ? AND after_sale_id IN (SELECT id FROM after_sales WHERE tenant = ? AND order_id = ?)",
    "DELETE FROM after_sale_history WHERE tenant = ? AND after_sale_id IN (SELECT id FROM after_sales WHERE tenant = ? AND order_id = ?)",
    "DELETE FROM after_sale_refunds WHERE tenant = ? AND after_sale_id IN (SELECT id FROM after_sales WHERE tenant = ? AND order_id = ?)",
];

/// Then the records and the order's unit ledger (derived from them; nothing can apply for
/// an archived order). Binds: tenant, order id.
const DELETE_AFTER_SALE_RECORDS: [&str; 2] = [
    "DELETE FROM after_sales WHERE tenant = ? AND order_id = ?",
    "DELETE FROM after_sale_units WHERE tenant = ? AND order_id = ?",
];

#[async_trait]
impl ArchiveStore for SqlOrderStore {
    fn shards(&self) -> Vec<ShardId> {
        self.shards.ids()
    }

    async fn archivable(
        &self,
        shard: ShardId,
        tenant: &TenantId,
        status: &StatusCode,
        updated_before: UnixMillis,
        after: Option<&ArchiveCandidate>,
        limit: u32,
    ) -> DomainResult<Vec<ArchiveCandidate>> {
        let query = match after {
            None => sqlx::query(SELECT_FIRST)
                .bind(tenant.as_str().to_owned())
                .bind(status.as_str().to_owned())
                .bind(updated_before.get())
                .bind(i64::from(limit)),
            Some(cursor) => sqlx::query(SELECT_AFTER)
                .bind(tenant.as_str().to_owned())
                .bind(status.as_str().to_owned())
                .bind(updated_before.get())
                .bind(cursor.updated_at.get())
                .bind(cursor.updated_at.get())
                .bind(cursor.id.as_i64())
                .bind(i64::from(limit)),
        };
        let rows = query
            .fetch_all(self.shards.pool(shard)?)
            .await
            .map_err(convert)?;
        rows.iter()
            .map(|row| {
                Ok(ArchiveCandidate {
                    updated_at: UnixMillis::new(int(row, "updated_at_ms")?),
                    id: OrderId::from_raw(int(row, "id")? as u64).map_err(corrupt)?,
                })
            })
            .collect()
    }

    async fn in_flight(&self, tenant: &TenantId, id: OrderId) -> DomainResult<bool> {
        let mut query = sqlx::query(COUNT_IN_FLIGHT_ALL);
        for _ in 0..4 {
            query = query.bind(tenant.as_str()).bind(id.as_i64());
        }
        let row = query
            .fetch_one(self.shards.for_bucket(id.bucket()))
            .await
            .map_err(convert)?;
        Ok(int(&row, "n")? > 0)
    }

    async fn delete_archived(
        &self,
        tenant: &TenantId,
        id: OrderId,
        expected_version: u64,
        after_sales: &[(AfterSaleId, u64)],
        event: &OrderEvent,
    ) -> DomainResult<bool> {
        let (mut tx, _turn) = self.shards.begin_write_for(id.bucket()).await?;
        let deleted = sqlx::query(DELETE_ORDER)
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .bind(expected_version as i64)
            .execute(&mut *tx)
            .await
            .map_err(convert)?
            .rows_affected();
        if deleted != 1 {
            // dropped: rolled back (nothing was written)
            return Ok(false);
        }
        sqlx::query(DELETE_SETTLED_RESERVATIONS)
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(convert)?;
        let row = sqlx::query(COUNT_UNSETTLED)
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .fetch_one(&mut *tx)
            .await
            .map_err(convert)?;
        if int(&row, "n")? > 0 {
            return Ok(false);
        }
        // the after-sales on the shard must be exactly the ones the cold store holds
        let rows = sqlx::query(select_after_sales(self.shards.dialect))
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .fetch_all(&mut *tx)
            .await
            .map_err(convert)?;
        let mut on_shard = rows
            .iter()
            .map(|row| Ok((int(row, "id")?, int(row, "version")?)))
            .collect::<DomainResult<Vec<(i64, i64)>>>()?;
        let mut copied: Vec<(i64, i64)> = after_sales
            .iter()
            .map(|(id, version)| (id.as_i64(), *version as i64))
            .collect();
        on_shard.sort_unstable();
        copied.sort_unstable();
        if on_shard != copied {
            return Ok(false);
        }
        let row = sqlx::query(COUNT_IN_FLIGHT)
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .fetch_one(&mut *tx)
            .await
            .map_err(convert)?;
        if int(&row, "n")? > 0 {
            return Ok(false);
        }
        if !after_sales.is_empty() {
            for statement in DELETE_AFTER_SALES {
                sqlx::query(statement)
                    .bind(tenant.as_str())
                    .bind(tenant.as_str())
                    .bind(id.as_i64())
                    .execute(&mut *tx)
                    .await
                    .map_err(convert)?;
            }
        }
        // the after-sales' per-order records, then the order's own children (same binds)
        for statement in DELETE_AFTER_SALE_RECORDS.into_iter().chain(DELETE_CHILDREN) {
            sqlx::query(statement)
                .bind(tenant.as_str())
                .bind(id.as_i64())
                .execute(&mut *tx)
                .await
                .map_err(convert)?;
        }
        outbox::insert(&mut tx, &[event]).await?;
        tx.commit().await.map_err(convert)?;
        Ok(true)
    }
}
