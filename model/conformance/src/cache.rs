//! The `Cache` conformance suite: every case a cache adapter must pass, run by
//! [`cache_conformance!`](crate::cache_conformance) over a harness that opens the adapter
//! under test (Redis, tiered over Redis and moka only in `oc-cache`, `Guarded<moka>` in
//! `oc-resilience`). What only one engine can show (Redis key names and TTLs, the moka
//! TTL) stays in that adapter's tests.

use std::future::Future;
use std::sync::Arc;

use oc_model::ports::Cache;
use oc_model::{Order, OrderId, TenantId};

use crate::fixtures::{at_version, order, shuffled, tenant};

/// One adapter under test, opened fresh for one case.
pub trait CacheHarness: Send + Sync {
    /// The cache under test, shared (the concurrent case hands it to tasks).
    fn shared(&self) -> &Arc<dyn Cache>;
    /// The cache under test.
    fn cache(&self) -> &dyn Cache {
        &**self.shared()
    }
    /// Invalidate `id` with `version` as the floor below which no put is taken, whether or
    /// not the order is cached: each adapter's `invalidate_at` (the projector's, not the
    /// port's).
    fn invalidate_at(
        &self,
        tenant: &TenantId,
        id: OrderId,
        version: u64,
    ) -> impl Future<Output = ()> + Send;
    /// Remove what the case left (its key prefix).
    fn finish(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized;
}

pub async fn get(cache: &dyn Cache, order: &Order) -> Option<Order> {
    cache.get(&order.main.tenant, order.main.id).await.unwrap()
}

pub async fn version(cache: &dyn Cache, order: &Order) -> Option<u64> {
    get(cache, order).await.map(|order| order.main.version)
}

// ---- the cases ----

pub async fn round_trips(h: &impl CacheHarness) {
    let cache = h.cache();
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

pub async fn tenants_are_isolated(h: &impl CacheHarness) {
    let cache = h.cache();
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
}

pub async fn stale_versions_never_overwrite(h: &impl CacheHarness) {
    let cache = h.cache();
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

pub async fn same_version_is_idempotent(h: &impl CacheHarness) {
    let cache = h.cache();
    let original = at_version(&order(&tenant("express"), "buyer-3"), 5);
    assert!(cache.put_if_newer(&original).await.unwrap());
    assert!(!cache.put_if_newer(&original).await.unwrap());
    let mut changed = original.clone();
    changed.main.external_ref = Some("changed".into());
    assert!(!cache.put_if_newer(&changed).await.unwrap());
    assert_eq!(get(cache, &original).await.as_ref(), Some(&original));
}

pub async fn concurrent_puts_end_at_the_highest_version(h: &impl CacheHarness) {
    let original = order(&tenant("express"), "buyer-4");
    let (versions, seed) = shuffled(50);
    let mut tasks = Vec::new();
    for version in versions {
        let cache = Arc::clone(h.shared());
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
    assert_eq!(version(h.cache(), &original).await, Some(50), "seed {seed}");
    assert!(
        !h.cache()
            .put_if_newer(&at_version(&original, 50))
            .await
            .unwrap()
    );
}

pub async fn invalidate_leaves_a_tombstone(h: &impl CacheHarness) {
    let cache = h.cache();
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

pub async fn invalidate_at_guards_uncached_orders(h: &impl CacheHarness) {
    let cache = h.cache();
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

/// One `#[tokio::test]` per case in a module `$module`, each on a fresh harness from
/// `$open(label)` (an async fn taking the case's name, resolved beside the macro call);
/// `also: [name, …]` adds the adapter's own cases to the module, each an async fn
/// `name(&harness)` beside the macro call.
#[macro_export]
macro_rules! cache_conformance {
    ($module:ident, $open:path $(, also: [$($extra:ident),* $(,)?])?) => {
        $crate::cache_conformance!(@cases $module, $open, [$($($extra),*)?];
            round_trips,
            tenants_are_isolated,
            stale_versions_never_overwrite,
            same_version_is_idempotent,
            concurrent_puts_end_at_the_highest_version,
            invalidate_leaves_a_tombstone,
            invalidate_at_guards_uncached_orders,
        );
    };
    (@cases $module:ident, $open:path, [$($extra:ident),*]; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    use $crate::cache::CacheHarness as _;
                    let harness = $open(stringify!($case)).await;
                    $crate::cache::$case(&harness).await;
                    harness.finish().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $extra() {
                    use $crate::cache::CacheHarness as _;
                    let harness = $open(stringify!($extra)).await;
                    super::$extra(&harness).await;
                    harness.finish().await;
                }
            )*
        }
    };
}
