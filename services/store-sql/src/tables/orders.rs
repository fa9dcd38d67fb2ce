//! `orders`: an order's main row. Indexed and reconciled fields are real columns; the other
//! groups (logistics, marketing, finance, channel, parties, operation) travel as one JSON
//! `body`; the reserved extension columns follow. Parties hold sealed values only: a plaintext
//! personal-data value never reaches a row.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

use oc_model::order::{
    Channel, Extension, Finance, LogisticsService, Marketing, Operation, OrderLine, OrderMain,
    Parties,
};
use oc_model::ports::{CreatedWindow, OrderKey};
use oc_model::schedule::DueOrder;
use oc_model::{
    BusinessIdentity, DomainError, DomainResult, KvIdentifier, Order, OrderId, OrderType, PartyId,
    StatusCode, TenantId, UnixMillis,
};

use super::{
    AnyQuery, AnyTx, Binder, Columns, Table, corrupt, ext, int, moved_one, opt_int, opt_text, text,
};
use crate::error::{WriteError, convert};

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "orders",
        Columns::with_ext(&[
            "tenant",
            "id",
            "bucket",
            "buyer_id",
            "merchant_id",
            "business_identity",
            "order_type",
            "status",
            "version",
            "currency",
            "goods_total",
            "discount_total",
            "freight",
            "payable",
            "external_ref",
            "created_at_ms",
            "updated_at_ms",
            "pay_deadline_ms",
            "body",
        ]),
    )
});

/// The columns an update writes (the `SET` list), in bind order.
static CHANGED: LazyLock<Columns> = LazyLock::new(|| {
    Columns::with_ext(&[
        "merchant_id",
        "status",
        "version",
        "goods_total",
        "discount_total",
        "freight",
        "payable",
        "updated_at_ms",
        "pay_deadline_ms",
        "body",
    ])
});

/// The columns a re-encryption writes: where sealed values live in the main row.
static RESEALED: LazyLock<Columns> = LazyLock::new(|| Columns::with_ext(&["body"]));

static SELECT_ONE: LazyLock<String> = LazyLock::new(|| TABLE.select("WHERE tenant = ? AND id = ?"));

static SELECT_BUYER_PAGE: LazyLock<String> = LazyLock::new(|| {
    TABLE.select("WHERE tenant = ? AND buyer_id = ? AND id < ? ORDER BY id DESC LIMIT ?")
});

static UPDATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE orders SET {} WHERE tenant = ? AND id = ? AND version = ?",
        CHANGED.assignments()
    )
});

static REWRITE_SEALED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE orders SET {} WHERE tenant = ? AND id = ? AND version = ?",
        RESEALED.assignments()
    )
});

/// The JSON body column.
#[derive(Debug, Serialize, Deserialize)]
struct Body {
    logistics: LogisticsService,
    marketing: Marketing,
    finance: Finance,
    channel: Channel,
    parties: Parties,
    operation: Operation,
}

fn body_json(order: &Order) -> DomainResult<String> {
    let body = Body {
        logistics: order.logistics.clone(),
        marketing: order.marketing.clone(),
        finance: order.finance.clone(),
        channel: order.channel.clone(),
        parties: order.parties.clone(),
        operation: order.operation.clone(),
    };
    serde_json::to_string(&body)
        .map_err(|e| DomainError::internal(format!("encode order body: {e}")))
}

fn ms(at: time::OffsetDateTime) -> i64 {
    UnixMillis::floor(at).get()
}

/// Refuses an order whose parties hold a plaintext personal-data value.
pub(crate) fn assert_sealed(order: &Order) -> DomainResult<()> {
    for party in [&order.parties.shipper, &order.parties.receiver]
        .into_iter()
        .flatten()
    {
        if party.pii_fields().iter().any(|(_, v)| !v.is_sealed()) {
            return Err(DomainError::internal(
                "refusing to store plaintext personal data",
            ));
        }
    }
    Ok(())
}

/// The values of one main row, in the table's column order.
fn bind<'q>(row: Binder<'q>, order: &'q Order) -> DomainResult<Binder<'q>> {
    let main = &order.main;
    let finance = &order.finance;
    Ok(row
        .bind("tenant", main.tenant.as_str())
        .bind("id", main.id.as_i64())
        .bind("bucket", i64::from(main.id.bucket().get()))
        .bind("buyer_id", main.buyer_id.as_str())
        .bind("merchant_id", main.merchant_id.as_ref().map(|m| m.as_str()))
        .bind("business_identity", main.business_identity.as_str())
        .bind("order_type", main.order_type.as_str())
        .bind("status", main.status.as_str())
        .bind("version", main.version as i64)
        .bind("currency", finance.currency.code())
        .bind("goods_total", finance.goods_total.minor)
        .bind("discount_total", finance.discount_total.minor)
        .bind("freight", finance.freight.minor)
        .bind("payable", finance.payable.minor)
        .bind("external_ref", main.external_ref.as_deref())
        .bind("created_at_ms", ms(main.created_at))
        .bind("updated_at_ms", ms(main.updated_at))
        .bind("pay_deadline_ms", main.pay_deadline.map(ms))
        .bind("body", body_json(order)?)
        .bind_ext(ext::encode(&order.extension.columns)?))
}

/// The main rows of `orders`, in one statement. The database's own error is kept for the
/// caller to tell a duplicate external reference from an id collision.
pub(crate) async fn insert(tx: &mut AnyTx<'_>, orders: &[&Order]) -> Result<(), WriteError> {
    let sql = insert_sql(orders);
    bind_rows(sqlx::query(&sql), orders)?
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The statement [`insert`] runs for `orders`.
pub(crate) fn insert_sql(orders: &[&Order]) -> String {
    TABLE.insert(orders.len())
}

/// Binds the rows of [`insert_sql`]'s statement onto `query`.
pub(crate) fn bind_rows<'q>(
    mut query: AnyQuery<'q>,
    orders: &[&'q Order],
) -> DomainResult<AnyQuery<'q>> {
    for order in orders {
        query = bind(TABLE.binder(query), order)?.done();
    }
    Ok(query)
}

/// Compare-and-set: writes `order`'s changed columns if the row is still at
/// `expected_version`. `false` when it is not (or is gone).
pub(crate) async fn update(
    tx: &mut AnyTx<'_>,
    order: &Order,
    expected_version: u64,
) -> DomainResult<bool> {
    let main = &order.main;
    let finance = &order.finance;
    let query = CHANGED
        .binder(sqlx::query(&UPDATE))
        .bind("merchant_id", main.merchant_id.as_ref().map(|m| m.as_str()))
        .bind("status", main.status.as_str())
        .bind("version", main.version as i64)
        .bind("goods_total", finance.goods_total.minor)
        .bind("discount_total", finance.discount_total.minor)
        .bind("freight", finance.freight.minor)
        .bind("payable", finance.payable.minor)
        .bind("updated_at_ms", ms(main.updated_at))
        .bind("pay_deadline_ms", main.pay_deadline.map(ms))
        .bind("body", body_json(order)?)
        .bind_ext(ext::encode(&order.extension.columns)?)
        .done();
    moved_one(
        query
            .bind(main.tenant.as_str())
            .bind(main.id.as_i64())
            .bind(expected_version as i64),
        &mut **tx,
    )
    .await
}

/// A transition's compare-and-set: status, version, updated at, pay deadline and body only.
/// Lines, identifiers, money and extension columns are not written: a transition does not
/// change them (and writing the extension columns back could undo a concurrent
/// re-encryption, which does not bump the version). `false` when the row is not at
/// `expected_version` (or is gone).
pub(crate) async fn update_for_transition(
    tx: &mut AnyTx<'_>,
    order: &Order,
    expected_version: u64,
) -> DomainResult<bool> {
    let main = &order.main;
    moved_one(
        sqlx::query(
            "UPDATE orders SET status = ?, version = ?, updated_at_ms = ?, pay_deadline_ms = ?, body = ? WHERE tenant = ? AND id = ? AND version = ?",
        )
        .bind(main.status.as_str())
        .bind(main.version as i64)
        .bind(ms(main.updated_at))
        .bind(main.pay_deadline.map(ms))
        .bind(body_json(order)?)
        .bind(main.tenant.as_str())
        .bind(main.id.as_i64())
        .bind(expected_version as i64),
        &mut **tx,
    )
    .await
}

/// Writes re-sealed values back if the row is still at `order.main.version`, without bumping
/// it. `false` when a concurrent write moved it on.
pub(crate) async fn rewrite_sealed(tx: &mut AnyTx<'_>, order: &Order) -> DomainResult<bool> {
    let main = &order.main;
    let query = RESEALED
        .binder(sqlx::query(&REWRITE_SEALED))
        .bind("body", body_json(order)?)
        .bind_ext(ext::encode(&order.extension.columns)?)
        .done();
    moved_one(
        query
            .bind(main.tenant.as_str())
            .bind(main.id.as_i64())
            .bind(main.version as i64),
        &mut **tx,
    )
    .await
}

pub(crate) async fn select_one(
    connection: &mut AnyConnection,
    tenant: &TenantId,
    id: OrderId,
) -> DomainResult<Option<AnyRow>> {
    sqlx::query(&SELECT_ONE)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .fetch_optional(connection)
        .await
        .map_err(convert)
}

/// The main rows of `ids` (orders of one tenant) that exist, in no particular order.
pub(crate) async fn select_many(
    connection: &mut AnyConnection,
    tenant: &TenantId,
    ids: &[i64],
) -> DomainResult<Vec<AnyRow>> {
    TABLE
        .select_tenant_ids(connection, "id", tenant, ids, "")
        .await
}

/// Up to `limit` of a buyer's main rows with an id below `before`, newest first.
pub(crate) async fn select_buyer_page(
    connection: &mut AnyConnection,
    tenant: &TenantId,
    buyer: &PartyId,
    before: i64,
    limit: u32,
) -> DomainResult<Vec<AnyRow>> {
    sqlx::query(&SELECT_BUYER_PAGE)
        .bind(tenant.as_str())
        .bind(buyer.as_str())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(connection)
        .await
        .map_err(convert)
}

/// The `id` of a main row.
pub(crate) fn id_of(row: &AnyRow) -> DomainResult<i64> {
    int(row, "id")
}

/// An order from its main row and its already decoded lines and identifiers.
pub(crate) fn decode(
    row: &AnyRow,
    lines: Vec<OrderLine>,
    identifiers: Vec<KvIdentifier>,
) -> DomainResult<Order> {
    let body: Body = serde_json::from_str(&text(row, "body")?).map_err(corrupt)?;
    let at = |column: &str| UnixMillis::new(int(row, column)?).to_datetime();
    let main = OrderMain {
        id: OrderId::from_raw(int(row, "id")? as u64).map_err(corrupt)?,
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        business_identity: BusinessIdentity::parse(text(row, "business_identity")?)
            .map_err(corrupt)?,
        order_type: OrderType::parse(text(row, "order_type")?).map_err(corrupt)?,
        status: StatusCode::parse(text(row, "status")?).map_err(corrupt)?,
        version: u64::try_from(int(row, "version")?).map_err(corrupt)?,
        buyer_id: PartyId::parse(text(row, "buyer_id")?).map_err(corrupt)?,
        merchant_id: opt_text(row, "merchant_id")?
            .map(PartyId::parse)
            .transpose()
            .map_err(corrupt)?,
        external_ref: opt_text(row, "external_ref")?,
        created_at: at("created_at_ms")?,
        updated_at: at("updated_at_ms")?,
        pay_deadline: opt_int(row, "pay_deadline_ms")?
            .map(|millis| UnixMillis::new(millis).to_datetime())
            .transpose()?,
    };
    Ok(Order {
        main,
        lines,
        logistics: body.logistics,
        marketing: body.marketing,
        finance: body.finance,
        channel: body.channel,
        parties: body.parties,
        operation: body.operation,
        extension: Extension {
            columns: ext::decode(row)?,
            identifiers,
        },
    })
}

/// Up to `limit` order keys after `after`, by primary key, optionally of one tenant.
pub(crate) async fn keys(
    pool: &AnyPool,
    tenant: Option<&TenantId>,
    after: Option<&OrderKey>,
    limit: u32,
) -> DomainResult<Vec<OrderKey>> {
    let rows = match tenant {
        Some(tenant) => {
            // a walk of one tenant: only its own keys order the rows
            let after_id = after
                .filter(|key| key.tenant == *tenant)
                .map_or(i64::MIN, |key| key.id.as_i64());
            sqlx::query(
                "SELECT tenant, id FROM orders WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?",
            )
            .bind(tenant.as_str())
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        }
        None => {
            let after_tenant = after.map_or("", |key| key.tenant.as_str());
            let after_id = after.map_or(i64::MIN, |key| key.id.as_i64());
            sqlx::query(
                "SELECT tenant, id FROM orders WHERE tenant > ? OR (tenant = ? AND id > ?) \
                 ORDER BY tenant, id LIMIT ?",
            )
            .bind(after_tenant)
            .bind(after_tenant)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        }
    }
    .map_err(convert)?;
    rows.iter()
        .map(|row| {
            Ok(OrderKey {
                tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
                id: OrderId::from_raw(u64::try_from(id_of(row)?).unwrap_or(0)).map_err(corrupt)?,
            })
        })
        .collect()
}

/// `(id, version)` of up to `limit` orders created in `window`, by id, after `after`.
pub(crate) async fn versions_created(
    pool: &AnyPool,
    window: &CreatedWindow,
    after: Option<OrderId>,
    limit: u32,
) -> DomainResult<Vec<(OrderId, u64)>> {
    let rows = sqlx::query(
        "SELECT id, version FROM orders WHERE tenant = ? AND created_at_ms >= ? \
         AND created_at_ms < ? AND id > ? ORDER BY id LIMIT ?",
    )
    .bind(window.tenant.as_str())
    .bind(window.from.get())
    .bind(window.to.get())
    .bind(after.map_or(i64::MIN, OrderId::as_i64))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(convert)?;
    rows.iter()
        .map(|row| {
            let id = OrderId::from_raw(u64::try_from(id_of(row)?).unwrap_or(0)).map_err(corrupt)?;
            let version = u64::try_from(int(row, "version")?).unwrap_or(0);
            Ok((id, version))
        })
        .collect()
}

/// Orders waiting for payment past their deadline, through `idx_orders_due` (migration
/// 0007), from the earliest. Binds: now, limit.
const SELECT_DUE_FIRST: &str = "SELECT pay_deadline_ms, tenant, id FROM orders WHERE pay_deadline_ms <= ? ORDER BY pay_deadline_ms, tenant, id LIMIT ?";

/// The same after a cursor: the lower bound on the deadline keeps the index range narrow, the
/// row comparison (both engines) places the cursor exactly.
/// Binds: now, cursor deadline, cursor (deadline, tenant, id), limit.
const SELECT_DUE_AFTER: &str = "SELECT pay_deadline_ms, tenant, id FROM orders WHERE pay_deadline_ms <= ? AND pay_deadline_ms >= ? AND (pay_deadline_ms, tenant, id) > (?, ?, ?) ORDER BY pay_deadline_ms, tenant, id LIMIT ?";

/// The earliest deadline of the shard (the first entry of `idx_orders_due`).
pub(crate) const SELECT_EARLIEST_DEADLINE: &str =
    "SELECT MIN(pay_deadline_ms) AS earliest FROM orders WHERE pay_deadline_ms IS NOT NULL";

/// Whether an order exists. Binds: tenant, id.
pub(crate) const SELECT_EXISTS: &str = "SELECT 1 FROM orders WHERE tenant = ? AND id = ?";

/// The page of due orders after `after` (see [`SELECT_DUE_AFTER`]).
pub(crate) fn select_due(
    now: UnixMillis,
    after: Option<&DueOrder>,
    limit: u32,
) -> super::AnyQuery<'static> {
    match after {
        None => sqlx::query(SELECT_DUE_FIRST)
            .bind(now.get())
            .bind(i64::from(limit)),
        Some(cursor) => sqlx::query(SELECT_DUE_AFTER)
            .bind(now.get())
            .bind(cursor.pay_deadline.get())
            .bind(cursor.pay_deadline.get())
            .bind(cursor.tenant.as_str().to_owned())
            .bind(cursor.id.as_i64())
            .bind(i64::from(limit)),
    }
}

/// A row of [`select_due`].
pub(crate) fn decode_due(row: &AnyRow) -> DomainResult<DueOrder> {
    Ok(DueOrder {
        pay_deadline: UnixMillis::new(int(row, "pay_deadline_ms")?),
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        id: OrderId::from_raw(int(row, "id")? as u64).map_err(corrupt)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oc_model::RESERVED_COLUMNS;

    fn markers(sql: &str) -> usize {
        sql.matches('?').count()
    }

    #[test]
    fn every_column_has_one_marker() {
        let row = 19 + usize::from(RESERVED_COLUMNS);
        assert_eq!(TABLE.columns.len(), row);
        assert_eq!(markers(&TABLE.insert(1)), row);
        assert_eq!(markers(&TABLE.insert(3)), 3 * row);
        assert_eq!(markers(&UPDATE), 10 + usize::from(RESERVED_COLUMNS) + 3);
        assert_eq!(
            markers(&REWRITE_SEALED),
            1 + usize::from(RESERVED_COLUMNS) + 3
        );
        assert_eq!(markers(&SELECT_ONE), 2);
        assert_eq!(markers(&SELECT_BUYER_PAGE), 4);
    }

    #[test]
    fn a_fixture_order_binds_every_column_in_order() {
        let order = oc_test_support::fixtures::order(&TenantId::parse("acme").unwrap(), "buyer-1");
        let sql = TABLE.insert(1);
        // `done` checks the count, `bind` each name against the list
        let _ = bind(TABLE.binder(sqlx::query(&sql)), &order)
            .unwrap()
            .done();
    }
}
