//! The raw ceilings of `loadtest bench`: the order-shaped transaction the store writes for one
//! create (idempotency row, order row, line rows, KV identifier rows, outbox row, in one
//! transaction), captured from rows a real server wrote and written again directly with sqlx,
//! with nothing of ours in between.
//!
//! The same capture and the same transaction serve both engines: MariaDB (the cluster's
//! ceiling) and SQLite (single-node mode's), so the two ceilings differ only by the engine.
//! Each engine is reached through sqlx's native driver (`MySqlPool`, `SqlitePool`), not the
//! `Any` driver the store uses: the ceiling is the database's, and the cost of `Any` is ours.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::bail;
use sqlx::mysql::{MySql, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{
    Column, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type,
    TypeInfo,
};

use crate::engine::Step;
use crate::stats::Outcome;

/// The tables one create writes, in the order the store writes them.
pub const TABLES: &[&str] = &[
    "idempotency",
    "orders",
    "order_lines",
    "order_identifiers",
    "outbox",
];

/// A cell of a captured row.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone)]
struct CapturedRow {
    columns: Vec<String>,
    cells: Vec<Cell>,
}

impl CapturedRow {
    /// The row's cells but the `skip`ped columns (generated ones, the outbox's sequence).
    /// `published_at_ms` is captured as NULL: a create writes its outbox row unpublished,
    /// whatever a relay did to the row since.
    fn of<R: Row>(row: &R, skip: &[&str]) -> anyhow::Result<CapturedRow>
    where
        usize: ColumnIndex<R>,
        for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
    {
        let mut columns = Vec::new();
        let mut cells = Vec::new();
        for (index, column) in row.columns().iter().enumerate() {
            if skip.contains(&column.name()) {
                continue;
            }
            let kind = column.type_info().name().to_ascii_uppercase();
            let cell = if column.name() == "published_at_ms" {
                Cell::Null
            } else if kind.contains("INT") {
                row.try_get::<Option<i64>, _>(index)?
                    .map_or(Cell::Null, Cell::Int)
            } else if let Ok(text) = row.try_get::<Option<String>, _>(index) {
                text.map_or(Cell::Null, Cell::Text)
            } else {
                row.try_get::<Option<Vec<u8>>, _>(index)?
                    .map_or(Cell::Null, |b| {
                        Cell::Text(String::from_utf8_lossy(&b).into_owned())
                    })
            };
            columns.push(column.name().to_owned());
            cells.push(cell);
        }
        Ok(CapturedRow { columns, cells })
    }

    fn get(&self, column: &str) -> Option<&Cell> {
        self.columns
            .iter()
            .position(|c| c == column)
            .map(|i| &self.cells[i])
    }
}

/// The rows one order create wrote, and the SQL to write them again.
#[derive(Debug, Clone)]
pub struct TxTemplate {
    statements: Vec<(String, Vec<CapturedRow>)>,
}

fn insert_sql(table: &str, rows: &[CapturedRow]) -> String {
    let columns = rows[0].columns.join(", ");
    let one = format!("({})", vec!["?"; rows[0].columns.len()].join(", "));
    format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        vec![one; rows.len()].join(", ")
    )
}

impl TxTemplate {
    /// Write the template's rows as order `id`, in one transaction, in the store's order.
    async fn write<DB>(&self, pool: &Pool<DB>, id: i64) -> Result<(), sqlx::Error>
    where
        DB: Database,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'q> String: Encode<'q, DB> + Type<DB>,
        for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
        for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    {
        let mut tx = pool.begin().await?;
        for (sql, rows) in &self.statements {
            let mut query = sqlx::query::<DB>(sql);
            for row in rows {
                for (column, cell) in row.columns.iter().zip(&row.cells) {
                    query = match (column.as_str(), cell) {
                        ("id" | "order_id", _) => query.bind(id),
                        ("idem_key" | "external_ref", Cell::Text(text)) => {
                            query.bind(format!("{text}-{id}"))
                        }
                        (_, Cell::Null) => query.bind(None::<String>),
                        (_, Cell::Int(value)) => query.bind(*value),
                        (_, Cell::Text(text)) => query.bind(text.as_str()),
                    };
                }
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await
    }
}

/// Rows of [`TABLES`] by order id, one map per table, as read from one shard.
type ByTable = Vec<BTreeMap<i64, Vec<CapturedRow>>>;

/// One template per order in `by_table` (a create's rows of every table).
fn templates_of(by_table: &ByTable, into: &mut Vec<TxTemplate>) {
    for id in by_table[1].keys() {
        let statements = TABLES
            .iter()
            .zip(by_table)
            .filter_map(|(table, rows)| {
                rows.get(id)
                    .map(|rows| (insert_sql(table, rows), rows.clone()))
            })
            .collect();
        into.push(TxTemplate { statements });
    }
}

/// The captured row filed under its order's id.
fn file(
    table: &str,
    captured: CapturedRow,
    rows: &mut BTreeMap<i64, Vec<CapturedRow>>,
) -> anyhow::Result<()> {
    let id = match captured.get(if table == "orders" { "id" } else { "order_id" }) {
        Some(Cell::Int(id)) => *id,
        other => bail!("{table}: no order id in a captured row ({other:?})"),
    };
    rows.entry(id).or_default().push(captured);
    Ok(())
}

fn order_by(table: &str) -> &'static str {
    if table == "order_lines" {
        " ORDER BY order_id, line_no"
    } else {
        ""
    }
}

/// Read back every order a server wrote into the MariaDB shards `urls` as templates.
pub async fn capture_mysql(urls: &[String]) -> anyhow::Result<Vec<TxTemplate>> {
    let mut templates = Vec::new();
    for url in urls {
        let pool = MySqlPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await?;
        let mut by_table: ByTable = Vec::new();
        for table in TABLES {
            let mut rows = BTreeMap::new();
            // generated columns (e.g. `orders.merchant_scope`) cannot be inserted
            let generated: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND IS_GENERATED = 'ALWAYS'",
            )
            .bind(*table)
            .fetch_all(&pool)
            .await?;
            let mut skip: Vec<&str> = generated.iter().map(String::as_str).collect();
            skip.push("seq");
            let sql = format!("SELECT * FROM {table}{}", order_by(table));
            for row in sqlx::query(&sql).fetch_all(&pool).await? {
                file(table, CapturedRow::of(&row, &skip)?, &mut rows)?;
            }
            by_table.push(rows);
        }
        pool.close().await;
        templates_of(&by_table, &mut templates);
    }
    Ok(templates)
}

/// Read back every order a single-node server wrote into the SQLite shard files `paths`.
pub async fn capture_sqlite(paths: &[impl AsRef<Path>]) -> anyhow::Result<Vec<TxTemplate>> {
    let mut templates = Vec::new();
    for path in paths {
        let pool = sqlite_pool(path.as_ref(), 1).await?;
        let mut by_table: ByTable = Vec::new();
        for table in TABLES {
            let mut rows = BTreeMap::new();
            // generated columns are hidden 2 (virtual) or 3 (stored) in table_xinfo
            let generated: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT name FROM pragma_table_xinfo('{table}') WHERE hidden IN (2, 3)"
            ))
            .fetch_all(&pool)
            .await?;
            let mut skip: Vec<&str> = generated.iter().map(String::as_str).collect();
            skip.push("seq");
            let sql = format!("SELECT * FROM {table}{}", order_by(table));
            for row in sqlx::query(&sql).fetch_all(&pool).await? {
                file(table, CapturedRow::of(&row, &skip)?, &mut rows)?;
            }
            by_table.push(rows);
        }
        pool.close().await;
        templates_of(&by_table, &mut templates);
    }
    Ok(templates)
}

/// A pool for the raw MariaDB transaction: like the order store's, it does not ping a
/// connection before every transaction (the ceiling is the database's, not sqlx's defaults').
pub async fn mysql_pool(url: &str, connections: u32) -> anyhow::Result<MySqlPool> {
    Ok(MySqlPoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
        .connect(url)
        .await?)
}

/// A pool on the SQLite file `path` with the order store's durability: WAL, `synchronous =
/// FULL` (a commit survives power loss), writers queueing up to 10 s for the file's one
/// write lock; no ping before a transaction. Creates the file.
pub async fn sqlite_pool(path: &Path, connections: u32) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    Ok(SqlitePoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
        .connect_with(options)
        .await?)
}

/// Copy the schema of the server-migrated MariaDB shard `from` into `to` (same DDL).
pub async fn copy_mysql_schema(from: &str, to: &str) -> anyhow::Result<()> {
    let source = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(from)
        .await?;
    let target = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(to)
        .await?;
    for table in TABLES {
        let row = sqlx::query(&format!("SHOW CREATE TABLE {table}"))
            .fetch_one(&source)
            .await?;
        let ddl: String = row.try_get(1)?;
        target.execute(ddl.as_str()).await?;
    }
    source.close().await;
    target.close().await;
    Ok(())
}

/// Copy the tables of [`TABLES`] and their indexes from the server-migrated SQLite shard
/// `from` into a new file `to` (the same DDL, in creation order).
pub async fn copy_sqlite_schema(from: &Path, to: &Path) -> anyhow::Result<()> {
    let source = sqlite_pool(from, 1).await?;
    let target = sqlite_pool(to, 1).await?;
    let names = TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let ddl: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT sql FROM sqlite_master WHERE tbl_name IN ({names}) AND sql IS NOT NULL \
         ORDER BY rowid"
    ))
    .fetch_all(&source)
    .await?;
    if ddl.len() < TABLES.len() {
        bail!(
            "{}: only {} of the order tables' DDL",
            from.display(),
            ddl.len()
        );
    }
    for statement in ddl {
        target.execute(statement.as_str()).await?;
    }
    source.close().await;
    target.close().await;
    Ok(())
}

/// The pools of a raw step: one per shard.
#[derive(Debug, Clone)]
pub enum RawPools {
    MySql(Vec<MySqlPool>),
    Sqlite(Vec<SqlitePool>),
}

impl RawPools {
    fn len(&self) -> usize {
        match self {
            RawPools::MySql(pools) => pools.len(),
            RawPools::Sqlite(pools) => pools.len(),
        }
    }

    pub async fn close(&self) {
        match self {
            RawPools::MySql(pools) => {
                for pool in pools {
                    pool.close().await;
                }
            }
            RawPools::Sqlite(pools) => {
                for pool in pools {
                    pool.close().await;
                }
            }
        }
    }
}

/// The raw transaction as a load step: template and shard by request number.
#[derive(Debug)]
pub struct RawTx {
    pub pools: RawPools,
    pub templates: Vec<TxTemplate>,
    /// Order ids, shared by every run on the same databases.
    pub next_id: Arc<AtomicI64>,
}

impl Step for RawTx {
    async fn step(&self, n: u64) -> Outcome {
        let shards = self.pools.len();
        let shard = n as usize % shards;
        let template = &self.templates[(n as usize / shards) % self.templates.len()];
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let written = match &self.pools {
            RawPools::MySql(pools) => template.write::<MySql>(&pools[shard], id).await,
            RawPools::Sqlite(pools) => template.write::<Sqlite>(&pools[shard], id).await,
        };
        match written {
            Ok(()) => Outcome::status("tx", 200),
            Err(error) => Outcome::failed("tx", error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use crate::acceptance_tests::app;
    use crate::orders::{Generator, tenant_of_request};

    /// Rows of `table` in the SQLite file `path`, as text, but the columns a copy changes
    /// (ids, the keys suffixed per copy, the outbox's sequence); sorted.
    async fn rows_of(path: &Path, table: &str) -> Vec<String> {
        let pool = sqlite_pool(path, 1).await.unwrap();
        let changed = [
            "id",
            "order_id",
            "idem_key",
            "external_ref",
            "seq",
            "published_at_ms",
        ];
        let columns: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM pragma_table_xinfo('{table}')"))
                .fetch_all(&pool)
                .await
                .unwrap();
        let kept: Vec<&str> = columns
            .iter()
            .map(String::as_str)
            .filter(|c| !changed.contains(c))
            .collect();
        let mut rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT {} FROM {table}",
            kept.iter()
                .map(|c| format!("quote({c})"))
                .collect::<Vec<_>>()
                .join(" || '|' || ")
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.sort();
        rows
    }

    /// Orders created through the real API into SQLite shard files, captured, and written
    /// again once each by the raw transaction into fresh files with the copied schema: every
    /// table holds the same rows but the ids (the raw ceiling writes what a create writes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_raw_sqlite_transaction_writes_the_rows_a_create_wrote() {
        let source = tempfile::tempdir().unwrap();
        let app = app(source.path()).await;
        let generator = Generator::default();
        for n in 0..6 {
            let tenant = tenant_of_request(n);
            let (order, _) = generator.order(tenant, n);
            // as the bench's traffic does: an idempotency key, so the idempotency row too
            let request = Request::post("/v1/orders")
                .header("authorization", format!("Bearer {}", tenant.key))
                .header("content-type", "application/json")
                .header("idempotency-key", format!("raw-test-{n}"))
                .body(Body::from(order.to_string()))
                .unwrap();
            let status = app.clone().oneshot(request).await.unwrap().status();
            assert_eq!(status, 201);
        }
        drop(app);
        let files: Vec<_> = (0..2)
            .map(|i| source.path().join(format!("shard-{i}.db")))
            .collect();
        let templates = capture_sqlite(&files).await.unwrap();
        assert_eq!(templates.len(), 6);

        let copy = tempfile::tempdir().unwrap();
        let copies: Vec<_> = (0..2)
            .map(|i| copy.path().join(format!("shard-{i}.db")))
            .collect();
        let mut pools = Vec::new();
        for (from, to) in files.iter().zip(&copies) {
            copy_sqlite_schema(from, to).await.unwrap();
            pools.push(sqlite_pool(to, 2).await.unwrap());
        }
        // one file: each template once, in capture order
        let step = RawTx {
            pools: RawPools::Sqlite(vec![pools[0].clone()]),
            templates: templates.clone(),
            next_id: Arc::new(AtomicI64::new(1 << 50)),
        };
        for n in 0..6 {
            let outcome = step.step(n).await;
            assert_eq!(outcome.status, 200, "{outcome:?}");
        }
        step.pools.close().await;
        for pool in pools {
            pool.close().await;
        }
        for table in TABLES {
            let mut written = Vec::new();
            for file in &files {
                written.extend(rows_of(file, table).await);
            }
            written.sort();
            assert!(
                !written.is_empty(),
                "{table}: no rows written by the creates"
            );
            assert_eq!(rows_of(&copies[0], table).await, written, "{table}");
        }
    }

    #[test]
    fn insert_statements_cover_every_row() {
        let row = CapturedRow {
            columns: vec!["tenant".into(), "order_id".into(), "line_no".into()],
            cells: vec![Cell::Text("retail".into()), Cell::Int(1), Cell::Int(1)],
        };
        assert_eq!(
            insert_sql("order_lines", &[row.clone(), row]),
            "INSERT INTO order_lines (tenant, order_id, line_no) VALUES (?, ?, ?), (?, ?, ?)"
        );
    }
}
