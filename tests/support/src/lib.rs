#![doc = include_str!("../README.md")]

mod env;
mod hbase;
mod kafka;
mod mysql;
mod prefix;
mod proxy;
mod redis_prefix;
mod search;

pub use env::{
    DEFAULT_HBASE_ADDRESS, DEFAULT_KAFKA_BROKERS, DEFAULT_KAFKA_FAULT_BROKER,
    DEFAULT_KAFKA_FAULT_PROXY, DEFAULT_MYSQL_URL, DEFAULT_REDIS_URL, DEFAULT_SEARCH_URL,
    HBASE_ADDRESS_VAR, KAFKA_BROKERS_VAR, KAFKA_FAULT_BROKER_VAR, KAFKA_FAULT_PROXY_VAR,
    MYSQL_URL_VAR, REDIS_URL_VAR, SEARCH_URL_VAR, TestEnv, hbase_address, kafka_brokers,
    kafka_fault_listener, mysql_url, redis_url, search_url,
};
pub use hbase::{HbaseClient, HbaseTable, STALE_TABLE_AGE, hbase_client, with_hbase_client};
pub use kafka::{KafkaTopic, kafka_client};
pub use mysql::{STALE_DATABASE_AGE, TestDatabases, database_url, sweep_stale_databases};
/// The order fixtures, kept here under their old path; they live beside the model now.
pub use oc_conformance::fixtures;
pub use prefix::unique_prefix;
pub use proxy::TcpProxy;
pub use redis_prefix::RedisPrefix;
pub use search::{STALE_INDEX_AGE, SearchPrefix, search_request};

/// How long one helper operation against a service may take before it fails the test.
///
/// Bounded so that a service that is down fails the test with a clear message instead of
/// hanging until the nextest slow-timeout kills it.
pub const SERVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `operation` with [`SERVICE_TIMEOUT`], turning an elapsed timer into an error that
/// names `what` was being attempted.
pub(crate) async fn bounded<T>(
    what: &str,
    operation: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(SERVICE_TIMEOUT, operation).await {
        Ok(result) => result,
        Err(_elapsed) => anyhow::bail!(
            "{what}: no answer within {}s (is `deploy/local/services.sh up` running?)",
            SERVICE_TIMEOUT.as_secs()
        ),
    }
}
