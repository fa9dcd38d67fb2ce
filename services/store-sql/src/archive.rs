//! [`ArchiveStore`] over the shards: the archive worker's page of candidates (index
//! `idx_orders_archive` of migration 0012) and the delete of an archived order, one local
//! transaction with its outbox event.

use async_trait::async_trait;
use oc_model::archive::{ArchiveCandidate, ArchiveStore};
use oc_model::{DomainResult, OrderEvent, OrderId, ShardId, StatusCode, TenantId, UnixMillis};

use crate::SqlOrderStore;
use crate::error::convert;
use crate::shards::begin;
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
/// the payments domain's records and stay.
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

    async fn delete_archived(
        &self,
        tenant: &TenantId,
        id: OrderId,
        expected_version: u64,
        event: &OrderEvent,
    ) -> DomainResult<bool> {
        let pool = self.shards.for_bucket(id.bucket());
        let mut tx = begin(pool).await?;
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
        for statement in DELETE_CHILDREN {
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
