//! [`TransitionStore`] over the shards: a transition is one local transaction on the order's
//! shard — the main row's compare-and-set, the history row, the outbox event.

use async_trait::async_trait;

use oc_model::lifecycle::{TransitionStore, TransitionWrite};
use oc_model::ports::OrderStore;
use oc_model::{DomainError, DomainResult, ErrorCode, HistoryEntry, Order, OrderId, TenantId};

use crate::codec::{assert_sealed, body_json, unix_ms};
use crate::error::convert;
use crate::{SqlOrderStore, begin, begin_read, history, insert_outbox};

/// Binds: status, version, updated at, pay deadline, body, then tenant, id and the expected
/// version. Lines, identifiers, money and extension columns are not written: a transition
/// does not change them (and writing the extension columns back could undo a concurrent
/// re-encryption, which does not bump the version).
const UPDATE_FOR_TRANSITION: &str = "UPDATE orders SET status = ?, version = ?, updated_at_ms = ?, pay_deadline_ms = ?, body = ? WHERE tenant = ? AND id = ? AND version = ?";

#[async_trait]
impl TransitionStore for SqlOrderStore {
    async fn commit_transition(&self, write: TransitionWrite) -> DomainResult<Order> {
        write.check()?;
        let order = &write.order;
        order.check_invariants()?;
        assert_sealed(order)?;
        let main = &order.main;
        let pool = self.pool_for_bucket(main.id.bucket());
        let mut tx = begin(pool).await?;
        let updated = sqlx::query(UPDATE_FOR_TRANSITION)
            .bind(main.status.as_str())
            .bind(main.version as i64)
            .bind(unix_ms(main.updated_at))
            .bind(main.pay_deadline.map(unix_ms))
            .bind(body_json(order)?)
            .bind(main.tenant.as_str())
            .bind(main.id.as_i64())
            .bind(write.expected_version as i64)
            .execute(&mut *tx)
            .await
            .map_err(convert)?;
        if updated.rows_affected() != 1 {
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
        if let Some(entry) = &write.history {
            history::bind(sqlx::query(&history::INSERT), entry)?
                .execute(&mut *tx)
                .await
                .map_err(convert)?;
        }
        insert_outbox(&mut tx, &[&write.event]).await?;
        tx.commit().await.map_err(convert)?;
        Ok(write.order)
    }

    async fn history(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Vec<HistoryEntry>> {
        let pool = self.pool_for_bucket(id.bucket());
        let mut tx = begin_read(pool, self.dialect).await?;
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
