//! A table name per test on the HBase Thrift (v1) server of [`hbase_address`], and a raw
//! Thrift client for tests that look at cells directly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use hbase_thrift::hbase::{HbaseSyncClient, THbaseSyncClient};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{
    ReadHalf, TBufferedReadTransport, TBufferedWriteTransport, TIoChannel, TTcpChannel, WriteHalf,
};

use crate::prefix::{prefix_created_at, unique_prefix};
use crate::{SERVICE_TIMEOUT, hbase_address};

/// Every table a test makes starts with this, so sweeps never touch anything else.
const TABLE_NAME_PREFIX: &str = "oct_";

/// Test tables older than this are dropped by the sweep of the first [`HbaseTable::new`] of
/// each process (left behind by a test that panicked or was killed).
pub const STALE_TABLE_AGE: Duration = Duration::from_secs(60 * 60);

static STARTUP_SWEEP_DONE: AtomicBool = AtomicBool::new(false);

/// The `hbase-thrift` client over the wire the test server speaks: binary protocol,
/// buffered (unframed) transport, as `hbase thrift start` serves by default.
pub type HbaseClient = HbaseSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<ReadHalf<TTcpChannel>>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<WriteHalf<TTcpChannel>>>,
>;

/// A blocking Thrift client on [`hbase_address`]. Call it from `spawn_blocking`.
pub fn hbase_client() -> anyhow::Result<HbaseClient> {
    let address = hbase_address();
    let stream = std::net::TcpStream::connect(&address).with_context(|| {
        format!(
            "connecting to the HBase Thrift server at {address} (run `deploy/local/services.sh up`)"
        )
    })?;
    // A call that never answers fails the test instead of hanging it.
    stream.set_read_timeout(Some(SERVICE_TIMEOUT))?;
    stream.set_write_timeout(Some(SERVICE_TIMEOUT))?;
    let channel = TTcpChannel::with_stream(stream);
    let (read, write) = channel.split().context("splitting the thrift channel")?;
    Ok(HbaseSyncClient::new(
        TBinaryInputProtocol::new(TBufferedReadTransport::new(read), true),
        TBinaryOutputProtocol::new(TBufferedWriteTransport::new(write), true),
    ))
}

/// Runs `call` with a fresh client on the blocking pool, with a readable error.
pub async fn with_hbase_client<T, F>(what: &'static str, call: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut HbaseClient) -> thrift::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut client = hbase_client()?;
        call(&mut client).map_err(|error| anyhow::anyhow!("hbase {what}: {error}"))
    })
    .await
    .context("hbase client task")?
}

/// A unique table name `oct_<unique_prefix>` for one test. The code under test creates the
/// table (or the test does); [`HbaseTable::cleanup`] disables and deletes it.
#[derive(Debug, Clone)]
pub struct HbaseTable {
    name: String,
}

impl HbaseTable {
    /// A fresh name for the test named by `label`, after checking that the Thrift server
    /// answers (an error naming the address and the command that starts it, never a skip).
    pub async fn new(label: &str) -> anyhow::Result<Self> {
        with_hbase_client("getTableNames", |client| client.get_table_names())
            .await
            .with_context(|| {
                format!(
                    "HBase Thrift at {} does not answer (run `deploy/local/services.sh up`)",
                    hbase_address()
                )
            })?;
        if !STARTUP_SWEEP_DONE.swap(true, Ordering::SeqCst)
            && let Err(error) = sweep_stale_tables(STALE_TABLE_AGE).await
        {
            eprintln!("oc-test-support: stale table sweep failed: {error:#}");
        }
        Ok(Self {
            name: format!("{TABLE_NAME_PREFIX}{}", unique_prefix(label)),
        })
    }

    /// The table name: only `[a-z0-9_]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Disables and deletes the table; a table that was never created is fine.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        drop_table(self.name).await
    }
}

async fn drop_table(name: String) -> anyhow::Result<()> {
    anyhow::ensure!(
        name.starts_with(TABLE_NAME_PREFIX),
        "refusing to drop table {name:?}: not a test table"
    );
    with_hbase_client("dropping a test table", move |client| {
        let table = name.into_bytes();
        let exists = client.get_table_names()?.contains(&table);
        if !exists {
            return Ok(());
        }
        if client.is_table_enabled(table.clone())? {
            client.disable_table(table.clone())?;
        }
        client.delete_table(table)
    })
    .await
}

async fn sweep_stale_tables(max_age: Duration) -> anyhow::Result<()> {
    let names = with_hbase_client("getTableNames", |client| client.get_table_names()).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for name in names {
        let name = String::from_utf8_lossy(&name).into_owned();
        let stale = name
            .strip_prefix(TABLE_NAME_PREFIX)
            .and_then(prefix_created_at)
            .is_some_and(|created_at| now.saturating_sub(created_at) > max_age.as_secs());
        if stale {
            drop_table(name).await?;
        }
    }
    Ok(())
}
