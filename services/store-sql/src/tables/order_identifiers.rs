//! `order_identifiers`: KV identifiers, one row per `(domain, line, key)` of an order. Values
//! are stored text (`KvValue`): a clear value's canonical text or a sealed value's JSON.

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use oc_model::{BusinessDomain, DomainError, DomainResult, KvIdentifier, KvValue, Order, TenantId};

use super::{AnyQuery, AnyTx, Binder, Columns, Table, by_order_id, corrupt, int, text};
use crate::error::{convert, is_unique_violation};

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "order_identifiers",
        Columns::of(&[
            "tenant", "order_id", "domain", "line_no", "id_key", "id_value",
        ]),
    )
});

/// The values of one identifier row, in the table's column order. An order-level identifier
/// has line 0.
fn bind<'q>(row: Binder<'q>, order: &'q Order, identifier: &'q KvIdentifier) -> Binder<'q> {
    row.bind("tenant", order.main.tenant.as_str())
        .bind("order_id", order.main.id.as_i64())
        .bind("domain", identifier.domain.as_str())
        .bind("line_no", identifier.line_no.map(i64::from).unwrap_or(0))
        .bind("id_key", identifier.key.as_str())
        .bind("id_value", identifier.value.stored())
}

/// The KV identifiers of `orders`, in one statement (none: nothing).
pub(crate) async fn insert(tx: &mut AnyTx<'_>, orders: &[&Order]) -> DomainResult<()> {
    let Some(sql) = insert_sql(orders) else {
        return Ok(());
    };
    let query = bind_rows(sqlx::query(&sql), orders);
    query.execute(&mut **tx).await.map_err(|e| {
        if is_unique_violation(&e) {
            DomainError::invalid(
                "/extension/identifiers",
                "an identifier key appears twice in one domain",
            )
        } else {
            convert(e)
        }
    })?;
    Ok(())
}

/// The statement [`insert`] runs for `orders`, if they have identifiers.
pub(crate) fn insert_sql(orders: &[&Order]) -> Option<String> {
    let rows: usize = orders.iter().map(|o| o.extension.identifiers.len()).sum();
    (rows > 0).then(|| TABLE.insert(rows))
}

/// Binds the rows of [`insert_sql`]'s statement onto `query`.
pub(crate) fn bind_rows<'q>(mut query: AnyQuery<'q>, orders: &[&'q Order]) -> AnyQuery<'q> {
    for order in orders {
        for identifier in &order.extension.identifiers {
            query = bind(TABLE.binder(query), order, identifier).done();
        }
    }
    query
}

/// Removes an order's identifiers (an update writes them all again).
pub(crate) async fn delete_of(tx: &mut AnyTx<'_>, order: &Order) -> DomainResult<()> {
    sqlx::query("DELETE FROM order_identifiers WHERE tenant = ? AND order_id = ?")
        .bind(order.main.tenant.as_str())
        .bind(order.main.id.as_i64())
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    Ok(())
}

/// The identifier rows of `ids` (orders of one tenant), by order id.
pub(crate) async fn select_of(
    connection: &mut AnyConnection,
    tenant: &TenantId,
    ids: &[i64],
) -> DomainResult<HashMap<i64, Vec<AnyRow>>> {
    let rows = TABLE
        .select_tenant_ids(connection, "order_id", tenant, ids, "")
        .await?;
    by_order_id(rows)
}

fn decode(row: &AnyRow) -> DomainResult<KvIdentifier> {
    let domain: BusinessDomain =
        serde_json::from_value(serde_json::Value::String(text(row, "domain")?)).map_err(corrupt)?;
    let line_no = int(row, "line_no")?;
    Ok(KvIdentifier {
        domain,
        key: text(row, "id_key")?,
        value: KvValue::from_stored(text(row, "id_value")?),
        line_no: if line_no == 0 {
            None
        } else {
            Some(u32::try_from(line_no).map_err(corrupt)?)
        },
    })
}

/// Every identifier of one order, sorted.
pub(crate) fn decode_all(rows: &[AnyRow]) -> DomainResult<Vec<KvIdentifier>> {
    let mut identifiers = rows.iter().map(decode).collect::<DomainResult<Vec<_>>>()?;
    identifiers.sort();
    Ok(identifiers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_one_marker() {
        assert_eq!(TABLE.insert(4).matches('?').count(), 4 * 6);
    }
}
