//! `order_lines`: an order's products, one row per line, with the line's reserved extension
//! columns. Money columns are minor units in the order's currency.

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use oc_model::order::OrderLine;
use oc_model::{Currency, DomainResult, Money, Order, TenantId};

use super::{
    AnyQuery, AnyTx, Binder, Columns, Table, by_order_id, corrupt, ext, int, opt_int, opt_text,
    text,
};
use crate::error::convert;

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "order_lines",
        Columns::with_ext(&[
            "tenant",
            "order_id",
            "line_no",
            "sku",
            "product_name",
            "quantity",
            "unit_price",
            "unit_weight_grams",
            "promotion_type",
            "payable",
        ]),
    )
});

/// The values of one line row, in the table's column order.
fn bind<'q>(row: Binder<'q>, order: &'q Order, line: &'q OrderLine) -> DomainResult<Binder<'q>> {
    Ok(row
        .bind("tenant", order.main.tenant.as_str())
        .bind("order_id", order.main.id.as_i64())
        .bind("line_no", i64::from(line.line_no))
        .bind("sku", line.sku.as_str())
        .bind("product_name", line.product_name.as_str())
        .bind("quantity", i64::from(line.quantity))
        .bind("unit_price", line.unit_price.minor)
        .bind("unit_weight_grams", line.unit_weight_grams.map(i64::from))
        .bind("promotion_type", line.promotion_type.as_deref())
        .bind("payable", line.payable.minor)
        .bind_ext(ext::encode(&line.ext)?))
}

/// The lines of `orders`, in one statement (none: nothing).
pub(crate) async fn insert(tx: &mut AnyTx<'_>, orders: &[&Order]) -> DomainResult<()> {
    let Some(sql) = insert_sql(orders) else {
        return Ok(());
    };
    bind_rows(sqlx::query(&sql), orders)?
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    Ok(())
}

/// The statement [`insert`] runs for `orders`, if they have lines.
pub(crate) fn insert_sql(orders: &[&Order]) -> Option<String> {
    let rows: usize = orders.iter().map(|o| o.lines.len()).sum();
    (rows > 0).then(|| TABLE.insert(rows))
}

/// Binds the rows of [`insert_sql`]'s statement onto `query`.
pub(crate) fn bind_rows<'q>(
    mut query: AnyQuery<'q>,
    orders: &[&'q Order],
) -> DomainResult<AnyQuery<'q>> {
    for order in orders {
        for line in &order.lines {
            query = bind(TABLE.binder(query), order, line)?.done();
        }
    }
    Ok(query)
}

/// Removes an order's lines (an update writes them all again).
pub(crate) async fn delete_of(tx: &mut AnyTx<'_>, order: &Order) -> DomainResult<()> {
    sqlx::query("DELETE FROM order_lines WHERE tenant = ? AND order_id = ?")
        .bind(order.main.tenant.as_str())
        .bind(order.main.id.as_i64())
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    Ok(())
}

/// The line rows of `ids` (orders of one tenant), by order id, in line order.
pub(crate) async fn select_of(
    connection: &mut AnyConnection,
    tenant: &TenantId,
    ids: &[i64],
) -> DomainResult<HashMap<i64, Vec<AnyRow>>> {
    let rows = TABLE
        .select_tenant_ids(
            connection,
            "order_id",
            tenant,
            ids,
            "ORDER BY order_id, line_no",
        )
        .await?;
    by_order_id(rows)
}

/// One line, its money in `currency`.
pub(crate) fn decode(row: &AnyRow, currency: Currency) -> DomainResult<OrderLine> {
    Ok(OrderLine {
        line_no: u32::try_from(int(row, "line_no")?).map_err(corrupt)?,
        sku: text(row, "sku")?,
        product_name: text(row, "product_name")?,
        quantity: u32::try_from(int(row, "quantity")?).map_err(corrupt)?,
        unit_price: Money::new(int(row, "unit_price")?, currency),
        unit_weight_grams: opt_int(row, "unit_weight_grams")?
            .map(u32::try_from)
            .transpose()
            .map_err(corrupt)?,
        promotion_type: opt_text(row, "promotion_type")?,
        payable: Money::new(int(row, "payable")?, currency),
        ext: ext::decode(row)?,
    })
}

/// Every line of one order, in line order.
pub(crate) fn decode_all(rows: &[AnyRow], currency: Currency) -> DomainResult<Vec<OrderLine>> {
    let mut lines = rows
        .iter()
        .map(|row| decode(row, currency))
        .collect::<DomainResult<Vec<_>>>()?;
    lines.sort_by_key(|line| line.line_no);
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oc_model::RESERVED_COLUMNS;

    #[test]
    fn every_column_has_one_marker() {
        let row = 10 + usize::from(RESERVED_COLUMNS);
        assert_eq!(TABLE.columns.len(), row);
        let sql = TABLE.insert(3);
        assert_eq!(sql.matches('?').count(), 3 * row);
        assert!(sql.starts_with("INSERT INTO order_lines (tenant, order_id, line_no"));
        assert!(sql.contains("ext_01"));
        assert_eq!(sql.matches("), (").count(), 2);
    }
}
