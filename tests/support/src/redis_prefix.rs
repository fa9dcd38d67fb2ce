//! A Redis key namespace per test.

use anyhow::Context as _;
use redis::aio::MultiplexedConnection;

use crate::{bounded, redis_url, unique_prefix};

/// How many keys one SCAN step asks for while cleaning up.
const SCAN_BATCH: usize = 500;

/// A unique key prefix `oct_<unique_prefix>` on the Redis of [`redis_url`].
///
/// Keys built with [`RedisPrefix::key`] (`<prefix>:<suffix>`), or any key starting with
/// [`RedisPrefix::prefix`], are removed by [`RedisPrefix::cleanup`].
#[derive(Debug, Clone)]
pub struct RedisPrefix {
    prefix: String,
    client: redis::Client,
}

impl RedisPrefix {
    /// A fresh prefix for the test named by `label`. Does not connect yet.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let url = redis_url();
        let client = redis::Client::open(url.as_str())
            .with_context(|| format!("parsing redis url {url}"))?;
        Ok(Self {
            prefix: format!("oct_{}", unique_prefix(label)),
            client,
        })
    }

    /// The prefix itself, without a separator: only `[a-z0-9_]`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:<suffix>`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// The client, for code under test that wants its own connections.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A multiplexed connection (cheap to clone, usable from many tasks).
    pub async fn connection(&self) -> anyhow::Result<MultiplexedConnection> {
        bounded("connecting to redis", async {
            self.client
                .get_multiplexed_async_connection()
                .await
                .with_context(|| {
                    format!(
                        "connecting to redis at {} (run `deploy/local/services.sh up`)",
                        self.client.get_connection_info().addr()
                    )
                })
        })
        .await
    }

    /// Deletes every key starting with the prefix, walking the keyspace with SCAN (never
    /// KEYS, which blocks the server). Returns how many keys were deleted.
    pub async fn cleanup(&self) -> anyhow::Result<u64> {
        let mut connection = self.connection().await?;
        let pattern = format!("{}*", self.prefix);
        bounded("cleaning up redis keys", async {
            let mut cursor: u64 = 0;
            let mut deleted: u64 = 0;
            loop {
                let (next_cursor, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_BATCH)
                    .query_async(&mut connection)
                    .await
                    .context("redis SCAN")?;
                if !keys.is_empty() {
                    let removed: u64 = redis::cmd("DEL")
                        .arg(&keys)
                        .query_async(&mut connection)
                        .await
                        .context("redis DEL")?;
                    deleted += removed;
                }
                if next_cursor == 0 {
                    return Ok(deleted);
                }
                cursor = next_cursor;
            }
        })
        .await
    }
}
