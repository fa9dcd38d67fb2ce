//! The tiered cache: moka (L1, this process) in front of an optional Redis (L2, shared).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache as MokaCache;
use moka::ops::compute::{CompResult, Op};
use oc_model::ports::Cache;
use oc_model::{DomainError, DomainResult, Order, OrderId, TenantId};
use oc_resilience::{CircuitBreaker, is_failure};

use crate::redis_cache::RedisCache;
use crate::stats::{CacheStats, Counters};

/// Settings of the in-process L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Config {
    /// Most entries kept (orders and tombstones). Default 10 000.
    pub max_capacity: u64,
    /// Time to live of an entry. Default 3 s: in front of Redis this is the staleness bound,
    /// since other replicas update Redis, not this L1. In moka-only (single-node) mode every
    /// write goes through this process, so a long TTL is fine there.
    pub ttl: Duration,
}

impl Default for L1Config {
    fn default() -> Self {
        L1Config {
            max_capacity: 10_000,
            ttl: Duration::from_secs(3),
        }
    }
}

impl L1Config {
    /// For moka-only (single-node) mode: 10 000 entries for 10 minutes.
    pub fn single_node() -> Self {
        L1Config {
            max_capacity: 10_000,
            ttl: Duration::from_secs(600),
        }
    }
}

/// An L1 entry: the order, or a tombstone remembering the version it was invalidated at.
#[derive(Clone)]
enum L1Entry {
    Live(Arc<Order>),
    Tombstone(u64),
}

impl L1Entry {
    fn version(&self) -> u64 {
        match self {
            L1Entry::Live(order) => order.main.version,
            L1Entry::Tombstone(version) => *version,
        }
    }
}

type L1Key = (TenantId, OrderId);

/// moka (L1) in front of Redis (L2), or moka alone ([`TieredCache::moka_only`]).
///
/// Reads degrade, never fail: an L2 error or timeout is counted and answered as a miss, so
/// the caller falls through to the shard. Writes and invalidations return L2 errors (their
/// callers are consumers that retry). Cheap to clone: clones share both tiers and the
/// counters.
#[derive(Clone)]
pub struct TieredCache {
    l1: MokaCache<L1Key, L1Entry>,
    l2: Option<RedisCache>,
    /// Guards every Redis call: while open, L2 reads are misses and L2 writes fail at once,
    /// without waiting for Redis's timeouts; the L1 keeps serving.
    l2_breaker: Option<Arc<CircuitBreaker>>,
    counters: Arc<Counters>,
}

/// The outcome of one guarded L2 call.
enum L2Call<T> {
    Done(DomainResult<T>),
    /// The breaker is open: Redis was not called.
    Refused(DomainError),
}

impl fmt::Debug for TieredCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCache")
            .field("l1_entries", &self.l1.entry_count())
            .field("l2", &self.l2)
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

impl TieredCache {
    /// moka in front of `l2` (none: moka only).
    pub fn new(l1: L1Config, l2: Option<RedisCache>) -> Self {
        TieredCache {
            l1: MokaCache::builder()
                .max_capacity(l1.max_capacity)
                .time_to_live(l1.ttl)
                .build(),
            l2,
            l2_breaker: None,
            counters: Arc::new(Counters::default()),
        }
    }

    /// Puts every Redis call behind `breaker` (see [`oc_resilience`]).
    pub fn with_l2_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.l2_breaker = Some(breaker);
        self
    }

    /// The breaker in front of Redis, if any.
    pub fn l2_breaker(&self) -> Option<&Arc<CircuitBreaker>> {
        self.l2_breaker.as_ref()
    }

    async fn l2_call<T>(&self, call: impl Future<Output = DomainResult<T>>) -> L2Call<T> {
        let Some(breaker) = &self.l2_breaker else {
            return L2Call::Done(call.await);
        };
        let permit = match breaker.acquire() {
            Ok(permit) => permit,
            Err(rejected) => return L2Call::Refused(rejected.into()),
        };
        let result = call.await;
        match &result {
            Err(error) if is_failure(error) => permit.record(Some(error)),
            _ => permit.record(None),
        }
        L2Call::Done(result)
    }

    /// A guarded L2 write: a refusal is an error like a failure, but not counted as a Redis
    /// error.
    async fn l2_write<T>(&self, call: impl Future<Output = DomainResult<T>>) -> DomainResult<T> {
        match self.l2_call(call).await {
            L2Call::Done(result) => result.inspect_err(|_| self.counters.error()),
            L2Call::Refused(error) => Err(error),
        }
    }

    /// moka in front of Redis (cluster mode).
    pub fn with_redis(l1: L1Config, l2: RedisCache) -> Self {
        Self::new(l1, Some(l2))
    }

    /// moka alone (single-node mode).
    pub fn moka_only(l1: L1Config) -> Self {
        Self::new(l1, None)
    }

    /// The Redis tier, if any.
    pub fn l2(&self) -> Option<&RedisCache> {
        self.l2.as_ref()
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    /// Like [`Cache::get`], without copying the order out of the L1.
    pub async fn get_shared(
        &self,
        tenant: &TenantId,
        id: OrderId,
    ) -> DomainResult<Option<Arc<Order>>> {
        let key = (tenant.clone(), id);
        let tombstone = match self.l1.get(&key).await {
            Some(L1Entry::Live(order)) => {
                self.counters.l1_hit();
                return Ok(Some(order));
            }
            Some(L1Entry::Tombstone(version)) => Some(version),
            None => None,
        };
        let Some(l2) = &self.l2 else {
            self.counters.miss();
            return Ok(None);
        };
        let read = match self.l2_call(l2.get(tenant, id)).await {
            L2Call::Done(read) => read,
            L2Call::Refused(_) => {
                self.counters.miss();
                return Ok(None);
            }
        };
        match read {
            // This process invalidated the order at or after the version Redis still holds
            // (the Redis tombstone expired first): trust the tombstone.
            Ok(Some(order)) if tombstone.is_some_and(|floor| order.main.version <= floor) => {
                self.counters.miss();
                Ok(None)
            }
            Ok(Some(order)) => {
                self.counters.l2_hit();
                let order = Arc::new(order);
                self.l1_put_if_newer(key, L1Entry::Live(order.clone()))
                    .await;
                Ok(Some(order))
            }
            Ok(None) => {
                self.counters.miss();
                Ok(None)
            }
            Err(error) => {
                self.counters.error();
                self.counters.miss();
                tracing::debug!(
                    tenant = %tenant,
                    order_id = %id,
                    %error,
                    "cache L2 read failed; answering a miss"
                );
                Ok(None)
            }
        }
    }

    /// Invalidates at a known version (the delete / archive event's): both tiers keep a
    /// tombstone so that no put of a version `<= version` is accepted until it expires.
    pub async fn invalidate_at(
        &self,
        tenant: &TenantId,
        id: OrderId,
        version: u64,
    ) -> DomainResult<()> {
        let l2 = match &self.l2 {
            Some(l2) => self.l2_write(l2.invalidate_at(tenant, id, version)).await,
            None => Ok(()),
        };
        self.l1_tombstone((tenant.clone(), id), Some(version)).await;
        l2
    }

    /// Inserts `entry` unless the L1 holds the same or a newer version (live or tombstone).
    async fn l1_put_if_newer(&self, key: L1Key, entry: L1Entry) -> bool {
        let version = entry.version();
        let result = self
            .l1
            .entry(key)
            .and_compute_with(|current| {
                let op = match current {
                    Some(current) if current.value().version() >= version => Op::Nop,
                    _ => Op::Put(entry),
                };
                std::future::ready(op)
            })
            .await;
        matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }

    /// Turns the L1 entry into a tombstone at the higher of its version and `floor`.
    async fn l1_tombstone(&self, key: L1Key, floor: Option<u64>) {
        self.l1
            .entry(key)
            .and_compute_with(|current| {
                let stored = current.map(|entry| entry.value().version());
                let op = match (stored, floor) {
                    (None, None) => Op::Nop,
                    (stored, floor) => Op::Put(L1Entry::Tombstone(
                        stored.unwrap_or(0).max(floor.unwrap_or(0)),
                    )),
                };
                std::future::ready(op)
            })
            .await;
    }
}

#[async_trait]
impl Cache for TieredCache {
    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>> {
        Ok(self
            .get_shared(tenant, id)
            .await?
            .map(|order| Order::clone(&order)))
    }

    /// L2 first (its script decides); the L1 takes the order only if Redis did and the L1's
    /// copy is older. Without L2, the L1's check decides.
    async fn put_if_newer(&self, order: &Order) -> DomainResult<bool> {
        let key = (order.main.tenant.clone(), order.main.id);
        match &self.l2 {
            Some(l2) => {
                let wrote = self.l2_write(l2.put_if_newer(order)).await?;
                if wrote {
                    self.l1_put_if_newer(key, L1Entry::Live(Arc::new(order.clone())))
                        .await;
                }
                Ok(wrote)
            }
            None => Ok(self
                .l1_put_if_newer(key, L1Entry::Live(Arc::new(order.clone())))
                .await),
        }
    }

    /// Both tiers keep a tombstone at the version they held (see
    /// [`TieredCache::invalidate_at`] for a known version). The L1 is invalidated even
    /// when Redis fails; the Redis error is returned.
    async fn invalidate(&self, tenant: &TenantId, id: OrderId) -> DomainResult<()> {
        let l2 = match &self.l2 {
            Some(l2) => self.l2_write(l2.invalidate(tenant, id)).await,
            None => Ok(()),
        };
        self.l1_tombstone((tenant.clone(), id), None).await;
        l2
    }
}
