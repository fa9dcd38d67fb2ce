//! The archive: orders in a terminal state whose last change is older than their tenant's
//! `retention.hot_days` move from the shards to the cold store.
//!
//! # One order, step by step (each step safe to repeat)
//!
//! 1. **Read** the order from its shard (the truth, not the listing) and check it is still
//!    terminal in its state machine and still past the tenant's hot window.
//!    Nothing may be in flight ([`ArchiveStore::in_flight`]: a stock reservation not
//!    settled, a payment pending, a refund requested) and its after-sales must all have
//!    ended (terminal in their type's machine): otherwise the order stays hot.
//! 2. **Copy**: the order at version `v + 1` (content unchanged; see [`oc_model::archive`]
//!    for why the version moves), its status history and its after-sales (each with its
//!    lines, history and refund record) are written to the cold store. `put` keeps the
//!    highest version, so a copy made by an earlier, interrupted pass is left as it is.
//! 3. **Verify**: all three are read back and compared with what was written: the version
//!    and the SHA-256 of the canonical form (the order's JSON, the history's JSON, the
//!    after-sales' JSON), and each after-sale's index entry must name the order. A
//!    difference (the cold store holds another copy) stops here: the order stays hot and is
//!    counted as `mismatch`.
//! 4. **Delete** from the shard, guarded by version `v` and by the (id, version) of every
//!    after-sale copied, in one transaction with an `order.archived` outbox event (the
//!    projector then gives the search index the archived copy and drops the order from the
//!    cache). A change of the order or of its after-sales (a new application, a transition)
//!    between 1 and 4 makes the guard fail: nothing is deleted, the pass moves on.
//!    Payments and refunds stay on the shard (the money ledger, see
//!    [`ArchiveStore::delete_archived`]).
//! 5. **Drop** the order from this process's cache.
//!
//! A process killed anywhere leaves the order either hot (before 4 commits; the next pass
//! copies again, which at worst rewrites the same copy) or archived (4 committed; the event
//! is in the outbox and the relay publishes it). It never leaves it in neither place, nor
//! in both with the shard deleting a copy the cold store does not hold.
//!
//! # Several instances
//!
//! Nothing is leased: two archivers finding the same order both copy it (the same bytes),
//! and of their deletes exactly one matches the version guard.
//!
//! Rate: at most `rate_per_sec` orders a second per archiver (a token pacing, not a
//! burst), so the copy traffic to the cold store and the deletes on the shards stay
//! bounded however far behind the policy the archive is.

mod stats;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use oc_model::aftersale::AfterSaleStore;
use oc_model::archive::{ArchiveCandidate, ArchiveStore, ArchivedAfterSale};
use oc_model::lifecycle::TransitionStore;
use oc_model::ports::{Cache, ColdStore, OrderStore};
use oc_model::{
    DomainError, DomainResult, HistoryEntry, Order, OrderEvent, OrderEventKind, OrderId, ShardId,
    StatusCode, TenantId, UnixMillis,
};
use oc_tenant_config::{ConfigHandle, TenantConfig};

use crate::Core;
use crate::pace::Pacer;

pub use stats::ArchiveStats;

/// How an archiver walks the shards.
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    /// The pause between two passes.
    pub poll_interval: Duration,
    /// Candidates read per page.
    pub batch_size: u32,
    /// Orders archived per second at most (`0`: unpaced).
    pub rate_per_sec: u32,
    /// Stop a pass after this many orders (`None`: until none is due); the bounded runs of
    /// `ordercenter archive --max`.
    pub max_per_pass: Option<u64>,
    /// Called after each step of each order (fault-injection tests stop the process at a
    /// chosen step this way, then kill it); `None` in service.
    pub step_hook: Option<StepHook>,
}

/// The steps of one order's archive, in order (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArchiveStep {
    /// Read from the shard and found due.
    Read,
    /// The order's copy written to the cold store.
    Copied,
    /// Its history written to the cold store.
    HistoryCopied,
    /// Its after-sales written to the cold store (reached also when it has none).
    AfterSalesCopied,
    /// Both read back and found equal.
    Verified,
    /// Deleted from the shard with its outbox event (committed).
    Deleted,
    /// Dropped from this process's cache.
    CacheDropped,
}

impl ArchiveStep {
    pub const ALL: [ArchiveStep; 7] = [
        ArchiveStep::Read,
        ArchiveStep::Copied,
        ArchiveStep::HistoryCopied,
        ArchiveStep::AfterSalesCopied,
        ArchiveStep::Verified,
        ArchiveStep::Deleted,
        ArchiveStep::CacheDropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveStep::Read => "read",
            ArchiveStep::Copied => "copied",
            ArchiveStep::HistoryCopied => "history_copied",
            ArchiveStep::AfterSalesCopied => "after_sales_copied",
            ArchiveStep::Verified => "verified",
            ArchiveStep::Deleted => "deleted",
            ArchiveStep::CacheDropped => "cache_dropped",
        }
    }

    pub fn parse(text: &str) -> Option<ArchiveStep> {
        ArchiveStep::ALL
            .into_iter()
            .find(|step| step.as_str() == text)
    }
}

/// See [`ArchiveSettings::step_hook`].
pub type StepHook = fn(ArchiveStep, &TenantId, OrderId);

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings {
            poll_interval: Duration::from_secs(60),
            batch_size: 200,
            rate_per_sec: 50,
            max_per_pass: None,
            step_hook: None,
        }
    }
}

/// What became of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Archived {
    /// Copied, verified and deleted from the shard.
    Moved,
    /// Read again, it is no longer due (changed, no longer terminal) or already gone.
    NotDue,
    /// Its tenant or business identity is not in the live config: left where it is.
    UnknownTenant,
    /// Changed between the copy and the delete (the version guard failed), or a stock
    /// reservation of it is still being settled: left hot, found again later.
    Raced,
    /// The cold store holds another copy than the one written: left hot.
    Mismatch,
}

impl Archived {
    pub fn as_str(self) -> &'static str {
        match self {
            Archived::Moved => "moved",
            Archived::NotDue => "not_due",
            Archived::UnknownTenant => "unknown_tenant",
            Archived::Raced => "raced",
            Archived::Mismatch => "mismatch",
        }
    }

    pub const ALL: [Archived; 5] = [
        Archived::Moved,
        Archived::NotDue,
        Archived::UnknownTenant,
        Archived::Raced,
        Archived::Mismatch,
    ];
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    pub moved: u64,
    pub skipped: u64,
    /// Bytes of the canonical JSON of the orders moved (order and history).
    pub bytes: u64,
    pub errors: u64,
}

/// The archive worker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Archiver {
    store: Arc<dyn OrderStore>,
    history: Arc<dyn TransitionStore>,
    /// The after-sales that go with their order (the tenant's machines say when one has
    /// ended); `None` when the core has no after-sales domain (an order with after-sales
    /// then fails the delete's guard and stays hot).
    after_sales: Option<Arc<dyn AfterSaleStore>>,
    archive: Arc<dyn ArchiveStore>,
    cold: Arc<dyn ColdStore>,
    cache: Option<Arc<dyn Cache>>,
    config: Arc<ConfigHandle>,
    clock: Arc<dyn oc_model::ports::Clock>,
    settings: ArchiveSettings,
    stats: Arc<ArchiveStats>,
}

impl Core {
    /// An archiver moving this core's orders to `cold`, finding them through `archive` (the
    /// SQL order store implements the port).
    pub fn archiver(
        &self,
        archive: Arc<dyn ArchiveStore>,
        cold: Arc<dyn ColdStore>,
        settings: ArchiveSettings,
    ) -> Archiver {
        Archiver {
            store: Arc::clone(&self.store),
            history: Arc::clone(&self.transitions.store),
            after_sales: self
                .after_sales
                .as_ref()
                .map(|service| Arc::clone(&service.store)),
            archive,
            cold,
            cache: self.orders.read.cache.clone(),
            config: Arc::clone(&self.config),
            clock: Arc::clone(&self.orders.clock),
            settings,
            stats: Arc::new(ArchiveStats::default()),
        }
    }
}

/// The SHA-256 of a value's canonical form: its JSON (every map in the model is ordered).
fn checksum<T: serde::Serialize + ?Sized>(value: &T) -> DomainResult<(usize, [u8; 32])> {
    let json = serde_json::to_vec(value)
        .map_err(|error| DomainError::internal(format!("canonical form: {error}")))?;
    Ok((json.len(), Sha256::digest(&json).into()))
}

/// The terminal statuses of any of the tenant's state machines.
fn terminal_statuses(tenant: &TenantConfig) -> Vec<StatusCode> {
    let mut statuses: Vec<StatusCode> = tenant
        .business_identities()
        .values()
        .flat_map(|identity| {
            let machine = identity.state_machine();
            machine
                .states()
                .filter(|state| machine.is_terminal(state))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    statuses.sort();
    statuses.dedup();
    statuses
}

impl Archiver {
    pub fn stats(&self) -> Arc<ArchiveStats> {
        Arc::clone(&self.stats)
    }

    pub fn settings(&self) -> &ArchiveSettings {
        &self.settings
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The last-change instant before which a tenant's terminal orders are due.
    fn cutoff(&self, tenant: &TenantConfig) -> UnixMillis {
        let hot = time::Duration::days(i64::from(tenant.retention().hot_days));
        UnixMillis::floor(self.now() - hot)
    }

    /// Pass after pass until `stop` resolves. A pass under way is dropped where it is (see
    /// the module documentation: every step is safe to repeat).
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                report = self.pass() => {
                    if report.errors > 0 {
                        tracing::warn!(?report, "archive pass had errors");
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// One pass over every tenant, shard and terminal status.
    pub async fn pass(&self) -> ArchiveReport {
        let mut report = ArchiveReport::default();
        let config = self.config.current();
        let mut pacer = Pacer::new(self.settings.rate_per_sec);
        for tenant in config.tenants() {
            let cutoff = self.cutoff(tenant);
            let statuses = terminal_statuses(tenant);
            for shard in self.archive.shards() {
                for status in &statuses {
                    let walked = self
                        .archive_status(tenant, shard, status, cutoff, &mut pacer, &mut report)
                        .await;
                    if let Err(error) = walked {
                        report.errors += 1;
                        self.stats.error();
                        tracing::error!(tenant = %tenant.id(), shard = shard.0, %status, error = %error.message, "archive page failed");
                    }
                    if self.done(&report) {
                        self.stats.pass();
                        return report;
                    }
                }
            }
        }
        self.stats.pass();
        report
    }

    fn done(&self, report: &ArchiveReport) -> bool {
        self.settings
            .max_per_pass
            .is_some_and(|max| report.moved >= max)
    }

    async fn archive_status(
        &self,
        tenant: &TenantConfig,
        shard: ShardId,
        status: &StatusCode,
        cutoff: UnixMillis,
        pacer: &mut Pacer,
        report: &mut ArchiveReport,
    ) -> DomainResult<()> {
        let mut after: Option<ArchiveCandidate> = None;
        let mut first = true;
        loop {
            let page = self
                .archive
                .archivable(
                    shard,
                    tenant.id(),
                    status,
                    cutoff,
                    after.as_ref(),
                    self.settings.batch_size,
                )
                .await?;
            if first {
                // lag behind the policy: how long the oldest due order has been due
                let lag = page
                    .first()
                    .map_or(0, |oldest| cutoff.since(oldest.updated_at));
                self.stats.set_lag(tenant.id(), shard, status, lag);
                first = false;
            }
            for candidate in &page {
                pacer.wait().await;
                match self.archive_one(tenant, candidate.id, cutoff).await {
                    Ok((Archived::Moved, bytes)) => {
                        report.moved += 1;
                        report.bytes += bytes;
                        self.stats.outcome(Archived::Moved, bytes);
                    }
                    Ok((outcome, _)) => {
                        report.skipped += 1;
                        self.stats.outcome(outcome, 0);
                    }
                    Err(error) => {
                        report.errors += 1;
                        self.stats.error();
                        tracing::error!(tenant = %tenant.id(), order_id = %candidate.id, error = %error.message, "archiving an order failed");
                    }
                }
                if self.done(report) {
                    return Ok(());
                }
            }
            if page.len() < self.settings.batch_size as usize {
                return Ok(());
            }
            after = page.last().cloned();
        }
    }

    /// Archive one order if it is still due (the steps of the module documentation).
    /// Returns the outcome and, when moved, the bytes copied.
    pub async fn archive_one(
        &self,
        tenant: &TenantConfig,
        id: OrderId,
        cutoff: UnixMillis,
    ) -> DomainResult<(Archived, u64)> {
        let tenant_id = tenant.id();
        // 1. the truth, not the listing
        let Some(order) = self.store.get(tenant_id, id).await? else {
            return Ok((Archived::NotDue, 0));
        };
        let Some(machine) = tenant.state_machine(&order.main.business_identity) else {
            return Ok((Archived::UnknownTenant, 0));
        };
        if !machine.is_terminal(&order.main.status)
            || UnixMillis::floor(order.main.updated_at) >= cutoff
        {
            return Ok((Archived::NotDue, 0));
        }
        // a payment, refund, reservation or after-sale still under way keeps it hot
        if self.archive.in_flight(tenant_id, id).await? {
            return Ok((Archived::NotDue, 0));
        }
        let Some(after_sales) = self.after_sales_of(tenant, id).await? else {
            return Ok((Archived::NotDue, 0));
        };
        self.step(ArchiveStep::Read, tenant_id, id);
        let history = self.history.history(tenant_id, id).await?;
        // 2. the copy
        let mut copy = order.clone();
        copy.main.version = order.main.version + 1;
        let (order_bytes, order_sum) = checksum(&copy)?;
        let (history_bytes, history_sum) = checksum(&history)?;
        let (after_sales_bytes, after_sales_sum) = checksum(&after_sales)?;
        self.cold.put(&copy).await?;
        self.step(ArchiveStep::Copied, tenant_id, id);
        self.cold.put_history(tenant_id, id, &history).await?;
        self.step(ArchiveStep::HistoryCopied, tenant_id, id);
        // most orders have none: nothing to write, and nothing stored reads back as none
        if !after_sales.is_empty() {
            self.cold
                .put_after_sales(tenant_id, id, &after_sales)
                .await?;
        }
        self.step(ArchiveStep::AfterSalesCopied, tenant_id, id);
        // 3. read back and compare
        let sums = [order_sum, history_sum, after_sales_sum];
        if !self
            .verified(tenant_id, id, &copy, sums, &after_sales)
            .await?
        {
            tracing::warn!(tenant = %tenant_id, order_id = %id, "the cold copy differs from the order: left hot");
            return Ok((Archived::Mismatch, 0));
        }
        self.step(ArchiveStep::Verified, tenant_id, id);
        // 4. delete from the shard with the outbox event, guarded by the copied version
        let event = OrderEvent::of(&copy, OrderEventKind::Archived);
        let copied: Vec<_> = after_sales
            .iter()
            .map(|archived| (archived.after_sale.id, archived.after_sale.version))
            .collect();
        if !self
            .archive
            .delete_archived(tenant_id, id, order.main.version, &copied, &event)
            .await?
        {
            return Ok((Archived::Raced, 0));
        }
        self.step(ArchiveStep::Deleted, tenant_id, id);
        // 5. this process's cache (the projector drops it from every other one)
        if let Some(cache) = &self.cache
            && let Err(error) = cache.invalidate(tenant_id, id).await
        {
            tracing::warn!(error = %error.message, order_id = %id, "cache invalidation after archive failed");
        }
        self.step(ArchiveStep::CacheDropped, tenant_id, id);
        Ok((
            Archived::Moved,
            (order_bytes + history_bytes + after_sales_bytes) as u64,
        ))
    }

    fn step(&self, step: ArchiveStep, tenant: &TenantId, id: OrderId) {
        if let Some(hook) = self.settings.step_hook {
            hook(step, tenant, id);
        }
    }

    /// The order's after-sales, each with its history and refund, oldest first; `None` when
    /// one of them has not ended yet (the order is not due).
    async fn after_sales_of(
        &self,
        tenant_config: &TenantConfig,
        id: OrderId,
    ) -> DomainResult<Option<Vec<ArchivedAfterSale>>> {
        let Some(store) = &self.after_sales else {
            return Ok(Some(Vec::new()));
        };
        let tenant = tenant_config.id();
        // the tenant's machines (seed 000's where its config sets none)
        let machines = tenant_config.after_sales().machines();
        let found = store.after_sales_of_order(tenant, id).await?;
        if found
            .iter()
            .any(|after_sale| !machines.of(after_sale.kind).is_terminal(&after_sale.status))
        {
            return Ok(None);
        }
        let mut archived = Vec::with_capacity(found.len());
        for after_sale in found {
            let history = store.after_sale_history(tenant, after_sale.id).await?;
            let refund = store.after_sale_refund(tenant, after_sale.id).await?;
            archived.push(ArchivedAfterSale {
                after_sale,
                history,
                refund,
            });
        }
        Ok(Some(archived))
    }

    async fn verified(
        &self,
        tenant: &TenantId,
        id: OrderId,
        copy: &Order,
        [order_sum, history_sum, after_sales_sum]: [[u8; 32]; 3],
        after_sales: &[ArchivedAfterSale],
    ) -> DomainResult<bool> {
        let Some(stored) = self.cold.get(tenant, id).await? else {
            return Ok(false);
        };
        if stored.main.version != copy.main.version || checksum(&stored)?.1 != order_sum {
            return Ok(false);
        }
        let stored_history: Vec<HistoryEntry> =
            self.cold.history(tenant, id).await?.unwrap_or_default();
        if checksum(&stored_history)?.1 != history_sum {
            return Ok(false);
        }
        let stored_after_sales = self.cold.after_sales(tenant, id).await?.unwrap_or_default();
        if checksum(&stored_after_sales)?.1 != after_sales_sum {
            return Ok(false);
        }
        // each reachable by its own id (GET /v1/after-sales/{id} of an archived one)
        for archived in after_sales {
            if self
                .cold
                .after_sale_order(tenant, archived.after_sale.id)
                .await?
                != Some(id)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
