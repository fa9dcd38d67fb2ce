//! The projector: order events in, read models out, by re-reading each order by primary key.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt as _;
use oc_model::indexing::document_from_order;
use oc_model::ports::{Cache, ColdStore, EventStream, OrderStore, SearchFields, SearchIndex};
use oc_model::retry::{Backoff, BackoffConfig};
use oc_model::{DomainError, DomainResult, ErrorCode, Order, OrderEvent, OrderId, TenantId};

use crate::stats::{Counters, ProjectorStats, SinkCounters, SinkKind, set_error};

/// The read models one projector writes; any of them may be absent.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    pub search: Option<Arc<dyn SearchIndex>>,
    pub cold: Option<Arc<dyn ColdStore>>,
    pub cache: Option<Arc<dyn Cache>>,
}

impl Sinks {
    pub fn none() -> Sinks {
        Sinks::default()
    }

    pub fn with_search(mut self, search: Arc<dyn SearchIndex>) -> Sinks {
        self.search = Some(search);
        self
    }

    pub fn with_cold(mut self, cold: Arc<dyn ColdStore>) -> Sinks {
        self.cold = Some(cold);
        self
    }

    pub fn with_cache(mut self, cache: Arc<dyn Cache>) -> Sinks {
        self.cache = Some(cache);
        self
    }

    /// The same sinks restricted to `kinds` (e.g. a backfill of the search index only).
    pub fn only(&self, kinds: &[SinkKind]) -> Sinks {
        Sinks {
            search: self
                .search
                .clone()
                .filter(|_| kinds.contains(&SinkKind::Search)),
            cold: self
                .cold
                .clone()
                .filter(|_| kinds.contains(&SinkKind::Cold)),
            cache: self
                .cache
                .clone()
                .filter(|_| kinds.contains(&SinkKind::Cache)),
        }
    }

    pub fn kinds(&self) -> Vec<SinkKind> {
        let configured = self.configured();
        SinkKind::ALL
            .into_iter()
            .zip(configured)
            .filter_map(|(kind, present)| present.then_some(kind))
            .collect()
    }

    fn configured(&self) -> [bool; 3] {
        [
            self.search.is_some(),
            self.cold.is_some(),
            self.cache.is_some(),
        ]
    }
}

/// Capped exponential backoff of failed reads and writes (`oc_model::retry`, doubling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Attempts before a call gives up and fails the batch; `None`: retry until it succeeds
    /// (or the projector is shut down). A consumer wants `None` (it must not skip an
    /// order); a one-shot tool (backfill, repair) may want a bound.
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_secs(5),
            max_attempts: None,
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> Backoff {
        Backoff::new(BackoffConfig::doubling(self.initial, self.max))
    }
}

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Orders of one batch applied at once.
    pub concurrency: usize,
    pub retry: RetryPolicy,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            concurrency: 16,
            retry: RetryPolicy::default(),
        }
    }
}

/// What applying one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Distinct orders in the batch.
    pub orders: usize,
    /// Orders gone from the store (archived): skipped.
    pub missing: usize,
}

/// Applies order events to read models. Cheap to clone; clones share sinks and counters.
///
/// Every event is handled the same way, whatever its kind or version: the order is re-read
/// by primary key from the [`OrderStore`] and its *current* state is written to every sink
/// with a version check (`upsert` / `put` / `put_if_newer` keep the highest version). So
/// duplicates, replays and out-of-order delivery are harmless, and one read per order per
/// batch is enough however many events it had.
#[derive(Debug, Clone)]
pub struct Projector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn OrderStore>,
    sinks: Sinks,
    fields: Arc<dyn SearchFields>,
    config: ProjectorConfig,
    counters: Counters,
}

enum Attempt<T> {
    Done(T),
    /// Refused for good (invalid input): counted and skipped.
    Rejected,
}

fn is_permanent(error: &DomainError) -> bool {
    error.code == ErrorCode::InvalidInput
}

impl Projector {
    pub fn new(
        store: Arc<dyn OrderStore>,
        sinks: Sinks,
        fields: Arc<dyn SearchFields>,
        config: ProjectorConfig,
    ) -> Projector {
        Projector {
            inner: Arc::new(Inner {
                store,
                sinks,
                fields,
                config,
                counters: Counters::default(),
            }),
        }
    }

    pub fn sinks(&self) -> &Sinks {
        &self.inner.sinks
    }

    pub fn store(&self) -> &Arc<dyn OrderStore> {
        &self.inner.store
    }

    pub fn config(&self) -> &ProjectorConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> ProjectorStats {
        self.inner.counters.snapshot(self.inner.sinks.configured())
    }

    /// Applies a batch of events: one re-read and one write per sink for each distinct order.
    /// Returns once every sink took every order (retrying failures with backoff), or with
    /// the last error when a call ran out of attempts.
    pub async fn apply_events(&self, events: &[OrderEvent]) -> DomainResult<BatchOutcome> {
        let keys: Vec<(TenantId, OrderId)> = events
            .iter()
            .map(|event| (event.tenant.clone(), event.order_id))
            .collect();
        let outcome = self.apply_orders(&keys).await?;
        self.inner
            .counters
            .events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(outcome)
    }

    /// Re-reads each order (duplicates once) and writes its current state to every sink.
    pub async fn apply_orders(&self, keys: &[(TenantId, OrderId)]) -> DomainResult<BatchOutcome> {
        let mut seen = HashSet::with_capacity(keys.len());
        let distinct: Vec<(TenantId, OrderId)> = keys
            .iter()
            .filter(|key| seen.insert(*key))
            .cloned()
            .collect();
        let count = distinct.len();
        // owned items: the futures must not borrow from the iterator (keeps `run` Send)
        let results: Vec<DomainResult<bool>> = futures_util::stream::iter(distinct)
            .map(|(tenant, id)| async move { self.apply_one(&tenant, id).await })
            .buffer_unordered(self.inner.config.concurrency.max(1))
            .collect()
            .await;
        let mut outcome = BatchOutcome {
            orders: count,
            missing: 0,
        };
        for result in results {
            if !result? {
                outcome.missing += 1;
            }
        }
        Ok(outcome)
    }

    /// One order: re-read, then every sink. `false` when the order is gone from the store.
    async fn apply_one(&self, tenant: &TenantId, id: OrderId) -> DomainResult<bool> {
        let counters = &self.inner.counters;
        let read = self
            .retrying(
                |error| {
                    counters.store_failures.fetch_add(1, Ordering::Relaxed);
                    set_error(
                        &counters.last_error,
                        format!("store get {tenant}/{id}: {error}"),
                    );
                },
                || self.inner.store.get(tenant, id),
            )
            .await?;
        let Attempt::Done(Some(order)) = read else {
            counters.missing.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        };
        self.apply_order(&order).await?;
        counters.orders.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Writes `order` (the store's current state) to every sink, version-checked.
    pub async fn apply_order(&self, order: &Order) -> DomainResult<()> {
        let sinks = &self.inner.sinks;
        let search = async {
            let Some(index) = &sinks.search else {
                return Ok(());
            };
            let sink = &self.inner.counters.search;
            let document = match document_from_order(order, self.inner.fields.as_ref()) {
                Ok(document) => document,
                Err(error) => {
                    // deterministic: retrying the same order cannot help
                    sink.rejected.fetch_add(1, Ordering::Relaxed);
                    let message = format!(
                        "search document of {}/{}: {error}",
                        order.main.tenant, order.main.id
                    );
                    tracing::error!(error = %message, "order not indexable; skipped");
                    set_error(&sink.last_error, message);
                    return Ok(());
                }
            };
            self.sink_write(SinkKind::Search, order, || index.upsert(&document))
                .await
        };
        let cold = async {
            let Some(cold) = &sinks.cold else {
                return Ok(());
            };
            self.sink_write(SinkKind::Cold, order, || cold.put(order))
                .await
        };
        let cache = async {
            let Some(cache) = &sinks.cache else {
                return Ok(());
            };
            self.sink_write(SinkKind::Cache, order, || cache.put_if_newer(order))
                .await
        };
        let (search, cold, cache) = tokio::join!(search, cold, cache);
        search.and(cold).and(cache)
    }

    async fn sink_write<F, Fut>(&self, kind: SinkKind, order: &Order, call: F) -> DomainResult<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = DomainResult<bool>>,
    {
        let sink: &SinkCounters = self.inner.counters.sink(kind);
        let on_failure = |error: &DomainError| {
            sink.failures.fetch_add(1, Ordering::Relaxed);
            set_error(
                &sink.last_error,
                format!("{kind} {}/{}: {error}", order.main.tenant, order.main.id),
            );
        };
        match self.retrying(on_failure, call).await? {
            Attempt::Done(written) => sink.written(written),
            Attempt::Rejected => {
                sink.rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Calls until success, a permanent error, or the attempts run out.
    async fn retrying<T, F, Fut>(
        &self,
        on_failure: impl Fn(&DomainError),
        mut call: F,
    ) -> DomainResult<Attempt<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = DomainResult<T>>,
    {
        let policy = self.inner.config.retry;
        let mut backoff = policy.backoff();
        let mut attempts = 0u32;
        loop {
            match call().await {
                Ok(value) => return Ok(Attempt::Done(value)),
                Err(error) => {
                    on_failure(&error);
                    if is_permanent(&error) {
                        tracing::error!(error = %error, "read model refused an order for good; skipped");
                        return Ok(Attempt::Rejected);
                    }
                    attempts += 1;
                    if policy.max_attempts.is_some_and(|max| attempts >= max) {
                        return Err(error);
                    }
                    tracing::warn!(error = %error, attempts, "read model write failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Consumes `stream` until `shutdown` completes: poll a batch, apply it to every sink
    /// (retrying), then commit the stream's position. A crash anywhere before the commit
    /// means the batch is read again (at-least-once); version checks make that harmless.
    pub async fn run<S>(
        &self,
        stream: &mut S,
        shutdown: impl Future<Output = ()> + Send,
    ) -> DomainResult<()>
    where
        S: EventStream + ?Sized,
    {
        tokio::select! {
            () = shutdown => Ok(()),
            () = self.run_forever(stream) => Ok(()),
        }
    }

    /// Counts and logs a failed step of the consumer loop, then waits out its backoff.
    async fn stream_failed(&self, what: &str, error: &DomainError, backoff: &mut Backoff) {
        let counters = &self.inner.counters;
        counters.stream_failures.fetch_add(1, Ordering::Relaxed);
        set_error(&counters.last_error, format!("{what}: {error}"));
        let delay = backoff.next_delay();
        tracing::warn!(error = %error, delay_ms = delay.as_millis() as u64, "{what} failed; retrying");
        tokio::time::sleep(delay).await;
    }

    async fn run_forever<S>(&self, stream: &mut S)
    where
        S: EventStream + ?Sized,
    {
        let counters = &self.inner.counters;
        let mut backoff = self.inner.config.retry.backoff();
        loop {
            let events = match stream.next_batch().await {
                Ok(events) => events,
                Err(error) => {
                    self.stream_failed("stream poll", &error, &mut backoff)
                        .await;
                    continue;
                }
            };
            counters.set_lag(stream.lag());
            loop {
                match self.apply_events(&events).await {
                    Ok(_) => break,
                    Err(error) => {
                        // only with a bounded retry policy: keep the batch, try it again
                        self.stream_failed("applying a batch", &error, &mut backoff)
                            .await;
                    }
                }
            }
            loop {
                match stream.commit().await {
                    Ok(()) => break,
                    Err(error) => {
                        self.stream_failed("offset commit", &error, &mut backoff)
                            .await;
                    }
                }
            }
            backoff.reset();
            if !events.is_empty() {
                counters.batches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
