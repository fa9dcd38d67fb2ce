//! `return_pickups` (migration 0014) and the after-sales' pickup columns: columns, decoding and
//! every statement on them.

use std::sync::LazyLock;

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use oc_model::aftersale::AfterSaleId;
use oc_model::logistics::{PickupCandidate, PickupItem, PickupStatus, ReturnPickup, Waybill};
use oc_model::{DomainResult, OrderId, StatusCode, TenantId};

use super::{
    AnyTx, Binder, Columns, Table, corrupt, count, fetch_all, fetch_optional, from_unix_ms, int,
    moved_one, opt_int, opt_text, text, unix_ms, unsigned,
};
use crate::error::{WriteError, convert};

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "return_pickups",
        Columns::of(&[
            "tenant",
            "id",
            "order_id",
            "seq",
            "status",
            "pickup_at_ms",
            "items",
            "total_weight_grams",
            "attempts",
            "next_attempt_at_ms",
            "waybill_no",
            "carrier",
            "last_error",
            "created_at_ms",
            "updated_at_ms",
        ]),
    )
});

fn bind<'q>(row: Binder<'q>, pickup: &'q ReturnPickup, items: String) -> DomainResult<Binder<'q>> {
    Ok(row
        .bind("tenant", pickup.tenant.as_str())
        .bind("id", pickup.id.as_i64())
        .bind("order_id", pickup.order_id.as_i64())
        .bind("seq", i64::from(pickup.seq))
        .bind("status", pickup.status.as_str())
        .bind("pickup_at_ms", unix_ms(pickup.pickup_at))
        .bind("items", items)
        .bind(
            "total_weight_grams",
            i64::try_from(pickup.total_weight_grams).map_err(corrupt)?,
        )
        .bind("attempts", i64::from(pickup.attempts))
        .bind("next_attempt_at_ms", pickup.next_attempt_at.map(unix_ms))
        .bind(
            "waybill_no",
            pickup.waybill.as_ref().map(|w| w.waybill_no.as_str()),
        )
        .bind(
            "carrier",
            pickup.waybill.as_ref().map(|w| w.carrier.as_str()),
        )
        .bind("last_error", pickup.last_error.as_deref())
        .bind("created_at_ms", unix_ms(pickup.created_at))
        .bind("updated_at_ms", unix_ms(pickup.updated_at)))
}

fn id_of(raw: u64) -> DomainResult<OrderId> {
    OrderId::from_raw(raw).map_err(corrupt)
}

fn decode(row: &AnyRow) -> DomainResult<ReturnPickup> {
    let status = text(row, "status")?;
    let items: Vec<PickupItem> = serde_json::from_str(&text(row, "items")?).map_err(corrupt)?;
    let waybill = match (opt_text(row, "waybill_no")?, opt_text(row, "carrier")?) {
        (Some(waybill_no), carrier) => Some(Waybill {
            waybill_no,
            carrier: carrier.unwrap_or_default(),
        }),
        (None, _) => None,
    };
    Ok(ReturnPickup {
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        id: id_of(unsigned(row, "id")?)?,
        order_id: id_of(unsigned(row, "order_id")?)?,
        seq: count(row, "seq")?,
        status: PickupStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown pickup status {status:?}")))?,
        pickup_at: from_unix_ms(int(row, "pickup_at_ms")?)?,
        items,
        total_weight_grams: unsigned(row, "total_weight_grams")?,
        attempts: count(row, "attempts")?,
        next_attempt_at: opt_int(row, "next_attempt_at_ms")?
            .map(from_unix_ms)
            .transpose()?,
        waybill,
        last_error: opt_text(row, "last_error")?,
        created_at: from_unix_ms(int(row, "created_at_ms")?)?,
        updated_at: from_unix_ms(int(row, "updated_at_ms")?)?,
    })
}

/// The order's next pickup number, read inside the writing transaction (a racing writer of
/// the same number loses on `uk_return_pickups_seq`).
pub(crate) async fn next_seq(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    order_id: OrderId,
) -> DomainResult<u32> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) AS last_seq FROM return_pickups WHERE tenant = ? AND order_id = ?",
    )
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .fetch_one(&mut **tx)
    .await
    .map_err(convert)?;
    Ok(count(&row, "last_seq")? + 1)
}

pub(crate) async fn insert(tx: &mut AnyTx<'_>, pickup: &ReturnPickup) -> Result<(), WriteError> {
    let items = serde_json::to_string(&pickup.items).map_err(|e| WriteError::Domain(corrupt(e)))?;
    let sql = TABLE.insert(1);
    bind(TABLE.binder(sqlx::query(&sql)), pickup, items)
        .map_err(WriteError::Domain)?
        .done()
        .execute(&mut **tx)
        .await
        .map_err(WriteError::Sql)?;
    Ok(())
}

/// Take an after-sale for a pickup: only while it is `approved`, at `version`, in no pickup.
pub(crate) async fn take_after_sale(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: AfterSaleId,
    version: u64,
    pickup: OrderId,
) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE after_sales SET pickup_id = ? WHERE tenant = ? AND id = ? AND version = ? AND status = 'approved' AND pickup_id IS NULL",
        )
        .bind(pickup.as_i64())
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .bind(i64::try_from(version).map_err(corrupt)?),
        &mut **tx,
    )
    .await
}

/// Approved after-sales without a pickup whose time is due, one row per order (its
/// earliest), soonest first.
pub(crate) async fn candidates(
    pool: &AnyPool,
    due_by_ms: i64,
    limit: u32,
) -> DomainResult<Vec<PickupCandidate>> {
    let rows = sqlx::query(
        "SELECT tenant, order_id, MIN(pickup_at_ms) AS earliest FROM after_sales WHERE status = 'approved' AND pickup_id IS NULL AND pickup_at_ms <= ? GROUP BY tenant, order_id ORDER BY earliest LIMIT ?",
    )
    .bind(due_by_ms)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(convert)?;
    rows.iter()
        .map(|row| {
            Ok(PickupCandidate {
                tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
                order_id: id_of(unsigned(row, "order_id")?)?,
                earliest_pickup_at: from_unix_ms(int(row, "earliest")?)?,
            })
        })
        .collect()
}

static SELECT_DUE: LazyLock<String> = LazyLock::new(|| {
    TABLE.select(
        "WHERE status = 'pending' AND next_attempt_at_ms <= ? ORDER BY next_attempt_at_ms LIMIT ?",
    )
});
static SELECT_ONE: LazyLock<String> = LazyLock::new(|| TABLE.select("WHERE tenant = ? AND id = ?"));
static SELECT_OF_ORDER: LazyLock<String> =
    LazyLock::new(|| TABLE.select("WHERE tenant = ? AND order_id = ? ORDER BY seq"));

pub(crate) async fn due(
    pool: &AnyPool,
    now_ms: i64,
    limit: u32,
) -> DomainResult<Vec<ReturnPickup>> {
    fetch_all(
        sqlx::query(&SELECT_DUE).bind(now_ms).bind(i64::from(limit)),
        pool,
        decode,
    )
    .await
}

pub(crate) async fn get(
    pool: &AnyPool,
    tenant: &TenantId,
    id: OrderId,
) -> DomainResult<Option<ReturnPickup>> {
    fetch_optional(
        sqlx::query(&SELECT_ONE)
            .bind(tenant.as_str())
            .bind(id.as_i64()),
        pool,
        decode,
    )
    .await
}

pub(crate) async fn of_order(
    pool: &AnyPool,
    tenant: &TenantId,
    order_id: OrderId,
) -> DomainResult<Vec<ReturnPickup>> {
    fetch_all(
        sqlx::query(&SELECT_OF_ORDER)
            .bind(tenant.as_str())
            .bind(order_id.as_i64()),
        pool,
        decode,
    )
    .await
}

/// Claim the next call: attempts from `seen` to `seen + 1`, only while pending.
pub(crate) async fn claim_attempt(
    pool: &AnyPool,
    tenant: &TenantId,
    id: OrderId,
    seen: u32,
    next_ms: i64,
    at_ms: i64,
) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE return_pickups SET attempts = attempts + 1, next_attempt_at_ms = ?, updated_at_ms = ? WHERE tenant = ? AND id = ? AND status = 'pending' AND attempts = ?",
        )
        .bind(next_ms)
        .bind(at_ms)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .bind(i64::from(seen)),
        pool,
    )
    .await
}

pub(crate) async fn record_failure(
    pool: &AnyPool,
    tenant: &TenantId,
    id: OrderId,
    error: &str,
    at_ms: i64,
) -> DomainResult<()> {
    let error: String = error.chars().take(512).collect();
    sqlx::query(
        "UPDATE return_pickups SET last_error = ?, updated_at_ms = ? WHERE tenant = ? AND id = ? AND status = 'pending'",
    )
    .bind(error)
    .bind(at_ms)
    .bind(tenant.as_str())
    .bind(id.as_i64())
    .execute(pool)
    .await
    .map_err(convert)?;
    Ok(())
}

/// The pickup's compare-and-set from `pending` to its end.
pub(crate) async fn finish(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: OrderId,
    status: PickupStatus,
    waybill: Option<&Waybill>,
    error: Option<&str>,
    at_ms: i64,
) -> DomainResult<bool> {
    let error: Option<String> = error.map(|e| e.chars().take(512).collect());
    moved_one(
        sqlx::query(
            "UPDATE return_pickups SET status = ?, waybill_no = ?, carrier = ?, last_error = COALESCE(?, last_error), next_attempt_at_ms = NULL, updated_at_ms = ? WHERE tenant = ? AND id = ? AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(waybill.map(|w| w.waybill_no.clone()))
        .bind(waybill.map(|w| w.carrier.clone()))
        .bind(error)
        .bind(at_ms)
        .bind(tenant.as_str())
        .bind(id.as_i64()),
        &mut **tx,
    )
    .await
}

/// An after-sale's side of a pickup's end: its waybill (when booked) and the version bump of
/// the change, by a compare-and-set on its version.
pub(crate) async fn mark_after_sale(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: AfterSaleId,
    expected_version: u64,
    status: &StatusCode,
    waybill: Option<&Waybill>,
    at_ms: i64,
) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE after_sales SET waybill_no = COALESCE(?, waybill_no), version = version + 1, updated_at_ms = ? WHERE tenant = ? AND id = ? AND version = ? AND status = ?",
        )
        .bind(waybill.map(|w| w.waybill_no.clone()))
        .bind(at_ms)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .bind(i64::try_from(expected_version).map_err(corrupt)?)
        .bind(status.as_str()),
        &mut **tx,
    )
    .await
}
