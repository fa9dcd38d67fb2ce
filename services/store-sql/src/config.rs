//! How to reach the shards and how creates share transactions.

use std::time::Duration;

use oc_model::{DomainError, DomainResult};

use crate::router::BucketRange;

/// The SQL dialect of a shard, chosen by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    Sqlite,
}

impl Dialect {
    pub fn of_url(url: &str) -> DomainResult<Dialect> {
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Dialect::MySql)
        } else if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(DomainError::invalid(
                "/store/shards",
                format!("unsupported order store scheme {scheme:?}: use mysql:// or sqlite://"),
            ))
        }
    }
}

/// How creates share transactions (see `group_commit.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Writer tasks per shard: create transactions in flight on one shard at most.
    pub writers: usize,
    /// Most creates written in one transaction.
    pub max_orders: usize,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            writers: 4,
            max_orders: 32,
        }
    }
}

/// How to reach the shards.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// One URL per physical shard, in shard order (`mysql://…/oc_shard_0`, `sqlite://data/shard-0.db`).
    pub shard_urls: Vec<String>,
    /// Bucket ranges → shard; `None` spreads buckets evenly.
    pub bucket_map: Option<Vec<BucketRange>>,
    /// Connections per shard.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// A pooled connection that sat idle at least this long is pinged before it is handed out
    /// (and replaced if the ping fails). Connections reused sooner are not: under load that
    /// saves a round trip per unit of work, and a connection the server dropped in between
    /// fails its first statement, which the store answers by taking another connection
    /// (every write and every read begins with `BEGIN`, which changes nothing, so this is safe).
    pub ping_idle_after: Duration,
    /// Creates of one shard that arrive while its writers are busy are written together, in
    /// one transaction (see [`GroupCommit`]); `None` writes every create in its own.
    pub group_commit: Option<GroupCommit>,
}

impl StoreConfig {
    pub fn new(shard_urls: Vec<String>) -> StoreConfig {
        StoreConfig {
            shard_urls,
            bucket_map: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            ping_idle_after: Duration::from_secs(1),
            group_commit: Some(GroupCommit::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_by_scheme() {
        assert_eq!(Dialect::of_url("mysql://a/b").unwrap(), Dialect::MySql);
        assert_eq!(
            Dialect::of_url("sqlite://data/x.db").unwrap(),
            Dialect::Sqlite
        );
        assert!(Dialect::of_url("postgres://x").is_err());
    }
}
