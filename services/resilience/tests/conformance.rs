//! The ports' conformance suites (`oc-conformance`) run over the breaker wrapper
//! `Guarded<P>` around the cheapest real adapter of each port, as the binary wires them
//! (`ordercenter::breakers`). With the breaker closed, the wrapper must be invisible: every
//! case passes exactly as it does on the bare adapter, and no case's expected errors (a bad
//! cursor, a refused order) leave the breaker anything but closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use oc_cold_store::RedbColdStore;
use oc_conformance::cold_store::ColdStoreHarness;
use oc_model::ports::ColdStore;
use oc_resilience::{BreakerConfig, BreakerState, CircuitBreaker, Guarded};

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
