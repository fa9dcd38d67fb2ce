//! The slot ledger (`slot_ledger` table): for each (tenant, business identity, order type,
//! extension slot) that an order wrote, the field that first wrote it, its type and whether
//! it is sealed, and when. A config is checked against it at start and at reload, so a
//! restart cannot give a slot that holds data another meaning (`plan` checks a reload
//! against the live config only).
//!
//! An entry is recorded on the order's shard before the order is written (a failed write
//! leaves an entry for a slot that holds nothing, which only makes the check stricter); a
//! reader takes the union of every shard, the earliest entry of a slot winning.

use std::collections::BTreeMap;

use sqlx::Row;

use oc_model::{DomainResult, OrderId};

use crate::error::convert;
use crate::tables::{corrupt, text};
use crate::{Dialect, SqlOrderStore};

/// One slot that holds data and the field that wrote it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLedgerEntry {
    pub tenant: String,
    pub business_identity: String,
    pub order_type: String,
    /// As configured: `order.ext_02`, `line.ext_01`, `kv:logistics/cold_box_id`.
    pub slot: String,
    pub field: String,
    /// `string`, `int`, … as configured.
    pub field_type: String,
    pub encrypted: bool,
    /// When it was first written (ms since the epoch, the writer's clock).
    pub first_written_ms: i64,
}

impl SlotLedgerEntry {
    fn key(&self) -> (&str, &str, &str, &str) {
        (
            &self.tenant,
            &self.business_identity,
            &self.order_type,
            &self.slot,
        )
    }
}

impl SqlOrderStore {
    /// Record `entries` on the shard of `order` unless their slots are recorded there
    /// already (the first writer's entry stays).
    pub async fn record_slots(
        &self,
        order: OrderId,
        entries: &[SlotLedgerEntry],
    ) -> DomainResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let insert = match self.dialect() {
            Dialect::MySql => "INSERT IGNORE",
            Dialect::Sqlite => "INSERT OR IGNORE",
        };
        let sql = format!(
            "{insert} INTO slot_ledger (tenant_id, business_identity, order_type, slot, field, field_type, encrypted, first_written_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let (mut tx, _turn) = self
            .shards
            .begin_write(self.shards.shard_of(order.bucket()))
            .await?;
        for entry in entries {
            sqlx::query(&sql)
                .bind(entry.tenant.as_str())
                .bind(entry.business_identity.as_str())
                .bind(entry.order_type.as_str())
                .bind(entry.slot.as_str())
                .bind(entry.field.as_str())
                .bind(entry.field_type.as_str())
                .bind(i32::from(entry.encrypted))
                .bind(entry.first_written_ms)
                .execute(&mut *tx)
                .await
                .map_err(convert)?;
        }
        tx.commit().await.map_err(convert)
    }

    /// Every slot that holds data, over all shards, the earliest entry of each.
    pub async fn slot_ledger(&self) -> DomainResult<Vec<SlotLedgerEntry>> {
        let mut merged: BTreeMap<(String, String, String, String), SlotLedgerEntry> =
            BTreeMap::new();
        for shard in oc_model::ports::OrderStore::shards(self) {
            let rows = sqlx::query(
                "SELECT tenant_id, business_identity, order_type, slot, field, field_type, encrypted, first_written_ms FROM slot_ledger",
            )
            .fetch_all(self.shards.pool(shard)?)
            .await
            .map_err(convert)?;
            for row in &rows {
                let entry = SlotLedgerEntry {
                    tenant: text(row, "tenant_id")?,
                    business_identity: text(row, "business_identity")?,
                    order_type: text(row, "order_type")?,
                    slot: text(row, "slot")?,
                    field: text(row, "field")?,
                    field_type: text(row, "field_type")?,
                    encrypted: row.try_get::<i32, _>("encrypted").map_err(corrupt)? != 0,
                    first_written_ms: row.try_get("first_written_ms").map_err(corrupt)?,
                };
                let key = entry.key();
                let key = (
                    key.0.to_owned(),
                    key.1.to_owned(),
                    key.2.to_owned(),
                    key.3.to_owned(),
                );
                match merged.get(&key) {
                    Some(known) if known.first_written_ms <= entry.first_written_ms => {}
                    _ => {
                        merged.insert(key, entry);
                    }
                }
            }
        }
        Ok(merged.into_values().collect())
    }
}
