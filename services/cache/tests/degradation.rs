//! Degrade, never fail: a Redis that is absent, silent or restarting turns reads into misses
//! (within the read budget) and writes into `Unavailable`; the connection comes back by itself.

mod common;

use std::time::{Duration, Instant};

use common::{Proxy, at_version, order, redirect_url, tenant};
use oc_cache::{L1Config, RedisCache, RedisCacheConfig, TieredCache};
use oc_model::ErrorCode;
use oc_model::ports::Cache;
use oc_test_support::RedisPrefix;
use tokio::net::TcpListener;

/// Generous: the read budget is 50 ms; this only catches a read that waits for Redis.
const DEGRADED_READ_BOUND: Duration = Duration::from_secs(1);

async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_reads_miss_quickly_and_writes_are_unavailable() {
    let port = closed_port().await;
    let redis = RedisCache::connect(RedisCacheConfig::new(format!("redis://127.0.0.1:{port}")))
        .await
        .expect("building the cache does not wait for Redis");
    let tiered = TieredCache::with_redis(L1Config::default(), redis.clone());
    let original = order(&tenant("express"), "buyer-1");

    for _ in 0..3 {
        let started = Instant::now();
        let read = tiered
            .get(&original.main.tenant, original.main.id)
            .await
            .unwrap();
        assert_eq!(read, None);
        assert!(
            started.elapsed() < DEGRADED_READ_BOUND,
            "{:?}",
            started.elapsed()
        );
    }
    let error = redis
        .get(&original.main.tenant, original.main.id)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    let error = tiered.put_if_newer(&original).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    let error = tiered
        .invalidate(&original.main.tenant, original.main.id)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    assert_eq!(
        redis.health().await.unwrap_err().code,
        ErrorCode::Unavailable
    );

    let stats = tiered.stats();
    assert_eq!((stats.l1_hits, stats.l2_hits, stats.misses), (0, 0, 3));
    assert_eq!(stats.errors, 5);
}

/// A Redis that accepts connections but never answers: the read budget, not the socket, ends
/// the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_redis_reads_miss_within_the_budget() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let black_hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let redis = RedisCache::connect(RedisCacheConfig::new(format!("redis://127.0.0.1:{port}")))
        .await
        .unwrap();
    let tiered = TieredCache::with_redis(L1Config::default(), redis);
    let original = order(&tenant("express"), "buyer-2");
    let started = Instant::now();
    assert_eq!(
        tiered
            .get(&original.main.tenant, original.main.id)
            .await
            .unwrap(),
        None
    );
    assert!(
        started.elapsed() < DEGRADED_READ_BOUND,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        tiered.put_if_newer(&original).await.unwrap_err().code,
        ErrorCode::Unavailable
    );
    assert_eq!(tiered.stats().errors, 2);
    black_hole.abort();
}

/// Redis goes away behind a proxy and comes back: reads miss meanwhile, and the same cache
/// works again afterwards (the connection manager reconnects by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_redis_comes_back() {
    let prefix = RedisPrefix::new("reconnect").unwrap();
    let (_, upstream) = redirect_url(&oc_test_support::redis_url(), 0);
    let mut proxy = Proxy::start(upstream).await;
    let (url, _) = redirect_url(&oc_test_support::redis_url(), proxy.port());
    let mut config = RedisCacheConfig::new(url).with_key_prefix(format!("{}:", prefix.prefix()));
    // Correctness under load matters here, not the default budgets.
    config.read_timeout = Duration::from_millis(500);
    config.write_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_millis(500);
    let redis = RedisCache::connect(config).await.unwrap();
    let tiered = TieredCache::with_redis(L1Config::default(), redis.clone());

    let original = order(&tenant("express"), "buyer-3");
    // Written through Redis only, so the tiered cache's L1 stays empty.
    assert!(redis.put_if_newer(&original).await.unwrap());
    assert!(
        redis
            .get(&original.main.tenant, original.main.id)
            .await
            .unwrap()
            .is_some()
    );

    proxy.stop().await;
    let error = redis
        .get(&original.main.tenant, original.main.id)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    assert_eq!(
        tiered
            .get(&original.main.tenant, original.main.id)
            .await
            .unwrap(),
        None,
        "a read while Redis is away is a miss"
    );
    assert!(tiered.stats().errors >= 1);
    assert_eq!(
        tiered
            .put_if_newer(&at_version(&original, 2))
            .await
            .unwrap_err()
            .code,
        ErrorCode::Unavailable
    );

    proxy.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match redis.get(&original.main.tenant, original.main.id).await {
            Ok(Some(read)) => {
                assert_eq!(read, original);
                break;
            }
            Ok(None) => panic!("the entry survived in Redis"),
            Err(error) => {
                assert!(Instant::now() < deadline, "no reconnect: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let read = tiered
        .get(&original.main.tenant, original.main.id)
        .await
        .unwrap();
    assert_eq!(read.as_ref(), Some(&original));
    assert_eq!(tiered.stats().l2_hits, 1);
    assert!(
        tiered
            .put_if_newer(&at_version(&original, 2))
            .await
            .unwrap()
    );
    assert_eq!(
        tiered
            .get(&original.main.tenant, original.main.id)
            .await
            .unwrap()
            .map(|order| order.main.version),
        Some(2)
    );

    proxy.stop().await;
    prefix.cleanup().await.unwrap();
}
