//! The breakers of one process, rendered as Prometheus metrics.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use crate::breaker::{BreakerSnapshot, BreakerState, CircuitBreaker};

/// Every breaker the binary wired, by dependency.
#[derive(Debug, Default)]
pub struct Breakers {
    breakers: Mutex<Vec<Arc<CircuitBreaker>>>,
}

impl Breakers {
    pub fn new() -> Arc<Breakers> {
        Arc::new(Breakers::default())
    }

    /// Adds a breaker (a second one for the same dependency replaces the first).
    pub fn add(&self, breaker: Arc<CircuitBreaker>) {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        breakers.retain(|b| b.dependency() != breaker.dependency());
        breakers.push(breaker);
    }

    pub fn get(&self, dependency: &str) -> Option<Arc<CircuitBreaker>> {
        self.breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|b| b.dependency() == dependency)
            .cloned()
    }

    pub fn snapshots(&self) -> Vec<BreakerSnapshot> {
        self.breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|b| b.snapshot())
            .collect()
    }

    /// `oc_breaker_state{dependency}` (0 closed, 1 half-open, 2 open),
    /// `oc_breaker_transitions_total{dependency,to}` and `oc_breaker_rejected_total{dependency}`.
    pub fn render(&self, out: &mut String) {
        let snapshots = self.snapshots();
        if snapshots.is_empty() {
            return;
        }
        out.push_str("# HELP oc_breaker_state Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.\n# TYPE oc_breaker_state gauge\n");
        for s in &snapshots {
            let _ = writeln!(
                out,
                "oc_breaker_state{{dependency=\"{}\"}} {}",
                s.dependency, s.state as u8
            );
        }
        out.push_str("# HELP oc_breaker_transitions_total Circuit breaker transitions per dependency and state entered.\n# TYPE oc_breaker_transitions_total counter\n");
        for s in &snapshots {
            for state in BreakerState::ALL {
                let _ = writeln!(
                    out,
                    "oc_breaker_transitions_total{{dependency=\"{}\",to=\"{}\"}} {}",
                    s.dependency, state, s.transitions[state as usize]
                );
            }
        }
        out.push_str("# HELP oc_breaker_rejected_total Calls refused by an open circuit breaker.\n# TYPE oc_breaker_rejected_total counter\n");
        for s in &snapshots {
            let _ = writeln!(
                out,
                "oc_breaker_rejected_total{{dependency=\"{}\"}} {}",
                s.dependency, s.rejected
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerConfig;
    use oc_model::DomainError;

    #[test]
    fn renders_state_and_transitions() {
        let breakers = Breakers::new();
        let cache = CircuitBreaker::new("cache", BreakerConfig::default());
        breakers.add(cache.clone());
        breakers.add(CircuitBreaker::new("search", BreakerConfig::default()));
        for _ in 0..5 {
            cache
                .acquire()
                .unwrap()
                .record(Some(&DomainError::unavailable("refused")));
        }
        let mut out = String::new();
        breakers.render(&mut out);
        assert!(
            out.contains("oc_breaker_state{dependency=\"cache\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("oc_breaker_state{dependency=\"search\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("oc_breaker_transitions_total{dependency=\"cache\",to=\"open\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("oc_breaker_transitions_total{dependency=\"search\",to=\"open\"} 0\n"),
            "{out}"
        );
    }
}
