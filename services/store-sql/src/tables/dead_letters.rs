//! `projector_dead_letters`: the orders a read model refused, one row per tenant, order and
//! read model (in shard 0 by convention; every shard has the table). The projector records
//! them and moves on; `ordercenter dead-letters` lists and replays them.

use std::sync::LazyLock;

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use oc_model::ports::{DeadLetter, SinkKind};
use oc_model::{DomainError, DomainResult, ErrorCode, OrderId, TenantId};

use super::{Binder, Columns, Table, corrupt, from_unix_ms, int, opt_text, text, unix_ms};
use crate::error::{convert, is_unique_violation};

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "projector_dead_letters",
        Columns::of(&[
            "tenant_id",
            "order_id",
            "sink",
            "order_version",
            "error_code",
            "error_message",
            "attempts",
            "first_failed_at_ms",
            "last_failed_at_ms",
            "event_id",
        ]),
    )
});

/// What a repeated failure replaces (the key and the first failure time stay).
static REPEAT: LazyLock<Columns> = LazyLock::new(|| {
    Columns::of(&[
        "order_version",
        "error_code",
        "error_message",
        "last_failed_at_ms",
        "event_id",
    ])
});

fn bind<'q>(row: Binder<'q>, letter: &'q DeadLetter) -> Binder<'q> {
    row.bind("tenant_id", letter.tenant.as_str())
        .bind("order_id", letter.order_id.as_i64())
        .bind("sink", letter.sink.as_str())
        .bind("order_version", version(letter.version))
        .bind("error_code", letter.error_code.as_str())
        .bind("error_message", letter.error_message.as_str())
        .bind("attempts", i64::from(letter.attempts.max(1)))
        .bind("first_failed_at_ms", unix_ms(letter.first_failed_at))
        .bind("last_failed_at_ms", unix_ms(letter.last_failed_at))
        .bind("event_id", letter.event_id.as_deref())
}

fn bind_repeat<'q>(row: Binder<'q>, letter: &'q DeadLetter) -> Binder<'q> {
    row.bind("order_version", version(letter.version))
        .bind("error_code", letter.error_code.as_str())
        .bind("error_message", letter.error_message.as_str())
        .bind("last_failed_at_ms", unix_ms(letter.last_failed_at))
        .bind("event_id", letter.event_id.as_deref())
}

fn version(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn decode(row: &AnyRow) -> DomainResult<DeadLetter> {
    let tenant = TenantId::parse(text(row, "tenant_id")?).map_err(corrupt)?;
    let order_id = OrderId::from_raw(int(row, "order_id")? as u64).map_err(corrupt)?;
    let sink_name = text(row, "sink")?;
    let sink = SinkKind::parse(&sink_name)
        .ok_or_else(|| corrupt(format!("unknown read model {sink_name:?}")))?;
    let code_name = text(row, "error_code")?;
    // a code this build does not know (written by a newer one) still lists
    let error_code = ErrorCode::parse(&code_name).unwrap_or(ErrorCode::Internal);
    Ok(DeadLetter {
        tenant,
        order_id,
        sink,
        version: u64::try_from(int(row, "order_version")?).map_err(corrupt)?,
        error_code,
        error_message: text(row, "error_message")?,
        attempts: u32::try_from(int(row, "attempts")?).map_err(corrupt)?,
        first_failed_at: from_unix_ms(int(row, "first_failed_at_ms")?)?,
        last_failed_at: from_unix_ms(int(row, "last_failed_at_ms")?)?,
        event_id: opt_text(row, "event_id")?,
    })
}

/// Adds `letter.attempts` to an existing record; whether there was one.
async fn add_to_existing(pool: &AnyPool, letter: &DeadLetter) -> DomainResult<bool> {
    let sql = format!(
        "UPDATE {} SET attempts = attempts + ?, {} WHERE tenant_id = ? AND order_id = ? AND sink = ?",
        TABLE.name,
        REPEAT.assignments()
    );
    let query = sqlx::query(&sql).bind(i64::from(letter.attempts.max(1)));
    let updated = bind_repeat(REPEAT.binder(query), letter)
        .done()
        .bind(letter.tenant.as_str())
        .bind(letter.order_id.as_i64())
        .bind(letter.sink.as_str())
        .execute(pool)
        .await
        .map_err(convert)?;
    Ok(updated.rows_affected() > 0)
}

pub(crate) async fn record(pool: &AnyPool, letter: &DeadLetter) -> DomainResult<()> {
    if add_to_existing(pool, letter).await? {
        return Ok(());
    }
    let insert = TABLE.insert(1);
    match bind(TABLE.binder(sqlx::query(&insert)), letter)
        .done()
        .execute(pool)
        .await
    {
        Ok(_) => Ok(()),
        // recorded in between (a replay and the projector at once): add to that one
        Err(error) if is_unique_violation(&error) => {
            if add_to_existing(pool, letter).await? {
                Ok(())
            } else {
                Err(DomainError::new(
                    ErrorCode::Retryable,
                    "dead letter removed while being recorded",
                ))
            }
        }
        Err(error) => Err(convert(error)),
    }
}

pub(crate) async fn list(
    pool: &AnyPool,
    tenant: Option<&TenantId>,
    limit: u32,
) -> DomainResult<Vec<DeadLetter>> {
    let order = "ORDER BY first_failed_at_ms, tenant_id, order_id, sink LIMIT ?";
    let rows = match tenant {
        Some(tenant) => {
            sqlx::query(&TABLE.select(&format!("WHERE tenant_id = ? {order}")))
                .bind(tenant.as_str())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        }
        None => {
            sqlx::query(&TABLE.select(order))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        }
    }
    .map_err(convert)?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn remove(
    pool: &AnyPool,
    tenant: &TenantId,
    order_id: OrderId,
    sink: SinkKind,
) -> DomainResult<()> {
    sqlx::query(
        "DELETE FROM projector_dead_letters WHERE tenant_id = ? AND order_id = ? AND sink = ?",
    )
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(sink.as_str())
    .execute(pool)
    .await
    .map_err(convert)?;
    Ok(())
}

pub(crate) async fn count(pool: &AnyPool) -> DomainResult<u64> {
    let row = sqlx::query("SELECT COUNT(*) AS open FROM projector_dead_letters")
        .fetch_one(pool)
        .await
        .map_err(convert)?;
    u64::try_from(int(&row, "open")?).map_err(corrupt)
}
