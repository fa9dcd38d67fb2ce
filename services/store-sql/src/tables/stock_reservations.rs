//! The `stock_reservations` table: one row per (tenant, order, SKU) beside the SKU's level,
//! on the shard of the bucket of `(tenant, sku)`. A row's `state` is the guard of every move
//! of its units: a statement moves it only from the state it names, so a confirm or release
//! runs at most once however many callers (requests, timeout workers, sweepers) race for it.
//! Its columns, their binding and the row decoder are here and nowhere else.

use std::sync::LazyLock;

use sqlx::any::AnyRow;

use oc_model::schedule::ReservationCursor;
use oc_model::stock::Reservation;
use oc_model::{OrderId, ReservationState, Sku, TenantId, UnixMillis};

use super::{AnyQuery, corrupt, from_unix_ms, int, text};

/// The columns, in bind order.
const COLUMNS: &str =
    "tenant, order_id, sku, quantity, state, expires_at_ms, created_at_ms, updated_at_ms";

/// Binds: tenant, order id, sku, quantity, expires at, created at, updated at.
pub(crate) static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!("INSERT INTO stock_reservations ({COLUMNS}) VALUES (?, ?, ?, ?, 'reserved', ?, ?, ?)")
});

/// Move a reservation from one state to another, only from that state.
/// Binds: new state, updated at, tenant, order id, sku, old state.
pub(crate) const MOVE: &str = "UPDATE stock_reservations SET state = ?, updated_at_ms = ? WHERE tenant = ? AND order_id = ? AND sku = ? AND state = ?";

/// Binds: tenant, order id, sku.
pub(crate) static SELECT_ONE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM stock_reservations WHERE tenant = ? AND order_id = ? AND sku = ?"
    )
});

/// Reservations still held past their expiry, any tenant, through `idx_reservations_due`
/// (migration 0007), from the earliest. Binds: now, limit.
static SELECT_EXPIRED_FIRST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM stock_reservations WHERE state = 'reserved' AND expires_at_ms <= ? \
         ORDER BY expires_at_ms, tenant, order_id, sku LIMIT ?"
    )
});

/// The same after a cursor: the lower bound on the expiry keeps the index range narrow, the
/// row comparison (both engines) places the cursor exactly.
/// Binds: now, cursor expiry, cursor (expiry, tenant, order id, sku), limit.
static SELECT_EXPIRED_AFTER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM stock_reservations WHERE state = 'reserved' AND expires_at_ms <= ? \
         AND expires_at_ms >= ? AND (expires_at_ms, tenant, order_id, sku) > (?, ?, ?, ?) \
         ORDER BY expires_at_ms, tenant, order_id, sku LIMIT ?"
    )
});

/// The page of expired reservations after `after` (see [`SELECT_EXPIRED_AFTER`]).
pub(crate) fn select_expired(
    now: UnixMillis,
    after: Option<&ReservationCursor>,
    limit: u32,
) -> AnyQuery<'static> {
    match after {
        None => sqlx::query(&SELECT_EXPIRED_FIRST)
            .bind(now.get())
            .bind(i64::from(limit)),
        Some(cursor) => sqlx::query(&SELECT_EXPIRED_AFTER)
            .bind(now.get())
            .bind(cursor.expires_at.get())
            .bind(cursor.expires_at.get())
            .bind(cursor.tenant.as_str().to_owned())
            .bind(cursor.order_id.as_i64())
            .bind(cursor.sku.as_str().to_owned())
            .bind(i64::from(limit)),
    }
}

/// One row back into a reservation.
pub(crate) fn decode(row: &AnyRow) -> oc_model::DomainResult<Reservation> {
    let state = text(row, "state")?;
    Ok(Reservation {
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        order_id: OrderId::from_raw(int(row, "order_id")? as u64).map_err(corrupt)?,
        sku: Sku::parse(text(row, "sku")?).map_err(corrupt)?,
        quantity: u64::try_from(int(row, "quantity")?).map_err(corrupt)?,
        state: ReservationState::parse(&state)
            .ok_or_else(|| corrupt(format!("unknown reservation state {state:?}")))?,
        expires_at: from_unix_ms(int(row, "expires_at_ms")?)?,
        created_at: from_unix_ms(int(row, "created_at_ms")?)?,
        updated_at: from_unix_ms(int(row, "updated_at_ms")?)?,
    })
}
