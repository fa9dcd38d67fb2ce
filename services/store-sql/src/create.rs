//! A create's write path: one local transaction on the order's shard holding the idempotency
//! claim (first, so concurrent duplicates queue on its primary key), the main row, the lines,
//! the identifiers and the outbox event. Alone ([`insert_alone`]) every outcome is told apart;
//! together ([`insert_together`], group commit) one multi-row insert per table.

use oc_model::ports::{IdempotencyRecord, InsertOutcome, NewOrder};
use oc_model::{DomainError, DomainResult, ErrorCode, Order, OrderEvent, ShardId};
use sqlx::AnyPool;

use crate::change::check_event_matches;
use crate::config::Dialect;
use crate::error::{WriteError, convert, is_unique_violation};
use crate::read;
use crate::shards::Shards;
use crate::tables::{AnyTx, idempotency, order_identifiers, order_lines, orders, outbox};

/// Why a group was not written.
pub(crate) enum GroupError {
    /// Nothing was committed.
    BeforeCommit(DomainError),
    /// The `COMMIT` failed: the outcome is unknown.
    AtCommit(DomainError),
}

/// What every create must be before it is written, alone or with others.
pub(crate) fn check_new_order(create: &NewOrder) -> DomainResult<()> {
    create.order.check_invariants()?;
    orders::assert_sealed(&create.order)?;
    check_event_matches(&create.order, &create.event)?;
    if create.order.main.version != 1 {
        return Err(DomainError::internal("a new order starts at version 1"));
    }
    Ok(())
}

/// One create in its own transaction, with every outcome told apart: an idempotency replay or
/// conflict, a duplicate external reference, an order id collision.
pub(crate) async fn insert_alone(shards: &Shards, create: NewOrder) -> DomainResult<InsertOutcome> {
    let pool = shards.for_bucket(create.order.main.id.bucket());
    let (mut tx, _turn) = shards
        .begin_write_for(create.order.main.id.bucket())
        .await?;
    match idempotency::insert(&mut tx, &[&create]).await {
        Ok(()) => {}
        Err(WriteError::Sql(e)) if is_unique_violation(&e) => {
            // someone committed this key first: answer with their order
            drop(tx);
            let record = create
                .idempotency
                .as_ref()
                .ok_or_else(|| DomainError::internal("idempotency conflict without a key"))?;
            return find_idempotent(shards, pool, &create.order, record).await;
        }
        Err(e) => return Err(e.into_domain()),
    }
    let order = &create.order;
    orders::insert(&mut tx, &[order])
        .await
        .map_err(|e| match e {
            // the external_ref index (unique per tenant and merchant, migration 0004) names
            // itself in both dialects; the other unique key is the primary key, (tenant,
            // id): not the caller's doing
            WriteError::Sql(e)
                if is_unique_violation(&e) && e.to_string().contains("external_ref") =>
            {
                DomainError::new(
                    ErrorCode::AlreadyExists,
                    "an order with this external_ref exists already (references are unique per merchant)",
                )
                .under("/external_ref")
            }
            WriteError::Sql(e) if is_unique_violation(&e) => {
                tracing::error!(
                    order = %order.main.id,
                    error = %e,
                    "order id generated twice: two nodes share an OC_NODE_ID"
                );
                DomainError::internal("order id collision")
            }
            other => other.into_domain(),
        })?;
    order_lines::insert(&mut tx, &[order]).await?;
    order_identifiers::insert(&mut tx, &[order]).await?;
    outbox::insert(&mut tx, &[&create.event]).await?;
    tx.commit().await.map_err(convert)?;
    Ok(InsertOutcome::Created(create.order))
}

/// Several creates of one shard in one transaction: one statement per table instead of one per
/// table and order, one commit (one log flush) instead of one per order.
pub(crate) async fn insert_together(
    shards: &Shards,
    shard: ShardId,
    creates: &[NewOrder],
) -> Result<(), GroupError> {
    let (mut tx, _turn) = shards
        .begin_write(shard)
        .await
        .map_err(GroupError::BeforeCommit)?;
    let before_commit = async {
        let all: Vec<&NewOrder> = creates.iter().collect();
        let written: Vec<&Order> = creates.iter().map(|c| &c.order).collect();
        let events: Vec<&OrderEvent> = creates.iter().map(|c| &c.event).collect();
        if shards.dialect == Dialect::Sqlite {
            return insert_in_one_message(&mut tx, &all, &written, &events).await;
        }
        idempotency::insert(&mut tx, &all)
            .await
            .map_err(WriteError::into_domain)?;
        orders::insert(&mut tx, &written)
            .await
            .map_err(WriteError::into_domain)?;
        order_lines::insert(&mut tx, &written).await?;
        order_identifiers::insert(&mut tx, &written).await?;
        outbox::insert(&mut tx, &events).await
    };
    before_commit.await.map_err(GroupError::BeforeCommit)?;
    tx.commit()
        .await
        .map_err(|e| GroupError::AtCommit(convert(e)))
}

/// SQLite: a group's five inserts as one multi-statement query, which sqlx's SQLite driver runs
/// statement by statement, binding the arguments in order. Every statement sent is a message to
/// the connection's own thread and back, two hand-offs between threads; at a moderate rate, when
/// a group is mostly a single create, they were most of a create's cost (loadtest/PROFILE.md:
/// ~46 context switches per create at 975/s). One message instead of five. A failure does not
/// say which insert failed, so only a group uses it: a refused group's creates are written
/// again one by one, each alone, where every outcome is told apart.
async fn insert_in_one_message(
    tx: &mut AnyTx<'_>,
    all: &[&NewOrder],
    written: &[&Order],
    events: &[&OrderEvent],
) -> DomainResult<()> {
    let statements = [
        idempotency::insert_sql(all),
        Some(orders::insert_sql(written)),
        order_lines::insert_sql(written),
        order_identifiers::insert_sql(written),
        Some(outbox::insert_sql(events)),
    ];
    let sql = statements
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(";\n");
    let query = idempotency::bind_rows(sqlx::query(&sql), all);
    let query = orders::bind_rows(query, written)?;
    let query = order_lines::bind_rows(query, written)?;
    let query = order_identifiers::bind_rows(query, written);
    let query = outbox::bind_rows(query, events)?;
    query.execute(&mut **tx).await.map_err(convert)?;
    Ok(())
}

/// The answer to a create whose idempotency key was committed first by another: the first
/// order when the request is the same, `Conflict` when it is not.
async fn find_idempotent(
    shards: &Shards,
    pool: &AnyPool,
    order: &Order,
    record: &IdempotencyRecord,
) -> DomainResult<InsertOutcome> {
    let (stored_hash, order_id) = idempotency::find(pool, order, &record.key)
        .await?
        .ok_or_else(|| {
            DomainError::new(ErrorCode::Retryable, "idempotency record vanished, retry")
        })?;
    if stored_hash != record.request_hash {
        return Err(DomainError::new(
            ErrorCode::Conflict,
            "this Idempotency-Key was used with a different request body",
        ));
    }
    let first = read::get(shards, &order.main.tenant, order_id)
        .await?
        .ok_or_else(|| DomainError::internal("idempotency record points at a missing order"))?;
    Ok(InsertOutcome::Replayed(first))
}
