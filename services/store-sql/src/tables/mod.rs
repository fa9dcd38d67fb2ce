//! One module per table (or table group): the table's column list, the one function that binds
//! a row's values in that order, the decoding of a row, and the statements on the table. A
//! multi-row insert and a select list are built from the same column list, and every value is
//! bound by naming its column ([`Binder::bind`]), which is checked against the list in debug
//! builds: a list and its binding cannot drift apart by position.
//!
//! A table added later gets its own module here in the same shape: a `static TABLE:
//! LazyLock<Table>` naming its columns, a `bind` function per row kind, a `decode` per row,
//! and async functions for its statements taking a connection or transaction. A statement that
//! reads rows decodes them through [`fetch_optional`] / [`fetch_all`], a compare-and-set
//! answers through [`moved_one`].
//!
//! Text columns: MySQL reports columns with a binary collation (`utf8mb4_bin`, which every
//! table uses so keys compare byte for byte) as BLOB; [`text`] and [`opt_text`] accept both
//! and check the bytes as UTF-8. Decoding goes through them, nowhere else.

pub(crate) mod after_sales;
pub(crate) mod consumer_offsets;
pub(crate) mod dead_letters;
pub(crate) mod ext;
pub(crate) mod idempotency;
pub(crate) mod key_ring_reports;
pub(crate) mod order_history;
pub(crate) mod order_identifiers;
pub(crate) mod order_lines;
pub(crate) mod orders;
pub(crate) mod outbox;
pub(crate) mod payments;
pub(crate) mod return_pickups;
pub(crate) mod slot_ledger;
pub(crate) mod stock_levels;
pub(crate) mod stock_reservations;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Row as _};

use oc_model::{Currency, DomainError};

use crate::error::convert;

/// A statement with its arguments, on any of the two dialects.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// A transaction on a shard.
pub(crate) type AnyTx<'c> = sqlx::Transaction<'c, Any>;

/// Column names in bind order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Columns {
    names: Vec<String>,
}

impl Columns {
    pub(crate) fn of(names: &[&str]) -> Columns {
        Columns {
            names: names.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    /// `names` followed by the reserved extension columns `ext_01` … `ext_NN`.
    pub(crate) fn with_ext(names: &[&str]) -> Columns {
        let mut columns = Columns::of(names);
        columns.names.extend(ext::COLUMNS.iter().cloned());
        columns
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// `a, b, c`
    pub(crate) fn list(&self) -> String {
        self.names.join(", ")
    }

    /// `a = ?, b = ?, c = ?`
    pub(crate) fn assignments(&self) -> String {
        self.names
            .iter()
            .map(|name| format!("{name} = ?"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Binds the values of one row (or one `SET` list) to `query`, column by column.
    pub(crate) fn binder<'q>(&'static self, query: AnyQuery<'q>) -> Binder<'q> {
        Binder {
            query,
            columns: self,
            bound: 0,
        }
    }
}

/// `?, ?, …` with `count` markers.
pub(crate) fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// A table: its name, its columns and the parts of its statements built from them once.
#[derive(Debug)]
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: Columns,
    insert_head: String,
    row: String,
}

impl Table {
    pub(crate) fn new(name: &'static str, columns: Columns) -> Table {
        let insert_head = format!("INSERT INTO {name} ({}) VALUES ", columns.list());
        let row = format!("({})", placeholders(columns.len()));
        Table {
            name,
            columns,
            insert_head,
            row,
        }
    }

    /// `INSERT INTO name (…) VALUES (…), (…)` for `rows` rows.
    pub(crate) fn insert(&self, rows: usize) -> String {
        let mut sql = String::with_capacity(self.insert_head.len() + rows * (self.row.len() + 2));
        sql.push_str(&self.insert_head);
        for n in 0..rows {
            if n > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&self.row);
        }
        sql
    }

    /// `SELECT <every column> FROM name <rest>`
    pub(crate) fn select(&self, rest: &str) -> String {
        format!("SELECT {} FROM {} {rest}", self.columns.list(), self.name)
    }

    /// The rows of one tenant whose `column` is one of `ids`, with `then` after the condition
    /// (an `ORDER BY`, or nothing); no ids, no statement.
    pub(crate) async fn select_tenant_ids(
        &self,
        connection: &mut sqlx::AnyConnection,
        column: &str,
        tenant: &oc_model::TenantId,
        ids: &[i64],
        then: &str,
    ) -> Result<Vec<AnyRow>, DomainError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.select(&format!(
            "WHERE tenant = ? AND {column} IN ({}) {then}",
            placeholders(ids.len())
        ));
        let mut query = sqlx::query(&sql).bind(tenant.as_str());
        for id in ids {
            query = query.bind(*id);
        }
        query.fetch_all(connection).await.map_err(convert)
    }

    /// Binds one row of this table.
    pub(crate) fn binder<'q>(&'static self, query: AnyQuery<'q>) -> Binder<'q> {
        self.columns.binder(query)
    }
}

/// Binds values to a statement in the order of a column list, each by its column's name.
#[must_use = "finish the row with `done`"]
pub(crate) struct Binder<'q> {
    query: AnyQuery<'q>,
    columns: &'static Columns,
    bound: usize,
}

impl<'q> Binder<'q> {
    /// Binds the value of `column`, which must be the next column of the list.
    pub(crate) fn bind<T>(mut self, column: &str, value: T) -> Binder<'q>
    where
        T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>,
    {
        debug_assert_eq!(
            self.columns.names.get(self.bound).map(String::as_str),
            Some(column),
            "a value bound out of its table's column order"
        );
        self.bound += 1;
        self.query = self.query.bind(value);
        self
    }

    /// Binds the reserved extension columns, `ext_01` … `ext_NN`.
    pub(crate) fn bind_ext(mut self, values: Vec<Option<String>>) -> Binder<'q> {
        for (name, value) in ext::COLUMNS.iter().zip(values) {
            self = self.bind(name, value);
        }
        self
    }

    /// Every column is bound: the statement, to bind the next row or its `WHERE` values to.
    pub(crate) fn done(self) -> AnyQuery<'q> {
        debug_assert_eq!(
            self.bound,
            self.columns.len(),
            "a row bound with fewer values than its table has columns"
        );
        self.query
    }
}

/// `rows` by their `order_id`, each order's rows in the order read.
pub(crate) fn by_order_id(
    rows: Vec<AnyRow>,
) -> Result<std::collections::HashMap<i64, Vec<AnyRow>>, DomainError> {
    let mut grouped: std::collections::HashMap<i64, Vec<AnyRow>> = std::collections::HashMap::new();
    for row in rows {
        grouped.entry(int(&row, "order_id")?).or_default().push(row);
    }
    Ok(grouped)
}

/// The row `query` finds on `executor` (a pool, a connection, a transaction), if any,
/// decoded by the table's `decode`.
pub(crate) async fn fetch_optional<'q, 'e, 'c: 'e, E, T>(
    query: AnyQuery<'q>,
    executor: E,
    decode: fn(&AnyRow) -> Result<T, DomainError>,
) -> Result<Option<T>, DomainError>
where
    'q: 'e,
    E: 'e + sqlx::Executor<'c, Database = Any>,
{
    query
        .fetch_optional(executor)
        .await
        .map_err(convert)?
        .as_ref()
        .map(decode)
        .transpose()
}

/// Every row `query` finds on `executor`, decoded by the table's `decode`, in order.
pub(crate) async fn fetch_all<'q, 'e, 'c: 'e, E, T>(
    query: AnyQuery<'q>,
    executor: E,
    decode: fn(&AnyRow) -> Result<T, DomainError>,
) -> Result<Vec<T>, DomainError>
where
    'q: 'e,
    E: 'e + sqlx::Executor<'c, Database = Any>,
{
    query
        .fetch_all(executor)
        .await
        .map_err(convert)?
        .iter()
        .map(decode)
        .collect()
}

/// Runs a compare-and-set `UPDATE` (its `WHERE` names one row and the state it must be in):
/// whether it moved that row.
pub(crate) async fn moved_one<'q, 'e, 'c: 'e, E>(
    query: AnyQuery<'q>,
    executor: E,
) -> Result<bool, DomainError>
where
    'q: 'e,
    E: 'e + sqlx::Executor<'c, Database = Any>,
{
    let done = query.execute(executor).await.map_err(convert)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) fn corrupt(error: impl std::fmt::Display) -> DomainError {
    DomainError::internal(format!("corrupt row: {error}"))
}

/// A text column (see the module documentation for why bytes are accepted).
pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String, DomainError> {
    opt_text(row, column)?.ok_or_else(|| corrupt(format!("column {column} is NULL")))
}

pub(crate) fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, DomainError> {
    match row.try_get::<Option<String>, _>(column) {
        Ok(value) => Ok(value),
        Err(sqlx::Error::ColumnDecode { .. }) => row
            .try_get::<Option<Vec<u8>>, _>(column)
            .map_err(corrupt)?
            .map(|bytes| String::from_utf8(bytes).map_err(corrupt))
            .transpose(),
        Err(other) => Err(corrupt(other)),
    }
}

pub(crate) fn int(row: &AnyRow, column: &str) -> Result<i64, DomainError> {
    row.try_get::<i64, _>(column).map_err(corrupt)
}

pub(crate) fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>, DomainError> {
    row.try_get::<Option<i64>, _>(column).map_err(corrupt)
}

/// A column that holds a non-negative integer (an id, a version); negative is corrupt.
pub(crate) fn unsigned(row: &AnyRow, column: &str) -> Result<u64, DomainError> {
    u64::try_from(int(row, column)?).map_err(corrupt)
}

/// A column that holds a count (a line number, a quantity, attempts).
pub(crate) fn count(row: &AnyRow, column: &str) -> Result<u32, DomainError> {
    u32::try_from(int(row, column)?).map_err(corrupt)
}

/// The `currency` column of a row (an order's main row, a payment, a refund, an after-sale):
/// the money beside it is in it.
pub(crate) fn currency_of(row: &AnyRow) -> Result<Currency, DomainError> {
    Currency::parse(&text(row, "currency")?).map_err(corrupt)
}

/// Milliseconds since the epoch, as every `*_ms` column holds them.
pub(crate) fn unix_ms(at: time::OffsetDateTime) -> i64 {
    oc_model::UnixMillis::floor(at).get()
}

/// A `*_ms` column's value back into a time.
pub(crate) fn from_unix_ms(millis: i64) -> Result<time::OffsetDateTime, DomainError> {
    oc_model::UnixMillis::new(millis).to_datetime()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    static PAIR: LazyLock<Table> = LazyLock::new(|| Table::new("t", Columns::of(&["a", "b"])));

    #[test]
    fn multi_row_inserts_are_built_from_the_column_list() {
        assert_eq!(PAIR.insert(2), "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)");
        assert_eq!(PAIR.select("WHERE a = ?"), "SELECT a, b FROM t WHERE a = ?");
        assert_eq!(PAIR.columns.assignments(), "a = ?, b = ?");
    }

    #[test]
    #[should_panic(expected = "out of its table's column order")]
    fn binding_out_of_order_is_caught() {
        let sql = PAIR.insert(1);
        let _ = PAIR.binder(sqlx::query(&sql)).bind("b", 1_i64);
    }

    #[test]
    #[should_panic(expected = "fewer values")]
    fn a_short_row_is_caught() {
        let sql = PAIR.insert(1);
        let _ = PAIR.binder(sqlx::query(&sql)).bind("a", 1_i64).done();
    }
}
