//! `idempotency`: a create's idempotency key (scoped to tenant and buyer), the hash of its
//! request and the order it made, written first in the create's transaction so concurrent
//! duplicates queue on its primary key.

use std::sync::LazyLock;

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use oc_model::ports::{IdempotencyRecord, NewOrder};
use oc_model::{DomainResult, Order, OrderId, UnixMillis};

use super::{AnyQuery, AnyTx, Binder, Columns, Table, corrupt, text, unsigned};
use crate::error::{WriteError, convert};

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "idempotency",
        Columns::of(&[
            "tenant",
            "buyer_id",
            "idem_key",
            "request_hash",
            "order_id",
            "created_at_ms",
        ]),
    )
});

fn bind<'q>(row: Binder<'q>, order: &'q Order, record: &'q IdempotencyRecord) -> Binder<'q> {
    row.bind("tenant", order.main.tenant.as_str())
        .bind("buyer_id", order.main.buyer_id.as_str())
        .bind("idem_key", record.key.as_str())
        .bind("request_hash", record.request_hash.as_str())
        .bind("order_id", order.main.id.as_i64())
        .bind(
            "created_at_ms",
            UnixMillis::floor(order.main.created_at).get(),
        )
}

/// The idempotency claims of `creates` that carry a key, in one statement. The database's own
/// error is kept: a unique violation means someone committed the key first.
pub(crate) async fn insert(tx: &mut AnyTx<'_>, creates: &[&NewOrder]) -> Result<(), WriteError> {
    let Some(sql) = insert_sql(creates) else {
        return Ok(());
    };
    bind_rows(sqlx::query(&sql), creates)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The statement [`insert`] runs for `creates`, if any of them has a key.
pub(crate) fn insert_sql(creates: &[&NewOrder]) -> Option<String> {
    let keyed = creates.iter().filter(|c| c.idempotency.is_some()).count();
    (keyed > 0).then(|| TABLE.insert(keyed))
}

/// Binds the rows of [`insert_sql`]'s statement onto `query`.
pub(crate) fn bind_rows<'q>(mut query: AnyQuery<'q>, creates: &[&'q NewOrder]) -> AnyQuery<'q> {
    for create in creates {
        if let Some(record) = &create.idempotency {
            query = bind(TABLE.binder(query), &create.order, record).done();
        }
    }
    query
}

/// The stored request hash and order of a key, if it was committed.
pub(crate) async fn find(
    pool: &AnyPool,
    order: &Order,
    key: &str,
) -> DomainResult<Option<(String, OrderId)>> {
    let row = sqlx::query(
        "SELECT request_hash, order_id FROM idempotency WHERE tenant = ? AND buyer_id = ? AND idem_key = ?",
    )
    .bind(order.main.tenant.as_str())
    .bind(order.main.buyer_id.as_str())
    .bind(key)
    .fetch_optional(pool)
    .await
    .map_err(convert)?;
    row.map(|row| {
        let (hash, id) = claimed(&row, "order_id")?;
        Ok((hash, OrderId::from_raw(id).map_err(corrupt)?))
    })
    .transpose()
}

/// A committed key's request hash and the raw id in `id_column` of what it created (an
/// order here, a payment in `payment_idempotency`).
pub(crate) fn claimed(row: &AnyRow, id_column: &str) -> DomainResult<(String, u64)> {
    Ok((text(row, "request_hash")?, unsigned(row, id_column)?))
}

/// Deletes up to `limit` records created before `created_before`, oldest first, through the
/// `created_at_ms` index: chosen by one read, deleted by their keys in one statement that
/// repeats the age condition.
pub(crate) async fn purge(
    pool: &AnyPool,
    created_before: UnixMillis,
    limit: u32,
) -> DomainResult<u64> {
    let rows = sqlx::query(
        "SELECT tenant, buyer_id, idem_key FROM idempotency WHERE created_at_ms < ? \
         ORDER BY created_at_ms LIMIT ?",
    )
    .bind(created_before.get())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(convert)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let keys = vec!["(tenant = ? AND buyer_id = ? AND idem_key = ?)"; rows.len()].join(" OR ");
    let sql = format!("DELETE FROM idempotency WHERE created_at_ms < ? AND ({keys})");
    let mut query = sqlx::query(&sql).bind(created_before.get());
    for row in &rows {
        query = query
            .bind(text(row, "tenant")?)
            .bind(text(row, "buyer_id")?)
            .bind(text(row, "idem_key")?);
    }
    let done = query.execute(pool).await.map_err(convert)?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_one_marker() {
        assert_eq!(TABLE.insert(2).matches('?').count(), 2 * 6);
    }
}
