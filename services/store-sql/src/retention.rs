//! [`RetentionStore`] over the shards: batched purges of the outbox and idempotency tables.

use async_trait::async_trait;

use oc_model::retention::RetentionStore;
use oc_model::{DomainResult, ShardId, UnixMillis};

use crate::SqlOrderStore;
use crate::tables::{idempotency, outbox};

#[async_trait]
impl RetentionStore for SqlOrderStore {
    fn shards(&self) -> Vec<ShardId> {
        self.shards.ids()
    }

    async fn purge_outbox(
        &self,
        shard: ShardId,
        published_before: UnixMillis,
        below: Option<u64>,
        limit: u32,
    ) -> DomainResult<u64> {
        if limit == 0 || below == Some(0) {
            return Ok(0);
        }
        let _turn = self.shards.write_turn(shard).await;
        outbox::purge(self.shards.pool(shard)?, published_before, below, limit).await
    }

    async fn purge_idempotency(
        &self,
        shard: ShardId,
        created_before: UnixMillis,
        limit: u32,
    ) -> DomainResult<u64> {
        if limit == 0 {
            return Ok(0);
        }
        let _turn = self.shards.write_turn(shard).await;
        idempotency::purge(self.shards.pool(shard)?, created_before, limit).await
    }
}
