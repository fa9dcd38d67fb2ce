//! Schema migrations, identical on every shard. A tiny migrator of our own: the files are
//! embedded, applied in order, and recorded in `schema_migrations`, so starting a binary
//! against a fresh shard prepares it and starting it again changes nothing.

use sqlx::{AnyPool, Executor, Row};

use crate::config::Dialect;

struct Migration {
    version: i64,
    name: &'static str,
    mysql: &'static str,
    sqlite: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        mysql: include_str!("../migrations/mysql/0001_init.sql"),
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "consumer_offsets",
        mysql: include_str!("../migrations/mysql/0002_consumer_offsets.sql"),
        sqlite: include_str!("../migrations/sqlite/0002_consumer_offsets.sql"),
    },
    Migration {
        version: 3,
        name: "key_ring_reports",
        mysql: include_str!("../migrations/mysql/0003_key_ring_reports.sql"),
        sqlite: include_str!("../migrations/sqlite/0003_key_ring_reports.sql"),
    },
    Migration {
        version: 4,
        name: "external_ref_per_merchant",
        mysql: include_str!("../migrations/mysql/0004_external_ref_per_merchant.sql"),
        sqlite: include_str!("../migrations/sqlite/0004_external_ref_per_merchant.sql"),
    },
    Migration {
        version: 5,
        name: "slot_ledger",
        mysql: include_str!("../migrations/mysql/0005_slot_ledger.sql"),
        sqlite: include_str!("../migrations/sqlite/0005_slot_ledger.sql"),
    },
    Migration {
        version: 6,
        name: "lifecycle",
        mysql: include_str!("../migrations/mysql/0006_lifecycle.sql"),
        sqlite: include_str!("../migrations/sqlite/0006_lifecycle.sql"),
    },
    Migration {
        version: 7,
        name: "scheduler",
        mysql: include_str!("../migrations/mysql/0007_scheduler.sql"),
        sqlite: include_str!("../migrations/sqlite/0007_scheduler.sql"),
    },
    Migration {
        version: 8,
        name: "projector_dead_letters",
        mysql: include_str!("../migrations/mysql/0008_projector_dead_letters.sql"),
        sqlite: include_str!("../migrations/sqlite/0008_projector_dead_letters.sql"),
    },
    Migration {
        version: 9,
        name: "payments",
        mysql: include_str!("../migrations/mysql/0009_payments.sql"),
        sqlite: include_str!("../migrations/sqlite/0009_payments.sql"),
    },
    Migration {
        version: 10,
        name: "payment_refund_steps",
        mysql: include_str!("../migrations/mysql/0010_payment_refund_steps.sql"),
        sqlite: include_str!("../migrations/sqlite/0010_payment_refund_steps.sql"),
    },
    Migration {
        version: 11,
        name: "after_sales",
        mysql: include_str!("../migrations/mysql/0011_after_sales.sql"),
        sqlite: include_str!("../migrations/sqlite/0011_after_sales.sql"),
    },
    Migration {
        version: 12,
        name: "archive",
        mysql: include_str!("../migrations/mysql/0012_archive.sql"),
        sqlite: include_str!("../migrations/sqlite/0012_archive.sql"),
    },
    Migration {
        version: 13,
        name: "payment_outcomes",
        mysql: include_str!("../migrations/mysql/0013_payment_outcomes.sql"),
        sqlite: include_str!("../migrations/sqlite/0013_payment_outcomes.sql"),
    },
    Migration {
        version: 14,
        name: "return_pickups",
        mysql: include_str!("../migrations/mysql/0014_return_pickups.sql"),
        sqlite: include_str!("../migrations/sqlite/0014_return_pickups.sql"),
    },
    Migration {
        version: 15,
        name: "after_sale_lists",
        mysql: include_str!("../migrations/mysql/0015_after_sale_lists.sql"),
        sqlite: include_str!("../migrations/sqlite/0015_after_sale_lists.sql"),
    },
];

/// How many migrations this build applies to a shard.
pub fn count() -> usize {
    MIGRATIONS.len()
}

/// Split a migration file into statements: comment lines dropped first (they may contain
/// `;`), then split on `;` (our files have none inside literals).
fn statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .map(|line| format!("{line}\n"))
        .collect();
    without_comments
        .split(';')
        .map(|statement| statement.trim().to_owned())
        .filter(|statement| !statement.is_empty())
        .collect()
}

/// Apply every migration the shard has not seen yet.
pub(crate) async fn run(pool: &AnyPool, dialect: Dialect) -> Result<(), sqlx::Error> {
    run_to(pool, dialect, i64::MAX).await
}

/// Apply the migrations up to version `last` the shard has not seen yet (tests upgrade a
/// shard from an older schema with it).
async fn run_to(pool: &AnyPool, dialect: Dialect, last: i64) -> Result<(), sqlx::Error> {
    pool.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL, applied_at_ms BIGINT NOT NULL)",
    )
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    for migration in MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.version) && m.version <= last)
    {
        let now = oc_model::UnixMillis::now().get();
        let record = sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(now);
        match dialect {
            // MySQL commits DDL implicitly, so a transaction would not make this atomic there;
            // its statements are CREATE / ALTER, and a half-applied migration fails loudly on
            // re-run.
            Dialect::MySql => {
                for statement in statements(migration.mysql) {
                    pool.execute(statement.as_str()).await?;
                }
                record.execute(pool).await?;
            }
            // SQLite's DDL is transactional: a migration and its record commit together on one
            // connection, so a table rebuild (0013) interrupted half-way leaves the old table
            // as it was, never a dropped table whose copy was not renamed yet.
            Dialect::Sqlite => {
                let mut tx = pool.begin().await?;
                for statement in statements(migration.sqlite) {
                    (&mut *tx).execute(statement.as_str()).await?;
                }
                record.execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied shard migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0013 rebuilds SQLite's `payments` to widen its status CHECK: rows written under 0012
    /// survive it, the new statuses are accepted, the CHECK still refuses others, the indexes
    /// are back, and a payment left pending with no next query is due again.
    #[tokio::test]
    async fn the_payments_rebuild_keeps_rows_and_widens_only_the_status_check() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("shard.db").display()
        );
        let pool = AnyPool::connect(&url).await.unwrap();
        run_to(&pool, Dialect::Sqlite, 12).await.unwrap();
        let insert = |id: i64, status: &str, next: Option<i64>| {
            sqlx::query(
                "INSERT INTO payments (tenant, id, order_id, provider, currency, amount, status, effect, captured, created_at_ms, updated_at_ms, expires_at_ms, next_query_at_ms, query_attempts, refunded) VALUES ('t', ?, 7, 'sandbox', 'CNY', 8800, ?, 'none', 0, 1, 2, 3, ?, 4, 0)",
            )
            .bind(id)
            .bind(status.to_owned())
            .bind(next)
        };
        insert(1, "pending", None).execute(&pool).await.unwrap();
        insert(2, "pending", Some(99)).execute(&pool).await.unwrap();
        assert!(insert(3, "expired", None).execute(&pool).await.is_err());
        run(&pool, Dialect::Sqlite).await.unwrap();
        let rows: Vec<(i64, String, Option<i64>, i64)> = sqlx::query(
            "SELECT id, status, next_query_at_ms, query_attempts FROM payments ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.try_get(0).unwrap(),
                row.try_get(1).unwrap(),
                row.try_get(2).unwrap(),
                row.try_get(3).unwrap(),
            )
        })
        .collect();
        assert_eq!(
            rows,
            vec![
                (1, "pending".to_owned(), Some(3), 4),
                (2, "pending".to_owned(), Some(99), 4)
            ]
        );
        insert(3, "expired", None).execute(&pool).await.unwrap();
        insert(4, "failed", None).execute(&pool).await.unwrap();
        assert!(insert(5, "lost", None).execute(&pool).await.is_err());
        let indexes: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'payments' AND name LIKE 'idx_%' ORDER BY name",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get(0).unwrap())
        .collect();
        assert_eq!(indexes, ["idx_payments_due", "idx_payments_order"]);
        // applied once: running again changes nothing
        run(&pool, Dialect::Sqlite).await.unwrap();
    }

    #[test]
    fn both_dialects_declare_the_same_tables_and_columns() {
        // "table.column" for every column definition: a lowercase name followed by an
        // uppercase type, inside a CREATE TABLE statement or an ALTER TABLE … ADD COLUMN
        let names = |sql: &str| {
            let mut found = Vec::new();
            for statement in statements(sql).iter() {
                if let Some(rest) = statement.strip_prefix("ALTER TABLE ") {
                    let mut words = rest.split_whitespace();
                    if let (Some(table), Some("ADD"), Some("COLUMN"), Some(name)) =
                        (words.next(), words.next(), words.next(), words.next())
                    {
                        found.push(format!("{table}.{name}"));
                    }
                    continue;
                }
                if !statement.starts_with("CREATE TABLE") {
                    continue;
                }
                let table = statement.split_whitespace().nth(2).unwrap_or_default();
                // SQLite's copy of a table rebuilt to change a constraint: the same columns
                if table.ends_with("_rebuild") {
                    continue;
                }
                for line in statement.lines().skip(1) {
                    let mut words = line.split_whitespace();
                    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                        continue;
                    };
                    let is_name = name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                    if is_name && kind.starts_with(|c: char| c.is_ascii_uppercase()) {
                        found.push(format!("{table}.{name}"));
                    }
                }
            }
            found.sort();
            found
        };
        for migration in MIGRATIONS {
            let mysql = names(migration.mysql);
            // a migration of indexes only declares no column
            // … and one of constraints (and data fixes) only declares none either
            let only_indexes = statements(migration.mysql).iter().all(|statement| {
                statement.starts_with("CREATE INDEX")
                    || statement.contains(" DROP CONSTRAINT ")
                    || statement.contains(" ADD CONSTRAINT ")
                    || statement.starts_with("UPDATE ")
            });
            assert!(only_indexes || !mysql.is_empty(), "{mysql:?}");
            assert_eq!(
                mysql,
                names(migration.sqlite),
                "migration {} differs between dialects",
                migration.version
            );
        }
    }
}
