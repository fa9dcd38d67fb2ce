//! Circuit breakers around the downstream adapters (`oc-resilience`), their thresholds from
//! the service config (`breaker:` in the file, `OC_BREAKER_*` overrides), their metrics and
//! their `/readyz` entries.

use std::sync::Arc;

use anyhow::{Context, bail};
use oc_api::AppState;
use oc_api::ready::{Dependency, Probe};
use oc_cache::RedisCache;
use oc_model::ports::{ColdStore, EventBus, SearchIndex};
use oc_resilience::{BreakerConfig, Breakers, CircuitBreaker, Guarded};

use crate::serve::env;

fn parsed<T: std::str::FromStr>(name: &str, current: T) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match env(name) {
        Some(text) => text
            .parse()
            .with_context(|| format!("{name}={text} is not a number")),
        None => Ok(current),
    }
}

/// The breaker thresholds: the file's `breaker:` section, then `OC_BREAKER_*`, then defaults.
pub fn config(from_file: Option<BreakerConfig>) -> anyhow::Result<BreakerConfig> {
    let file = from_file.unwrap_or_default();
    let config = BreakerConfig {
        consecutive_failures: parsed("OC_BREAKER_CONSECUTIVE_FAILURES", file.consecutive_failures)?,
        failure_rate: parsed("OC_BREAKER_FAILURE_RATE", file.failure_rate)?,
        minimum_calls: parsed("OC_BREAKER_MINIMUM_CALLS", file.minimum_calls)?,
        window_ms: parsed("OC_BREAKER_WINDOW_MS", file.window_ms)?,
        open_ms: parsed("OC_BREAKER_OPEN_MS", file.open_ms)?,
        half_open_probes: parsed("OC_BREAKER_HALF_OPEN_PROBES", file.half_open_probes)?,
        call_timeout_ms: parsed("OC_BREAKER_CALL_TIMEOUT_MS", file.call_timeout_ms)?,
    };
    if let Err(message) = config.validate() {
        bail!("{message}");
    }
    Ok(config)
}

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

    /// The breaker of `dependency` (`cache`, `search`, `cold`, `bus`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_section_sets_the_thresholds() {
        let file: crate::serve::ServiceConfigFile =
            serde_norway::from_str("breaker:\n  open_ms: 2000\n  half_open_probes: 2\n").unwrap();
        let from_file = file.breaker.unwrap();
        assert_eq!(from_file.open_ms, 2000);
        assert_eq!(from_file.half_open_probes, 2);
        assert_eq!(
            from_file.consecutive_failures,
            BreakerConfig::default().consecutive_failures
        );
        if env("OC_BREAKER_OPEN_MS").is_none() {
            assert_eq!(config(Some(from_file)).unwrap().open_ms, 2000);
        }
        let unknown = serde_norway::from_str::<crate::serve::ServiceConfigFile>(
            "breaker:\n  open_after: 3\n",
        );
        assert!(unknown.is_err(), "unknown keys are refused");
        let never_probes = BreakerConfig {
            half_open_probes: 0,
            ..BreakerConfig::default()
        };
        if env("OC_BREAKER_HALF_OPEN_PROBES").is_none() {
            assert!(config(Some(never_probes)).is_err());
        }
    }

    #[test]
    fn every_variable_read_is_listed() {
        let source = include_str!("breakers.rs");
        for chunk in source.split("parsed(\"").skip(1) {
            let name: String = chunk.chars().take_while(|c| *c != '"').collect();
            assert!(
                crate::serve::ENV_VARS.contains(&name.as_str()),
                "{name} is read but not listed in ENV_VARS"
            );
        }
    }
}
