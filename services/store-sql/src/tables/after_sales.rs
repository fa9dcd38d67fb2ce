//! `after_sales`, `after_sale_lines`, `after_sale_history`, `after_sale_units` and
//! `after_sale_refunds` (migration 0011): columns, decoding and every statement on them.

use std::collections::BTreeMap;

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use oc_model::aftersale::{
    AfterSale, AfterSaleChannel, AfterSaleHistoryEntry, AfterSaleId, AfterSaleLine,
    AfterSaleRefund, AfterSaleType, LineSplit, Reviewer, SplitKey,
};
use oc_model::{
    Currency, DomainError, DomainResult, Money, OrderId, PaymentId, RefundId, StatusCode, TenantId,
    TransitionEvent,
};

use super::{AnyTx, corrupt, from_unix_ms, int, opt_int, opt_text, text, unix_ms};
use crate::error::{WriteError, convert};

const COLUMNS: &str = "tenant, id, order_id, kind, channel, applicant, reviewer, status, version, appealed, reason, currency, refund_amount, created_at_ms, updated_at_ms";
const LINE_COLUMNS: &str =
    "tenant, after_sale_id, line_no, sku, promotion_type, unit_price, quantity, amount";
const HISTORY_COLUMNS: &str = "tenant, after_sale_id, version, from_status, to_status, event, channel, operator, reason, occurred_at_ms";

fn currency(code: String) -> DomainResult<Currency> {
    Currency::parse(&code).map_err(corrupt)
}

fn raw_id(row: &AnyRow, column: &str) -> DomainResult<u64> {
    u64::try_from(int(row, column)?).map_err(corrupt)
}

fn count(row: &AnyRow, column: &str) -> DomainResult<u32> {
    u32::try_from(int(row, column)?).map_err(corrupt)
}

fn decode(row: &AnyRow, lines: Vec<AfterSaleLine>) -> DomainResult<AfterSale> {
    let kind = text(row, "kind")?;
    let channel = text(row, "channel")?;
    let reviewer = text(row, "reviewer")?;
    Ok(AfterSale {
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        id: AfterSaleId::from_raw(raw_id(row, "id")?).map_err(corrupt)?,
        order_id: OrderId::from_raw(raw_id(row, "order_id")?).map_err(corrupt)?,
        kind: AfterSaleType::parse(&kind)
            .ok_or_else(|| corrupt(format!("unknown after-sale type {kind:?}")))?,
        channel: AfterSaleChannel::parse(&channel)
            .ok_or_else(|| corrupt(format!("unknown channel {channel:?}")))?,
        applicant: text(row, "applicant")?,
        reviewer: Reviewer::parse(&reviewer)
            .ok_or_else(|| corrupt(format!("unknown reviewer {reviewer:?}")))?,
        status: StatusCode::parse(text(row, "status")?).map_err(corrupt)?,
        version: raw_id(row, "version")?,
        appealed: int(row, "appealed")? == 1,
        reason: opt_text(row, "reason")?,
        lines,
        refund_amount: Money::new(
            int(row, "refund_amount")?,
            currency(text(row, "currency")?)?,
        ),
        created_at: from_unix_ms(int(row, "created_at_ms")?)?,
        updated_at: from_unix_ms(int(row, "updated_at_ms")?)?,
    })
}

fn decode_line(row: &AnyRow, currency_of: Currency) -> DomainResult<AfterSaleLine> {
    Ok(AfterSaleLine {
        line_no: count(row, "line_no")?,
        sku: text(row, "sku")?,
        promotion_type: opt_text(row, "promotion_type")?,
        unit_price: Money::new(int(row, "unit_price")?, currency_of),
        quantity: count(row, "quantity")?,
        amount: Money::new(int(row, "amount")?, currency_of),
    })
}

pub(crate) async fn insert(tx: &mut AnyTx<'_>, after_sale: &AfterSale) -> DomainResult<()> {
    sqlx::query(&format!(
        "INSERT INTO after_sales ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(after_sale.tenant.as_str())
    .bind(after_sale.id.as_i64())
    .bind(after_sale.order_id.as_i64())
    .bind(after_sale.kind.as_str())
    .bind(after_sale.channel.as_str())
    .bind(after_sale.applicant.as_str())
    .bind(after_sale.reviewer.as_str())
    .bind(after_sale.status.as_str())
    .bind(i64::try_from(after_sale.version).map_err(corrupt)?)
    .bind(i64::from(after_sale.appealed))
    .bind(after_sale.reason.as_deref())
    .bind(after_sale.refund_amount.currency.code())
    .bind(after_sale.refund_amount.minor)
    .bind(unix_ms(after_sale.created_at))
    .bind(unix_ms(after_sale.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(convert)?;
    for line in &after_sale.lines {
        sqlx::query(&format!(
            "INSERT INTO after_sale_lines ({LINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(after_sale.tenant.as_str())
        .bind(after_sale.id.as_i64())
        .bind(i64::from(line.line_no))
        .bind(line.sku.as_str())
        .bind(line.promotion_type.as_deref())
        .bind(line.unit_price.minor)
        .bind(i64::from(line.quantity))
        .bind(line.amount.minor)
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    }
    Ok(())
}

pub(crate) async fn insert_history(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: AfterSaleId,
    entry: &AfterSaleHistoryEntry,
) -> DomainResult<()> {
    sqlx::query(&format!(
        "INSERT INTO after_sale_history ({HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(tenant.as_str())
    .bind(id.as_i64())
    .bind(i64::try_from(entry.version).map_err(corrupt)?)
    .bind(entry.from.as_ref().map(|s| s.as_str().to_owned()))
    .bind(entry.to.as_str())
    .bind(entry.event.as_str())
    .bind(entry.channel.as_str())
    .bind(entry.operator.as_str())
    .bind(entry.reason.as_deref())
    .bind(unix_ms(entry.occurred_at))
    .execute(&mut **tx)
    .await
    .map_err(convert)?;
    Ok(())
}

async fn lines_of(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    tenant: &TenantId,
    id: i64,
    currency_of: Currency,
) -> DomainResult<Vec<AfterSaleLine>> {
    let rows = sqlx::query(&format!(
        "SELECT {LINE_COLUMNS} FROM after_sale_lines WHERE tenant = ? AND after_sale_id = ? ORDER BY line_no"
    ))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(executor)
    .await
    .map_err(convert)?;
    rows.iter()
        .map(|row| decode_line(row, currency_of))
        .collect()
}

pub(crate) async fn get(
    pool: &AnyPool,
    tenant: &TenantId,
    id: AfterSaleId,
) -> DomainResult<Option<AfterSale>> {
    let Some(row) = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM after_sales WHERE tenant = ? AND id = ?"
    ))
    .bind(tenant.as_str())
    .bind(id.as_i64())
    .fetch_optional(pool)
    .await
    .map_err(convert)?
    else {
        return Ok(None);
    };
    let currency_of = currency(text(&row, "currency")?)?;
    let lines = lines_of(pool, tenant, id.as_i64(), currency_of).await?;
    decode(&row, lines).map(Some)
}

/// The after-sale as this transaction sees it (after its own writes).
pub(crate) async fn get_in(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: AfterSaleId,
) -> DomainResult<Option<AfterSale>> {
    let Some(row) = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM after_sales WHERE tenant = ? AND id = ?"
    ))
    .bind(tenant.as_str())
    .bind(id.as_i64())
    .fetch_optional(&mut **tx)
    .await
    .map_err(convert)?
    else {
        return Ok(None);
    };
    let currency_of = currency(text(&row, "currency")?)?;
    let lines = lines_of(&mut **tx, tenant, id.as_i64(), currency_of).await?;
    decode(&row, lines).map(Some)
}

pub(crate) async fn of_order(
    pool: &AnyPool,
    tenant: &TenantId,
    order_id: OrderId,
) -> DomainResult<Vec<AfterSale>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM after_sales WHERE tenant = ? AND order_id = ? ORDER BY id"
    ))
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .fetch_all(pool)
    .await
    .map_err(convert)?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let currency_of = currency(text(row, "currency")?)?;
        let lines = lines_of(pool, tenant, int(row, "id")?, currency_of).await?;
        found.push(decode(row, lines)?);
    }
    Ok(found)
}

pub(crate) async fn history(
    pool: &AnyPool,
    tenant: &TenantId,
    id: AfterSaleId,
) -> DomainResult<Vec<AfterSaleHistoryEntry>> {
    let rows = sqlx::query(&format!(
        "SELECT {HISTORY_COLUMNS} FROM after_sale_history WHERE tenant = ? AND after_sale_id = ? ORDER BY version"
    ))
    .bind(tenant.as_str())
    .bind(id.as_i64())
    .fetch_all(pool)
    .await
    .map_err(convert)?;
    rows.iter()
        .map(|row| {
            let channel = text(row, "channel")?;
            Ok(AfterSaleHistoryEntry {
                version: raw_id(row, "version")?,
                from: opt_text(row, "from_status")?
                    .map(StatusCode::parse)
                    .transpose()
                    .map_err(corrupt)?,
                to: StatusCode::parse(text(row, "to_status")?).map_err(corrupt)?,
                event: TransitionEvent::parse(text(row, "event")?).map_err(corrupt)?,
                channel: AfterSaleChannel::parse(&channel)
                    .ok_or_else(|| corrupt(format!("unknown channel {channel:?}")))?,
                operator: text(row, "operator")?,
                reason: opt_text(row, "reason")?,
                occurred_at: from_unix_ms(int(row, "occurred_at_ms")?)?,
            })
        })
        .collect()
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
    let done = sqlx::query(
        "UPDATE after_sales SET status = ?, version = version + 1, reviewer = ?, appealed = ?, updated_at_ms = ? WHERE tenant = ? AND id = ? AND version = ?",
    )
    .bind(status.as_str())
    .bind(reviewer.as_str())
    .bind(i64::from(appealed))
    .bind(at_ms)
    .bind(tenant.as_str())
    .bind(id.as_i64())
    .bind(i64::try_from(expected_version).map_err(corrupt)?)
    .execute(&mut **tx)
    .await
    .map_err(convert)?;
    Ok(done.rows_affected() == 1)
}

// ---------------------------------------------------------------------------------------------
// after_sale_units: the per-line quantities

/// The ledger row of an order line, written the first time the line is applied for, outside
/// any application's transaction (so concurrent first applications do not queue on each
/// other's inserted row); a row that exists is left as it is.
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
        "INSERT INTO after_sale_units (tenant, order_id, line_no, bought, currency, refundable) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(i64::from(line.line_no))
    .bind(i64::from(line.bought))
    .bind(line.refundable.currency.code())
    .bind(line.refundable.minor)
    .execute(pool)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        // someone opened it first: theirs is the same copy of the stored line
        Err(e) if crate::error::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(WriteError::Sql(e).into_domain()),
    }
}

/// Hold `count` units of a line while `held + returned + count <= bought`, then take their
/// amount from the rest of the line's split; `None` when too few units are left (nothing
/// changed). The first update takes the row's lock, so the read after it sees every
/// committed hold and the amount is computed from them.
pub(crate) async fn hold(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    order_id: OrderId,
    line_no: u32,
    count: u32,
) -> DomainResult<Option<Money>> {
    let done = sqlx::query(
        "UPDATE after_sale_units SET held = held + ? WHERE tenant = ? AND order_id = ? AND line_no = ? AND held + returned + ? <= bought",
    )
    .bind(i64::from(count))
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(i64::from(line_no))
    .bind(i64::from(count))
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
    let currency_of = currency(text(&row, "currency")?)?;
    let line = LineSplit {
        line_no,
        key: SplitKey {
            sku: String::new(),
            promotion_type: None,
            unit_price: 0,
            unit_weight_grams: None,
        },
        bought: count_of(&row, "bought")?,
        refundable: Money::new(int(&row, "refundable")?, currency_of),
    };
    let taken = count_of(&row, "held")? + count_of(&row, "returned")? - count;
    let taken_amount = Money::new(
        int(&row, "held_amount")? + int(&row, "returned_amount")?,
        currency_of,
    );
    let amount = line
        .take(taken, taken_amount, count)
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

fn count_of(row: &AnyRow, column: &str) -> DomainResult<u32> {
    count(row, column)
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
            refund_id: RefundId::from_raw(raw_id(&row, "refund_id")?).map_err(corrupt)?,
            payment_id: PaymentId::from_raw(raw_id(&row, "payment_id")?).map_err(corrupt)?,
            amount: Money::new(int(&row, "amount")?, currency(text(&row, "currency")?)?),
        })
    })
    .transpose()
}
