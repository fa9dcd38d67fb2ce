//! Property test of the breaker against a plain model of the rules, over random sequences of
//! calls, outcomes, abandoned calls and passing time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_model::DomainError;
use oc_resilience::{BreakerConfig, BreakerState, CircuitBreaker, Permit};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Start a call (kept in flight).
    Start,
    /// Finish the oldest call in flight, failed or not.
    Finish { failed: bool },
    /// Abandon the oldest call in flight (a cancelled future).
    Abandon,
    /// Let time pass.
    Wait { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Start),
        3 => any::<bool>().prop_map(|failed| Op::Finish { failed }),
        1 => Just(Op::Abandon),
        2 => (0u64..400).prop_map(|ms| Op::Wait { ms }),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    (1u32..6, 1u32..4, 100u64..600).prop_map(|(streak, probes, open_ms)| BreakerConfig {
        consecutive_failures: streak,
        // the rate rule is covered by the unit tests; here only the streak opens
        failure_rate: 1.0,
        minimum_calls: 1_000,
        window_ms: 10_000,
        open_ms,
        half_open_probes: probes,
        call_timeout_ms: 0,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_breaker_follows_its_rules(config in config(), ops in prop::collection::vec(op(), 1..200)) {
        let breaker = CircuitBreaker::new("cache", config);
        let down = DomainError::unavailable("down");
        let mut now = Instant::now();
        // (permit, admitted in state, admitted in epoch): the epoch is the number of
        // transitions so far; a permit of an earlier epoch is stale
        let mut in_flight: Vec<(Permit, BreakerState, u64)> = Vec::new();
        let epoch = |breaker: &CircuitBreaker| breaker.snapshot().transitions.iter().sum::<u64>();
        let mut streak = 0u32;
        let mut opened_at: Option<Instant> = None;
        let mut failures_ever = 0u32;
        for op in ops {
            let before = breaker.state_at(now);
            let current = epoch(&breaker);
            match op {
                Op::Start => {
                    let probes_in_flight = in_flight
                        .iter()
                        .filter(|(_, admitted, at)| {
                            *admitted == BreakerState::HalfOpen && *at == current
                        })
                        .count() as u32;
                    match breaker.acquire_at(now) {
                        Ok(permit) => {
                            // an open breaker admits nothing; a half-open one at most its probes
                            prop_assert_ne!(before, BreakerState::Open);
                            if before == BreakerState::HalfOpen {
                                prop_assert!(probes_in_flight < config.half_open_probes);
                            }
                            in_flight.push((permit, before, current));
                        }
                        Err(rejected) => {
                            prop_assert_ne!(before, BreakerState::Closed);
                            prop_assert_eq!(rejected.state, before);
                        }
                    }
                }
                Op::Finish { failed } => {
                    if in_flight.is_empty() {
                        continue;
                    }
                    let (permit, admitted, at) = in_flight.remove(0);
                    let stale = at != current;
                    if failed {
                        failures_ever += 1;
                    }
                    permit.record_at(now, failed.then_some(&down));
                    let after = breaker.state_at(now);
                    if !stale && before == BreakerState::Closed {
                        streak = if failed { streak + 1 } else { 0 };
                        if streak >= config.consecutive_failures {
                            prop_assert_eq!(after, BreakerState::Open);
                        } else {
                            prop_assert_eq!(after, BreakerState::Closed);
                        }
                    }
                    if !stale && before == BreakerState::HalfOpen && failed {
                        prop_assert_eq!(after, BreakerState::Open);
                    }
                    if stale {
                        // an outcome from an earlier state changes nothing
                        prop_assert_eq!(after, before);
                    }
                    if after == BreakerState::Open && before != BreakerState::Open {
                        opened_at = Some(now);
                    }
                    if after == BreakerState::Closed && before != BreakerState::Closed {
                        streak = 0;
                        // as many successful probes as configured
                        prop_assert!(!stale && admitted == BreakerState::HalfOpen && !failed);
                    }
                }
                Op::Abandon => {
                    if !in_flight.is_empty() {
                        drop(in_flight.remove(0));
                        prop_assert_eq!(breaker.state_at(now), before);
                    }
                }
                Op::Wait { ms } => {
                    now += Duration::from_millis(ms);
                    let after = breaker.state_at(now);
                    if let (BreakerState::Open, Some(at)) = (before, opened_at) {
                        let expected = if now.duration_since(at) >= Duration::from_millis(config.open_ms) {
                            BreakerState::HalfOpen
                        } else {
                            BreakerState::Open
                        };
                        prop_assert_eq!(after, expected);
                    } else {
                        prop_assert_eq!(after, before);
                    }
                }
            }
            // never opens without failures
            if failures_ever == 0 {
                prop_assert_eq!(breaker.state_at(now), BreakerState::Closed);
            }
        }
        let snapshot = breaker.snapshot();
        // every half-open came from an open, every close from a half-open
        prop_assert!(snapshot.transitions[BreakerState::HalfOpen as usize] <= snapshot.transitions[BreakerState::Open as usize]);
        prop_assert!(snapshot.transitions[BreakerState::Closed as usize] <= snapshot.transitions[BreakerState::HalfOpen as usize]);
        let _keep: Vec<Arc<CircuitBreaker>> = vec![breaker];
    }
}
