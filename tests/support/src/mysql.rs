//! Fresh MariaDB databases per test, usable as N shards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sqlx::Executor as _;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};

use crate::prefix::{prefix_created_at, unique_prefix};
use crate::{bounded, mysql_url};

/// Every database this crate creates starts with this, so sweeps never touch anything else.
const DATABASE_NAME_PREFIX: &str = "oct_";

/// Databases created by tests are dropped by [`sweep_stale_databases`] once older than this.
pub const STALE_DATABASE_AGE: Duration = Duration::from_secs(60 * 60);

/// Upper bound for the blocking cleanup that runs in [`Drop`] when `cleanup` was not awaited.
const DROP_CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Set by the first [`TestDatabases::create`] of a process, which runs the stale sweep.
static STARTUP_SWEEP_DONE: AtomicBool = AtomicBool::new(false);

/// `n` fresh, empty MariaDB databases named `oct_<prefix>_<i>`, one per shard.
///
/// Call [`TestDatabases::cleanup`] at the end of a test to drop them. If the test panics
/// first, [`Drop`] drops them on a helper thread (bounded to 15 s); leftovers from killed
/// processes are removed by the sweep that the first `create` of every process runs.
#[derive(Debug)]
pub struct TestDatabases {
    prefix: String,
    server_url: String,
    names: Vec<String>,
    urls: Vec<String>,
    cleaned_up: bool,
}

impl TestDatabases {
    /// Creates `count` databases (character set `utf8mb4`) for the test named by `label`.
    pub async fn create(label: &str, count: usize) -> anyhow::Result<Self> {
        let server_url = mysql_url();
        if !STARTUP_SWEEP_DONE.swap(true, Ordering::SeqCst)
            && let Err(error) = sweep_stale_databases_at(&server_url, STALE_DATABASE_AGE).await
        {
            // The sweep is a safety net: a failure here must not fail the test, the
            // create below reports an unreachable server on its own.
            eprintln!("oc-test-support: stale database sweep failed: {error:#}");
        }

        let prefix = unique_prefix(label);
        let names: Vec<String> = (0..count)
            .map(|index| format!("{DATABASE_NAME_PREFIX}{prefix}_{index}"))
            .collect();
        let urls = names
            .iter()
            .map(|name| database_url_at(&server_url, name))
            .collect();
        let databases = Self {
            prefix,
            server_url,
            names,
            urls,
            cleaned_up: false,
        };

        let created = bounded("creating test databases", async {
            let admin = admin_pool(&databases.server_url).await?;
            for name in &databases.names {
                anyhow::ensure!(name.len() <= 64, "database name too long: {name}");
                let statement = format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4");
                sqlx::raw_sql(&statement)
                    .execute(&admin)
                    .await
                    .with_context(|| format!("creating database {name}"))?;
            }
            admin.close().await;
            Ok(())
        })
        .await;
        // On failure `databases` is dropped here, which drops whatever was created.
        created.map(|()| databases)
    }

    /// The unique prefix shared by these databases (see [`unique_prefix`]).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The database names, `oct_<prefix>_0` .. `oct_<prefix>_<n-1>`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// One DSN per database, e.g. `mysql://oc_test:oc_test@127.0.0.1:3306/oct_..._0`.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The DSN of database `index`.
    ///
    /// # Panics
    /// When `index` is not below the count given to [`TestDatabases::create`].
    pub fn url(&self, index: usize) -> &str {
        &self.urls[index]
    }

    /// How many databases there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether `create` was asked for zero databases.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// A small pool (at most 4 connections) on database `index`.
    pub async fn connect(&self, index: usize) -> anyhow::Result<MySqlPool> {
        let url = self
            .urls
            .get(index)
            .with_context(|| format!("no test database with index {index}"))?;
        bounded("connecting to a test database", async {
            MySqlPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .with_context(|| format!("connecting to {}", self.names[index]))
        })
        .await
    }

    /// Drops all the databases. Close pools on them first: an open transaction would make
    /// `DROP DATABASE` wait (bounded by `lock_wait_timeout`).
    pub async fn cleanup(mut self) -> anyhow::Result<()> {
        let result = drop_databases(&self.server_url, &self.names).await;
        self.cleaned_up = true;
        result
    }
}

impl Drop for TestDatabases {
    fn drop(&mut self) {
        if self.cleaned_up || self.names.is_empty() {
            return;
        }
        let server_url = self.server_url.clone();
        let names = std::mem::take(&mut self.names);
        // Drop cannot await, and blocking inside the test's runtime could deadlock it: run
        // the cleanup on a thread with its own small runtime and wait for it, bounded.
        let cleanup_thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                tokio::time::timeout(DROP_CLEANUP_TIMEOUT, drop_databases(&server_url, &names))
                    .await
                    .unwrap_or_else(|_elapsed| Err(anyhow::anyhow!("timed out")))
            })
        });
        match cleanup_thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!("oc-test-support: dropping test databases failed: {error:#}");
            }
            Err(_panic) => eprintln!("oc-test-support: database cleanup thread panicked"),
        }
    }
}

/// The DSN of database `name` on the server of [`mysql_url`].
pub fn database_url(name: &str) -> String {
    database_url_at(&mysql_url(), name)
}

fn database_url_at(server_url: &str, name: &str) -> String {
    match server_url.split_once('?') {
        Some((base, query)) => format!("{}/{name}?{query}", base.trim_end_matches('/')),
        None => format!("{}/{name}", server_url.trim_end_matches('/')),
    }
}

/// Drops `oct_*` databases whose embedded timestamp is older than `max_age` (normally
/// [`STALE_DATABASE_AGE`]); returns the dropped names.
///
/// The first [`TestDatabases::create`] of each process calls this with
/// [`STALE_DATABASE_AGE`], so databases left by killed test processes do not pile up.
pub async fn sweep_stale_databases(max_age: Duration) -> anyhow::Result<Vec<String>> {
    sweep_stale_databases_at(&mysql_url(), max_age).await
}

async fn sweep_stale_databases_at(
    server_url: &str,
    max_age: Duration,
) -> anyhow::Result<Vec<String>> {
    bounded("sweeping stale test databases", async {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let admin = admin_pool(server_url).await?;
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE 'oct\\_%'",
        )
        .fetch_all(&admin)
        .await
        .context("listing test databases")?;

        let stale: Vec<String> = existing
            .into_iter()
            .filter(|name| {
                name.strip_prefix(DATABASE_NAME_PREFIX)
                    .and_then(prefix_created_at)
                    .is_some_and(|created_at| now.saturating_sub(created_at) > max_age.as_secs())
            })
            .collect();
        for name in &stale {
            drop_database(&admin, name).await?;
        }
        admin.close().await;
        Ok(stale)
    })
    .await
}

async fn drop_databases(server_url: &str, names: &[String]) -> anyhow::Result<()> {
    bounded("dropping test databases", async {
        let admin = admin_pool(server_url).await?;
        let mut first_error = None;
        for name in names {
            if let Err(error) = drop_database(&admin, name).await {
                first_error.get_or_insert(error);
            }
        }
        admin.close().await;
        first_error.map_or(Ok(()), Err)
    })
    .await
}

async fn drop_database(admin: &MySqlPool, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        name.starts_with(DATABASE_NAME_PREFIX)
            && name
                .chars()
                .all(|character| matches!(character, 'a'..='z' | '0'..='9' | '_')),
        "refusing to drop database {name:?}: not a test database"
    );
    let statement = format!("DROP DATABASE IF EXISTS `{name}`");
    sqlx::raw_sql(&statement)
        .execute(admin)
        .await
        .with_context(|| format!("dropping database {name}"))?;
    Ok(())
}

/// One connection to the server without a database, for CREATE/DROP DATABASE.
async fn admin_pool(server_url: &str) -> anyhow::Result<MySqlPool> {
    MySqlPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|connection, _metadata| {
            Box::pin(async move {
                // A DROP DATABASE waiting on another session's metadata lock gives up
                // instead of hanging the test.
                connection
                    .execute("SET SESSION lock_wait_timeout = 10")
                    .await?;
                Ok(())
            })
        })
        .connect(server_url)
        .await
        .with_context(|| {
            format!(
                "connecting to MariaDB at {} (run `deploy/local/services.sh up`)",
                redact_password(server_url)
            )
        })
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = credentials.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}:***@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_keeps_query_parameters() {
        assert_eq!(
            database_url_at("mysql://u:p@127.0.0.1:3306/", "oct_x_0"),
            "mysql://u:p@127.0.0.1:3306/oct_x_0"
        );
        assert_eq!(
            database_url_at("mysql://u:p@127.0.0.1:3306?ssl-mode=disabled", "oct_x_0"),
            "mysql://u:p@127.0.0.1:3306/oct_x_0?ssl-mode=disabled"
        );
    }

    #[test]
    fn password_is_redacted() {
        assert_eq!(
            redact_password("mysql://oc_test:secret@127.0.0.1:3306"),
            "mysql://oc_test:***@127.0.0.1:3306"
        );
        assert_eq!(redact_password("mysql://127.0.0.1"), "mysql://127.0.0.1");
    }
}
