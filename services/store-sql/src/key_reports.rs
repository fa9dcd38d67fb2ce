//! Key ring reports: the data-key version each running server seals new values under, per
//! tenant, in the `key_ring_reports` table of shard 0 (by convention, like the consumer
//! positions; every shard has the table).
//!
//! A server holds its key ring in memory and learns of a rotation only when told (SIGHUP) or
//! when it reads a value under a version it lacks. Until then it seals under the old version,
//! so `keys retire` must not drop that version: it reads these reports and waits until every
//! live server seals under a newer one. A server writes its report at start, whenever its
//! versions change and as a heartbeat, and removes it when it stops gracefully.

use std::collections::BTreeMap;

use sqlx::Row;

use oc_model::{DomainError, DomainResult, ShardId};

use crate::SqlOrderStore;
use crate::codec::{corrupt, text};
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

const REPORTS: ShardId = ShardId(0);

impl SqlOrderStore {
    /// Write (or replace) `report`.
    pub async fn put_key_ring_report(&self, report: &KeyRingReport) -> DomainResult<()> {
        let versions = serde_json::to_string(&report.active_versions)
            .map_err(|e| DomainError::internal(format!("encoding key versions: {e}")))?;
        let pool = self.pool(REPORTS)?;
        // delete + insert in one transaction: the same statements on both dialects
        let mut tx = pool.begin().await.map_err(convert)?;
        sqlx::query("DELETE FROM key_ring_reports WHERE process_id = ?")
            .bind(report.process_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(convert)?;
        sqlx::query(
            "INSERT INTO key_ring_reports (process_id, description, active_versions, active_since_ms, settle_ms, reported_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(report.process_id.as_str())
        .bind(report.description.as_str())
        .bind(versions)
        .bind(report.active_since_ms)
        .bind(report.settle_ms)
        .bind(report.reported_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(convert)?;
        tx.commit().await.map_err(convert)
    }

    /// Every report, oldest process id first (including those of processes long gone: the
    /// reader decides by `reported_at_ms` which are live).
    pub async fn key_ring_reports(&self) -> DomainResult<Vec<KeyRingReport>> {
        let rows = sqlx::query(
            "SELECT process_id, description, active_versions, active_since_ms, settle_ms, reported_at_ms FROM key_ring_reports ORDER BY process_id",
        )
        .fetch_all(self.pool(REPORTS)?)
        .await
        .map_err(convert)?;
        rows.iter()
            .map(|row| {
                let versions = text(row, "active_versions")?;
                Ok(KeyRingReport {
                    process_id: text(row, "process_id")?,
                    description: text(row, "description")?,
                    active_versions: serde_json::from_str(&versions).map_err(corrupt)?,
                    active_since_ms: row.try_get("active_since_ms").map_err(corrupt)?,
                    settle_ms: row.try_get("settle_ms").map_err(corrupt)?,
                    reported_at_ms: row.try_get("reported_at_ms").map_err(corrupt)?,
                })
            })
            .collect()
    }

    /// Remove the report of `process_id` (it stops).
    pub async fn remove_key_ring_report(&self, process_id: &str) -> DomainResult<()> {
        sqlx::query("DELETE FROM key_ring_reports WHERE process_id = ?")
            .bind(process_id)
            .execute(self.pool(REPORTS)?)
            .await
            .map_err(convert)?;
        Ok(())
    }
}
