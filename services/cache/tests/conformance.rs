//! The cache conformance suite: the same cases against `RedisCache`, `TieredCache` over Redis
//! and moka only, on the real Redis of `OC_TEST_REDIS_URL`. Every test gets its own key prefix.

use std::sync::Arc;
use std::time::Duration;

use oc_cache::{L1Config, RedisCache, RedisCacheConfig, TieredCache};
use oc_conformance::cache::{CacheHarness, get, version};
use oc_conformance::fixtures::{at_version, order, tenant};
use oc_model::ports::Cache;
use oc_model::{OrderId, TenantId};
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
}

impl CacheHarness for Harness {
    fn shared(&self) -> &Arc<dyn Cache> {
        &self.cache
    }

    async fn invalidate_at(&self, tenant: &TenantId, id: OrderId, version: u64) {
        match &self.kind {
            Kind::Redis(cache) => cache.invalidate_at(tenant, id, version).await.unwrap(),
            Kind::Tiered(cache) => cache.invalidate_at(tenant, id, version).await.unwrap(),
        }
    }

    async fn finish(self) {
        if let Some(prefix) = self.prefix {
            prefix.cleanup().await.unwrap();
        }
    }
}

/// The Redis key of an order names its tenant (under the test's prefix): two tenants' copies
/// of one id are two keys.
async fn redis_keys_name_the_tenant(h: &Harness) {
    let express = order(&tenant("express"), "buyer-1");
    let mut retail = at_version(&express, 7);
    retail.main.tenant = tenant("retail");
    let redis = h.redis_tier().expect("a harness with a Redis tier");
    let express_key = redis.key(&express.main.tenant, express.main.id);
    let retail_key = redis.key(&retail.main.tenant, retail.main.id);
    let prefix = h.prefix.as_ref().unwrap().prefix();
    assert_eq!(
        express_key,
        format!("{prefix}:oc:express:order:{}", express.main.id)
    );
    assert_ne!(express_key, retail_key);
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

// ---- the port's suite (`oc_conformance::cache`) over the three shapes, with what only
// the engine can show: Redis key names, TTLs ----

oc_conformance::cache_conformance!(redis_only, Harness::redis,
    also: [redis_keys_name_the_tenant, entries_expire]);
oc_conformance::cache_conformance!(tiered, Harness::tiered,
    also: [redis_keys_name_the_tenant, entries_expire]);
oc_conformance::cache_conformance!(moka_only, Harness::moka, also: [entries_expire]);

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
