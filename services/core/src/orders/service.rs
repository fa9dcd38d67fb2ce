//! The orders service: its ports, and what every order use case shares (retries of
//! transient store conflicts, the write path's read of the truth, the cache write-through).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use oc_model::ports::{Cache, Clock, ColdStore, OrderStore, SearchIndex};
use oc_model::retry::{Backoff, BackoffConfig};
use oc_model::{
    DomainError, DomainResult, ErrorCode, Order, OrderId, OrderIdGenerator, UnixMillis,
};

use crate::caller::Caller;
use crate::sealing::Sealer;
use crate::stock::Reserver;

/// How often a transient store conflict is retried inside one request.
const RETRIES: u32 = 5;

/// The wait before each retry of a transient store conflict: 10 ms doubling, jittered.
const RETRY_BACKOFF: BackoffConfig =
    BackoffConfig::doubling(Duration::from_millis(10), Duration::from_millis(160));

/// The read side the order queries consult before and after the shards.
#[derive(Debug, Clone, Default)]
pub struct ReadModels {
    /// Hot cache (moka, with Redis behind it in cluster mode): consulted first on GET,
    /// filled on a miss, and written through (set-if-newer) after every change.
    pub cache: Option<Arc<dyn Cache>>,
    /// Cold store: where archived orders are read when the shard no longer has them.
    pub cold: Option<Arc<dyn ColdStore>>,
    /// Search index: lists and search. When it is missing or down, buyer-scoped searches
    /// fall back to the buyer's shard and say so (`degraded`).
    pub search: Option<Arc<dyn SearchIndex>>,
}

/// The orders domain: create, update, cancel, get, list and search. Built by
/// [`crate::Core::builder`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct OrderService {
    pub(crate) store: Arc<dyn OrderStore>,
    pub(crate) read: ReadModels,
    pub(crate) sealer: Sealer,
    pub(crate) ids: Arc<OrderIdGenerator>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Reserves placed orders' stock (business identities with `inventory: builtin`).
    pub(crate) reserver: Reserver,
}

impl OrderService {
    /// Time with millisecond precision: what every store keeps.
    pub(crate) fn now_ms(&self) -> OffsetDateTime {
        UnixMillis::truncate(self.clock.now())
    }

    pub(crate) async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> DomainResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = DomainResult<T>>,
    {
        let mut backoff = Backoff::new(RETRY_BACKOFF);
        loop {
            match attempt().await {
                Err(e) if e.code == ErrorCode::Retryable && backoff.failures() < RETRIES => {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    /// Write the order's state through to the cache (set-if-newer, so a racing older write
    /// can never win). A cache failure is logged: the shard already holds the truth.
    pub(crate) async fn remember(&self, order: &Order) {
        if let Some(cache) = &self.read.cache
            && let Err(error) = cache.put_if_newer(order).await
        {
            tracing::warn!(error = %error.message, order_id = %order.main.id, "cache write-through failed");
        }
    }

    /// Write path: always the shard (the cache may trail it), so If-Match compares against
    /// the truth.
    pub(crate) async fn load(&self, caller: &Caller, id: &str) -> DomainResult<Order> {
        // a malformed id is as unknown as another tenant's: 404 either way
        let id: OrderId = id
            .parse()
            .map_err(|_| DomainError::not_found("order not found"))?;
        if let Some(order) = self.store.get(&caller.tenant, id).await? {
            return if caller.sees(&order) {
                Ok(order)
            } else {
                Err(DomainError::not_found("order not found"))
            };
        }
        // archived orders are read-only: say so rather than 404 (GET still answers them)
        if let Some(cold) = &self.read.cold
            && let Some(order) = cold.get(&caller.tenant, id).await?
            && caller.sees(&order)
        {
            return Err(archived_error());
        }
        Err(DomainError::not_found("order not found"))
    }
}

/// The problem every change of an archived order answers: 409, code `conflict`.
pub(crate) fn archived_error() -> DomainError {
    DomainError::new(
        ErrorCode::Conflict,
        "the order is archived (moved to the cold store after its retention) and can no longer change",
    )
}
