//! `outbox`: the events of committed changes, written in the change's own transaction and
//! read by the relay in sequence (`seq`) order per shard.

use std::sync::LazyLock;

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use oc_model::{DomainError, DomainResult, OrderEvent, OutboxEntry, ShardId, UnixMillis};

use super::{AnyQuery, AnyTx, Binder, Columns, Table, corrupt, int, placeholders, text};
use crate::error::convert;

/// The columns a writer binds (`seq` is assigned by the database, `published_at_ms` by the
/// relay).
pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "outbox",
        Columns::of(&["tenant", "order_id", "version", "payload", "created_at_ms"]),
    )
});

fn bind<'q>(row: Binder<'q>, event: &'q OrderEvent) -> DomainResult<Binder<'q>> {
    let payload = serde_json::to_string(event)
        .map_err(|e| DomainError::internal(format!("encode event: {e}")))?;
    Ok(row
        .bind("tenant", event.tenant.as_str())
        .bind("order_id", event.order_id.as_i64())
        .bind("version", event.version as i64)
        .bind("payload", payload)
        .bind("created_at_ms", UnixMillis::floor(event.occurred_at).get()))
}

/// The outbox rows of `events`, in one statement, in the given order (their `seq` order).
pub(crate) async fn insert(tx: &mut AnyTx<'_>, events: &[&OrderEvent]) -> DomainResult<()> {
    let sql = insert_sql(events);
    bind_rows(sqlx::query(&sql), events)?
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    Ok(())
}

/// The statement [`insert`] runs for `events`.
pub(crate) fn insert_sql(events: &[&OrderEvent]) -> String {
    TABLE.insert(events.len())
}

/// Binds the rows of [`insert_sql`]'s statement onto `query`.
pub(crate) fn bind_rows<'q>(
    mut query: AnyQuery<'q>,
    events: &[&'q OrderEvent],
) -> DomainResult<AnyQuery<'q>> {
    for event in events {
        query = bind(TABLE.binder(query), event)?.done();
    }
    Ok(query)
}

fn decode(row: &AnyRow, shard: ShardId) -> DomainResult<OutboxEntry> {
    let sequence = int(row, "seq")?;
    let event: OrderEvent = serde_json::from_str(&text(row, "payload")?).map_err(corrupt)?;
    Ok(OutboxEntry {
        shard,
        sequence: sequence as u64,
        event,
    })
}

/// Unpublished rows of `shard`, in sequence order.
pub(crate) async fn pending(
    pool: &AnyPool,
    shard: ShardId,
    limit: u32,
) -> DomainResult<Vec<OutboxEntry>> {
    let rows = sqlx::query(
        "SELECT seq, payload FROM outbox WHERE published_at_ms IS NULL ORDER BY seq LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(convert)?;
    rows.iter().map(|row| decode(row, shard)).collect()
}

/// Rows of `shard` after sequence `after` (exclusive; `None`: from the first), published or
/// not, in sequence order: the single-node projector's durable read of the outbox.
pub(crate) async fn after(
    pool: &AnyPool,
    shard: ShardId,
    after: Option<u64>,
    limit: u32,
) -> DomainResult<Vec<OutboxEntry>> {
    // sequences start at 1; one past i64 is past every row
    let after = after.map_or(0, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
    let rows = sqlx::query("SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?")
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(convert)?;
    rows.iter().map(|row| decode(row, shard)).collect()
}

/// Marks rows published now.
pub(crate) async fn mark_published(pool: &AnyPool, sequences: &[u64]) -> DomainResult<()> {
    if sequences.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE outbox SET published_at_ms = ? WHERE seq IN ({})",
        placeholders(sequences.len())
    );
    let mut query = sqlx::query(&sql).bind(UnixMillis::now().get());
    for sequence in sequences {
        query = query.bind(*sequence as i64);
    }
    query.execute(pool).await.map_err(convert)?;
    Ok(())
}

/// Deletes up to `limit` rows published before `published_before` (and below sequence
/// `below`, when given), oldest publication first, through the `(published_at_ms, seq)`
/// index. The rows are chosen by one read and deleted by their sequences in one statement,
/// which repeats the conditions: a row is deleted only if it still qualifies.
pub(crate) async fn purge(
    pool: &AnyPool,
    published_before: UnixMillis,
    below: Option<u64>,
    limit: u32,
) -> DomainResult<u64> {
    // sequences start at 1; a bound past i64 bounds nothing
    let below = below.map_or(i64::MAX, |seq| i64::try_from(seq).unwrap_or(i64::MAX));
    let rows = sqlx::query(
        "SELECT seq FROM outbox WHERE published_at_ms IS NOT NULL AND published_at_ms < ? AND seq < ? \
         ORDER BY published_at_ms, seq LIMIT ?",
    )
    .bind(published_before.get())
    .bind(below)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(convert)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "DELETE FROM outbox WHERE published_at_ms IS NOT NULL AND published_at_ms < ? AND seq < ? AND seq IN ({})",
        placeholders(rows.len())
    );
    let mut query = sqlx::query(&sql).bind(published_before.get()).bind(below);
    for row in &rows {
        query = query.bind(int(row, "seq")?);
    }
    let done = query.execute(pool).await.map_err(convert)?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_one_marker() {
        assert_eq!(TABLE.insert(2).matches('?').count(), 2 * 5);
    }
}
