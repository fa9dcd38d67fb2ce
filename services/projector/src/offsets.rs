//! Durable consumer positions: the `consumer_offsets` table of shard 0 (every shard has the
//! table; shard 0 holds the positions by convention). A restarted consumer resumes where its
//! last fully applied batch ended instead of replaying the topic.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::Row;

use oc_bus::OffsetStore;
use oc_model::{DomainError, DomainResult, ShardId};
use oc_store_sql::SqlOrderStore;

/// `OffsetStore` over the order store's shard 0.
#[derive(Debug, Clone)]
pub struct SqlOffsetStore {
    store: SqlOrderStore,
}

impl SqlOffsetStore {
    pub fn new(store: SqlOrderStore) -> SqlOffsetStore {
        SqlOffsetStore { store }
    }
}

fn unavailable(error: sqlx::Error) -> DomainError {
    DomainError::unavailable(format!("consumer offsets: {error}"))
}

#[async_trait]
impl OffsetStore for SqlOffsetStore {
    async fn load(&self, group: &str, topic: &str) -> DomainResult<BTreeMap<i32, i64>> {
        let pool = self.store.shard_pool(ShardId(0))?;
        let rows = sqlx::query("SELECT partition_id, next_offset FROM consumer_offsets WHERE group_id = ? AND topic = ?")
            .bind(group)
            .bind(topic)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let partition: i64 = row.try_get(0).map_err(unavailable)?;
                let offset: i64 = row.try_get(1).map_err(unavailable)?;
                let partition = i32::try_from(partition)
                    .map_err(|_| DomainError::internal("partition out of range"))?;
                Ok((partition, offset))
            })
            .collect()
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> DomainResult<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let pool = self.store.shard_pool(ShardId(0))?;
        let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        // delete + insert in one transaction: the same statement works on both dialects
        let mut tx = pool.begin().await.map_err(unavailable)?;
        for (partition, offset) in offsets {
            sqlx::query("DELETE FROM consumer_offsets WHERE group_id = ? AND topic = ? AND partition_id = ?")
                .bind(group)
                .bind(topic)
                .bind(i64::from(*partition))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            sqlx::query(
                "INSERT INTO consumer_offsets (group_id, topic, partition_id, next_offset, updated_at_ms) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(group)
            .bind(topic)
            .bind(i64::from(*partition))
            .bind(*offset)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }
}
