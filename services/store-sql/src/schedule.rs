//! [`ScheduleStore`] over the shards: the reads of the timeout worker and the reservation
//! sweeper. Nothing here writes: what they find is changed through the transition's
//! compare-and-set and the reservation's conditional state change.

use async_trait::async_trait;

use oc_model::schedule::{DueOrder, ReservationCursor, ScheduleStore};
use oc_model::stock::Reservation;
use oc_model::{DomainResult, OrderId, ShardId, TenantId, UnixMillis};

use crate::SqlOrderStore;
use crate::error::convert;
use crate::tables::{opt_int, orders, stock_reservations};

#[async_trait]
impl ScheduleStore for SqlOrderStore {
    fn shards(&self) -> Vec<ShardId> {
        self.shards.ids()
    }

    async fn due_orders(
        &self,
        shard: ShardId,
        now: UnixMillis,
        after: Option<&DueOrder>,
        limit: u32,
    ) -> DomainResult<Vec<DueOrder>> {
        let rows = orders::select_due(now, after, limit)
            .fetch_all(self.shards.pool(shard)?)
            .await
            .map_err(convert)?;
        rows.iter().map(orders::decode_due).collect()
    }

    async fn earliest_deadline(&self, shard: ShardId) -> DomainResult<Option<UnixMillis>> {
        let row = sqlx::query(orders::SELECT_EARLIEST_DEADLINE)
            .fetch_one(self.shards.pool(shard)?)
            .await
            .map_err(convert)?;
        Ok(opt_int(&row, "earliest")?.map(UnixMillis::new))
    }

    async fn expired_reservations(
        &self,
        shard: ShardId,
        now: UnixMillis,
        after: Option<&ReservationCursor>,
        limit: u32,
    ) -> DomainResult<Vec<Reservation>> {
        let rows = stock_reservations::select_expired(now, after, limit)
            .fetch_all(self.shards.pool(shard)?)
            .await
            .map_err(convert)?;
        rows.iter().map(stock_reservations::decode).collect()
    }

    async fn order_exists(&self, tenant: &TenantId, id: OrderId) -> DomainResult<bool> {
        let row = sqlx::query(orders::SELECT_EXISTS)
            .bind(tenant.as_str())
            .bind(id.as_i64())
            .fetch_optional(self.shards.for_bucket(id.bucket()))
            .await
            .map_err(convert)?;
        Ok(row.is_some())
    }
}
