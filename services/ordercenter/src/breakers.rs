//! Circuit breakers around the downstream adapters (`oc-resilience`), with the thresholds of
//! the service config (`breaker:` in the file, `OC_BREAKER_*` overrides; see
//! `config::settings`), their metrics and their `/readyz` entries.

use std::sync::Arc;

use oc_api::AppState;
use oc_api::ready::{Dependency, Probe};
use oc_cache::RedisCache;
use oc_model::ports::{ColdStore, EventBus, SearchIndex};
use oc_model::stock::StockGate;
use oc_resilience::{BreakerConfig, Breakers, CircuitBreaker, Guarded};

/// The breakers of this process: one per dependency, created on first use.
#[derive(Debug, Clone)]
pub struct Guards {
    config: BreakerConfig,
    pub breakers: Arc<Breakers>,
}

impl Guards {
    pub fn new(config: BreakerConfig) -> Guards {
        Guards {
            config,
            breakers: Breakers::new(),
        }
    }

    /// The breaker of `dependency` (`cache`, `search`, `cold`, `bus`, `stock_gate`).
    pub fn breaker(&self, dependency: &'static str) -> Arc<CircuitBreaker> {
        if let Some(existing) = self.breakers.get(dependency) {
            return existing;
        }
        let breaker = CircuitBreaker::new(dependency, self.config);
        self.breakers.add(breaker.clone());
        breaker
    }

    pub fn search(&self, inner: Arc<dyn SearchIndex>) -> Arc<dyn SearchIndex> {
        Arc::new(Guarded::new(inner, self.breaker("search")))
    }

    pub fn cold(&self, inner: Arc<dyn ColdStore>) -> Arc<dyn ColdStore> {
        Arc::new(Guarded::new(inner, self.breaker("cold")))
    }

    pub fn bus(&self, inner: Arc<dyn EventBus>) -> Arc<dyn EventBus> {
        Arc::new(Guarded::new(inner, self.breaker("bus")))
    }

    /// The Redis stock gate: not on `/readyz` (placements go on in SQL alone while it is
    /// open), on `/metrics` like every breaker.
    pub fn stock_gate(&self, inner: Arc<dyn StockGate>) -> Arc<dyn StockGate> {
        Arc::new(Guarded::new(inner, self.breaker("stock_gate")))
    }

    /// Breaker metrics on `/metrics`, and every guarded dependency on `/readyz` (with a
    /// probe where the adapter has one: Redis PING, the index's health call).
    pub fn expose(
        &self,
        state: &AppState,
        redis: Option<RedisCache>,
        search: Option<Arc<dyn SearchIndex>>,
    ) {
        let breakers = Arc::clone(&self.breakers);
        state
            .metrics
            .register(Box::new(move |out: &mut String| breakers.render(out)));
        if let Some(redis) = redis {
            let probe: Probe = Arc::new(move || {
                let redis = redis.clone();
                Box::pin(async move { redis.health().await })
            });
            state.readiness.register(Dependency {
                name: "cache",
                breaker: self.breakers.get("cache"),
                probe: Some(probe),
            });
        }
        if let Some(search) = search {
            let probe: Probe = Arc::new(move || {
                let search = Arc::clone(&search);
                Box::pin(async move { search.health().await })
            });
            state.readiness.register(Dependency {
                name: "search",
                breaker: self.breakers.get("search"),
                probe: Some(probe),
            });
        }
        for name in ["cold", "bus"] {
            if let Some(breaker) = self.breakers.get(name) {
                state.readiness.register(Dependency {
                    name,
                    breaker: Some(breaker),
                    probe: None,
                });
            }
        }
    }

    /// `/readyz` learns about a breaker created after [`Guards::expose`] (the bus of the
    /// single-node relay).
    pub fn expose_late(&self, state: &AppState, name: &'static str) {
        if let Some(breaker) = self.breakers.get(name) {
            state.readiness.register(Dependency {
                name,
                breaker: Some(breaker),
                probe: None,
            });
        }
    }
}
