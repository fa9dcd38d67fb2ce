//! Changes of an existing order: an update (compare-and-set on its version, with an outbox
//! event) and the write-back of re-sealed values (key rotation: no new version, no event).
//! Lines and identifiers are replaced as a whole: an order has a handful of each.

use oc_model::{DomainError, DomainResult, ErrorCode, Order, OrderEvent};

use crate::error::convert;
use crate::read;
use crate::shards::Shards;
use crate::tables::{AnyTx, order_identifiers, order_lines, orders, outbox};

/// The event written with a change must describe the order being written.
pub(crate) fn check_event_matches(order: &Order, event: &OrderEvent) -> DomainResult<()> {
    if event.order_id != order.main.id
        || event.version != order.main.version
        || event.tenant != order.main.tenant
    {
        return Err(DomainError::internal(
            "outbox event does not describe the order being written",
        ));
    }
    Ok(())
}

/// See `OrderStore::update`.
pub(crate) async fn update(
    shards: &Shards,
    expected_version: u64,
    order: Order,
    event: OrderEvent,
) -> DomainResult<Order> {
    order.check_invariants()?;
    orders::assert_sealed(&order)?;
    check_event_matches(&order, &event)?;
    if order.main.version != expected_version + 1 {
        return Err(DomainError::internal(
            "an update bumps the version by exactly one",
        ));
    }
    let (mut tx, _turn) = shards.begin_write_for(order.main.id.bucket()).await?;
    if !orders::update(&mut tx, &order, expected_version).await? {
        drop(tx);
        let main = &order.main;
        return Err(match read::get(shards, &main.tenant, main.id).await? {
            None => DomainError::not_found("order not found"),
            Some(current) => DomainError::new(
                ErrorCode::PreconditionFailed,
                format!(
                    "order is at version {}, not {expected_version}",
                    current.main.version
                ),
            ),
        });
    }
    replace_children(&mut tx, &order).await?;
    outbox::insert(&mut tx, &[&event]).await?;
    tx.commit().await.map_err(convert)?;
    Ok(order)
}

/// See `SqlOrderStore::rewrite_sealed`.
pub(crate) async fn rewrite_sealed(shards: &Shards, order: &Order) -> DomainResult<bool> {
    order.check_invariants()?;
    orders::assert_sealed(order)?;
    let (mut tx, _turn) = shards.begin_write_for(order.main.id.bucket()).await?;
    if !orders::rewrite_sealed(&mut tx, order).await? {
        return Ok(false);
    }
    replace_children(&mut tx, order).await?;
    tx.commit().await.map_err(convert)?;
    Ok(true)
}

async fn replace_children(tx: &mut AnyTx<'_>, order: &Order) -> DomainResult<()> {
    order_lines::delete_of(tx, order).await?;
    order_identifiers::delete_of(tx, order).await?;
    order_lines::insert(tx, &[order]).await?;
    order_identifiers::insert(tx, &[order]).await
}
