//! [`PaymentStore`] over the shards: a payment's rows live in its order's shard (the payment
//! id carries the order's bucket), and everything a payment does to its order is one local
//! transaction there.

use async_trait::async_trait;
use time::OffsetDateTime;

use oc_model::payment::{
    NewPayment, PaymentInsert, PaymentSettlement, PaymentStore, RefundInsert, RefundSettlement,
    SettleOutcome,
};
use oc_model::{
    Checkout, DomainError, DomainResult, ErrorCode, OrderEvent, OrderId, Payment, PaymentId,
    PaymentStatus, Refund, RefundId, RefundStatus, ShardId, TenantId,
};

use crate::SqlOrderStore;
use crate::error::{WriteError, convert, is_unique_violation};

use crate::tables::{outbox, payments, unix_ms};
use crate::transitions::write_transition;

/// What every new payment must be before it is written.
fn check_new(new: &NewPayment) -> DomainResult<()> {
    let payment = &new.payment;
    if payment.id.bucket() != payment.order_id.bucket() {
        return Err(DomainError::internal(
            "a payment id carries its order's bucket",
        ));
    }
    if payment.status != PaymentStatus::Pending || payment.captured != 0 {
        return Err(DomainError::internal("a new payment is pending"));
    }
    if new.event.order_id != payment.order_id || new.event.tenant != payment.tenant {
        return Err(DomainError::internal(
            "outbox event does not describe the payment's order",
        ));
    }
    Ok(())
}

#[async_trait]
impl PaymentStore for SqlOrderStore {
    async fn insert_payment(&self, new: NewPayment) -> DomainResult<PaymentInsert> {
        check_new(&new)?;
        let payment = &new.payment;
        let pool = self.shards.for_bucket(payment.order_id.bucket());
        let (mut tx, _turn) = self
            .shards
            .begin_write_for(payment.order_id.bucket())
            .await?;
        if let Some(record) = &new.idempotency {
            match payments::claim_key(&mut tx, payment, record).await {
                Ok(()) => {}
                Err(WriteError::Sql(e)) if is_unique_violation(&e) => {
                    // someone committed this key first: answer with their payment
                    drop(tx);
                    let (hash, first) =
                        payments::find_key(pool, &payment.tenant, payment.order_id, &record.key)
                            .await?
                            .ok_or_else(|| {
                                DomainError::new(
                                    ErrorCode::Retryable,
                                    "idempotency record vanished, retry",
                                )
                            })?;
                    if hash != record.request_hash {
                        return Err(DomainError::new(
                            ErrorCode::Conflict,
                            "this Idempotency-Key was used with a different request body",
                        ));
                    }
                    let first = payments::get(pool, &payment.tenant, first)
                        .await?
                        .ok_or_else(|| {
                            DomainError::internal("idempotency record points at a missing payment")
                        })?;
                    return Ok(PaymentInsert::Replayed(first));
                }
                Err(e) => return Err(e.into_domain()),
            }
        }
        payments::insert(&mut tx, payment).await?;
        outbox::insert(&mut tx, &[&new.event]).await?;
        tx.commit().await.map_err(convert)?;
        Ok(PaymentInsert::Created(new.payment))
    }

    async fn set_checkout(
        &self,
        tenant: &TenantId,
        id: PaymentId,
        checkout: &Checkout,
        at: OffsetDateTime,
    ) -> DomainResult<()> {
        let (pool, _turn) = self.shards.write_pool_for(id.bucket()).await;
        payments::set_checkout(pool, tenant, id, checkout, unix_ms(at)).await
    }

    async fn get_payment(&self, tenant: &TenantId, id: PaymentId) -> DomainResult<Option<Payment>> {
        payments::get(self.shards.for_bucket(id.bucket()), tenant, id).await
    }

    async fn payments_of_order(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Vec<Payment>> {
        payments::of_order(self.shards.for_bucket(order_id.bucket()), tenant, order_id).await
    }

    async fn settle_payment(&self, settlement: PaymentSettlement) -> DomainResult<SettleOutcome> {
        if settlement.status == PaymentStatus::Pending {
            return Err(DomainError::internal("a settlement leaves pending"));
        }
        if let Some(write) = &settlement.transition
            && (write.order.main.tenant != settlement.tenant
                || write.order.main.id.bucket() != settlement.id.bucket())
        {
            return Err(DomainError::internal(
                "a payment settles its own order's transition",
            ));
        }
        let (mut tx, _turn) = self.shards.begin_write_for(settlement.id.bucket()).await?;
        // the payment's row first: concurrent duplicates queue on it, and the first to commit
        // leaves the others nothing to match
        if !payments::settle(&mut tx, &settlement).await? {
            drop(tx);
            return Ok(SettleOutcome::AlreadySettled);
        }
        if let Some(write) = &settlement.transition
            && !write_transition(&mut tx, write).await?
        {
            drop(tx);
            return Err(DomainError::new(
                ErrorCode::PreconditionFailed,
                format!("order is no longer at version {}", write.expected_version),
            ));
        }
        if !settlement.events.is_empty() {
            let events: Vec<_> = settlement.events.iter().collect();
            outbox::insert(&mut tx, &events).await?;
        }
        tx.commit().await.map_err(convert)?;
        Ok(SettleOutcome::Settled)
    }

    async fn payments_due(
        &self,
        shard: ShardId,
        now: OffsetDateTime,
        limit: u32,
    ) -> DomainResult<Vec<Payment>> {
        payments::due(self.shards.pool(shard)?, unix_ms(now), limit).await
    }

    async fn claim_payment_query(
        &self,
        tenant: &TenantId,
        id: PaymentId,
        seen: OffsetDateTime,
        next: Option<OffsetDateTime>,
    ) -> DomainResult<bool> {
        let (pool, _turn) = self.shards.write_pool_for(id.bucket()).await;
        payments::claim_query(pool, tenant, id, unix_ms(seen), next.map(unix_ms)).await
    }

    fn payment_shards(&self) -> Vec<ShardId> {
        self.shards.ids()
    }

    async fn insert_refund(
        &self,
        refund: Refund,
        events: Vec<OrderEvent>,
    ) -> DomainResult<RefundInsert> {
        if refund.payment_id.bucket() != refund.id.bucket() || refund.amount.minor <= 0 {
            return Err(DomainError::internal(
                "a refund carries its payment's bucket and a positive amount",
            ));
        }
        if refund.status != RefundStatus::Requested || refund.attempts != 0 || refund.failures != 0
        {
            return Err(DomainError::internal(
                "a new refund is requested, unsubmitted",
            ));
        }
        if events
            .iter()
            .any(|event| event.order_id != refund.order_id || event.tenant != refund.tenant)
        {
            return Err(DomainError::internal(
                "outbox event does not describe the refund's order",
            ));
        }
        let pool = self.shards.for_bucket(refund.payment_id.bucket());
        let (mut tx, _turn) = self
            .shards
            .begin_write_for(refund.payment_id.bucket())
            .await?;
        // the refund row first: retries of one key queue on its unique index
        match payments::insert_refund(&mut tx, &refund).await {
            Ok(()) => {}
            Err(WriteError::Sql(e)) if is_unique_violation(&e) => {
                drop(tx);
                let first = payments::refund_by_key(
                    pool,
                    &refund.tenant,
                    refund.payment_id,
                    &refund.refund_key,
                )
                .await?
                .ok_or_else(|| DomainError::new(ErrorCode::Retryable, "refund vanished, retry"))?;
                return Ok(RefundInsert::Replayed(first));
            }
            Err(e) => return Err(e.into_domain()),
        }
        // the cap: a conditional update on the payment row, which concurrent refunds of the
        // payment queue on; the CHECK on `refunded <= captured` holds it even without it
        if !payments::reserve_refund(&mut tx, &refund).await? {
            drop(tx);
            let refundable = payments::refunded(pool, &refund.tenant, refund.payment_id)
                .await?
                .map_or(0, |(refunded, captured)| captured - refunded);
            return Ok(RefundInsert::Exceeds { refundable });
        }
        if !events.is_empty() {
            let events: Vec<_> = events.iter().collect();
            outbox::insert(&mut tx, &events).await?;
        }
        tx.commit().await.map_err(convert)?;
        Ok(RefundInsert::Created(refund))
    }

    async fn settle_refund(&self, settlement: RefundSettlement) -> DomainResult<bool> {
        let RefundSettlement {
            tenant,
            id,
            status,
            failure,
            attempt,
            at,
            events,
        } = settlement;
        if status == RefundStatus::Requested {
            return Err(DomainError::internal("a settlement leaves requested"));
        }
        let (mut tx, _turn) = self.shards.begin_write_for(id.bucket()).await?;
        // the refund row's compare-and-set on `requested` first: duplicates queue on it
        if !payments::settle_refund(
            &mut tx,
            &tenant,
            id,
            status,
            failure.as_deref(),
            attempt,
            unix_ms(at),
        )
        .await?
        {
            return Ok(false);
        }
        if status == RefundStatus::Failed {
            let refund = payments::get_refund(&mut *tx, &tenant, id)
                .await?
                .ok_or_else(|| DomainError::internal("a settled refund vanished"))?;
            payments::release_refund(&mut tx, &refund).await?;
        }
        if !events.is_empty() {
            let events: Vec<_> = events.iter().collect();
            outbox::insert(&mut tx, &events).await?;
        }
        tx.commit().await.map_err(convert)?;
        Ok(true)
    }

    async fn get_refund(&self, tenant: &TenantId, id: RefundId) -> DomainResult<Option<Refund>> {
        payments::get_refund(self.shards.for_bucket(id.bucket()), tenant, id).await
    }

    async fn refunds_of_payment(
        &self,
        tenant: &TenantId,
        payment_id: PaymentId,
    ) -> DomainResult<Vec<Refund>> {
        payments::refunds_of_payment(
            self.shards.for_bucket(payment_id.bucket()),
            tenant,
            payment_id,
        )
        .await
    }

    async fn refunds_with_status(
        &self,
        shard: ShardId,
        tenant: &TenantId,
        status: RefundStatus,
        limit: u32,
    ) -> DomainResult<Vec<Refund>> {
        payments::refunds_with_status(self.shards.pool(shard)?, tenant, status, limit).await
    }

    async fn refunds_due(
        &self,
        shard: ShardId,
        now: OffsetDateTime,
        limit: u32,
    ) -> DomainResult<Vec<Refund>> {
        payments::refunds_due(self.shards.pool(shard)?, unix_ms(now), limit).await
    }

    async fn claim_refund_step(
        &self,
        tenant: &TenantId,
        id: RefundId,
        seen: OffsetDateTime,
        next: OffsetDateTime,
    ) -> DomainResult<bool> {
        let (pool, _turn) = self.shards.write_pool_for(id.bucket()).await;
        payments::claim_refund_step(pool, tenant, id, unix_ms(seen), unix_ms(next)).await
    }

    async fn record_refund_attempt(
        &self,
        tenant: &TenantId,
        id: RefundId,
        attempt: u32,
        at: OffsetDateTime,
    ) -> DomainResult<bool> {
        let (pool, _turn) = self.shards.write_pool_for(id.bucket()).await;
        payments::record_refund_attempt(pool, tenant, id, attempt, unix_ms(at)).await
    }

    async fn record_refund_failure(
        &self,
        tenant: &TenantId,
        id: RefundId,
        attempt: u32,
        failure: &str,
        next: OffsetDateTime,
        at: OffsetDateTime,
    ) -> DomainResult<bool> {
        let (pool, _turn) = self.shards.write_pool_for(id.bucket()).await;
        payments::record_refund_failure(
            pool,
            tenant,
            id,
            attempt,
            failure,
            unix_ms(next),
            unix_ms(at),
        )
        .await
    }

    async fn refunded(&self, tenant: &TenantId, id: PaymentId) -> DomainResult<Option<i64>> {
        Ok(
            payments::refunded(self.shards.for_bucket(id.bucket()), tenant, id)
                .await?
                .map(|(refunded, _)| refunded),
        )
    }
}
