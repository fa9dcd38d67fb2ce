//! The relay: outbox rows → bus, per shard, in order, at least once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oc_model::ports::{EventBus, OrderStore};
use oc_model::{DomainError, DomainResult, OrderEvent, ShardId, UnixMillis};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::stats::{RelayStats, ShardStats};
use oc_model::retry::{Backoff, BackoffConfig};

/// Batch size, pacing and patience of the relay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelayConfig {
    /// Outbox rows claimed, published and marked per round and shard. Also the most events a
    /// crash can cause to be published twice, per shard.
    pub batch_size: u32,
    /// Pause after a round that found fewer rows than `batch_size` (the outbox is drained).
    pub idle_poll: Duration,
    /// Pause after a failed round.
    pub backoff: BackoffConfig,
    /// Upper bound of each step of a round (claim, publish, mark); past it the round fails.
    pub step_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 256,
            idle_poll: Duration::from_millis(50),
            backoff: BackoffConfig::default(),
            step_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct ShardState {
    /// One round at a time per shard inside this process (`run` and `run_once` callers).
    round: tokio::sync::Mutex<()>,
    stats: Mutex<ShardStats>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn OrderStore>,
    bus: Arc<dyn EventBus>,
    config: RelayConfig,
    shards: BTreeMap<ShardId, ShardState>,
}

/// Moves committed outbox rows of every shard to the event bus.
///
/// Each round on a shard: read up to `batch_size` unpublished rows in sequence order,
/// publish their events in that order (one `publish` call, which returns once the bus has
/// them durably), then mark exactly those rows published. A row is never marked before its
/// event is on the bus, so a crash at any point loses nothing: the unmarked rows are
/// published again by the next round (at most one batch per shard is repeated per crash).
///
/// Cloning gives another handle to the same relay (same stats, same per-shard locks).
#[derive(Debug, Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

impl Relay {
    /// A relay over every shard of `store`.
    ///
    /// # Panics
    /// When `config.batch_size` is zero.
    pub fn new(store: Arc<dyn OrderStore>, bus: Arc<dyn EventBus>, config: RelayConfig) -> Relay {
        assert!(
            config.batch_size > 0,
            "the relay moves at least one row per round"
        );
        let shards = store
            .shards()
            .into_iter()
            .map(|shard| (shard, ShardState::default()))
            .collect();
        Relay {
            inner: Arc::new(Inner {
                store,
                bus,
                config,
                shards,
            }),
        }
    }

    pub fn config(&self) -> &RelayConfig {
        &self.inner.config
    }

    /// The shards this relay serves.
    pub fn shards(&self) -> Vec<ShardId> {
        self.inner.shards.keys().copied().collect()
    }

    /// A snapshot of the counters and lag of every shard.
    pub fn stats(&self) -> RelayStats {
        let shards: BTreeMap<ShardId, ShardStats> = self
            .inner
            .shards
            .iter()
            .map(|(shard, state)| (*shard, lock(&state.stats).clone()))
            .collect();
        RelayStats {
            published_total: shards.values().map(|shard| shard.published_total).sum(),
            shards,
        }
    }

    /// One round on `shard`: returns how many events were published (0: nothing pending).
    /// On error nothing was marked; what was published of the batch is published again by
    /// the next round.
    pub async fn run_once(&self, shard: ShardId) -> DomainResult<usize> {
        self.inner.run_once(shard).await
    }

    /// Rounds on every shard until each finds its outbox empty; returns the events moved.
    /// Stops at the first error (for tests, tools, and a final flush).
    pub async fn drain(&self) -> DomainResult<usize> {
        let mut moved = 0;
        for shard in self.shards() {
            loop {
                let published = self.run_once(shard).await?;
                moved += published;
                if published == 0 {
                    break;
                }
            }
        }
        Ok(moved)
    }

    /// Relays every shard, one task per shard, until `shutdown` completes; then lets each
    /// task finish its current round and returns.
    ///
    /// A round that fails is retried after an exponential, capped, jittered backoff; the
    /// rows stay unpublished in the outbox meanwhile (a bus outage grows the outbox and the
    /// lag in [`Relay::stats`], and loses nothing). Dropping the returned future (or aborting
    /// the task running it) aborts the shard tasks too, like a crash would.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> DomainResult<()> {
        let (stop, stopped) = watch::channel(false);
        let tasks = AbortOnDrop(
            self.shards()
                .into_iter()
                .map(|shard| {
                    let inner = Arc::clone(&self.inner);
                    let stopped = stopped.clone();
                    tokio::spawn(async move { inner.shard_loop(shard, stopped).await })
                })
                .collect(),
        );
        tracing::info!(shards = tasks.0.len(), "relay started");
        shutdown.await;
        // receivers may all be gone already (a panicked task); nothing to tell them then
        let _ = stop.send(true);
        let mut tasks = tasks;
        let mut outcome = Ok(());
        for task in &mut tasks.0 {
            if let Err(join_error) = task.await {
                tracing::error!(error = %join_error, "relay shard task failed");
                outcome = Err(DomainError::internal("relay shard task failed"));
            }
        }
        tracing::info!("relay stopped");
        outcome
    }
}

impl Inner {
    fn state(&self, shard: ShardId) -> DomainResult<&ShardState> {
        self.shards
            .get(&shard)
            .ok_or_else(|| DomainError::invalid("/shard", format!("no shard {}", shard.0)))
    }

    async fn run_once(&self, shard: ShardId) -> DomainResult<usize> {
        let state = self.state(shard)?;
        let _one_round = state.round.lock().await;
        match self.round(shard, state).await {
            Ok(published) => Ok(published),
            Err(error) => {
                let mut stats = lock(&state.stats);
                stats.failures_total += 1;
                stats.consecutive_failures = stats.consecutive_failures.saturating_add(1);
                stats.last_error = Some(error.to_string());
                Err(error)
            }
        }
    }

    async fn round(&self, shard: ShardId, state: &ShardState) -> DomainResult<usize> {
        let step_timeout = self.config.step_timeout;
        let claimed = bounded(
            step_timeout,
            "reading the outbox",
            self.store.pending_outbox(shard, self.config.batch_size),
        )
        .await?;
        let now = OffsetDateTime::now_utc();
        {
            let mut stats = lock(&state.stats);
            stats.last_poll_at = Some(now);
            stats.last_claim_size = claimed.len();
            stats.oldest_pending_age_ms = claimed
                .first()
                .map(|oldest| age_ms(now, oldest.event.occurred_at))
                .unwrap_or(0);
            if claimed.is_empty() {
                stats.consecutive_failures = 0;
                stats.last_error = None;
            }
        }
        if claimed.is_empty() {
            return Ok(0);
        }

        let events: Vec<OrderEvent> = claimed.iter().map(|entry| entry.event.clone()).collect();
        bounded(
            step_timeout,
            "publishing to the bus",
            self.bus.publish(&events),
        )
        .await?;
        // only now, with every event on the bus: a crash before this line republishes them
        let sequences: Vec<u64> = claimed.iter().map(|entry| entry.sequence).collect();
        bounded(
            step_timeout,
            "marking the outbox",
            self.store.mark_published(shard, &sequences),
        )
        .await?;

        let mut stats = lock(&state.stats);
        if claimed.len() < self.config.batch_size as usize {
            // the read found the end of the outbox: nothing older than now is waiting
            stats.oldest_pending_age_ms = 0;
        }
        stats.published_total += events.len() as u64;
        stats.batches_total += 1;
        stats.last_batch_at = Some(OffsetDateTime::now_utc());
        stats.consecutive_failures = 0;
        stats.last_error = None;
        tracing::debug!(shard = shard.0, events = events.len(), "relayed a batch");
        Ok(events.len())
    }

    async fn shard_loop(&self, shard: ShardId, mut stopped: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.config.backoff);
        let batch_size = self.config.batch_size as usize;
        loop {
            if *stopped.borrow() {
                return;
            }
            let pause = match self.run_once(shard).await {
                Ok(published) if published >= batch_size => {
                    backoff.reset();
                    Duration::ZERO
                }
                Ok(_) => {
                    backoff.reset();
                    self.config.idle_poll
                }
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        shard = shard.0,
                        error = %error,
                        retry_in_ms = delay.as_millis() as u64,
                        "relay round failed, nothing marked; backing off"
                    );
                    delay
                }
            };
            if pause.is_zero() {
                // more is waiting: go on, but let other tasks run between batches
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                changed = stopped.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Shard tasks that are aborted when the `run` future is dropped.
#[derive(Debug)]
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn bounded<T>(
    limit: Duration,
    step: &str,
    operation: impl Future<Output = DomainResult<T>>,
) -> DomainResult<T> {
    match tokio::time::timeout(limit, operation).await {
        Ok(result) => result,
        Err(_elapsed) => Err(DomainError::unavailable(format!(
            "relay: {step} took longer than {limit:?}"
        ))),
    }
}

fn age_ms(now: OffsetDateTime, then: OffsetDateTime) -> u64 {
    UnixMillis::floor(now).since(UnixMillis::floor(then))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
