//! The retry schedule every retrying loop of Order Center uses (the relay's rounds, the
//! projector's reads and writes, the core's retries of transient store conflicts): capped
//! exponential backoff with "equal jitter".
//!
//! After the `n`th failure in a row the ceiling is `initial × multiplier^(n-1)`, capped at
//! `max`, and the delay is a random value in `[ceiling/2, ceiling]`: workers that failed
//! together (relays of many shards, projector members) do not retry in lock-step, yet never
//! retry at once.

use std::hash::{BuildHasher as _, RandomState};
use std::time::Duration;

/// How a retry schedule grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
}

impl BackoffConfig {
    /// Doubling from `initial` up to `max`.
    pub const fn doubling(initial: Duration, max: Duration) -> BackoffConfig {
        BackoffConfig {
            initial,
            max,
            multiplier: 2.0,
        }
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig::doubling(Duration::from_millis(100), Duration::from_secs(10))
    }
}

/// Consecutive failures so far, and the next delay.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Backoff {
        Backoff {
            config,
            failures: 0,
        }
    }

    /// Failures counted since the last [`reset`](Self::reset).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The un-jittered delay after the current number of failures.
    fn ceiling(&self) -> Duration {
        let exponent = self.failures.saturating_sub(1).min(64) as i32;
        let factor = self.config.multiplier.max(1.0).powi(exponent);
        let seconds =
            (self.config.initial.as_secs_f64() * factor).min(self.config.max.as_secs_f64());
        Duration::from_secs_f64(seconds.max(0.0))
    }

    /// Counts a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.ceiling();
        let half = ceiling / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(random_up_to(span))
    }

    /// A success: the next failure starts the schedule again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A random value in `0..=bound`. Jitter needs no cryptographic randomness; the standard
/// library's randomly keyed hasher (new keys per `RandomState`) is enough and adds no crate.
fn random_up_to(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let random = RandomState::new().hash_one(std::time::Instant::now());
    random % bound.saturating_add(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_with_jitter_up_to_the_cap() {
        let config = BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2.0,
        };
        let mut backoff = Backoff::new(config);
        let ceilings_ms = [100, 200, 400, 800, 1600, 2000, 2000];
        for ceiling_ms in ceilings_ms {
            let delay = backoff.next_delay();
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert_eq!(backoff.failures(), 7);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut backoff = Backoff::new(BackoffConfig::default());
            distinct.insert(backoff.next_delay());
        }
        assert!(distinct.len() > 10, "{distinct:?}");
    }
}
