//! The purge port: the housekeeping tables that grow with every write and are read only
//! for a while after it, emptied of rows past their retention.
//!
//! - **outbox**: a row is needed until the relay has published it and, in single-node mode,
//!   until the single-node projector's durable position has passed it (that projector reads
//!   the outbox itself, published or not). So a row is purged only when it is published,
//!   was published before the cutoff, and lies below the bound the caller gives.
//! - **idempotency**: a key answers retries of its create; after its retention a retry with
//!   the same key makes a new order, which is what the retention means.
//!
//! Every call deletes at most `limit` rows in one statement, which commits or not as a
//! whole: a purger killed at any point leaves every row either purged or as it was, and the
//! next pass goes on from there.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::DomainResult;
use crate::event::ShardId;
use crate::millis::UnixMillis;

/// Batched deletes of expired housekeeping rows, per shard.
#[async_trait]
pub trait RetentionStore: Send + Sync + Debug + 'static {
    /// The physical shards (the same as the order store's).
    fn shards(&self) -> Vec<ShardId>;

    /// Deletes up to `limit` outbox rows of `shard` published before `published_before`,
    /// with a sequence below `below` when given (`Some(0)`: none), oldest publication first.
    /// Returns how many were deleted; fewer than `limit` means no more are due.
    async fn purge_outbox(
        &self,
        shard: ShardId,
        published_before: UnixMillis,
        below: Option<u64>,
        limit: u32,
    ) -> DomainResult<u64>;

    /// Deletes up to `limit` idempotency records of `shard` created before `created_before`,
    /// oldest first. Returns how many were deleted; fewer than `limit` means no more are due.
    async fn purge_idempotency(
        &self,
        shard: ShardId,
        created_before: UnixMillis,
        limit: u32,
    ) -> DomainResult<u64>;
}
