//! The `order_history` table: one row per transition of an order, keyed by the order version
//! the transition wrote, on the order's shard. Its columns, their binding and the row decoder
//! are here and nowhere else.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::Row;
use sqlx::any::AnyRow;

use oc_model::{
    DomainError, DomainResult, HistoryEntry, OrderId, StatusCode, StockEffect, TenantId,
    TransitionEvent,
};

use super::{AnyQuery, corrupt, from_unix_ms, opt_text, placeholders, text, unix_ms};

/// The columns, in bind order.
const COLUMNS: &str = "tenant, order_id, version, from_status, to_status, event, operator, source_system, reason, data, stock, occurred_at_ms";

pub(crate) static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO order_history ({COLUMNS}) VALUES ({})",
        placeholders(COLUMNS.split(", ").count())
    )
});

/// Binds: tenant, order id.
pub(crate) static SELECT_OF_ORDER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM order_history WHERE tenant = ? AND order_id = ? ORDER BY version"
    )
});

/// Bind one row's values in [`COLUMNS`] order.
pub(crate) fn bind<'q>(query: AnyQuery<'q>, entry: &'q HistoryEntry) -> DomainResult<AnyQuery<'q>> {
    let data = if entry.data.is_empty() {
        None
    } else {
        Some(
            serde_json::to_string(&entry.data)
                .map_err(|e| DomainError::internal(format!("encode history data: {e}")))?,
        )
    };
    Ok(query
        .bind(entry.tenant.as_str())
        .bind(entry.order_id.as_i64())
        .bind(entry.version as i64)
        .bind(entry.from.as_str())
        .bind(entry.to.as_str())
        .bind(entry.event.as_str())
        .bind(entry.operator.as_str())
        .bind(entry.source_system.as_str())
        .bind(entry.reason.as_deref())
        .bind(data)
        .bind(entry.stock.as_str())
        .bind(unix_ms(entry.occurred_at)))
}

/// One row back into an entry.
pub(crate) fn decode(row: &AnyRow) -> DomainResult<HistoryEntry> {
    let int = |column: &str| row.try_get::<i64, _>(column).map_err(corrupt);
    let data: BTreeMap<String, serde_json::Value> = match opt_text(row, "data")? {
        None => BTreeMap::new(),
        Some(json) => serde_json::from_str(&json).map_err(corrupt)?,
    };
    let stock = text(row, "stock")?;
    Ok(HistoryEntry {
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        order_id: OrderId::from_raw(int("order_id")? as u64).map_err(corrupt)?,
        version: u64::try_from(int("version")?).map_err(corrupt)?,
        from: StatusCode::parse(text(row, "from_status")?).map_err(corrupt)?,
        to: StatusCode::parse(text(row, "to_status")?).map_err(corrupt)?,
        event: TransitionEvent::parse(text(row, "event")?).map_err(corrupt)?,
        operator: text(row, "operator")?,
        source_system: text(row, "source_system")?,
        reason: opt_text(row, "reason")?,
        data,
        stock: StockEffect::parse(&stock)
            .ok_or_else(|| corrupt(format!("unknown stock effect {stock:?}")))?,
        occurred_at: from_unix_ms(int("occurred_at_ms")?)?,
    })
}
