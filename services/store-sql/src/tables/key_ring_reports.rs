//! `key_ring_reports`: the data-key version each running server seals new values under, per
//! tenant (in shard 0 by convention, like the consumer positions; every shard has the table).
//!
//! A server holds its key ring in memory and learns of a rotation only when told (SIGHUP) or
//! when it reads a value under a version it lacks. Until then it seals under the old version,
//! so `keys retire` must not drop that version: it reads these reports and waits until every
//! live server seals under a newer one. A server writes its report at start, whenever its
//! versions change and as a heartbeat, and removes it when it stops gracefully.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use oc_model::{DomainError, DomainResult};

use super::{Binder, Columns, Table, corrupt, int, text};
use crate::error::convert;

/// One running process's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRingReport {
    /// Unique per process run (host, process id, start time).
    pub process_id: String,
    /// Which process, for the operator: its role, address, host and process id.
    pub description: String,
    /// Tenant → the version new values are sealed under.
    pub active_versions: BTreeMap<String, u32>,
    /// Since when `active_versions` are as they are (ms since the epoch, the process's clock).
    pub active_since_ms: i64,
    /// How long after a change of its versions a request the process began before may still
    /// write under the old ones (its request timeout and a margin).
    pub settle_ms: i64,
    /// When this report was written (ms since the epoch, the process's clock).
    pub reported_at_ms: i64,
}

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "key_ring_reports",
        Columns::of(&[
            "process_id",
            "description",
            "active_versions",
            "active_since_ms",
            "settle_ms",
            "reported_at_ms",
        ]),
    )
});

fn bind<'q>(row: Binder<'q>, report: &'q KeyRingReport, versions: String) -> Binder<'q> {
    row.bind("process_id", report.process_id.as_str())
        .bind("description", report.description.as_str())
        .bind("active_versions", versions)
        .bind("active_since_ms", report.active_since_ms)
        .bind("settle_ms", report.settle_ms)
        .bind("reported_at_ms", report.reported_at_ms)
}

fn decode(row: &AnyRow) -> DomainResult<KeyRingReport> {
    Ok(KeyRingReport {
        process_id: text(row, "process_id")?,
        description: text(row, "description")?,
        active_versions: serde_json::from_str(&text(row, "active_versions")?).map_err(corrupt)?,
        active_since_ms: int(row, "active_since_ms")?,
        settle_ms: int(row, "settle_ms")?,
        reported_at_ms: int(row, "reported_at_ms")?,
    })
}

/// Write (or replace) `report`.
pub(crate) async fn put(pool: &AnyPool, report: &KeyRingReport) -> DomainResult<()> {
    let versions = serde_json::to_string(&report.active_versions)
        .map_err(|e| DomainError::internal(format!("encoding key versions: {e}")))?;
    let insert = TABLE.insert(1);
    // delete + insert in one transaction: the same statements on both dialects
    let mut tx = pool.begin().await.map_err(convert)?;
    sqlx::query("DELETE FROM key_ring_reports WHERE process_id = ?")
        .bind(report.process_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(convert)?;
    bind(TABLE.binder(sqlx::query(&insert)), report, versions)
        .done()
        .execute(&mut *tx)
        .await
        .map_err(convert)?;
    tx.commit().await.map_err(convert)
}

/// Every report, oldest process id first.
pub(crate) async fn list(pool: &AnyPool) -> DomainResult<Vec<KeyRingReport>> {
    let rows = sqlx::query(&TABLE.select("ORDER BY process_id"))
        .fetch_all(pool)
        .await
        .map_err(convert)?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn remove(pool: &AnyPool, process_id: &str) -> DomainResult<()> {
    sqlx::query("DELETE FROM key_ring_reports WHERE process_id = ?")
        .bind(process_id)
        .execute(pool)
        .await
        .map_err(convert)?;
    Ok(())
}
