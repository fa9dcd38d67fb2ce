//! The cache conformance suite: the same cases against `RedisCache`, `TieredCache` over Redis
//! and moka only, on the real Redis of `OC_TEST_REDIS_URL`. Every test gets its own key prefix.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{at_version, order, shuffled, tenant};
use oc_cache::{L1Config, RedisCache, RedisCacheConfig, TieredCache};
use oc_model::ports::Cache;
use oc_model::{Order, OrderId, TenantId};
use oc_test_support::RedisPrefix;

const TTL: Duration = Duration::from_secs(600);
const TOMBSTONE_TTL: Duration = Duration::from_secs(900);

enum Kind {
    Redis(RedisCache),
    Tiered(TieredCache),
}

struct Harness {
    cache: Arc<dyn Cache>,
    kind: Kind,
    prefix: Option<RedisPrefix>,
}

/// Correctness, not speed, is tested here: generous budgets keep a loaded machine green.
async fn redis_cache(prefix: &RedisPrefix) -> RedisCache {
    let mut config = RedisCacheConfig::new(oc_test_support::redis_url())
        .with_key_prefix(format!("{}:", prefix.prefix()));
    config.ttl = TTL;
    config.tombstone_ttl = TOMBSTONE_TTL;
    config.connect_timeout = Duration::from_secs(2);
    config.read_timeout = Duration::from_secs(5);
    config.write_timeout = Duration::from_secs(5);
    RedisCache::connect(config).await.unwrap()
}

impl Harness {
    async fn redis(label: &str) -> Harness {
        let prefix = RedisPrefix::new(label).unwrap();
        let cache = redis_cache(&prefix).await;
        Harness {
            cache: Arc::new(cache.clone()),
            kind: Kind::Redis(cache),
            prefix: Some(prefix),
        }
    }

    async fn tiered(label: &str) -> Harness {
        let prefix = RedisPrefix::new(label).unwrap();
        let cache = TieredCache::with_redis(L1Config::default(), redis_cache(&prefix).await);
        Harness {
            cache: Arc::new(cache.clone()),
            kind: Kind::Tiered(cache),
            prefix: Some(prefix),
        }
    }

    async fn moka(_label: &str) -> Harness {
        let cache = TieredCache::moka_only(L1Config::single_node());
        Harness {
            cache: Arc::new(cache.clone()),
            kind: Kind::Tiered(cache),
            prefix: None,
        }
    }

    fn redis_tier(&self) -> Option<&RedisCache> {
        match &self.kind {
            Kind::Redis(cache) => Some(cache),
            Kind::Tiered(cache) => cache.l2(),
        }
    }

    async fn invalidate_at(&self, tenant: &TenantId, id: OrderId, version: u64) {
        match &self.kind {
            Kind::Redis(cache) => cache.invalidate_at(tenant, id, version).await.unwrap(),
            Kind::Tiered(cache) => cache.invalidate_at(tenant, id, version).await.unwrap(),
        }
    }

    /// Milliseconds to live of the raw Redis key (`PTTL`).
    async fn pttl(&self, key: &str) -> i64 {
        let prefix = self.prefix.as_ref().unwrap();
        let mut connection = prefix.connection().await.unwrap();
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap()
    }

    async fn finish(self) {
        if let Some(prefix) = self.prefix {
            prefix.cleanup().await.unwrap();
        }
    }
}

async fn get(cache: &dyn Cache, order: &Order) -> Option<Order> {
    cache.get(&order.main.tenant, order.main.id).await.unwrap()
}

async fn version(cache: &dyn Cache, order: &Order) -> Option<u64> {
    get(cache, order).await.map(|order| order.main.version)
}

// ---- the cases ----

async fn round_trips(h: &Harness) {
    let cache = h.cache.as_ref();
    let original = order(&tenant("express"), "buyer-1");
    assert_eq!(get(cache, &original).await, None);
    assert!(cache.put_if_newer(&original).await.unwrap());
    assert_eq!(
        get(cache, &original).await.as_ref(),
        Some(&original),
        "every group, line, sealed field and extension survives the round trip"
    );
    // A second read (an L1 hit in tiered mode) is the same.
    assert_eq!(get(cache, &original).await.as_ref(), Some(&original));
    let other = order(&tenant("express"), "buyer-1");
    assert_eq!(get(cache, &other).await, None);
}

async fn tenants_are_isolated(h: &Harness) {
    let cache = h.cache.as_ref();
    let express = order(&tenant("express"), "buyer-1");
    let mut retail = at_version(&express, 7);
    retail.main.tenant = tenant("retail");
    retail.main.external_ref = Some("retail-copy".into());
    assert_eq!(express.main.id, retail.main.id);

    assert!(cache.put_if_newer(&express).await.unwrap());
    assert_eq!(
        cache.get(&tenant("retail"), express.main.id).await.unwrap(),
        None,
        "the wrong tenant finds nothing"
    );
    // Same id, other tenant: a separate entry, not a newer version of the first.
    assert!(cache.put_if_newer(&retail).await.unwrap());
    assert_eq!(get(cache, &express).await.as_ref(), Some(&express));
    assert_eq!(get(cache, &retail).await.as_ref(), Some(&retail));
    assert_eq!(
        cache.get(&tenant("other"), express.main.id).await.unwrap(),
        None
    );

    cache
        .invalidate(&tenant("retail"), retail.main.id)
        .await
        .unwrap();
    assert_eq!(get(cache, &retail).await, None);
    assert_eq!(get(cache, &express).await.as_ref(), Some(&express));

    if let Some(redis) = h.redis_tier() {
        let express_key = redis.key(&express.main.tenant, express.main.id);
        let retail_key = redis.key(&retail.main.tenant, retail.main.id);
        let prefix = h.prefix.as_ref().unwrap().prefix();
        assert_eq!(
            express_key,
            format!("{prefix}:oc:express:order:{}", express.main.id)
        );
        assert_ne!(express_key, retail_key);
    }
}

async fn stale_versions_never_overwrite(h: &Harness) {
    let cache = h.cache.as_ref();
    let first = order(&tenant("express"), "buyer-2");
    assert!(cache.put_if_newer(&at_version(&first, 3)).await.unwrap());
    assert!(!cache.put_if_newer(&at_version(&first, 2)).await.unwrap());
    assert!(!cache.put_if_newer(&at_version(&first, 1)).await.unwrap());
    assert_eq!(version(cache, &first).await, Some(3));
    assert!(cache.put_if_newer(&at_version(&first, 4)).await.unwrap());
    assert_eq!(version(cache, &first).await, Some(4));
    // Versions compare as numbers, not strings ("10" > "9").
    assert!(cache.put_if_newer(&at_version(&first, 10)).await.unwrap());
    assert!(!cache.put_if_newer(&at_version(&first, 9)).await.unwrap());
    assert_eq!(version(cache, &first).await, Some(10));
    // And exactly beyond 2^53, where Lua numbers would round.
    let big = 1u64 << 60;
    assert!(cache.put_if_newer(&at_version(&first, big)).await.unwrap());
    assert!(
        !cache
            .put_if_newer(&at_version(&first, big - 1))
            .await
            .unwrap()
    );
    assert!(
        cache
            .put_if_newer(&at_version(&first, big + 1))
            .await
            .unwrap()
    );
    assert_eq!(version(cache, &first).await, Some(big + 1));
}

async fn same_version_is_idempotent(h: &Harness) {
    let cache = h.cache.as_ref();
    let original = at_version(&order(&tenant("express"), "buyer-3"), 5);
    assert!(cache.put_if_newer(&original).await.unwrap());
    assert!(!cache.put_if_newer(&original).await.unwrap());
    let mut changed = original.clone();
    changed.main.external_ref = Some("changed".into());
    assert!(!cache.put_if_newer(&changed).await.unwrap());
    assert_eq!(get(cache, &original).await.as_ref(), Some(&original));
}

async fn concurrent_puts_end_at_the_highest_version(h: &Harness) {
    let original = order(&tenant("express"), "buyer-4");
    let (versions, seed) = shuffled(50);
    let mut tasks = Vec::new();
    for version in versions {
        let cache = h.cache.clone();
        let order = at_version(&original, version);
        tasks.push(tokio::spawn(async move {
            cache.put_if_newer(&order).await.unwrap()
        }));
    }
    let mut written = 0;
    for task in tasks {
        written += u32::from(task.await.unwrap());
    }
    assert!(written >= 1, "seed {seed}");
    assert_eq!(
        version(h.cache.as_ref(), &original).await,
        Some(50),
        "seed {seed}"
    );
    assert!(
        !h.cache
            .put_if_newer(&at_version(&original, 50))
            .await
            .unwrap()
    );
}

async fn invalidate_leaves_a_tombstone(h: &Harness) {
    let cache = h.cache.as_ref();
    let original = order(&tenant("express"), "buyer-5");
    // Invalidating what was never cached is fine.
    cache
        .invalidate(&original.main.tenant, original.main.id)
        .await
        .unwrap();
    assert!(cache.put_if_newer(&at_version(&original, 2)).await.unwrap());
    cache
        .invalidate(&original.main.tenant, original.main.id)
        .await
        .unwrap();
    assert_eq!(get(cache, &original).await, None);
    assert_eq!(get(cache, &original).await, None);
    // A late put of the same or an older version cannot resurrect the order.
    assert!(!cache.put_if_newer(&at_version(&original, 2)).await.unwrap());
    assert!(!cache.put_if_newer(&at_version(&original, 1)).await.unwrap());
    assert_eq!(get(cache, &original).await, None);
    // A newer version is accepted.
    assert!(cache.put_if_newer(&at_version(&original, 3)).await.unwrap());
    assert_eq!(version(cache, &original).await, Some(3));
}

async fn invalidate_at_guards_uncached_orders(h: &Harness) {
    let cache = h.cache.as_ref();
    let original = order(&tenant("express"), "buyer-6");
    h.invalidate_at(&original.main.tenant, original.main.id, 4)
        .await;
    assert!(!cache.put_if_newer(&at_version(&original, 4)).await.unwrap());
    assert!(!cache.put_if_newer(&at_version(&original, 3)).await.unwrap());
    assert_eq!(get(cache, &original).await, None);
    assert!(cache.put_if_newer(&at_version(&original, 5)).await.unwrap());
    // A lower floor than what is cached keeps the cached version as the floor.
    h.invalidate_at(&original.main.tenant, original.main.id, 1)
        .await;
    assert_eq!(get(cache, &original).await, None);
    assert!(!cache.put_if_newer(&at_version(&original, 5)).await.unwrap());
    assert!(cache.put_if_newer(&at_version(&original, 6)).await.unwrap());
    assert_eq!(version(cache, &original).await, Some(6));
}

async fn entries_expire(h: &Harness) {
    let original = order(&tenant("express"), "buyer-7");
    match h.redis_tier() {
        Some(redis) => {
            let key = redis.key(&original.main.tenant, original.main.id);
            assert!(h.cache.put_if_newer(&original).await.unwrap());
            let ttl = h.pttl(&key).await;
            assert!(ttl > 0 && ttl <= TTL.as_millis() as i64, "PTTL {ttl}");
            h.cache
                .invalidate(&original.main.tenant, original.main.id)
                .await
                .unwrap();
            let ttl = h.pttl(&key).await;
            assert!(
                ttl > TTL.as_millis() as i64 && ttl <= TOMBSTONE_TTL.as_millis() as i64,
                "tombstone PTTL {ttl}"
            );
        }
        None => {
            // moka only: a cache of its own with a short TTL.
            let cache = TieredCache::moka_only(L1Config {
                max_capacity: 100,
                ttl: Duration::from_millis(200),
            });
            assert!(cache.put_if_newer(&original).await.unwrap());
            assert!(get(&cache, &original).await.is_some());
            tokio::time::sleep(Duration::from_millis(600)).await;
            assert_eq!(get(&cache, &original).await, None);
        }
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod redis_only {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let harness = super::Harness::redis(stringify!($case)).await;
                    super::$case(&harness).await;
                    harness.finish().await;
                }
            )*
        }
        mod tiered {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let harness = super::Harness::tiered(stringify!($case)).await;
                    super::$case(&harness).await;
                    harness.finish().await;
                }
            )*
        }
        mod moka_only {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let harness = super::Harness::moka(stringify!($case)).await;
                    super::$case(&harness).await;
                    harness.finish().await;
                }
            )*
        }
    };
}

conformance!(
    round_trips,
    tenants_are_isolated,
    stale_versions_never_overwrite,
    same_version_is_idempotent,
    concurrent_puts_end_at_the_highest_version,
    invalidate_leaves_a_tombstone,
    invalidate_at_guards_uncached_orders,
    entries_expire,
);

/// Tiered: an L2 hit fills the L1, the next read is an L1 hit; the counters say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_fills_l1_from_redis_and_counts() {
    let prefix = RedisPrefix::new("tiered_fill").unwrap();
    let redis = redis_cache(&prefix).await;
    let tiered = TieredCache::with_redis(L1Config::default(), redis.clone());
    let original = order(&tenant("express"), "buyer-8");
    // Written by another replica: Redis only.
    assert!(redis.put_if_newer(&original).await.unwrap());
    assert_eq!(get(&tiered, &original).await.as_ref(), Some(&original));
    assert_eq!(get(&tiered, &original).await.as_ref(), Some(&original));
    assert_eq!(
        get(&tiered, &order(&tenant("express"), "buyer-8")).await,
        None
    );
    let stats = tiered.stats();
    assert_eq!(
        (stats.l2_hits, stats.l1_hits, stats.misses, stats.errors),
        (1, 1, 1, 0)
    );
    // Another replica invalidates in Redis: this L1 may serve its copy until its TTL.
    redis
        .invalidate(&original.main.tenant, original.main.id)
        .await
        .unwrap();
    // A stale put through the tiered cache is refused by Redis and leaves the L1 alone.
    assert!(!tiered.put_if_newer(&original).await.unwrap());
    prefix.cleanup().await.unwrap();
}

/// The L1 of a tiered cache expires after its TTL: the staleness bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_l1_staleness_is_bounded_by_its_ttl() {
    let prefix = RedisPrefix::new("tiered_ttl").unwrap();
    let redis = redis_cache(&prefix).await;
    let tiered = TieredCache::with_redis(
        L1Config {
            max_capacity: 100,
            ttl: Duration::from_millis(300),
        },
        redis.clone(),
    );
    let original = order(&tenant("express"), "buyer-9");
    assert!(tiered.put_if_newer(&original).await.unwrap());
    // Another replica writes a newer version to Redis.
    assert!(redis.put_if_newer(&at_version(&original, 2)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(version(&tiered, &original).await, Some(2));
    prefix.cleanup().await.unwrap();
}

/// The projector dead-letters what is permanent for one order and stalls on what is
/// transient: a key of this order holding something else (a string, written by another
/// program) refuses only this order, so it must not read as "Redis is down".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_holding_another_type_refuses_that_order_for_good() {
    let prefix = RedisPrefix::new("wrong_type").unwrap();
    let redis = redis_cache(&prefix).await;
    let squatted = order(&tenant("express"), "buyer-10");
    let key = redis.key(&squatted.main.tenant, squatted.main.id);
    let mut connection = prefix.connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg(&key)
        .arg("not a hash")
        .query_async(&mut connection)
        .await
        .unwrap();
    let error = redis.put_if_newer(&squatted).await.unwrap_err();
    assert_eq!(error.code, oc_model::ErrorCode::InvalidInput, "{error}");
    assert!(!error.is_transient());
    // another order goes in
    let fine = order(&tenant("express"), "buyer-11");
    assert!(redis.put_if_newer(&fine).await.unwrap());
    prefix.cleanup().await.unwrap();
}
