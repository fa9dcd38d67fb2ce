//! Exponential, capped, jittered backoff between failed relay rounds.

use std::time::Duration;

use rand::Rng as _;

/// The retry schedule after an error: `initial × multiplier^n`, capped at `max`, with
/// "equal jitter" (a delay `d` becomes a random value in `[d/2, d]`), so that relays of many
/// shards that failed together do not retry in lock-step, yet never retry at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
        }
    }
}

/// Consecutive failures so far, and the next delay.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(config: BackoffConfig) -> Backoff {
        Backoff {
            config,
            failures: 0,
        }
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
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.ceiling();
        let half = ceiling / 2;
        let jitter = rand::thread_rng().gen_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(jitter)
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
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
