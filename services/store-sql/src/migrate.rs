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
    // 0013 is another branch's (the numbers are shared across branches, applied by version)
    Migration {
        version: 14,
        name: "return_pickups",
        mysql: include_str!("../migrations/mysql/0014_return_pickups.sql"),
        sqlite: include_str!("../migrations/sqlite/0014_return_pickups.sql"),
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
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let sql = match dialect {
            Dialect::MySql => migration.mysql,
            Dialect::Sqlite => migration.sqlite,
        };
        // MySQL commits DDL implicitly, so a transaction would not make this atomic there;
        // every statement is CREATE, and a half-applied migration fails loudly on re-run.
        for statement in statements(sql) {
            pool.execute(statement.as_str()).await?;
        }
        let now = oc_model::UnixMillis::now().get();
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(now)
        .execute(pool)
        .await?;
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
            let only_indexes = statements(migration.mysql)
                .iter()
                .all(|statement| statement.starts_with("CREATE INDEX"));
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
