//! [`PickupStore`] over the shards: a pickup lives in its order's shard beside the order's
//! after-sales, and writing one with the after-sales it takes, or ending one with what it
//! does to them, is one local transaction there.

use async_trait::async_trait;
use time::OffsetDateTime;

use oc_model::aftersale::AfterSaleId;
use oc_model::logistics::{
    PickupCandidate, PickupCreate, PickupOutcome, PickupStore, ReturnPickup,
};
use oc_model::{DomainError, DomainResult, ErrorCode, OrderId, ShardId, TenantId};

use crate::SqlOrderStore;
use crate::error::{WriteError, convert, is_unique_violation};

use crate::tables::{after_sales, outbox, return_pickups, unix_ms};

#[async_trait]
impl PickupStore for SqlOrderStore {
    fn pickup_shards(&self) -> Vec<ShardId> {
        self.shards.ids()
    }

    async fn orders_due_for_pickup(
        &self,
        shard: ShardId,
        due_by: OffsetDateTime,
        limit: u32,
    ) -> DomainResult<Vec<PickupCandidate>> {
        return_pickups::candidates(self.shards.pool(shard)?, unix_ms(due_by), limit).await
    }

    async fn create_pickup(
        &self,
        mut pickup: ReturnPickup,
        after_sales: &[(AfterSaleId, u64)],
    ) -> DomainResult<PickupCreate> {
        if pickup.id.bucket() != pickup.order_id.bucket() {
            return Err(DomainError::internal(
                "a pickup id carries its order's bucket",
            ));
        }
        if after_sales.is_empty() {
            return Err(DomainError::internal(
                "a pickup takes at least one after-sale",
            ));
        }
        let (mut tx, _turn) = self
            .shards
            .begin_write_for(pickup.order_id.bucket())
            .await?;
        // the after-sales first, in id order: two workers gathering the same order queue on
        // the same first row, and the second finds it taken
        let mut ordered = after_sales.to_vec();
        ordered.sort_by_key(|(id, _)| *id);
        for (id, version) in &ordered {
            if !return_pickups::take_after_sale(&mut tx, &pickup.tenant, *id, *version, pickup.id)
                .await?
            {
                return Ok(PickupCreate::Lost);
            }
        }
        pickup.seq = return_pickups::next_seq(&mut tx, &pickup.tenant, pickup.order_id).await?;
        match return_pickups::insert(&mut tx, &pickup).await {
            Ok(()) => {}
            Err(WriteError::Sql(e)) if is_unique_violation(&e) => return Ok(PickupCreate::Lost),
            Err(e) => return Err(e.into_domain()),
        }
        match tx.commit().await {
            Ok(()) => Ok(PickupCreate::Created(Box::new(pickup))),
            Err(e) if is_unique_violation(&e) => Ok(PickupCreate::Lost),
            Err(e) => Err(convert(e)),
        }
    }

    async fn pickups_due(
        &self,
        shard: ShardId,
        now: OffsetDateTime,
        limit: u32,
    ) -> DomainResult<Vec<ReturnPickup>> {
        return_pickups::due(self.shards.pool(shard)?, unix_ms(now), limit).await
    }

    async fn claim_pickup_attempt(
        &self,
        tenant: &TenantId,
        id: OrderId,
        seen_attempts: u32,
        next: OffsetDateTime,
        at: OffsetDateTime,
    ) -> DomainResult<bool> {
        let (pool, _turn) = self.shards.write_pool_for(id.bucket()).await;
        return_pickups::claim_attempt(pool, tenant, id, seen_attempts, unix_ms(next), unix_ms(at))
            .await
    }

    async fn record_pickup_failure(
        &self,
        tenant: &TenantId,
        id: OrderId,
        error: &str,
        at: OffsetDateTime,
    ) -> DomainResult<()> {
        let (pool, _turn) = self.shards.write_pool_for(id.bucket()).await;
        return_pickups::record_failure(pool, tenant, id, error, unix_ms(at)).await
    }

    async fn finish_pickup(&self, outcome: PickupOutcome) -> DomainResult<bool> {
        let at = unix_ms(outcome.at);
        let (mut tx, _turn) = self.shards.begin_write_for(outcome.id.bucket()).await?;
        // the pickup's row first: a duplicate end queues on it and finds nothing to do
        if !return_pickups::finish(
            &mut tx,
            &outcome.tenant,
            outcome.id,
            outcome.status,
            outcome.waybill.as_ref(),
            outcome.error.as_deref(),
            at,
        )
        .await?
        {
            return Ok(false);
        }
        for mark in &outcome.marks {
            if mark.history.version != mark.expected_version + 1 {
                return Err(DomainError::internal(
                    "a pickup's history entry carries the after-sale's next version",
                ));
            }
            let moved = return_pickups::mark_after_sale(
                &mut tx,
                &outcome.tenant,
                mark.id,
                mark.expected_version,
                &mark.history.to,
                outcome.waybill.as_ref(),
                at,
            )
            .await?;
            if !moved {
                return Err(DomainError::new(
                    ErrorCode::PreconditionFailed,
                    format!(
                        "after-sale {} is no longer at version {}",
                        mark.id, mark.expected_version
                    ),
                ));
            }
            after_sales::insert_history(&mut tx, &outcome.tenant, mark.id, &mark.history).await?;
        }
        let events: Vec<_> = outcome.marks.iter().map(|mark| &mark.event).collect();
        if !events.is_empty() {
            outbox::insert(&mut tx, &events).await?;
        }
        tx.commit().await.map_err(convert)?;
        Ok(true)
    }

    async fn get_pickup(
        &self,
        tenant: &TenantId,
        id: OrderId,
    ) -> DomainResult<Option<ReturnPickup>> {
        return_pickups::get(self.shards.for_bucket(id.bucket()), tenant, id).await
    }

    async fn pickups_of_order(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Vec<ReturnPickup>> {
        return_pickups::of_order(self.shards.for_bucket(order_id.bucket()), tenant, order_id).await
    }
}
