//! The shards: one connection pool per physical database, the bucket map that routes to them,
//! and how a unit of work on one of them begins.

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor};

use oc_model::{Bucket, DomainError, DomainResult, ShardId};

use crate::config::{Dialect, StoreConfig};
use crate::error::{convert, is_connection_lost};
use crate::migrate;
use crate::router::BucketMap;
use crate::tables::AnyTx;

/// Every shard's pool, in shard order. Cheap to clone (the pools are shared).
#[derive(Debug, Clone)]
pub(crate) struct Shards {
    pools: Vec<AnyPool>,
    pub(crate) dialect: Dialect,
    pub(crate) map: BucketMap,
}

impl Shards {
    /// Connect to every shard and apply pending migrations.
    pub(crate) async fn connect(config: &StoreConfig) -> DomainResult<Shards> {
        sqlx::any::install_default_drivers();
        if config.shard_urls.is_empty() {
            return Err(DomainError::invalid(
                "/store/shards",
                "at least one shard is required",
            ));
        }
        let dialect = Dialect::of_url(&config.shard_urls[0])?;
        let shard_count = u16::try_from(config.shard_urls.len())
            .map_err(|_| DomainError::invalid("/store/shards", "too many shards"))?;
        let map = match &config.bucket_map {
            Some(ranges) => BucketMap::from_ranges(ranges, shard_count)?,
            None => BucketMap::even(shard_count)?,
        };
        let mut pools = Vec::with_capacity(config.shard_urls.len());
        let ping_idle_after = config.ping_idle_after;
        for (index, url) in config.shard_urls.iter().enumerate() {
            if Dialect::of_url(url)? != dialect {
                return Err(DomainError::invalid(
                    format!("/store/shards/{index}"),
                    "all shards must use the same database kind",
                ));
            }
            let pool = AnyPoolOptions::new()
                .max_connections(if dialect == Dialect::Sqlite { config.max_connections.min(8) } else { config.max_connections })
                .acquire_timeout(config.acquire_timeout)
                // sqlx pings every connection before handing it out by default: one more round
                // trip per transaction, the largest avoidable cost of a create (loadtest/PROFILE.md)
                .test_before_acquire(false)
                .before_acquire(move |connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= ping_idle_after {
                            connection.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .after_connect(|connection, _| {
                    Box::pin(async move {
                        if connection.backend_name() == "SQLite" {
                            // WAL: readers never block the writer; FULL: a commit survives power loss;
                            // busy_timeout: writers queue instead of failing at once.
                            connection
                                .execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;")
                                .await?;
                        }
                        Ok(())
                    })
                })
                .connect(&sqlite_create_mode(url))
                .await
                .map_err(|e| {
                    tracing::error!(shard = index, error = %e, "cannot connect to order store shard");
                    DomainError::unavailable(format!("order store shard {index} unreachable"))
                })?;
            migrate::run(&pool, dialect).await.map_err(convert)?;
            pools.push(pool);
        }
        Ok(Shards {
            pools,
            dialect,
            map,
        })
    }

    pub(crate) fn ids(&self) -> Vec<ShardId> {
        (0..self.pools.len() as u16).map(ShardId).collect()
    }

    pub(crate) fn all(&self) -> &[AnyPool] {
        &self.pools
    }

    pub(crate) fn pool(&self, shard: ShardId) -> DomainResult<&AnyPool> {
        self.pools.get(usize::from(shard.0)).ok_or_else(|| {
            DomainError::invalid("/shard", format!("shard {} does not exist", shard.0))
        })
    }

    /// The pool of the shard `bucket` is mapped to.
    pub(crate) fn for_bucket(&self, bucket: Bucket) -> &AnyPool {
        &self.pools[usize::from(self.map.shard_of(bucket).0)]
    }

    pub(crate) fn shard_of(&self, bucket: Bucket) -> ShardId {
        self.map.shard_of(bucket)
    }
}

/// SQLite URLs get `mode=rwc` so a shard file is created on first start.
fn sqlite_create_mode(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}mode=rwc")
    } else {
        url.to_owned()
    }
}

/// How many connections to try before a lost connection is the caller's error: every pooled
/// one may be dead (the server restarted), then one fresh.
fn connection_attempts(pool: &AnyPool) -> u32 {
    pool.size() + 1
}

/// A transaction on `pool`. A pooled connection that the server closed while it sat idle (a
/// restart, a failover, `wait_timeout`, a `KILL`) and that was not pinged (see
/// [`StoreConfig::ping_idle_after`]) fails here, at `BEGIN`: nothing was written, and sqlx drops
/// the connection from the pool when it comes back, so take the next one.
pub(crate) async fn begin(pool: &AnyPool) -> DomainResult<AnyTx<'static>> {
    let mut attempts = connection_attempts(pool);
    loop {
        match pool.begin().await {
            Ok(tx) => return Ok(tx),
            Err(e) if is_connection_lost(&e) && attempts > 1 => {
                attempts -= 1;
                tracing::debug!(error = %e, "pooled order store connection lost, taking another");
            }
            Err(e) => return Err(convert(e)),
        }
    }
}

/// A read-only transaction on `pool`, retried on a lost connection as [`begin`] is. An order
/// is three statements (main row, lines, identifiers); read outside a transaction, an update
/// committed between them would pair one version's main row with another's lines. In here
/// they all read one snapshot:
/// - MySQL/MariaDB: REPEATABLE READ (set for this transaction, whatever the server's default)
///   with a consistent snapshot taken at `START TRANSACTION`, read-only;
/// - SQLite: a deferred `BEGIN`; in WAL mode the first `SELECT` fixes the snapshot every later
///   one reads, and a reader never blocks the writer.
pub(crate) async fn begin_read(pool: &AnyPool, dialect: Dialect) -> DomainResult<AnyTx<'static>> {
    let statement = match dialect {
        Dialect::MySql => {
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
        }
        Dialect::Sqlite => "BEGIN",
    };
    let mut attempts = connection_attempts(pool);
    loop {
        match pool.begin_with(statement).await {
            Ok(tx) => return Ok(tx),
            Err(e) if is_connection_lost(&e) && attempts > 1 => {
                attempts -= 1;
                tracing::debug!(error = %e, "pooled order store connection lost, taking another");
            }
            Err(e) => return Err(convert(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_created_on_first_start() {
        assert_eq!(
            sqlite_create_mode("sqlite://d/x.db"),
            "sqlite://d/x.db?mode=rwc"
        );
    }
}
