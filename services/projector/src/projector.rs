//! The projector: order events in, read models out, by re-reading each order by primary key.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use oc_model::aftersale::listing::AfterSaleDocument;
use oc_model::aftersale::{AfterSale, AfterSaleId, AfterSaleStore};
use oc_model::indexing::document_from_order;
use oc_model::ports::{
    Cache, ColdStore, DeadLetter, DeadLetters, EventStream, OrderStore, SearchFields, SearchIndex,
};
use oc_model::retry::{Backoff, BackoffConfig};
use oc_model::search::SearchDocument;
use oc_model::{DomainError, DomainResult, ErrorCode, Order, OrderEvent, OrderId, TenantId};
use time::OffsetDateTime;

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
    /// Attempts of one order on one read model after which a *transient* failure is
    /// dead-lettered, provided the same read model took other orders meanwhile (the rule is
    /// on [`Projector`]). At least 1.
    pub attempts_per_order: u32,
    /// How long a *transient* failure of one order must have lasted, since its first
    /// failure, before the dead-letter rule may pass it over (besides the count above).
    /// Found by the soak: right after an HBase link cut the Thrift server answers some
    /// calls and times out others for a few seconds, so five quick failures of one order
    /// while others went through said nothing about the order.
    pub dead_letter_after: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            concurrency: 16,
            retry: RetryPolicy::default(),
            attempts_per_order: 5,
            dead_letter_after: Duration::from_secs(30),
        }
    }
}

/// How often a running projector re-counts the open dead letters for its gauge (a replay by
/// the operator's command, in another process, lowers it).
const DEAD_LETTER_COUNT_EVERY: Duration = Duration::from_secs(60);

/// Longest error message kept in a dead letter.
const DEAD_LETTER_MESSAGE_MAX: usize = 1_000;

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
///
/// **When a read model refuses an order.** A batch is committed only once every order in
/// it is settled, so an order retried forever stops every tenant on the member's
/// partitions. The rule, per order and read model, with the failure's class from the
/// adapter ([`DomainError::is_transient`]):
///
/// - *permanent* (the read model answered and refuses this order: a document its mapping
///   cannot hold, an argument it rejects, a document that cannot be built): recorded as a
///   dead letter at once and passed over;
/// - *transient* (the read model is down, throttling, unreachable): retried with backoff;
///   after [`ProjectorConfig::attempts_per_order`] attempts, and no sooner than
///   [`ProjectorConfig::dead_letter_after`] after its first failure, it is dead-lettered
///   **only if an attempt that failed was started after the same read model had taken
///   another order since this one first failed**: the read model works, for others, and this order still
///   fails: the order is the problem. Otherwise the read model is taken to be down and the
///   projector keeps retrying: it stalls (its lag grows, the breaker opens) and
///   dead-letters nothing, because an outage must not turn every order into a dead letter.
///   (An attempt *started* after another's success, not one merely failing after it: while
///   a read model comes back, an attempt begun during the outage may fail just after the
///   first orders get through; the next attempt succeeds.) A call a circuit breaker
///   refused before sending it ([`DomainError::unsent`]) is no attempt here: it says
///   nothing about the order. A transient failure of one order
///   with nothing else going through since its first failure stalls like an outage; the
///   adapters answer transient only for what every order would hit.
///
/// Without a dead-letter record ([`Projector::with_dead_letters`]) a permanent failure is
/// counted as `rejected`, logged and skipped, and a transient one is retried as long as the
/// [`RetryPolicy`] allows. Recording a dead letter is itself retried: with the store down
/// the batch waits rather than losing the record.
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
    dead_letters: Option<Arc<dyn DeadLetters>>,
    /// Where after-sales are re-read for their search documents (issue #20 item 6); without
    /// it after-sales are not indexed.
    after_sales: Option<Arc<dyn AfterSaleStore>>,
    counters: Counters,
}

/// Which after-sales of an order to re-index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterSaleTargets {
    /// Those the batch's events named (`after_sale` events).
    Named(BTreeSet<u64>),
    /// Every after-sale of the order (a backfill or a repair, which have no events).
    All,
}

/// Whether a search document is the cold copy of an archived order: only
/// [`Projector::apply_archived`] writes one, so the hot write path can never mark an order
/// archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archived {
    Yes,
    No,
}

enum Attempt<T> {
    Done(T),
    /// Refused for good (invalid input): counted and skipped.
    Rejected,
}

/// A store read that cannot succeed on retry. Only `InvalidInput`: other failures of the
/// system of record are retried (the store is the truth; a projector must not skip an order
/// because its shard hiccuped).
fn is_permanent(error: &DomainError) -> bool {
    error.code == ErrorCode::InvalidInput
}

/// The first failure of one order on one read model, for the rule on [`Projector`].
struct FirstFailure {
    at: OffsetDateTime,
    /// `at` on the monotonic clock, for [`ProjectorConfig::dead_letter_after`].
    since: Instant,
    /// The read model's successful writes when the failed attempt started.
    successes: u64,
}

impl FirstFailure {
    fn now(successes: u64) -> FirstFailure {
        FirstFailure {
            at: OffsetDateTime::now_utc(),
            since: Instant::now(),
            successes,
        }
    }
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
                dead_letters: None,
                after_sales: None,
                counters: Counters::default(),
            }),
        }
    }

    /// The same projector recording the orders its read models refuse in `dead_letters` and
    /// moving on (see the rule on [`Projector`]). Counters start afresh: call it before use.
    pub fn with_dead_letters(self, dead_letters: Arc<dyn DeadLetters>) -> Projector {
        Projector {
            inner: Arc::new(Inner {
                store: Arc::clone(&self.inner.store),
                sinks: self.inner.sinks.clone(),
                fields: Arc::clone(&self.inner.fields),
                config: self.inner.config.clone(),
                dead_letters: Some(dead_letters),
                after_sales: self.inner.after_sales.clone(),
                counters: Counters::default(),
            }),
        }
    }

    /// The same projector also indexing after-sales: every `after_sale` event re-reads the
    /// after-sale it names by primary key from `store` and writes its whole document (the
    /// seed's rule), and [`Projector::apply_orders`] (backfill, repair) re-reads every
    /// after-sale of each order. Counters start afresh: call it before use.
    pub fn with_after_sales(self, store: Arc<dyn AfterSaleStore>) -> Projector {
        Projector {
            inner: Arc::new(Inner {
                store: Arc::clone(&self.inner.store),
                sinks: self.inner.sinks.clone(),
                fields: Arc::clone(&self.inner.fields),
                config: self.inner.config.clone(),
                dead_letters: self.inner.dead_letters.clone(),
                after_sales: Some(store),
                counters: Counters::default(),
            }),
        }
    }

    pub fn dead_letters(&self) -> Option<&Arc<dyn DeadLetters>> {
        self.inner.dead_letters.as_ref()
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
        // the newest event of each order, named in a dead letter
        let mut event_ids: HashMap<(TenantId, OrderId), &OrderEvent> = HashMap::new();
        for event in events {
            let newest = event_ids
                .entry((event.tenant.clone(), event.order_id))
                .or_insert(event);
            if event.version > newest.version {
                *newest = event;
            }
        }
        let event_ids = event_ids
            .into_iter()
            .map(|(key, event)| (key, event.event_id()))
            .collect();
        let mut named: HashMap<(TenantId, OrderId), AfterSaleTargets> = HashMap::new();
        for event in events {
            if let Some(note) = &event.after_sale {
                let entry = named
                    .entry((event.tenant.clone(), event.order_id))
                    .or_insert_with(|| AfterSaleTargets::Named(BTreeSet::new()));
                if let AfterSaleTargets::Named(ids) = entry {
                    ids.insert(note.after_sale_id);
                }
            }
        }
        let outcome = self
            .apply_keys(&keys, &event_ids, |key| named.get(key).cloned())
            .await?;
        self.inner
            .counters
            .events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(outcome)
    }

    /// Re-reads each order (duplicates once) and writes its current state to every sink.
    pub async fn apply_orders(&self, keys: &[(TenantId, OrderId)]) -> DomainResult<BatchOutcome> {
        self.apply_keys(keys, &HashMap::new(), |_| Some(AfterSaleTargets::All))
            .await
    }

    async fn apply_keys(
        &self,
        keys: &[(TenantId, OrderId)],
        event_ids: &HashMap<(TenantId, OrderId), String>,
        after_sales: impl Fn(&(TenantId, OrderId)) -> Option<AfterSaleTargets>,
    ) -> DomainResult<BatchOutcome> {
        let mut seen = HashSet::with_capacity(keys.len());
        let distinct: Vec<(TenantId, OrderId)> = keys
            .iter()
            .filter(|key| seen.insert(*key))
            .cloned()
            .collect();
        let count = distinct.len();
        // every order of the batch in one read per shard (a read per order was most of a
        // single node's statements per create: loadtest/PROFILE.md); if it fails, each order
        // is read again on its own below, retried or refused on its own
        let mut read: HashMap<(TenantId, OrderId), Option<Order>> =
            match self.inner.store.get_many(&distinct).await {
                Ok(orders) => distinct.iter().cloned().zip(orders).collect(),
                Err(error) => {
                    let counters = &self.inner.counters;
                    counters.store_failures.fetch_add(1, Ordering::Relaxed);
                    set_error(&counters.last_error, format!("store get_many: {error}"));
                    HashMap::new()
                }
            };
        // owned items: the futures must not borrow from the iterator (keeps `run` Send)
        let results: Vec<DomainResult<bool>> = futures_util::stream::iter(distinct)
            .map(|(tenant, id)| {
                let targets = after_sales(&(tenant.clone(), id));
                let already = read.remove(&(tenant.clone(), id));
                async move {
                    let event_id = event_ids.get(&(tenant.clone(), id)).map(String::as_str);
                    self.apply_one(&tenant, id, event_id, targets, already)
                        .await
                }
            })
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

    /// One order: re-read (unless `already` read), then every sink. `false` when the order is
    /// gone from the store.
    async fn apply_one(
        &self,
        tenant: &TenantId,
        id: OrderId,
        event_id: Option<&str>,
        after_sales: Option<AfterSaleTargets>,
        already: Option<Option<Order>>,
    ) -> DomainResult<bool> {
        let counters = &self.inner.counters;
        let read = match already {
            Some(order) => Attempt::Done(order),
            None => {
                self.retrying(
                    |error| {
                        counters.store_failures.fetch_add(1, Ordering::Relaxed);
                        set_error(
                            &counters.last_error,
                            format!("store get {tenant}/{id}: {error}"),
                        );
                    },
                    || self.inner.store.get(tenant, id),
                )
                .await?
            }
        };
        let Attempt::Done(Some(order)) = read else {
            counters.missing.fetch_add(1, Ordering::Relaxed);
            if let Attempt::Done(None) = read {
                self.apply_archived(tenant, id, event_id).await?;
            }
            return Ok(false);
        };
        self.apply_order_from(&order, event_id).await?;
        if let Some(targets) = after_sales {
            self.write_after_sales(&order, targets, event_id).await?;
        }
        counters.orders.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Re-reads the after-sales `targets` of `order` by primary key and writes each one's
    /// whole document to the search index, version-checked (a late event re-reads the
    /// current row, so it can only write the newest state or nothing). A failed write
    /// follows the rule on [`Projector`] under the order's name: a dead letter of it,
    /// replayed, re-indexes the order; the after-sale is re-indexed by its next event, a
    /// backfill or a repair.
    async fn write_after_sales(
        &self,
        order: &Order,
        targets: AfterSaleTargets,
        event_id: Option<&str>,
    ) -> DomainResult<()> {
        let (Some(store), Some(index)) = (&self.inner.after_sales, &self.inner.sinks.search) else {
            return Ok(());
        };
        let tenant = &order.main.tenant;
        let order_id = order.main.id;
        let counters = &self.inner.counters;
        let on_failure = |error: &DomainError| {
            counters.store_failures.fetch_add(1, Ordering::Relaxed);
            set_error(
                &counters.last_error,
                format!("store after-sales of {tenant}/{order_id}: {error}"),
            );
        };
        let mut rows: Vec<AfterSale> = Vec::new();
        match targets {
            AfterSaleTargets::All => {
                let read = self
                    .retrying(on_failure, || store.after_sales_of_order(tenant, order_id))
                    .await?;
                if let Attempt::Done(all) = read {
                    rows = all;
                }
            }
            AfterSaleTargets::Named(ids) => {
                for raw in ids {
                    let Ok(id) = AfterSaleId::from_raw(raw) else {
                        tracing::warn!(%tenant, %order_id, raw, "event names no after-sale id");
                        continue;
                    };
                    let read = self
                        .retrying(&on_failure, || store.get_after_sale(tenant, id))
                        .await?;
                    if let Attempt::Done(Some(row)) = read {
                        rows.push(row);
                    }
                }
            }
        }
        for row in rows.iter().filter(|row| row.order_id == order_id) {
            let document = AfterSaleDocument::of(row, order.main.merchant_id.clone());
            self.sink_write(SinkKind::Search, order, event_id, || {
                index.upsert_after_sale(&document)
            })
            .await?;
        }
        Ok(())
    }

    /// An order gone from its shard: when the cold store holds it, it was archived, and the
    /// archived copy (one version above the last hot one) goes to the search index, so it is
    /// found as archived, and the order leaves the cache. Without a cold store, or with the
    /// order in neither place, nothing is written.
    async fn apply_archived(
        &self,
        tenant: &TenantId,
        id: OrderId,
        event_id: Option<&str>,
    ) -> DomainResult<()> {
        let sinks = &self.inner.sinks;
        let Some(cold) = &sinks.cold else {
            return Ok(());
        };
        let counters = &self.inner.counters;
        let read = self
            .retrying(
                |error| {
                    counters
                        .sink(SinkKind::Cold)
                        .failures
                        .fetch_add(1, Ordering::Relaxed);
                    set_error(
                        &counters.last_error,
                        format!("cold get {tenant}/{id}: {error}"),
                    );
                },
                || cold.get(tenant, id),
            )
            .await?;
        let Attempt::Done(Some(archived)) = read else {
            return Ok(());
        };
        self.write_search(&archived, event_id, Archived::Yes)
            .await?;
        if let Some(cache) = &sinks.cache {
            let invalidate = self
                .retrying(
                    |error| {
                        counters
                            .sink(SinkKind::Cache)
                            .failures
                            .fetch_add(1, Ordering::Relaxed);
                        set_error(
                            &counters.last_error,
                            format!("cache invalidate {tenant}/{id}: {error}"),
                        );
                    },
                    || cache.invalidate(tenant, id),
                )
                .await?;
            if let Attempt::Rejected = invalidate {
                tracing::warn!(%tenant, order_id = %id, "cache refused to drop an archived order");
            }
        }
        Ok(())
    }

    /// Writes `order` to the search index (when there is one), version-checked, by the rule
    /// on [`Projector`].
    async fn write_search(
        &self,
        order: &Order,
        event_id: Option<&str>,
        archived: Archived,
    ) -> DomainResult<()> {
        let sinks = &self.inner.sinks;
        let Some(index) = &sinks.search else {
            return Ok(());
        };
        let document = match document_from_order(order, self.inner.fields.as_ref()) {
            Ok(document) => SearchDocument {
                archived: archived == Archived::Yes,
                ..document
            },
            Err(error) => {
                // deterministic: retrying the same order cannot help
                let error = DomainError {
                    message: format!("search document not buildable: {}", error.message),
                    ..error
                };
                let first = FirstFailure::now(0);
                return self
                    .give_up(SinkKind::Search, order, event_id, &error, 1, &first)
                    .await;
            }
        };
        self.sink_write(SinkKind::Search, order, event_id, || {
            index.upsert(&document)
        })
        .await
    }

    /// Writes `order` (the store's current state) to every sink, version-checked.
    pub async fn apply_order(&self, order: &Order) -> DomainResult<()> {
        self.apply_order_from(order, None).await
    }

    async fn apply_order_from(&self, order: &Order, event_id: Option<&str>) -> DomainResult<()> {
        let sinks = &self.inner.sinks;
        let search = self.write_search(order, event_id, Archived::No);
        let cold = async {
            let Some(cold) = &sinks.cold else {
                return Ok(());
            };
            self.sink_write(SinkKind::Cold, order, event_id, || cold.put(order))
                .await
        };
        let cache = async {
            let Some(cache) = &sinks.cache else {
                return Ok(());
            };
            self.sink_write(SinkKind::Cache, order, event_id, || {
                cache.put_if_newer(order)
            })
            .await
        };
        let (search, cold, cache) = tokio::join!(search, cold, cache);
        search.and(cold).and(cache)
    }

    /// Writes `order` to the one read model `kind` once, without retrying or dead-lettering:
    /// the replay of a dead letter. Whether it was written (`false`: the read model holds the
    /// same or a newer version); `Ok(false)` also when the read model is not configured.
    pub async fn write_once(&self, kind: SinkKind, order: &Order) -> DomainResult<bool> {
        let sinks = &self.inner.sinks;
        let written = match kind {
            SinkKind::Search => {
                let Some(index) = &sinks.search else {
                    return Ok(false);
                };
                let document = document_from_order(order, self.inner.fields.as_ref())?;
                index.upsert(&document).await
            }
            SinkKind::Cold => match &sinks.cold {
                Some(cold) => cold.put(order).await,
                None => return Ok(false),
            },
            SinkKind::Cache => match &sinks.cache {
                Some(cache) => cache.put_if_newer(order).await,
                None => return Ok(false),
            },
        };
        let sink = self.inner.counters.sink(kind);
        match written {
            Ok(written) => {
                sink.written(written);
                Ok(written)
            }
            Err(error) => {
                sink.failures.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// One order on one read model, by the rule on [`Projector`].
    async fn sink_write<F, Fut>(
        &self,
        kind: SinkKind,
        order: &Order,
        event_id: Option<&str>,
        mut call: F,
    ) -> DomainResult<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = DomainResult<bool>>,
    {
        let sink: &SinkCounters = self.inner.counters.sink(kind);
        let policy = self.inner.config.retry;
        let attempts_per_order = self.inner.config.attempts_per_order.max(1);
        let mut backoff = policy.backoff();
        let mut attempts = 0u32;
        // failures of calls that reached the read model: what the dead-letter rule judges
        let mut sent_failures = 0u32;
        let mut first_failure: Option<FirstFailure> = None;
        loop {
            let successes_before = sink.successes.load(Ordering::Relaxed);
            let error = match call().await {
                Ok(written) => {
                    sink.written(written);
                    return Ok(());
                }
                Err(error) => error,
            };
            attempts += 1;
            sink.failures.fetch_add(1, Ordering::Relaxed);
            set_error(
                &sink.last_error,
                format!("{kind} {}/{}: {error}", order.main.tenant, order.main.id),
            );
            let first = first_failure.get_or_insert_with(|| FirstFailure::now(successes_before));
            if !error.is_transient() {
                return self
                    .give_up(kind, order, event_id, &error, attempts, first)
                    .await;
            }
            // A call a breaker refused never reached the read model: it says nothing about
            // this order. (While a breaker is half-open its few probes go through and the
            // rest are refused; counted, those refusals dead-lettered orders right after an
            // outage, found by the soak.)
            if !error.unsent {
                sent_failures += 1;
            }
            // this attempt began after others went through since the first failure, and
            // failed all the same: the order, not the read model
            let failed_while_others_went_through =
                !error.unsent && successes_before > first.successes;
            let failing_long_enough = first.since.elapsed() >= self.inner.config.dead_letter_after;
            if sent_failures >= attempts_per_order
                && failed_while_others_went_through
                && failing_long_enough
            {
                return self
                    .give_up(kind, order, event_id, &error, attempts, first)
                    .await;
            }
            if policy.max_attempts.is_some_and(|max| attempts >= max) {
                return Err(error);
            }
            tracing::warn!(error = %error, sink = %kind, attempts, "read model write failed; retrying");
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Passes over an order `kind` refused: a dead letter when there is a record, else
    /// counted as rejected.
    async fn give_up(
        &self,
        kind: SinkKind,
        order: &Order,
        event_id: Option<&str>,
        error: &DomainError,
        attempts: u32,
        first: &FirstFailure,
    ) -> DomainResult<()> {
        let sink = self.inner.counters.sink(kind);
        let tenant = &order.main.tenant;
        let order_id = order.main.id;
        let Some(dead_letters) = &self.inner.dead_letters else {
            sink.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %error, sink = %kind, %tenant, %order_id, "read model refused an order for good; skipped");
            return Ok(());
        };
        let mut message = error.message.clone();
        if message.len() > DEAD_LETTER_MESSAGE_MAX {
            let mut end = DEAD_LETTER_MESSAGE_MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let letter = DeadLetter {
            tenant: tenant.clone(),
            order_id,
            sink: kind,
            version: order.main.version,
            error_code: error.code,
            error_message: message,
            attempts,
            first_failed_at: first.at,
            last_failed_at: OffsetDateTime::now_utc(),
            event_id: event_id.map(str::to_owned),
        };
        let counters = &self.inner.counters;
        let recorded = self
            .retrying(
                |record_error| {
                    counters.store_failures.fetch_add(1, Ordering::Relaxed);
                    set_error(
                        &counters.last_error,
                        format!("recording a dead letter of {tenant}/{order_id}: {record_error}"),
                    );
                },
                || dead_letters.record(&letter),
            )
            .await?;
        if let Attempt::Rejected = recorded {
            return Err(DomainError::internal(format!(
                "the dead-letter record refused {tenant}/{order_id}"
            )));
        }
        sink.dead_lettered.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            error = %error, sink = %kind, %tenant, %order_id, version = order.main.version, attempts,
            "read model refused an order; recorded as a dead letter and passed over"
        );
        self.count_dead_letters().await;
        Ok(())
    }

    /// Re-counts the open dead letters for the gauge; a failure only leaves it as it was.
    pub async fn count_dead_letters(&self) {
        let Some(dead_letters) = &self.inner.dead_letters else {
            return;
        };
        match dead_letters.count().await {
            Ok(open) => self.inner.counters.set_dead_letters_open(open),
            Err(error) => tracing::warn!(error = %error, "counting dead letters failed"),
        }
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
                        tracing::error!(error = %error, "refused for good; skipped");
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
        self.count_dead_letters().await;
        let mut counted_at = tokio::time::Instant::now();
        loop {
            if counted_at.elapsed() >= DEAD_LETTER_COUNT_EVERY {
                self.count_dead_letters().await;
                counted_at = tokio::time::Instant::now();
            }
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
