//! `after_sales`, `after_sale_lines`, `after_sale_history`, `after_sale_units` and
//! `after_sale_refunds` (migration 0011): columns, decoding and every statement on them. The
//! three tables a record is made of (`after_sales`, `after_sale_lines`,
//! `after_sale_history`) each name their columns once, as a [`Table`] with one bind function.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

use oc_model::aftersale::{
    AfterSale, AfterSaleChannel, AfterSaleHistoryEntry, AfterSaleId, AfterSaleLine,
    AfterSaleRefund, AfterSaleType, LineSplit, Reviewer, SplitKey,
};
use oc_model::{
    Currency, DomainError, DomainResult, Money, OrderId, PaymentId, RefundId, StatusCode, TenantId,
    TransitionEvent,
};

use super::{
    AnyTx, Binder, Columns, Table, corrupt, count, currency_of, fetch_all, from_unix_ms, int,
    moved_one, opt_int, opt_text, text, unix_ms, unsigned,
};
use crate::error::{WriteError, convert};

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "after_sales",
        Columns::of(&[
            "tenant",
            "id",
            "order_id",
            "kind",
            "channel",
            "applicant",
            "reviewer",
            "status",
            "version",
            "appealed",
            "reason",
            "currency",
            "refund_amount",
            "created_at_ms",
            "updated_at_ms",
            "pickup_at_ms",
            "pickup_id",
            "waybill_no",
        ]),
    )
});

pub(crate) static LINE_TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "after_sale_lines",
        Columns::of(&[
            "tenant",
            "after_sale_id",
            "line_no",
            "sku",
            "promotion_type",
            "unit_price",
            "quantity",
            "amount",
        ]),
    )
});

pub(crate) static HISTORY_TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "after_sale_history",
        Columns::of(&[
            "tenant",
            "after_sale_id",
            "version",
            "from_status",
            "to_status",
            "event",
            "channel",
            "operator",
            "reason",
            "occurred_at_ms",
        ]),
    )
});

fn bind<'q>(row: Binder<'q>, after_sale: &'q AfterSale, version: i64) -> Binder<'q> {
    row.bind("tenant", after_sale.tenant.as_str())
        .bind("id", after_sale.id.as_i64())
        .bind("order_id", after_sale.order_id.as_i64())
        .bind("kind", after_sale.kind.as_str())
        .bind("channel", after_sale.channel.as_str())
        .bind("applicant", after_sale.applicant.as_str())
        .bind("reviewer", after_sale.reviewer.as_str())
        .bind("status", after_sale.status.as_str())
        .bind("version", version)
        .bind("appealed", i64::from(after_sale.appealed))
        .bind("reason", after_sale.reason.as_deref())
        .bind("currency", after_sale.refund_amount.currency.code())
        .bind("refund_amount", after_sale.refund_amount.minor)
        .bind("created_at_ms", unix_ms(after_sale.created_at))
        .bind("updated_at_ms", unix_ms(after_sale.updated_at))
        .bind("pickup_at_ms", after_sale.pickup_at.map(unix_ms))
        .bind("pickup_id", after_sale.pickup_id.map(OrderId::as_i64))
        .bind("waybill_no", after_sale.waybill_no.as_deref())
}

fn bind_line<'q>(
    row: Binder<'q>,
    after_sale: &'q AfterSale,
    line: &'q AfterSaleLine,
) -> Binder<'q> {
    row.bind("tenant", after_sale.tenant.as_str())
        .bind("after_sale_id", after_sale.id.as_i64())
        .bind("line_no", i64::from(line.line_no))
        .bind("sku", line.sku.as_str())
        .bind("promotion_type", line.promotion_type.as_deref())
        .bind("unit_price", line.unit_price.minor)
        .bind("quantity", i64::from(line.quantity))
        .bind("amount", line.amount.minor)
}

fn bind_history<'q>(
    row: Binder<'q>,
    tenant: &'q TenantId,
    id: AfterSaleId,
    entry: &'q AfterSaleHistoryEntry,
    version: i64,
) -> Binder<'q> {
    row.bind("tenant", tenant.as_str())
        .bind("after_sale_id", id.as_i64())
        .bind("version", version)
        .bind(
            "from_status",
            entry.from.as_ref().map(|s| s.as_str().to_owned()),
        )
        .bind("to_status", entry.to.as_str())
        .bind("event", entry.event.as_str())
        .bind("channel", entry.channel.as_str())
        .bind("operator", entry.operator.as_str())
        .bind("reason", entry.reason.as_deref())
        .bind("occurred_at_ms", unix_ms(entry.occurred_at))
}

fn channel(row: &AnyRow) -> DomainResult<AfterSaleChannel> {
    let channel = text(row, "channel")?;
    AfterSaleChannel::parse(&channel).ok_or_else(|| corrupt(format!("unknown channel {channel:?}")))
}

fn decode(row: &AnyRow, lines: Vec<AfterSaleLine>) -> DomainResult<AfterSale> {
    let kind = text(row, "kind")?;
    let reviewer = text(row, "reviewer")?;
    Ok(AfterSale {
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        id: AfterSaleId::from_raw(unsigned(row, "id")?).map_err(corrupt)?,
        order_id: OrderId::from_raw(unsigned(row, "order_id")?).map_err(corrupt)?,
        kind: AfterSaleType::parse(&kind)
            .ok_or_else(|| corrupt(format!("unknown after-sale type {kind:?}")))?,
        channel: channel(row)?,
        applicant: text(row, "applicant")?,
        reviewer: Reviewer::parse(&reviewer)
            .ok_or_else(|| corrupt(format!("unknown reviewer {reviewer:?}")))?,
        status: StatusCode::parse(text(row, "status")?).map_err(corrupt)?,
        version: unsigned(row, "version")?,
        appealed: int(row, "appealed")? == 1,
        reason: opt_text(row, "reason")?,
        lines,
        refund_amount: Money::new(int(row, "refund_amount")?, currency_of(row)?),
        pickup_at: opt_int(row, "pickup_at_ms")?
            .map(from_unix_ms)
            .transpose()?,
        pickup_id: opt_int(row, "pickup_id")?
            .map(|raw| {
                u64::try_from(raw)
                    .map_err(corrupt)
                    .and_then(|raw| OrderId::from_raw(raw).map_err(corrupt))
            })
            .transpose()?,
        waybill_no: opt_text(row, "waybill_no")?,
        created_at: from_unix_ms(int(row, "created_at_ms")?)?,
        updated_at: from_unix_ms(int(row, "updated_at_ms")?)?,
    })
}

/// A line's money is in its after-sale's currency (the line row has none of its own).
fn decode_line(row: &AnyRow, currency: Currency) -> DomainResult<AfterSaleLine> {
    Ok(AfterSaleLine {
        line_no: count(row, "line_no")?,
        sku: text(row, "sku")?,
        promotion_type: opt_text(row, "promotion_type")?,
        unit_price: Money::new(int(row, "unit_price")?, currency),
        quantity: count(row, "quantity")?,
        amount: Money::new(int(row, "amount")?, currency),
    })
}

fn decode_history(row: &AnyRow) -> DomainResult<AfterSaleHistoryEntry> {
    Ok(AfterSaleHistoryEntry {
        version: unsigned(row, "version")?,
        from: opt_text(row, "from_status")?
            .map(StatusCode::parse)
            .transpose()
            .map_err(corrupt)?,
        to: StatusCode::parse(text(row, "to_status")?).map_err(corrupt)?,
        event: TransitionEvent::parse(text(row, "event")?).map_err(corrupt)?,
        channel: channel(row)?,
        operator: text(row, "operator")?,
        reason: opt_text(row, "reason")?,
        occurred_at: from_unix_ms(int(row, "occurred_at_ms")?)?,
    })
}

/// The after-sale and its lines, in two statements (one per table).
pub(crate) async fn insert(tx: &mut AnyTx<'_>, after_sale: &AfterSale) -> DomainResult<()> {
    let version = i64::try_from(after_sale.version).map_err(corrupt)?;
    let sql = TABLE.insert(1);
    bind(TABLE.binder(sqlx::query(&sql)), after_sale, version)
        .done()
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    if after_sale.lines.is_empty() {
        return Ok(());
    }
    let sql = LINE_TABLE.insert(after_sale.lines.len());
    let mut query = sqlx::query(&sql);
    for line in &after_sale.lines {
        query = bind_line(LINE_TABLE.binder(query), after_sale, line).done();
    }
    query.execute(&mut **tx).await.map_err(convert)?;
    Ok(())
}

pub(crate) async fn insert_history(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: AfterSaleId,
    entry: &AfterSaleHistoryEntry,
) -> DomainResult<()> {
    let version = i64::try_from(entry.version).map_err(corrupt)?;
    let sql = HISTORY_TABLE.insert(1);
    bind_history(
        HISTORY_TABLE.binder(sqlx::query(&sql)),
        tenant,
        id,
        entry,
        version,
    )
    .done()
    .execute(&mut **tx)
    .await
    .map_err(convert)?;
    Ok(())
}

static SELECT_ONE: LazyLock<String> = LazyLock::new(|| TABLE.select("WHERE tenant = ? AND id = ?"));
static SELECT_OF_ORDER: LazyLock<String> =
    LazyLock::new(|| TABLE.select("WHERE tenant = ? AND order_id = ? ORDER BY id"));
static SELECT_LINES: LazyLock<String> =
    LazyLock::new(|| LINE_TABLE.select("WHERE tenant = ? AND after_sale_id = ? ORDER BY line_no"));
/// The lines of every after-sale of an order, in one read.
static SELECT_LINES_OF_ORDER: LazyLock<String> = LazyLock::new(|| {
    LINE_TABLE.select(
        "WHERE tenant = ? AND after_sale_id IN (SELECT id FROM after_sales WHERE tenant = ? AND order_id = ?) ORDER BY after_sale_id, line_no",
    )
});
static SELECT_HISTORY: LazyLock<String> = LazyLock::new(|| {
    HISTORY_TABLE.select("WHERE tenant = ? AND after_sale_id = ? ORDER BY version")
});

/// The after-sale with its lines, both read on `connection`.
async fn load(
    connection: &mut AnyConnection,
    tenant: &TenantId,
    id: AfterSaleId,
) -> DomainResult<Option<AfterSale>> {
    let Some(row) = sqlx::query(&SELECT_ONE)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .fetch_optional(&mut *connection)
        .await
        .map_err(convert)?
    else {
        return Ok(None);
    };
    let currency = currency_of(&row)?;
    let lines = sqlx::query(&SELECT_LINES)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .fetch_all(&mut *connection)
        .await
        .map_err(convert)?
        .iter()
        .map(|line| decode_line(line, currency))
        .collect::<DomainResult<_>>()?;
    decode(&row, lines).map(Some)
}

pub(crate) async fn get(
    pool: &AnyPool,
    tenant: &TenantId,
    id: AfterSaleId,
) -> DomainResult<Option<AfterSale>> {
    let mut connection = pool.acquire().await.map_err(convert)?;
    load(&mut connection, tenant, id).await
}

/// The after-sale as this transaction sees it (after its own writes).
pub(crate) async fn get_in(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: AfterSaleId,
) -> DomainResult<Option<AfterSale>> {
    load(tx, tenant, id).await
}

/// Every after-sale of an order with its lines: two reads, whatever their number.
pub(crate) async fn of_order(
    pool: &AnyPool,
    tenant: &TenantId,
    order_id: OrderId,
) -> DomainResult<Vec<AfterSale>> {
    let rows = sqlx::query(&SELECT_OF_ORDER)
        .bind(tenant.as_str())
        .bind(order_id.as_i64())
        .fetch_all(pool)
        .await
        .map_err(convert)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let line_rows = sqlx::query(&SELECT_LINES_OF_ORDER)
        .bind(tenant.as_str())
        .bind(tenant.as_str())
        .bind(order_id.as_i64())
        .fetch_all(pool)
        .await
        .map_err(convert)?;
    let mut lines_of: BTreeMap<i64, Vec<&AnyRow>> = BTreeMap::new();
    for line in &line_rows {
        lines_of
            .entry(int(line, "after_sale_id")?)
            .or_default()
            .push(line);
    }
    rows.iter()
        .map(|row| {
            let currency = currency_of(row)?;
            let lines = lines_of
                .remove(&int(row, "id")?)
                .unwrap_or_default()
                .into_iter()
                .map(|line| decode_line(line, currency))
                .collect::<DomainResult<_>>()?;
            decode(row, lines)
        })
        .collect()
}

pub(crate) async fn history(
    pool: &AnyPool,
    tenant: &TenantId,
    id: AfterSaleId,
) -> DomainResult<Vec<AfterSaleHistoryEntry>> {
    fetch_all(
        sqlx::query(&SELECT_HISTORY)
            .bind(tenant.as_str())
            .bind(id.as_i64()),
        pool,
        decode_history,
    )
    .await
}

/// The after-sale's compare-and-set on its version: whether this transaction moved it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn set_status(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: AfterSaleId,
    expected_version: u64,
    status: &StatusCode,
    reviewer: Reviewer,
    appealed: bool,
    at_ms: i64,
) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE after_sales SET status = ?, version = version + 1, reviewer = ?, appealed = ?, updated_at_ms = ? WHERE tenant = ? AND id = ? AND version = ?",
        )
        .bind(status.as_str())
        .bind(reviewer.as_str())
        .bind(i64::from(appealed))
        .bind(at_ms)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .bind(i64::try_from(expected_version).map_err(corrupt)?),
        &mut **tx,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// after_sale_units: the per-line quantities

/// The ledger row of an order line, written the first time the line is applied for, outside
/// any application's transaction (so concurrent first applications do not queue on each
/// other's inserted row); a row that exists is left as it is. Written only while the order
/// row exists (`INSERT … SELECT … FROM orders`): an application for an order the archive
/// deleted is refused afterwards and must leave nothing behind, and the archive's delete
/// (which removes the order's ledger rows with it) and this insert meet on the order row
/// (MariaDB, at REPEATABLE READ, reads it with a shared lock; SQLite runs one write at a
/// time), so a row is either written before the delete and deleted with the order, or not
/// written.
pub(crate) async fn open_line(
    pool: &AnyPool,
    tenant: &TenantId,
    order_id: OrderId,
    line: &LineSplit,
) -> DomainResult<()> {
    let exists = sqlx::query(
        "SELECT 1 FROM after_sale_units WHERE tenant = ? AND order_id = ? AND line_no = ?",
    )
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(i64::from(line.line_no))
    .fetch_optional(pool)
    .await
    .map_err(convert)?;
    if exists.is_some() {
        return Ok(());
    }
    let inserted = sqlx::query(
        "INSERT INTO after_sale_units (tenant, order_id, line_no, bought, currency, refundable) SELECT ?, ?, ?, ?, ?, ? FROM orders WHERE tenant = ? AND id = ?",
    )
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(i64::from(line.line_no))
    .bind(i64::from(line.bought))
    .bind(line.refundable.currency.code())
    .bind(line.refundable.minor)
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .execute(pool)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        // someone opened it first: theirs is the same copy of the stored line
        Err(e) if crate::error::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(WriteError::Sql(e).into_domain()),
    }
}

/// Hold `units` units of a line while `held + returned + units <= bought`, then take their
/// amount from the rest of the line's split; `None` when too few units are left (nothing
/// changed). The first update takes the row's lock, so the read after it sees every
/// committed hold and the amount is computed from them.
pub(crate) async fn hold(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    order_id: OrderId,
    line_no: u32,
    units: u32,
) -> DomainResult<Option<Money>> {
    let done = sqlx::query(
        "UPDATE after_sale_units SET held = held + ? WHERE tenant = ? AND order_id = ? AND line_no = ? AND held + returned + ? <= bought",
    )
    .bind(i64::from(units))
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(i64::from(line_no))
    .bind(i64::from(units))
    .execute(&mut **tx)
    .await
    .map_err(convert)?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT bought, currency, refundable, held, held_amount, returned, returned_amount FROM after_sale_units WHERE tenant = ? AND order_id = ? AND line_no = ?",
    )
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(i64::from(line_no))
    .fetch_one(&mut **tx)
    .await
    .map_err(convert)?;
    let currency = currency_of(&row)?;
    let line = LineSplit {
        line_no,
        key: SplitKey {
            sku: String::new(),
            promotion_type: None,
            unit_price: 0,
            unit_weight_grams: None,
        },
        bought: count(&row, "bought")?,
        refundable: Money::new(int(&row, "refundable")?, currency),
    };
    let taken = count(&row, "held")? + count(&row, "returned")? - units;
    let taken_amount = Money::new(
        int(&row, "held_amount")? + int(&row, "returned_amount")?,
        currency,
    );
    let amount = line
        .take(taken, taken_amount, units)
        .map_err(|e| DomainError::internal(format!("after-sale units: {}", e.message)))?;
    sqlx::query(
        "UPDATE after_sale_units SET held_amount = held_amount + ? WHERE tenant = ? AND order_id = ? AND line_no = ?",
    )
    .bind(amount.minor)
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(i64::from(line_no))
    .execute(&mut **tx)
    .await
    .map_err(convert)?;
    Ok(Some(amount))
}

/// Units left on a line (for the refusal's message).
pub(crate) async fn left(
    pool: &AnyPool,
    tenant: &TenantId,
    order_id: OrderId,
    line_no: u32,
) -> DomainResult<u32> {
    let row = sqlx::query(
        "SELECT bought - held - returned AS units_left FROM after_sale_units WHERE tenant = ? AND order_id = ? AND line_no = ?",
    )
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(i64::from(line_no))
    .fetch_optional(pool)
    .await
    .map_err(convert)?;
    Ok(row
        .map(|row| opt_int(&row, "units_left"))
        .transpose()?
        .flatten()
        .map_or(0, |n| u32::try_from(n).unwrap_or(0)))
}

/// Give a line's units back (`settle = false`) or keep them as returned for good.
pub(crate) async fn unhold(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    order_id: OrderId,
    line: &AfterSaleLine,
    settle: bool,
) -> DomainResult<()> {
    let query = if settle {
        sqlx::query(
            "UPDATE after_sale_units SET held = held - ?, held_amount = held_amount - ?, returned = returned + ?, returned_amount = returned_amount + ? WHERE tenant = ? AND order_id = ? AND line_no = ?",
        )
        .bind(i64::from(line.quantity))
        .bind(line.amount.minor)
        .bind(i64::from(line.quantity))
        .bind(line.amount.minor)
    } else {
        sqlx::query(
            "UPDATE after_sale_units SET held = held - ?, held_amount = held_amount - ? WHERE tenant = ? AND order_id = ? AND line_no = ?",
        )
        .bind(i64::from(line.quantity))
        .bind(line.amount.minor)
    };
    let done = query
        .bind(tenant.as_str())
        .bind(order_id.as_i64())
        .bind(i64::from(line.line_no))
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    if done.rows_affected() != 1 {
        return Err(DomainError::internal(
            "an after-sale's units have no ledger row",
        ));
    }
    Ok(())
}

/// Units held or returned, by line, of an order.
pub(crate) async fn taken(
    pool: &AnyPool,
    tenant: &TenantId,
    order_id: OrderId,
) -> DomainResult<BTreeMap<u32, u32>> {
    let rows = sqlx::query(
        "SELECT line_no, held, returned FROM after_sale_units WHERE tenant = ? AND order_id = ?",
    )
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .fetch_all(pool)
    .await
    .map_err(convert)?;
    rows.iter()
        .map(|row| {
            Ok((
                count(row, "line_no")?,
                count(row, "held")? + count(row, "returned")?,
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// after_sale_refunds

/// The after-sale's one refund; a unique violation means it has one.
pub(crate) async fn insert_refund(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: AfterSaleId,
    refund: &AfterSaleRefund,
    at_ms: i64,
) -> Result<(), WriteError> {
    sqlx::query(
        "INSERT INTO after_sale_refunds (tenant, after_sale_id, refund_id, payment_id, currency, amount, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant.as_str())
    .bind(id.as_i64())
    .bind(refund.refund_id.as_i64())
    .bind(refund.payment_id.as_i64())
    .bind(refund.amount.currency.code())
    .bind(refund.amount.minor)
    .bind(at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn refund_of(
    pool: &AnyPool,
    tenant: &TenantId,
    id: AfterSaleId,
) -> DomainResult<Option<AfterSaleRefund>> {
    let row = sqlx::query(
        "SELECT refund_id, payment_id, currency, amount FROM after_sale_refunds WHERE tenant = ? AND after_sale_id = ?",
    )
    .bind(tenant.as_str())
    .bind(id.as_i64())
    .fetch_optional(pool)
    .await
    .map_err(convert)?;
    row.map(|row| {
        Ok(AfterSaleRefund {
            refund_id: RefundId::from_raw(unsigned(&row, "refund_id")?).map_err(corrupt)?,
            payment_id: PaymentId::from_raw(unsigned(&row, "payment_id")?).map_err(corrupt)?,
            amount: Money::new(int(&row, "amount")?, currency_of(&row)?),
        })
    })
    .transpose()
}
