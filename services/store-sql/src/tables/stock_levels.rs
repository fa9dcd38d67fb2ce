//! The `stock_levels` table: one row per (tenant, SKU) on the shard of the bucket of
//! `(tenant, sku)`. Units move between its counters only through the conditional statements
//! here, each of which keeps `available + reserved + sold` (see `oc_model::stock`).
//! Its columns, their binding and the row decoder are here and nowhere else.

use std::sync::LazyLock;

use sqlx::Row;
use sqlx::any::AnyRow;

use oc_model::{Bucket, DomainResult, Sku, StockLevel, TenantId};

use super::{AnyQuery, corrupt, from_unix_ms, text, unix_ms};

/// The columns, in bind order.
const COLUMNS: &str = "tenant, sku, bucket, available, reserved, sold, updated_at_ms";

/// Binds: tenant, sku.
pub(crate) static SELECT: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM stock_levels WHERE tenant = ? AND sku = ?"));

/// The levels of `count` SKUs of one tenant. Binds: tenant, then each sku.
pub(crate) fn select_many(count: usize) -> String {
    let marks = vec!["?"; count].join(", ");
    format!("SELECT {COLUMNS} FROM stock_levels WHERE tenant = ? AND sku IN ({marks})")
}

/// A new level with `available` units and nothing else; binds: [`bind_new`].
pub(crate) static INSERT: LazyLock<String> =
    LazyLock::new(|| format!("INSERT INTO stock_levels ({COLUMNS}) VALUES (?, ?, ?, ?, 0, 0, ?)"));

/// Set the units for sale. Binds: available, updated at, tenant, sku.
pub(crate) const SET_AVAILABLE: &str =
    "UPDATE stock_levels SET available = ?, updated_at_ms = ? WHERE tenant = ? AND sku = ?";

/// available → reserved, only if enough. Binds: n, n, updated at, tenant, sku, n.
pub(crate) const RESERVE_AVAILABLE: &str = "UPDATE stock_levels SET available = available - ?, reserved = reserved + ?, updated_at_ms = ? WHERE tenant = ? AND sku = ? AND available >= ?";

/// reserved → sold. Binds: n, n, updated at, tenant, sku, n.
pub(crate) const SELL_RESERVED: &str = "UPDATE stock_levels SET reserved = reserved - ?, sold = sold + ?, updated_at_ms = ? WHERE tenant = ? AND sku = ? AND reserved >= ?";

/// reserved → available. Binds: n, n, updated at, tenant, sku, n.
pub(crate) const RETURN_RESERVED: &str = "UPDATE stock_levels SET reserved = reserved - ?, available = available + ?, updated_at_ms = ? WHERE tenant = ? AND sku = ? AND reserved >= ?";

/// sold → available. Binds: n, n, updated at, tenant, sku, n.
pub(crate) const RETURN_SOLD: &str = "UPDATE stock_levels SET sold = sold - ?, available = available + ?, updated_at_ms = ? WHERE tenant = ? AND sku = ? AND sold >= ?";

/// Bind a new level's values for [`INSERT`].
pub(crate) fn bind_new<'q>(
    query: AnyQuery<'q>,
    tenant: &'q TenantId,
    sku: &'q Sku,
    available: u64,
    now: time::OffsetDateTime,
) -> AnyQuery<'q> {
    query
        .bind(tenant.as_str())
        .bind(sku.as_str())
        .bind(i64::from(Bucket::of_key(tenant, sku.as_str()).get()))
        .bind(available as i64)
        .bind(unix_ms(now))
}

/// Bind `n` units moved by one of the counter statements, then the row's key: the shape
/// of [`RESERVE_AVAILABLE`], [`SELL_RESERVED`], [`RETURN_RESERVED`] and [`RETURN_SOLD`].
pub(crate) fn bind_move<'q>(
    query: AnyQuery<'q>,
    units: u64,
    tenant: &'q TenantId,
    sku: &'q Sku,
    now: time::OffsetDateTime,
) -> AnyQuery<'q> {
    let units = units as i64;
    query
        .bind(units)
        .bind(units)
        .bind(unix_ms(now))
        .bind(tenant.as_str())
        .bind(sku.as_str())
        .bind(units)
}

/// One row back into a level.
pub(crate) fn decode(row: &AnyRow) -> DomainResult<StockLevel> {
    let count = |column: &str| -> DomainResult<u64> {
        let value: i64 = row.try_get(column).map_err(corrupt)?;
        u64::try_from(value).map_err(|_| corrupt(format!("{column} is negative: {value}")))
    };
    Ok(StockLevel {
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        sku: Sku::parse(text(row, "sku")?).map_err(corrupt)?,
        available: count("available")?,
        reserved: count("reserved")?,
        sold: count("sold")?,
        updated_at: from_unix_ms(row.try_get("updated_at_ms").map_err(corrupt)?)?,
    })
}
