//! The ports' conformance suites (`oc-conformance`) run over the breaker wrapper
//! `Guarded<P>` around the cheapest real adapter of each port, as the binary wires them
//! (`ordercenter::breakers`). With the breaker closed, the wrapper must be invisible: every
//! case passes exactly as it does on the bare adapter, and no case's expected errors (a bad
//! cursor, a refused order) leave the breaker anything but closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use oc_cache::{L1Config, TieredCache};
use oc_cold_store::RedbColdStore;
use oc_conformance::cache::CacheHarness;
use oc_conformance::cold_store::ColdStoreHarness;
use oc_conformance::search::SearchIndexHarness;
use oc_model::ports::{Cache, ColdStore, SearchIndex};
use oc_model::{OrderId, TenantId};
use oc_resilience::{BreakerConfig, BreakerState, CircuitBreaker, Guarded};
use oc_search::{CommitPolicy, TantivyConfig, TantivySearchIndex};

/// The breaker the binary puts in front of a dependency, default thresholds.
fn breaker(dependency: &'static str) -> Arc<CircuitBreaker> {
    CircuitBreaker::new(dependency, BreakerConfig::default())
}

fn assert_closed(breaker: &CircuitBreaker) {
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "the suite's own expected errors must not open the breaker: {:?}",
        breaker.snapshot()
    );
}

fn unique_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "oc-guarded-{label}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ))
}

// ---- cold store: Guarded<redb> ----

struct GuardedRedb {
    path: PathBuf,
    breaker: Arc<CircuitBreaker>,
    /// None only while reopening
    store: Option<Arc<dyn ColdStore>>,
}

impl GuardedRedb {
    async fn open(label: &str) -> GuardedRedb {
        let path = unique_dir(label).join("cold.redb");
        let breaker = breaker("cold");
        let store = Some(Self::guard(&path, &breaker).await);
        GuardedRedb {
            path,
            breaker,
            store,
        }
    }

    async fn guard(path: &PathBuf, breaker: &Arc<CircuitBreaker>) -> Arc<dyn ColdStore> {
        let inner: Arc<dyn ColdStore> = Arc::new(RedbColdStore::open(path).await.unwrap());
        Arc::new(Guarded::new(inner, Arc::clone(breaker)))
    }
}

impl ColdStoreHarness for GuardedRedb {
    fn shared(&self) -> &Arc<dyn ColdStore> {
        self.store.as_ref().unwrap()
    }

    async fn reopen(&mut self) {
        // the wrapper holds the only handle: dropping it releases the redb file lock
        self.store = None;
        self.store = Some(Self::guard(&self.path, &self.breaker).await);
    }

    async fn finish(self) {
        assert_closed(&self.breaker);
        drop(self.store);
        std::fs::remove_dir_all(self.path.parent().unwrap()).unwrap();
    }
}

oc_conformance::cold_store_conformance!(guarded_redb, GuardedRedb::open);

// ---- cache: Guarded<moka> (the in-process tier, as single-node mode runs it) ----

struct GuardedMoka {
    /// the adapter itself, for its `invalidate_at` (not on the port: the projector's)
    inner: TieredCache,
    breaker: Arc<CircuitBreaker>,
    cache: Arc<dyn Cache>,
}

impl GuardedMoka {
    async fn open(_label: &str) -> GuardedMoka {
        let inner = TieredCache::moka_only(L1Config::single_node());
        let breaker = breaker("cache");
        let cache = Arc::new(Guarded::new(Arc::new(inner.clone()), Arc::clone(&breaker)));
        GuardedMoka {
            inner,
            breaker,
            cache,
        }
    }
}

impl CacheHarness for GuardedMoka {
    fn shared(&self) -> &Arc<dyn Cache> {
        &self.cache
    }

    async fn invalidate_at(&self, tenant: &TenantId, id: OrderId, version: u64) {
        self.inner.invalidate_at(tenant, id, version).await.unwrap();
    }

    async fn finish(self) {
        assert_closed(&self.breaker);
    }
}

oc_conformance::cache_conformance!(guarded_moka, GuardedMoka::open);

// ---- search index: Guarded<tantivy in memory> ----

struct GuardedTantivy {
    breaker: Arc<CircuitBreaker>,
    index: Guarded<dyn SearchIndex>,
}

impl GuardedTantivy {
    async fn open(_label: &str) -> GuardedTantivy {
        // as the suite's own in-memory tantivy: commits when a case refreshes
        let config = TantivyConfig {
            writer_memory_bytes: 15_000_000,
            ..TantivyConfig::in_memory().with_commit(CommitPolicy::Manual)
        };
        let inner: Arc<dyn SearchIndex> = Arc::new(TantivySearchIndex::open(config).unwrap());
        let breaker = breaker("search");
        GuardedTantivy {
            index: Guarded::new(inner, Arc::clone(&breaker)),
            breaker,
        }
    }
}

impl SearchIndexHarness for GuardedTantivy {
    fn index(&self) -> &dyn SearchIndex {
        &self.index
    }

    async fn finish(self) {
        assert_closed(&self.breaker);
    }
}

oc_conformance::search_index_conformance!(guarded_tantivy, GuardedTantivy::open);
