//! The SQL text of the statements every read and write runs, built once. With the reserved
//! extension columns they are long (`ext_01 = ?, …, ext_NN = ?`), and building them on every
//! call cost a handful of `format!`s per request on the hot path. Statements whose shape
//! depends on the request (the number of lines, of identifiers, of ids in an `IN (…)`) are
//! assembled from the fixed parts here.

use std::sync::LazyLock;

use oc_model::RESERVED_COLUMNS;

/// The columns of `orders` before the extension columns, in bind order.
const ORDER_COLUMNS: &str = "tenant, id, bucket, buyer_id, merchant_id, business_identity, order_type, status, version, currency, goods_total, discount_total, freight, payable, external_ref, created_at_ms, updated_at_ms, pay_deadline_ms, body";
/// The columns of `order_lines` before the extension columns, in bind order.
const LINE_COLUMNS: &str = "tenant, order_id, line_no, sku, product_name, quantity, unit_price, unit_weight_grams, promotion_type, payable";

/// `ext_01` … `ext_NN`.
pub(crate) static EXT_COLUMNS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (1..=RESERVED_COLUMNS)
        .map(|i| format!("ext_{i:02}"))
        .collect()
});

fn column_count(columns: &str) -> usize {
    columns.split(", ").count() + EXT_COLUMNS.len()
}

/// `?, ?, …` with `count` markers.
pub(crate) fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

fn ext_list() -> String {
    EXT_COLUMNS.join(", ")
}

fn ext_assignments() -> String {
    EXT_COLUMNS
        .iter()
        .map(|c| format!("{c} = ?"))
        .collect::<Vec<_>>()
        .join(", ")
}

static INSERT_ORDERS_HEAD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO orders ({ORDER_COLUMNS}, {}) VALUES ",
        ext_list()
    )
});

static ORDER_ROW: LazyLock<String> =
    LazyLock::new(|| format!("({})", placeholders(column_count(ORDER_COLUMNS))));

/// `head` followed by `rows` copies of `row`, comma-separated.
fn rows_of(head: &str, row: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 2));
    sql.push_str(head);
    for n in 0..rows {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql
}

/// `INSERT INTO orders … VALUES (…), (…)` for `rows` orders.
pub(crate) fn insert_orders(rows: usize) -> String {
    rows_of(&INSERT_ORDERS_HEAD, &ORDER_ROW, rows)
}

/// `INSERT INTO outbox … VALUES (…), (…)` for `rows` events.
pub(crate) fn insert_outbox(rows: usize) -> String {
    rows_of(
        "INSERT INTO outbox (tenant, order_id, version, payload, created_at_ms) VALUES ",
        "(?, ?, ?, ?, ?)",
        rows,
    )
}

/// `INSERT INTO idempotency … VALUES (…), (…)` for `rows` keys.
pub(crate) fn insert_idempotency(rows: usize) -> String {
    rows_of(
        "INSERT INTO idempotency (tenant, buyer_id, idem_key, request_hash, order_id, created_at_ms) VALUES ",
        "(?, ?, ?, ?, ?, ?)",
        rows,
    )
}

pub(crate) static SELECT_ORDER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {ORDER_COLUMNS}, {} FROM orders WHERE tenant = ? AND id = ?",
        ext_list()
    )
});

pub(crate) static SELECT_BUYER_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {ORDER_COLUMNS}, {} FROM orders WHERE tenant = ? AND buyer_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        ext_list()
    )
});

/// Binds: the changed main columns, body, the extension columns, then tenant, id and the
/// expected version.
pub(crate) static UPDATE_ORDER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE orders SET merchant_id = ?, status = ?, version = ?, goods_total = ?, discount_total = ?, freight = ?, payable = ?, updated_at_ms = ?, pay_deadline_ms = ?, body = ?, {} WHERE tenant = ? AND id = ? AND version = ?",
        ext_assignments()
    )
});

/// Binds: body, the extension columns, then tenant, id and the version it must still be at.
pub(crate) static REWRITE_SEALED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE orders SET body = ?, {} WHERE tenant = ? AND id = ? AND version = ?",
        ext_assignments()
    )
});

static INSERT_LINES_HEAD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO order_lines ({LINE_COLUMNS}, {}) VALUES ",
        ext_list()
    )
});

static LINE_ROW: LazyLock<String> =
    LazyLock::new(|| format!("({})", placeholders(column_count(LINE_COLUMNS))));

/// `INSERT INTO order_lines … VALUES (…), (…)` for `lines` rows.
pub(crate) fn insert_lines(lines: usize) -> String {
    rows_of(&INSERT_LINES_HEAD, &LINE_ROW, lines)
}

static SELECT_LINES_HEAD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {LINE_COLUMNS}, {} FROM order_lines WHERE tenant = ? AND order_id IN (",
        ext_list()
    )
});

/// The lines of `orders` orders of one tenant, in order and line order.
pub(crate) fn select_lines(orders: usize) -> String {
    format!(
        "{}{}) ORDER BY order_id, line_no",
        *SELECT_LINES_HEAD,
        placeholders(orders)
    )
}

/// The KV identifiers of `orders` orders of one tenant.
pub(crate) fn select_identifiers(orders: usize) -> String {
    format!(
        "SELECT order_id, domain, line_no, id_key, id_value FROM order_identifiers WHERE tenant = ? AND order_id IN ({})",
        placeholders(orders)
    )
}

/// `INSERT INTO order_identifiers … VALUES (…), (…)` for `identifiers` rows.
pub(crate) fn insert_identifiers(identifiers: usize) -> String {
    rows_of(
        "INSERT INTO order_identifiers (tenant, order_id, domain, line_no, id_key, id_value) VALUES ",
        "(?, ?, ?, ?, ?, ?)",
        identifiers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(sql: &str) -> usize {
        sql.matches('?').count()
    }

    #[test]
    fn every_column_has_one_marker() {
        assert_eq!(
            markers(&insert_orders(1)),
            19 + usize::from(RESERVED_COLUMNS)
        );
        assert_eq!(
            markers(&insert_orders(3)),
            3 * (19 + usize::from(RESERVED_COLUMNS))
        );
        assert_eq!(markers(&insert_outbox(2)), 2 * 5);
        assert_eq!(markers(&insert_idempotency(2)), 2 * 6);
        let line_binds = 10 + usize::from(RESERVED_COLUMNS);
        assert_eq!(column_count(LINE_COLUMNS), line_binds);
        assert_eq!(markers(&insert_lines(3)), 3 * line_binds);
        assert_eq!(markers(&insert_identifiers(4)), 4 * 6);
        assert_eq!(
            markers(&UPDATE_ORDER),
            10 + usize::from(RESERVED_COLUMNS) + 3
        );
        assert_eq!(
            markers(&REWRITE_SEALED),
            1 + usize::from(RESERVED_COLUMNS) + 3
        );
        assert_eq!(markers(&select_lines(5)), 1 + 5);
        assert_eq!(markers(&SELECT_ORDER), 2);
        assert_eq!(markers(&SELECT_BUYER_PAGE), 4);
    }

    #[test]
    fn multi_row_inserts_are_well_formed() {
        let sql = insert_lines(2);
        assert!(sql.starts_with("INSERT INTO order_lines (tenant, order_id, line_no"));
        assert!(sql.contains("ext_01"));
        assert!(sql.ends_with(&format!("), {}", *LINE_ROW)));
        assert_eq!(sql.matches("), (").count(), 1);
        assert!(select_lines(1).ends_with("IN (?) ORDER BY order_id, line_no"));
    }
}
