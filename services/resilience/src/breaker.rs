//! The circuit breaker state machine: closed → open → half-open → closed (or open again).
//!
//! * **Closed**: every call goes through. Outcomes are kept for `window`; the breaker opens
//!   when `consecutive_failures` calls in a row failed, or when at least `minimum_calls`
//!   calls finished within the window and the share that failed is `>= failure_rate`.
//! * **Open**: calls are refused at once (no network) for `open_duration`.
//! * **Half-open**: up to `half_open_probes` calls are let through at the same time; when that
//!   many have succeeded the breaker closes, the first failure opens it again.
//!
//! Outcomes of calls that started in an earlier state (a slow call that was admitted before
//! the breaker opened) are ignored: each state has a generation, and a permit remembers the
//! generation it was admitted in. A permit dropped without an outcome (a cancelled future)
//! gives its half-open probe slot back.
//!
//! Time is passed in (`*_at` methods) so the state machine is tested without sleeping.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use oc_model::{DomainError, ErrorCode};
use serde::Deserialize;

/// The three states; the numbers are the values of the `oc_breaker_state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::HalfOpen,
        BreakerState::Open,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds of one breaker. Deserialised from the service config (`breaker:` section);
/// every member is optional there and defaults to [`BreakerConfig::default`].
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Open after this many failed calls in a row (0: only the failure rate counts). Default 5.
    pub consecutive_failures: u32,
    /// Open when at least this share of the calls in the window failed (0 < rate <= 1; above
    /// 1: only consecutive failures count). Default 0.5.
    pub failure_rate: f64,
    /// The failure rate needs at least this many calls in the window. Default 20.
    pub minimum_calls: u32,
    /// How long outcomes count, in milliseconds. Default 10 000.
    pub window_ms: u64,
    /// How long the breaker stays open before it lets probes through, in milliseconds.
    /// Default 5 000.
    pub open_ms: u64,
    /// Calls let through while half-open; this many successes close the breaker. Default 3.
    pub half_open_probes: u32,
    /// A call through [`CircuitBreaker::call`] that has no answer after this long is
    /// abandoned and counts as a failure (0: no limit). An adapter that hangs on a cut-off
    /// connection would otherwise never count against its dependency. Default 10 000.
    pub call_timeout_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_rate: 0.5,
            minimum_calls: 20,
            window_ms: 10_000,
            open_ms: 5_000,
            half_open_probes: 3,
            call_timeout_ms: 10_000,
        }
    }
}

impl BreakerConfig {
    /// Refuses settings that would never open or never close.
    pub fn validate(&self) -> Result<(), String> {
        if self.consecutive_failures == 0 && !(self.failure_rate > 0.0 && self.failure_rate <= 1.0)
        {
            return Err(
                "breaker: set consecutive_failures > 0 or a failure_rate in (0, 1]".to_owned(),
            );
        }
        if self.failure_rate.is_nan() || self.failure_rate <= 0.0 {
            return Err("breaker: failure_rate must be positive".to_owned());
        }
        if self.half_open_probes == 0 {
            return Err("breaker: half_open_probes must be at least 1".to_owned());
        }
        if self.window_ms == 0 || self.open_ms == 0 {
            return Err("breaker: window_ms and open_ms must be positive".to_owned());
        }
        Ok(())
    }

    fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    fn open_duration(&self) -> Duration {
        Duration::from_millis(self.open_ms)
    }
}

/// Whether an error means the dependency is unhealthy. A dependency that answers "not
/// found", "invalid" or "precondition failed" is healthy: only unavailability, transient
/// store conflicts and unexpected failures count against it.
pub fn is_failure(error: &DomainError) -> bool {
    matches!(
        error.code,
        ErrorCode::Unavailable | ErrorCode::Retryable | ErrorCode::Internal
    )
}

/// Most outcomes kept for the failure rate (older ones are dropped even inside the window).
const MAX_OUTCOMES: usize = 4096;

#[derive(Debug)]
enum Phase {
    Closed {
        /// (finished at, failed) of recent calls, oldest first.
        outcomes: VecDeque<(Instant, bool)>,
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        in_flight: u32,
        succeeded: u32,
    },
}

impl Phase {
    fn state(&self) -> BreakerState {
        match self {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn closed() -> Phase {
        Phase::Closed {
            outcomes: VecDeque::new(),
            consecutive_failures: 0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    generation: u64,
    last_error: Option<String>,
}

/// A call was refused because the breaker is open (or half-open with every probe slot taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub dependency: &'static str,
    pub state: BreakerState,
    pub last_error: Option<String>,
}

impl From<Rejected> for DomainError {
    fn from(rejected: Rejected) -> DomainError {
        let message = match rejected.last_error {
            Some(last) => format!(
                "{}: circuit breaker {} (last error: {last})",
                rejected.dependency, rejected.state
            ),
            None => format!(
                "{}: circuit breaker {}",
                rejected.dependency, rejected.state
            ),
        };
        DomainError::unavailable(message).refused_unsent()
    }
}

/// What [`CircuitBreaker::snapshot`] reports (for `/readyz` and the metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSnapshot {
    pub dependency: &'static str,
    pub state: BreakerState,
    pub last_error: Option<String>,
    /// Transitions into each state so far, indexed like [`BreakerState::ALL`].
    pub transitions: [u64; 3],
    /// Calls refused without reaching the dependency.
    pub rejected: u64,
}

/// One breaker, for one downstream dependency. Shared as `Arc<CircuitBreaker>`.
pub struct CircuitBreaker {
    dependency: &'static str,
    config: BreakerConfig,
    inner: Mutex<Inner>,
    transitions: [AtomicU64; 3],
    rejected: AtomicU64,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("dependency", &self.dependency)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Permission to make one call; report its outcome with [`Permit::record`].
#[must_use = "record the outcome of the call"]
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<CircuitBreaker>,
    generation: u64,
    probe: bool,
    recorded: bool,
}

impl Permit {
    /// Records the outcome now.
    pub fn record(self, failure: Option<&DomainError>) {
        self.record_at(Instant::now(), failure);
    }

    /// Records the outcome at `now` (tests).
    pub fn record_at(mut self, now: Instant, failure: Option<&DomainError>) {
        self.recorded = true;
        self.breaker
            .on_outcome(now, self.generation, self.probe, failure);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.release_probe(self.generation);
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker for `dependency` (the metric label: `cache`, `search`, `cold`, `bus`).
    pub fn new(dependency: &'static str, config: BreakerConfig) -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker {
            dependency,
            config,
            inner: Mutex::new(Inner {
                phase: Phase::closed(),
                generation: 0,
                last_error: None,
            }),
            transitions: Default::default(),
            rejected: AtomicU64::new(0),
        })
    }

    pub fn dependency(&self) -> &'static str {
        self.dependency
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state now (an open breaker whose time is up reports half-open).
    pub fn state(&self) -> BreakerState {
        self.state_at(Instant::now())
    }

    pub fn state_at(&self, now: Instant) -> BreakerState {
        let mut inner = self.lock();
        self.expire_open(&mut inner, now);
        inner.phase.state()
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        let (state, last_error) = {
            let mut inner = self.lock();
            self.expire_open(&mut inner, Instant::now());
            (inner.phase.state(), inner.last_error.clone())
        };
        BreakerSnapshot {
            dependency: self.dependency,
            state,
            last_error,
            transitions: [0, 1, 2].map(|i| self.transitions[i].load(Ordering::Relaxed)),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// Asks to make a call now.
    pub fn acquire(self: &Arc<Self>) -> Result<Permit, Rejected> {
        self.acquire_at(Instant::now())
    }

    pub fn acquire_at(self: &Arc<Self>, now: Instant) -> Result<Permit, Rejected> {
        let mut inner = self.lock();
        self.expire_open(&mut inner, now);
        let generation = inner.generation;
        let probe = match &mut inner.phase {
            Phase::Closed { .. } => false,
            Phase::HalfOpen { in_flight, .. } if *in_flight < self.config.half_open_probes => {
                *in_flight += 1;
                true
            }
            phase => {
                let state = phase.state();
                let last_error = inner.last_error.clone();
                drop(inner);
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(Rejected {
                    dependency: self.dependency,
                    state,
                    last_error,
                });
            }
        };
        Ok(Permit {
            breaker: Arc::clone(self),
            generation,
            probe,
            recorded: false,
        })
    }

    /// Runs `call` under the breaker: refused at once when open, its outcome recorded
    /// otherwise (see [`is_failure`]).
    pub async fn call<T, F>(self: &Arc<Self>, call: F) -> Result<T, DomainError>
    where
        F: Future<Output = Result<T, DomainError>>,
    {
        let permit = self.acquire()?;
        let result = match self.config.call_timeout_ms {
            0 => call.await,
            limit => match tokio::time::timeout(Duration::from_millis(limit), call).await {
                Ok(result) => result,
                Err(_elapsed) => Err(DomainError::unavailable(format!(
                    "{}: no answer within {limit} ms",
                    self.dependency
                ))),
            },
        };
        match &result {
            Err(error) if is_failure(error) => permit.record(Some(error)),
            _ => permit.record(None),
        }
        result
    }

    fn transition(&self, inner: &mut Inner, phase: Phase) {
        let from = inner.phase.state();
        let to = phase.state();
        inner.phase = phase;
        inner.generation += 1;
        self.transitions[to as usize].fetch_add(1, Ordering::Relaxed);
        match to {
            BreakerState::Open => tracing::warn!(
                dependency = self.dependency,
                %from,
                last_error = inner.last_error.as_deref().unwrap_or("-"),
                "circuit breaker opened"
            ),
            _ => tracing::info!(dependency = self.dependency, %from, %to, "circuit breaker"),
        }
    }

    fn expire_open(&self, inner: &mut Inner, now: Instant) {
        if let Phase::Open { until } = inner.phase
            && now >= until
        {
            self.transition(
                inner,
                Phase::HalfOpen {
                    in_flight: 0,
                    succeeded: 0,
                },
            );
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        let until = now + self.config.open_duration();
        self.transition(inner, Phase::Open { until });
    }

    fn on_outcome(
        &self,
        now: Instant,
        generation: u64,
        probe: bool,
        failure: Option<&DomainError>,
    ) {
        let mut inner = self.lock();
        if let Some(error) = failure {
            inner.last_error = Some(error.message.clone());
        }
        if generation != inner.generation {
            // admitted in an earlier state: its outcome says nothing about this one
            return;
        }
        let failed = failure.is_some();
        let config = self.config;
        match &mut inner.phase {
            Phase::Closed {
                outcomes,
                consecutive_failures,
            } => {
                *consecutive_failures = if failed {
                    consecutive_failures.saturating_add(1)
                } else {
                    0
                };
                outcomes.push_back((now, failed));
                let horizon = now.checked_sub(config.window());
                while outcomes.len() > MAX_OUTCOMES
                    || outcomes
                        .front()
                        .is_some_and(|(at, _)| horizon.is_some_and(|h| *at < h))
                {
                    outcomes.pop_front();
                }
                let calls = outcomes.len();
                let failures = outcomes.iter().filter(|(_, failed)| *failed).count();
                let by_streak = config.consecutive_failures > 0
                    && *consecutive_failures >= config.consecutive_failures;
                let by_rate = calls >= config.minimum_calls.max(1) as usize
                    && config.failure_rate <= 1.0
                    && failures as f64 >= config.failure_rate * calls as f64;
                if failed && (by_streak || by_rate) {
                    self.open(&mut inner, now);
                }
            }
            Phase::HalfOpen {
                in_flight,
                succeeded,
            } if probe => {
                *in_flight = in_flight.saturating_sub(1);
                if failed {
                    self.open(&mut inner, now);
                } else {
                    *succeeded += 1;
                    if *succeeded >= config.half_open_probes {
                        self.transition(&mut inner, Phase::closed());
                    }
                }
            }
            Phase::HalfOpen { .. } | Phase::Open { .. } => {}
        }
    }

    fn release_probe(&self, generation: u64) {
        let mut inner = self.lock();
        if generation != inner.generation {
            return;
        }
        if let Phase::HalfOpen { in_flight, .. } = &mut inner.phase {
            *in_flight = in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_rate: 0.5,
            minimum_calls: 10,
            window_ms: 1_000,
            open_ms: 500,
            half_open_probes: 2,
            call_timeout_ms: 0,
        }
    }

    fn down() -> DomainError {
        DomainError::unavailable("connection refused")
    }

    fn ok(breaker: &Arc<CircuitBreaker>, now: Instant) {
        breaker.acquire_at(now).unwrap().record_at(now, None);
    }

    fn fail(breaker: &Arc<CircuitBreaker>, now: Instant) {
        breaker
            .acquire_at(now)
            .unwrap()
            .record_at(now, Some(&down()));
    }

    #[test]
    fn opens_after_consecutive_failures_and_refuses_calls() {
        let breaker = CircuitBreaker::new("cache", config());
        let t0 = Instant::now();
        fail(&breaker, t0);
        fail(&breaker, t0);
        assert_eq!(breaker.state_at(t0), BreakerState::Closed);
        fail(&breaker, t0);
        assert_eq!(breaker.state_at(t0), BreakerState::Open);
        let rejected = breaker.acquire_at(t0).unwrap_err();
        assert_eq!(rejected.state, BreakerState::Open);
        assert_eq!(rejected.last_error.as_deref(), Some("connection refused"));
        let error = DomainError::from(rejected);
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert!(error.message.contains("cache: circuit breaker open"));
        assert_eq!(breaker.snapshot().rejected, 1);
    }

    #[test]
    fn a_success_resets_the_streak() {
        let mut settings = config();
        settings.failure_rate = 1.0;
        let breaker = CircuitBreaker::new("cache", settings);
        let t0 = Instant::now();
        for _ in 0..4 {
            fail(&breaker, t0);
            fail(&breaker, t0);
            ok(&breaker, t0);
        }
        // 8 failures out of 12 calls, never 3 in a row (and the rate needs 100 % here)
        assert_eq!(breaker.state_at(t0), BreakerState::Closed);
    }

    #[test]
    fn opens_on_the_failure_rate_within_the_window() {
        let mut settings = config();
        settings.consecutive_failures = 0;
        let breaker = CircuitBreaker::new("search", settings);
        let t0 = Instant::now();
        for _ in 0..4 {
            ok(&breaker, t0);
            fail(&breaker, t0);
        }
        // 8 calls: fewer than minimum_calls
        assert_eq!(breaker.state_at(t0), BreakerState::Closed);
        ok(&breaker, t0);
        fail(&breaker, t0);
        // 10 calls, 5 failed: 50 %
        assert_eq!(breaker.state_at(t0), BreakerState::Open);
    }

    #[test]
    fn outcomes_older_than_the_window_do_not_count() {
        let mut settings = config();
        settings.consecutive_failures = 0;
        let breaker = CircuitBreaker::new("search", settings);
        let t0 = Instant::now();
        for _ in 0..9 {
            fail(&breaker, t0);
        }
        let later = t0 + Duration::from_millis(1_500);
        fail(&breaker, later);
        // only one call inside the window
        assert_eq!(breaker.state_at(later), BreakerState::Closed);
    }

    #[test]
    fn half_open_after_the_open_time_then_closes_on_enough_probes() {
        let breaker = CircuitBreaker::new("bus", config());
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&breaker, t0);
        }
        assert_eq!(
            breaker.state_at(t0 + Duration::from_millis(499)),
            BreakerState::Open
        );
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(breaker.state_at(t1), BreakerState::HalfOpen);
        let first = breaker.acquire_at(t1).unwrap();
        let second = breaker.acquire_at(t1).unwrap();
        // both probe slots are taken
        assert_eq!(
            breaker.acquire_at(t1).unwrap_err().state,
            BreakerState::HalfOpen
        );
        first.record_at(t1, None);
        assert_eq!(breaker.state_at(t1), BreakerState::HalfOpen);
        second.record_at(t1, None);
        assert_eq!(breaker.state_at(t1), BreakerState::Closed);
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.transitions, [1, 1, 1]);
    }

    #[test]
    fn a_failed_probe_opens_again_for_the_full_open_time() {
        let breaker = CircuitBreaker::new("cold", config());
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&breaker, t0);
        }
        let t1 = t0 + Duration::from_millis(600);
        fail(&breaker, t1);
        assert_eq!(breaker.state_at(t1), BreakerState::Open);
        assert_eq!(
            breaker.state_at(t1 + Duration::from_millis(499)),
            BreakerState::Open
        );
        assert_eq!(
            breaker.state_at(t1 + Duration::from_millis(500)),
            BreakerState::HalfOpen
        );
    }

    #[test]
    fn a_dropped_probe_gives_its_slot_back() {
        let breaker = CircuitBreaker::new("cold", config());
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&breaker, t0);
        }
        let t1 = t0 + Duration::from_millis(500);
        let first = breaker.acquire_at(t1).unwrap();
        let second = breaker.acquire_at(t1).unwrap();
        drop(first);
        let third = breaker.acquire_at(t1).unwrap();
        second.record_at(t1, None);
        third.record_at(t1, None);
        assert_eq!(breaker.state_at(t1), BreakerState::Closed);
    }

    #[test]
    fn late_outcomes_of_an_earlier_state_are_ignored() {
        let breaker = CircuitBreaker::new("cache", config());
        let t0 = Instant::now();
        let slow = breaker.acquire_at(t0).unwrap();
        for _ in 0..3 {
            fail(&breaker, t0);
        }
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(breaker.state_at(t1), BreakerState::HalfOpen);
        // admitted while closed, finishing while half-open: not a probe
        slow.record_at(t1, None);
        let probe = breaker.acquire_at(t1).unwrap();
        probe.record_at(t1, None);
        assert_eq!(breaker.state_at(t1), BreakerState::HalfOpen);
    }

    #[test]
    fn answers_of_a_healthy_dependency_are_not_failures() {
        assert!(!is_failure(&DomainError::not_found("gone")));
        assert!(!is_failure(&DomainError::invalid("/x", "bad")));
        assert!(is_failure(&DomainError::unavailable("down")));
        assert!(is_failure(&DomainError::new(
            ErrorCode::Retryable,
            "deadlock"
        )));
    }

    #[test]
    fn config_validation() {
        assert!(BreakerConfig::default().validate().is_ok());
        let never_opens = BreakerConfig {
            consecutive_failures: 0,
            failure_rate: 2.0,
            ..BreakerConfig::default()
        };
        assert!(never_opens.validate().is_err());
        let no_probes = BreakerConfig {
            half_open_probes: 0,
            ..BreakerConfig::default()
        };
        assert!(no_probes.validate().is_err());
    }

    #[tokio::test]
    async fn call_records_outcomes_by_error_kind() {
        let breaker = CircuitBreaker::new("cache", config());
        for _ in 0..5 {
            let answer: Result<(), _> = breaker
                .call(async { Err(DomainError::not_found("no such order")) })
                .await;
            assert_eq!(answer.unwrap_err().code, ErrorCode::NotFound);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        for _ in 0..3 {
            let _ = breaker.call(async { Err::<(), _>(down()) }).await;
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let refused = breaker.call(async { Ok(1) }).await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::Unavailable);
    }

    #[tokio::test]
    async fn a_call_without_an_answer_counts_as_a_failure() {
        let mut settings = config();
        settings.call_timeout_ms = 20;
        settings.consecutive_failures = 2;
        let breaker = CircuitBreaker::new("bus", settings);
        for _ in 0..2 {
            let hung = breaker
                .call(std::future::pending::<Result<(), DomainError>>())
                .await
                .unwrap_err();
            assert_eq!(hung.code, ErrorCode::Unavailable);
            assert!(
                hung.message.contains("no answer within 20 ms"),
                "{}",
                hung.message
            );
        }
        assert_eq!(breaker.state(), BreakerState::Open);
    }
}
