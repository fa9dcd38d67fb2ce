//! Ports: the traits the adapters implement. The domain and the API see only these; the
//! binary crate picks concrete adapters from config by URL scheme.
//!
//! Every method takes the tenant (or a value that carries it) so that no adapter can
//! answer across tenants. A missing order and another tenant's order look the same: `None`.
//!
//! Beside the request path's ports (this file): the consumer side of the bus and its
//! positions (`stream`), the shard walks of read-model maintenance (`scan`), the
//! searchable fields of the tenant config (`fields`) and the orders a read model refused
//! (`dead_letters`), each in its own module.

mod dead_letters;
mod fields;
// its own file: the after-sale listing (`aftersale::listing`) pages with it, and this file
// names the listing's types
pub(crate) mod page;
mod scan;
mod stream;

pub use dead_letters::{DeadLetter, DeadLetters, SinkKind};
pub use fields::{NoSearchFields, SearchFields};
pub use page::{Page, PageRequest};
pub use scan::{CreatedWindow, OrderKey, ShardScan};
pub use stream::{EventStream, OffsetStore};

use std::fmt::Debug;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aftersale::AfterSaleId;
use crate::aftersale::listing::{AfterSaleDocument, AfterSalePage, AfterSaleQuery};
use crate::error::DomainResult;
use crate::event::{OrderEvent, OutboxEntry, ShardId};
use crate::ids::{OrderId, PartyId, TenantId};
use crate::lifecycle::HistoryEntry;
use crate::order::Order;
use crate::search::{SearchDocument, SearchPage, SearchQuery};

/// Idempotency record written with a create: the key and a hash of the canonical request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key: String,
    /// Hex SHA-256 of the canonical request body.
    pub request_hash: String,
}

/// Everything one create writes in one local transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub order: Order,
    pub idempotency: Option<IdempotencyRecord>,
    pub event: OrderEvent,
}

/// What a create did.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// A new order was written.
    Created(Order),
    /// The idempotency key was seen with the same request: the first order, unchanged.
    Replayed(Order),
}

/// The system of record: sharded SQL.
#[async_trait]
pub trait OrderStore: Send + Sync + Debug + 'static {
    /// Order + lines + identifiers + outbox event + idempotency record, one transaction on
    /// the order's shard. A reused idempotency key with another request hash is `Conflict`.
    async fn insert(&self, new_order: NewOrder) -> DomainResult<InsertOutcome>;

    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>>;

    /// The orders of `keys`, each as [`OrderStore::get`] answers it, in the order of `keys`
    /// (a key given twice is answered twice). Each shard's orders are read in one snapshot with
    /// one statement per table and tenant, not one read per order: the projector re-reads every
    /// order of a batch of events.
    async fn get_many(&self, keys: &[(TenantId, OrderId)]) -> DomainResult<Vec<Option<Order>>>;

    /// Compare-and-set: writes `order` (whose version must be `expected_version + 1`) and
    /// `event` only if the stored version is still `expected_version`; otherwise
    /// `PreconditionFailed`, and nothing changes.
    async fn update(
        &self,
        expected_version: u64,
        order: Order,
        event: OrderEvent,
    ) -> DomainResult<Order>;

    /// A buyer's orders, newest first; served from the buyer's one shard.
    async fn list_by_buyer(
        &self,
        tenant: &TenantId,
        buyer: &PartyId,
        page: PageRequest,
    ) -> DomainResult<Page<Order>>;

    /// The physical shards, for the relay and backfill.
    fn shards(&self) -> Vec<ShardId>;

    /// Whether every shard answers (for `/readyz`).
    async fn health(&self) -> DomainResult<()>;

    /// Unpublished outbox rows of one shard, in commit order.
    async fn pending_outbox(&self, shard: ShardId, limit: u32) -> DomainResult<Vec<OutboxEntry>>;

    /// Mark outbox rows published.
    async fn mark_published(&self, shard: ShardId, sequences: &[u64]) -> DomainResult<()>;
}

/// The event bus (Kafka, or in-process in single-node mode).
#[async_trait]
pub trait EventBus: Send + Sync + Debug + 'static {
    /// Publish in order; returns once the bus has durably accepted every event.
    async fn publish(&self, events: &[OrderEvent]) -> DomainResult<()>;
}

/// The list / search read model (Elasticsearch, or tantivy in single-node mode). Types are in
/// [`crate::search`]; documents carry only blind indexes of personal data, never plaintext.
///
/// Writes are idempotent and ordered by version, so an indexer may consume at-least-once,
/// out-of-order events: the index keeps the highest version it was given.
#[async_trait]
pub trait SearchIndex: Send + Sync + Debug + 'static {
    /// Write `document` unless the index holds the same or a newer version of that order.
    /// Returns whether it was written (`false`: stale or a repeat, nothing changed).
    async fn upsert(&self, document: &SearchDocument) -> DomainResult<bool>;

    /// Remove an order from the index (absent is fine).
    async fn delete(&self, tenant: &TenantId, id: OrderId) -> DomainResult<()>;

    /// The version the index holds for an order, for reconciliation.
    async fn get_version(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<u64>>;

    /// Matching orders of `tenant` only, sorted, one page at a time. Writes become visible to
    /// search after a short, adapter-specific lag (see [`SearchIndex::refresh`]).
    async fn search(&self, tenant: &TenantId, query: &SearchQuery) -> DomainResult<SearchPage>;

    /// After-sales (issue #20 item 6) live beside the orders in an index (or document
    /// type) of their own, tenant-scoped the same way, with the same version rule: write
    /// `document` unless the index holds the same or a newer version of that after-sale.
    async fn upsert_after_sale(&self, document: &AfterSaleDocument) -> DomainResult<bool>;

    /// The version the index holds for an after-sale, for reconciliation.
    async fn after_sale_version(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<u64>>;

    /// Matching after-sales of `tenant` only, newest first, one page at a time (visible
    /// after the same lag as orders).
    async fn search_after_sales(
        &self,
        tenant: &TenantId,
        query: &AfterSaleQuery,
    ) -> DomainResult<AfterSalePage>;

    /// Make every write acknowledged so far visible to search (tests, end of a backfill).
    async fn refresh(&self) -> DomainResult<()>;

    /// Whether the index answers (for `/readyz` and the circuit breaker).
    async fn health(&self) -> DomainResult<()>;
}

/// The cold store (HBase, or an embedded ordered KV in single-node mode).
#[async_trait]
pub trait ColdStore: Send + Sync + Debug + 'static {
    /// Store the order unless a newer version is stored; returns whether it was written.
    async fn put(&self, order: &Order) -> DomainResult<bool>;

    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>>;

    /// Orders of `tenant` created in `[from, to)`, in id order.
    async fn scan(
        &self,
        tenant: &TenantId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        page: PageRequest,
    ) -> DomainResult<Page<Order>>;

    /// Store the status history of an archived order, replacing what is stored (an order's
    /// history only grows; the archive writes it after the order, before it verifies both).
    async fn put_history(
        &self,
        tenant: &TenantId,
        id: OrderId,
        history: &[HistoryEntry],
    ) -> DomainResult<()>;

    /// The stored status history of an archived order; `None` when none was stored.
    async fn history(
        &self,
        tenant: &TenantId,
        id: OrderId,
    ) -> DomainResult<Option<Vec<HistoryEntry>>>;

    /// Store the after-sales of an archived order, replacing what is stored for it, and
    /// index each by its own id (for [`ColdStore::after_sale_order`]). The archive writes
    /// them after the order and its history, before it verifies all three.
    async fn put_after_sales(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        after_sales: &[crate::archive::ArchivedAfterSale],
    ) -> DomainResult<()>;

    /// The stored after-sales of an archived order, oldest first; `None` when none were
    /// stored.
    async fn after_sales(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
    ) -> DomainResult<Option<Vec<crate::archive::ArchivedAfterSale>>>;

    /// The archived order an archived after-sale belongs to (GET of an after-sale by its own
    /// id), `None` when the cold store holds no such after-sale of `tenant`.
    async fn after_sale_order(
        &self,
        tenant: &TenantId,
        id: crate::aftersale::AfterSaleId,
    ) -> DomainResult<Option<OrderId>>;

    /// Every order of `tenant` created in `[from, to)`, in id order, as a stream that asks
    /// [`ColdStore::scan`] for one page of `page_size` at a time when the previous one is
    /// consumed: whatever the window holds, memory holds one page (exports, reconcile).
    /// An error ends the stream after it is yielded.
    fn scan_stream<'a>(
        &'a self,
        tenant: &TenantId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        page_size: u32,
    ) -> BoxStream<'a, DomainResult<Order>> {
        struct State {
            cursor: Option<String>,
            buffered: std::collections::VecDeque<Order>,
            done: bool,
        }
        let tenant = tenant.clone();
        let start = State {
            cursor: None,
            buffered: std::collections::VecDeque::new(),
            done: false,
        };
        futures_util::stream::unfold(start, move |mut state| {
            let tenant = tenant.clone();
            async move {
                loop {
                    if let Some(order) = state.buffered.pop_front() {
                        return Some((Ok(order), state));
                    }
                    if state.done {
                        return None;
                    }
                    let page = PageRequest {
                        cursor: state.cursor.take(),
                        limit: page_size.max(1),
                    };
                    match self.scan(&tenant, from, to, page).await {
                        Ok(page) => {
                            state.done = page.next_cursor.is_none() || page.items.is_empty();
                            state.cursor = page.next_cursor;
                            state.buffered.extend(page.items);
                        }
                        Err(error) => {
                            state.done = true;
                            return Some((Err(error), state));
                        }
                    }
                }
            }
        })
        .boxed()
    }
}

/// The hot cache (moka, with Redis behind it in cluster mode).
#[async_trait]
pub trait Cache: Send + Sync + Debug + 'static {
    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>>;

    /// Set if the cached version is older or absent; returns whether it was written.
    async fn put_if_newer(&self, order: &Order) -> DomainResult<bool>;

    async fn invalidate(&self, tenant: &TenantId, id: OrderId) -> DomainResult<()>;
}

/// Time, injectable for tests (timeouts, pay deadlines).
pub trait Clock: Send + Sync + Debug + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told: for tests of timeouts and deadlines.
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<OffsetDateTime>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock {
            now: std::sync::Mutex::new(start),
        }
    }

    pub fn advance(&self, by: time::Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every port is object-safe: the binary holds them as `Arc<dyn Port>`.
#[allow(dead_code, clippy::too_many_arguments)]
fn _object_safety(
    _: &dyn OrderStore,
    _: &dyn EventBus,
    _: &dyn SearchIndex,
    _: &dyn ColdStore,
    _: &dyn Cache,
    _: &dyn Clock,
    _: &dyn OffsetStore,
    _: &dyn EventStream,
    _: &dyn ShardScan,
    _: &dyn SearchFields,
    _: &dyn DeadLetters,
    _: ShardId,
) {
}
