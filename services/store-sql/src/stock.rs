//! [`StockStore`] over the shards: a SKU's level and its reservations live on the shard of
//! the bucket of `(tenant, sku)`. Every move of units is a conditional `UPDATE` of the level
//! (`available >= n`, never read-then-write) in the same transaction as the reservation row's
//! state change, so concurrent buyers can never take more than there is, and a confirm or
//! release runs at most once per reservation (the row's state is the guard).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use time::OffsetDateTime;

use oc_model::stock::{Hold, Reservation, ReserveOutcome, Settle, StockStore};
use oc_model::{
    Bucket, DomainError, DomainResult, OrderId, ReservationState, ShardId, Sku, StockLevel,
    TenantId,
};

use crate::SqlOrderStore;
use crate::error::{convert, is_unique_violation};
use crate::tables::{AnyTx, stock_levels, stock_reservations, unix_ms};

impl SqlOrderStore {
    /// Where a SKU's stock rows live: by tenant and SKU, not by order.
    fn stock_bucket(tenant: &TenantId, sku: &Sku) -> Bucket {
        Bucket::of_key(tenant, sku.as_str())
    }
}

async fn level_in(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    sku: &Sku,
) -> DomainResult<Option<StockLevel>> {
    let row = sqlx::query(&stock_levels::SELECT)
        .bind(tenant.as_str())
        .bind(sku.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(convert)?;
    row.as_ref().map(stock_levels::decode).transpose()
}

async fn reservation_in(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    order_id: OrderId,
    sku: &Sku,
) -> DomainResult<Option<Reservation>> {
    let row = sqlx::query(&stock_reservations::SELECT_ONE)
        .bind(tenant.as_str())
        .bind(order_id.as_i64())
        .bind(sku.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(convert)?;
    row.as_ref().map(stock_reservations::decode).transpose()
}

/// Move the reservation `from` → `to` and its units with `counter` (one of the level's
/// conditional statements), in one transaction; `None` when it was not in `from`.
#[allow(clippy::too_many_arguments)]
async fn settle_in(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    order_id: OrderId,
    sku: &Sku,
    from: ReservationState,
    to: ReservationState,
    counter: &'static str,
    now: OffsetDateTime,
) -> DomainResult<bool> {
    let moved = sqlx::query(stock_reservations::MOVE)
        .bind(to.as_str())
        .bind(unix_ms(now))
        .bind(tenant.as_str())
        .bind(order_id.as_i64())
        .bind(sku.as_str())
        .bind(from.as_str())
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    if moved.rows_affected() != 1 {
        return Ok(false);
    }
    let reservation = reservation_in(tx, tenant, order_id, sku)
        .await?
        .ok_or_else(|| DomainError::internal("reservation vanished inside its transaction"))?;
    let units =
        stock_levels::bind_move(sqlx::query(counter), reservation.quantity, tenant, sku, now)
            .execute(&mut **tx)
            .await
            .map_err(convert)?;
    if units.rows_affected() != 1 {
        // the level no longer holds the reservation's units: the counts would go wrong
        return Err(DomainError::internal(format!(
            "stock level of {sku} does not hold the units of order {order_id}'s reservation"
        )));
    }
    Ok(true)
}

#[async_trait]
impl StockStore for SqlOrderStore {
    async fn set_available(
        &self,
        tenant: &TenantId,
        sku: &Sku,
        available: u64,
        now: OffsetDateTime,
    ) -> DomainResult<StockLevel> {
        let available = i64::try_from(available)
            .map_err(|_| DomainError::invalid("/available", "too large"))?;
        // a first set of a SKU races another one at most once: the loser updates
        for _ in 0..2 {
            let (mut tx, _turn) = self
                .shards
                .begin_write_for(Self::stock_bucket(tenant, sku))
                .await?;
            let updated = sqlx::query(stock_levels::SET_AVAILABLE)
                .bind(available)
                .bind(unix_ms(now))
                .bind(tenant.as_str())
                .bind(sku.as_str())
                .execute(&mut *tx)
                .await
                .map_err(convert)?;
            if updated.rows_affected() == 0 {
                let inserted = stock_levels::bind_new(
                    sqlx::query(&stock_levels::INSERT),
                    tenant,
                    sku,
                    available as u64,
                    now,
                )
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(error) if is_unique_violation(&error) => continue,
                    other => {
                        other.map_err(convert)?;
                    }
                }
            }
            let level = level_in(&mut tx, tenant, sku)
                .await?
                .ok_or_else(|| DomainError::internal("stock level vanished after its write"))?;
            tx.commit().await.map_err(convert)?;
            return Ok(level);
        }
        Err(DomainError::new(
            oc_model::ErrorCode::Retryable,
            "stock level was created concurrently; retry",
        ))
    }

    async fn stock_level(&self, tenant: &TenantId, sku: &Sku) -> DomainResult<Option<StockLevel>> {
        let row = sqlx::query(&stock_levels::SELECT)
            .bind(tenant.as_str())
            .bind(sku.as_str())
            .fetch_optional(self.shards.for_bucket(Self::stock_bucket(tenant, sku)))
            .await
            .map_err(convert)?;
        row.as_ref().map(stock_levels::decode).transpose()
    }

    async fn stock_levels(
        &self,
        tenant: &TenantId,
        skus: &[Sku],
    ) -> DomainResult<Vec<Option<StockLevel>>> {
        let mut by_shard: BTreeMap<ShardId, Vec<&Sku>> = BTreeMap::new();
        for sku in skus {
            let shard = self.shards.shard_of(Self::stock_bucket(tenant, sku));
            by_shard.entry(shard).or_default().push(sku);
        }
        let mut found: HashMap<Sku, StockLevel> = HashMap::with_capacity(skus.len());
        for (shard, wanted) in by_shard {
            let levels = match &self.level_readers {
                // shared with the placements reading at the same time (`level_reads.rs`)
                Some(readers) => {
                    readers
                        .levels(shard, tenant, wanted.into_iter().cloned().collect())
                        .await?
                }
                // group commit off: the same statement, for this placement alone
                None => {
                    let skus = wanted.into_iter().collect();
                    crate::level_reads::read_batch(
                        &self.shards,
                        shard,
                        BTreeMap::from([(tenant, skus)]),
                    )
                    .await?
                    .into_values()
                    .collect()
                }
            };
            for level in levels {
                found.insert(level.sku.clone(), level);
            }
        }
        Ok(skus.iter().map(|sku| found.get(sku).cloned()).collect())
    }

    async fn reserve(&self, hold: &Hold) -> DomainResult<ReserveOutcome> {
        let (tenant, sku) = (&hold.tenant, &hold.sku);
        if hold.quantity == 0 {
            return Err(DomainError::invalid(
                "/quantity",
                "a reservation holds at least 1 unit",
            ));
        }
        let (mut tx, _turn) = self
            .shards
            .begin_write_for(Self::stock_bucket(tenant, sku))
            .await?;
        let taken = stock_levels::bind_move(
            sqlx::query(stock_levels::RESERVE_AVAILABLE),
            hold.quantity,
            tenant,
            sku,
            hold.created_at,
        )
        .execute(&mut *tx)
        .await
        .map_err(convert)?;
        if taken.rows_affected() != 1 {
            let level = level_in(&mut tx, tenant, sku).await?;
            drop(tx);
            return Ok(ReserveOutcome::Short(level));
        }
        sqlx::query(&stock_reservations::INSERT)
            .bind(tenant.as_str())
            .bind(hold.order_id.as_i64())
            .bind(sku.as_str())
            .bind(hold.quantity as i64)
            .bind(unix_ms(hold.expires_at))
            .bind(unix_ms(hold.created_at))
            .bind(unix_ms(hold.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|error| {
                if is_unique_violation(&error) {
                    DomainError::new(
                        oc_model::ErrorCode::Conflict,
                        format!(
                            "order {} already holds a reservation of {sku}",
                            hold.order_id
                        ),
                    )
                } else {
                    convert(error)
                }
            })?;
        tx.commit().await.map_err(convert)?;
        Ok(ReserveOutcome::Reserved)
    }

    async fn confirm(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        sku: &Sku,
        now: OffsetDateTime,
    ) -> DomainResult<Settle> {
        let (mut tx, _turn) = self
            .shards
            .begin_write_for(Self::stock_bucket(tenant, sku))
            .await?;
        let done = settle_in(
            &mut tx,
            tenant,
            order_id,
            sku,
            ReservationState::Reserved,
            ReservationState::Confirmed,
            stock_levels::SELL_RESERVED,
            now,
        )
        .await?;
        let outcome = if done {
            Settle::Done
        } else {
            match reservation_in(&mut tx, tenant, order_id, sku).await? {
                Some(reservation) => Settle::Already(reservation.state),
                None => Settle::Missing,
            }
        };
        tx.commit().await.map_err(convert)?;
        Ok(outcome)
    }

    async fn release(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        sku: &Sku,
        now: OffsetDateTime,
    ) -> DomainResult<Settle> {
        let (mut tx, _turn) = self
            .shards
            .begin_write_for(Self::stock_bucket(tenant, sku))
            .await?;
        let mut done = false;
        for (from, counter) in [
            (ReservationState::Reserved, stock_levels::RETURN_RESERVED),
            (ReservationState::Confirmed, stock_levels::RETURN_SOLD),
        ] {
            if settle_in(
                &mut tx,
                tenant,
                order_id,
                sku,
                from,
                ReservationState::Released,
                counter,
                now,
            )
            .await?
            {
                done = true;
                break;
            }
        }
        let outcome = if done {
            Settle::Done
        } else {
            match reservation_in(&mut tx, tenant, order_id, sku).await? {
                Some(reservation) => Settle::Already(reservation.state),
                None => Settle::Missing,
            }
        };
        tx.commit().await.map_err(convert)?;
        Ok(outcome)
    }

    async fn reservation(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        sku: &Sku,
    ) -> DomainResult<Option<Reservation>> {
        let (mut tx, _turn) = self
            .shards
            .begin_write_for(Self::stock_bucket(tenant, sku))
            .await?;
        let reservation = reservation_in(&mut tx, tenant, order_id, sku).await?;
        tx.commit().await.map_err(convert)?;
        Ok(reservation)
    }
}
