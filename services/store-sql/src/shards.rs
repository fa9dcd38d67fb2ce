//! The shards: one connection pool per physical database, the bucket map that routes to them,
//! and how a unit of work on one of them begins.

use std::sync::Arc;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    /// Per shard, the queue its writers take turns in (SQLite only): see [`WriteTurn`].
    turns: Vec<Option<Arc<Semaphore>>>,
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
        let turns = pools
            .iter()
            .map(|_| (dialect == Dialect::Sqlite).then(|| Arc::new(Semaphore::new(1))))
            .collect();
        Ok(Shards {
            pools,
            turns,
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

    /// Waits for `shard`'s next write turn (at once on MySQL/MariaDB). Hold it until the write
    /// committed or failed; take it before a connection, never while holding one of `shard`'s
    /// connections or another turn of `shard` (that would wait on itself).
    pub(crate) async fn write_turn(&self, shard: ShardId) -> WriteTurn {
        let queue = self
            .turns
            .get(usize::from(shard.0))
            .and_then(Option::as_ref);
        match queue {
            // the semaphore is never closed
            Some(queue) => WriteTurn {
                _permit: Arc::clone(queue).acquire_owned().await.ok(),
            },
            None => WriteTurn { _permit: None },
        }
    }

    /// A write transaction on `shard`, begun in its turn: the turn comes back beside the
    /// transaction and must live until after the commit (`let (mut tx, _turn) = …`).
    pub(crate) async fn begin_write(
        &self,
        shard: ShardId,
    ) -> DomainResult<(AnyTx<'static>, WriteTurn)> {
        let turn = self.write_turn(shard).await;
        let tx = begin(self.pool(shard)?).await?;
        Ok((tx, turn))
    }

    /// [`Shards::begin_write`] on the shard of `bucket`.
    pub(crate) async fn begin_write_for(
        &self,
        bucket: Bucket,
    ) -> DomainResult<(AnyTx<'static>, WriteTurn)> {
        self.begin_write(self.shard_of(bucket)).await
    }

    /// The pool of `bucket`'s shard in its write turn, for writes that are not a transaction
    /// of their own (autocommit statements); the turn lives as long as the writes do.
    pub(crate) async fn write_pool_for(&self, bucket: Bucket) -> (&AnyPool, WriteTurn) {
        let turn = self.write_turn(self.shard_of(bucket)).await;
        (self.for_bucket(bucket), turn)
    }
}

/// One writer's turn on a shard. SQLite lets one writer at a time into a file; a writer whose
/// first write finds the lock taken is left to SQLite's busy handler, which sleeps 1, 2, 5, 10,
/// 15, 20, 25 … 100 ms between tries (up to `busy_timeout`) instead of waiting in a queue. With
/// the API's group commits, the relay's marks and the purge each on their own connection, that
/// ladder was single-node's tail (loadtest/PROFILE.md: 8,958 such sleeps, 66 s of sleeping,
/// in 12 s at 975 creates/s). Writers of this process therefore queue here first, fairly, and the
/// next one is woken the moment the previous one is done. Another process writing the same file
/// (`ordercenter archive`) still meets the busy handler, which keeps it correct, only slower.
/// MySQL/MariaDB lock rows, not the database: there the turn is empty.
#[derive(Debug)]
#[must_use = "the turn ends when it is dropped"]
pub(crate) struct WriteTurn {
    _permit: Option<OwnedSemaphorePermit>,
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

    async fn sqlite_shards(dir: &std::path::Path) -> Shards {
        let urls = (0..2)
            .map(|i| format!("sqlite://{}/shard-{i}.db", dir.display()))
            .collect();
        Shards::connect(&StoreConfig::new(urls)).await.unwrap()
    }

    /// Whether `turn` is still waiting after a while (it would have been granted at once).
    async fn still_waiting(turn: &mut tokio::task::JoinHandle<WriteTurn>) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(200), turn)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn sqlite_writers_of_one_shard_take_turns_and_other_shards_do_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        let shards = sqlite_shards(dir.path()).await;
        let (tx, first) = shards.begin_write(ShardId(0)).await.unwrap();

        let queued = shards.clone();
        let mut second = tokio::spawn(async move { queued.write_turn(ShardId(0)).await });
        assert!(
            still_waiting(&mut second).await,
            "a second writer of shard 0 went in beside the first"
        );
        // shard 1's writers have their own queue
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            shards.begin_write(ShardId(1)),
        )
        .await
        .expect("shard 1 waited for shard 0's writer")
        .unwrap();
        drop(other);

        // a transaction dropped without a commit ends its turn too
        drop(tx);
        drop(first);
        let _second = tokio::time::timeout(std::time::Duration::from_secs(5), second)
            .await
            .expect("the next writer was not let in when the first was done")
            .unwrap();
    }

    #[tokio::test]
    async fn mariadb_writers_take_no_turns() {
        let databases = oc_test_support::TestDatabases::create("turns", 1)
            .await
            .unwrap();
        let shards = Shards::connect(&StoreConfig::new(databases.urls().to_vec()))
            .await
            .unwrap();
        let (_tx, _turn) = shards.begin_write(ShardId(0)).await.unwrap();
        let second = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            shards.begin_write(ShardId(0)),
        )
        .await
        .expect("a MariaDB writer waited for a turn: row locks decide there");
        assert!(second.is_ok());
        drop((second, _tx));
        shards.pools[0].close().await;
        databases.cleanup().await.unwrap();
    }
}
