//! Consuming the order events: a stream of them with a committable position, and the store of
//! consumer positions. The projector sees only these; the bus adapters (Kafka, the
//! in-process bus) and the store (positions) implement them.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::DomainResult;
use crate::event::OrderEvent;

/// A source of order events with a position that can be committed.
#[async_trait]
pub trait EventStream: Send {
    /// The next events; may be empty after waiting a short while for new ones.
    async fn next_batch(&mut self) -> DomainResult<Vec<OrderEvent>>;

    /// Everything returned so far has been applied: make the position durable.
    async fn commit(&mut self) -> DomainResult<()>;

    /// Events behind the end of the stream as of the last poll, when known.
    fn lag(&self) -> Option<u64> {
        None
    }
}

/// Consumer positions: where each consumer group is in each partition of each topic.
///
/// rskafka has no consumer-group protocol, so consumers keep their own positions through this
/// port (the store keeps them in a table of shard 0). Positions follow Kafka's convention: the
/// stored value is the *next* offset to read.
#[async_trait]
pub trait OffsetStore: Send + Sync + Debug + 'static {
    /// The committed next-offset per partition; partitions never committed are absent.
    async fn load(&self, group: &str, topic: &str) -> DomainResult<BTreeMap<i32, i64>>;

    /// Stores the given partitions' next offsets (others keep theirs). Later commits win,
    /// also when they move backwards (a deliberate replay).
    async fn commit(
        &self,
        group: &str,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> DomainResult<()>;
}
