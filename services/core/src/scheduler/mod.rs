//! The scheduler: the work no request starts. Per shard, the **timeout worker** cancels the
//! orders whose payment window elapsed unpaid (the `timeout` event of their state machine,
//! which releases their stock and names the coupons to give back), and the **reservation
//! sweeper** gives back the stock of reservations whose order was never written (the process
//! died between the reservation and the order's commit) and finishes the settling of those
//! whose order's history already decided it (the process died between the transition's
//! commit and the stock update).
//!
//! # Several instances
//!
//! Any number of schedulers (each single-node `serve`, each `ordercenter scheduler` of a
//! cluster) may walk the same shards at once; nothing is leased or locked. They only *find*
//! work through the [`ScheduleStore`] port; every change goes through a guard in the
//! database:
//! - a timeout is a transition: the order row's compare-and-set on the version it was read
//!   at. Of a payment and a timeout, or of two schedulers' timeouts, exactly one commits; the
//!   other gets `PreconditionFailed` (or finds the deadline gone) and counts it as skipped,
//!   not as an error. One history row and one outbox event per timed-out order, whatever
//!   the number of instances.
//! - a release or confirm of a reservation is a conditional `UPDATE` from the state it
//!   starts in, in the same transaction as the move of the units: it runs once, and a second
//!   attempt finds the row already moved and changes nothing.
//!
//! A scheduler killed at any point therefore leaves nothing half done that another pass
//! (of it after a restart, or of another instance) does not finish exactly once.
//!
//! | part | file |
//! |---|---|
//! | the loop over the shards, settings, metrics | `mod.rs` |
//! | one due order: the `timeout` event | `timeout.rs` |
//! | one expired reservation: release, settle or leave | `sweep.rs` |
//! | outbox and idempotency rows past their retention | `purge.rs` |
//!
//! With a [`Purger`] (every `serve` of a single node and `ordercenter scheduler` wire one),
//! each pass also runs the purge jobs: bounded batches, each one statement, so several
//! schedulers purging at once only find less to delete.

mod purge;
mod stats;
mod sweep;
mod timeout;

use std::future::Future;
use std::sync::Arc;

use time::OffsetDateTime;

use oc_model::schedule::{DueOrder, ReservationCursor, ScheduleStore};
use oc_model::stock::StockStore;
use oc_model::{DomainResult, ShardId, UnixMillis};
use oc_tenant_config::ConfigHandle;

use crate::Core;
use crate::transitions::TransitionService;

pub use purge::{OutboxReader, PurgeSettings, PurgeStats, Purged, Purger};
pub use stats::SchedulerStats;
pub use sweep::Swept;
pub use timeout::Timeout;

/// The operator and source system a scheduler's transitions are recorded under.
pub const SOURCE_SCHEDULER: &str = "scheduler";

/// How a scheduler walks the shards.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// The pause between two passes over every shard. An order times out at most this long
    /// after its deadline (plus the pass itself).
    pub poll_interval: std::time::Duration,
    /// Rows read per page of due orders and expired reservations.
    pub batch_size: u32,
    /// A reservation whose order does not exist is released only once it is this old: a
    /// create writes its order right after reserving, and must not find its reservation
    /// given back while its order's transaction is in flight. Longer than any create takes
    /// (the edge's request timeout).
    pub orphan_grace: time::Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            poll_interval: std::time::Duration::from_secs(1),
            batch_size: 200,
            orphan_grace: time::Duration::seconds(60),
        }
    }
}

/// What one pass over every shard did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub fired: u64,
    pub skipped: u64,
    pub orphans_released: u64,
    pub settled: u64,
    /// Rows the purge jobs deleted (zero without a purger).
    pub purged: Purged,
    pub errors: u64,
}

/// The timeout worker and the reservation sweeper over every shard. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Scheduler {
    pub(crate) transitions: TransitionService,
    pub(crate) stock: Arc<dyn StockStore>,
    pub(crate) schedule: Arc<dyn ScheduleStore>,
    pub(crate) config: Arc<ConfigHandle>,
    pub(crate) settings: SchedulerSettings,
    pub(crate) stats: Arc<SchedulerStats>,
    pub(crate) purger: Option<Purger>,
}

impl Core {
    /// A scheduler over this core's transitions and stock, finding its work through
    /// `schedule` (the SQL order store implements the port).
    pub fn scheduler(
        &self,
        schedule: Arc<dyn ScheduleStore>,
        settings: SchedulerSettings,
    ) -> Scheduler {
        Scheduler {
            transitions: self.transitions.clone(),
            stock: Arc::clone(&self.stock.store),
            schedule,
            config: Arc::clone(&self.config),
            settings,
            stats: Arc::new(SchedulerStats::default()),
            purger: None,
        }
    }
}

impl Scheduler {
    /// Runs the purge jobs of `purger` in every pass, after the timeouts and the sweep.
    pub fn with_purger(mut self, purger: Purger) -> Scheduler {
        self.purger = Some(purger);
        self
    }

    /// The purge jobs' counters, when it runs them.
    pub fn purge_stats(&self) -> Option<Arc<PurgeStats>> {
        self.purger.as_ref().map(Purger::stats)
    }

    /// Its counters and lag, for `/metrics`.
    pub fn stats(&self) -> Arc<SchedulerStats> {
        Arc::clone(&self.stats)
    }

    fn now(&self) -> OffsetDateTime {
        self.transitions.orders.now_ms()
    }

    /// Pass after pass until `stop` resolves. A pass under way is dropped where it is: each
    /// change is one guarded transaction (rolled back when dropped before its commit), and
    /// a timeout committed whose release was not yet applied is settled by the sweeper of a
    /// later pass, of this instance or another.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let pass = self.pass();
            tokio::select! {
                () = &mut stop => return,
                report = pass => {
                    if report.errors > 0 {
                        tracing::warn!(?report, "scheduler pass had errors");
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// One pass over every shard: the due orders first (their timeouts release their
    /// reservations themselves), then the expired reservations.
    pub async fn pass(&self) -> PassReport {
        let mut report = PassReport::default();
        for shard in self.schedule.shards() {
            if let Err(error) = self.time_out_shard(shard, &mut report).await {
                report.errors += 1;
                self.stats.error();
                tracing::error!(shard = shard.0, error = %error.message, "timeout worker pass failed");
            }
            if let Err(error) = self.sweep_shard(shard, &mut report).await {
                report.errors += 1;
                self.stats.error();
                tracing::error!(shard = shard.0, error = %error.message, "reservation sweep failed");
            }
        }
        if let Some(purger) = &self.purger {
            match purger.pass(UnixMillis::floor(self.now())).await {
                Ok(purged) => report.purged = purged,
                Err(error) => {
                    report.errors += 1;
                    self.stats.error();
                    tracing::error!(error = %error.message, "purge pass failed");
                }
            }
        }
        self.stats.pass();
        report
    }

    /// Every order of `shard` due now, page by page (the cursor moves past the orders it
    /// could not time out, so they never hold up the ones behind them).
    async fn time_out_shard(&self, shard: ShardId, report: &mut PassReport) -> DomainResult<()> {
        let now = self.now();
        let now_ms = UnixMillis::floor(now);
        // lag: how late the oldest order still due is when the worker comes to it
        let lag = match self.schedule.earliest_deadline(shard).await? {
            Some(earliest) if earliest <= now_ms => now_ms.since(earliest),
            _ => 0,
        };
        self.stats.set_lag(shard, lag);
        let mut after: Option<DueOrder> = None;
        loop {
            let page = self
                .schedule
                .due_orders(shard, now_ms, after.as_ref(), self.settings.batch_size)
                .await?;
            for due in &page {
                match self.time_out(due, now).await {
                    Ok(Timeout::Fired) => {
                        report.fired += 1;
                        self.stats.fired();
                    }
                    Ok(skipped) => {
                        report.skipped += 1;
                        self.stats.skipped(skipped);
                    }
                    Err(error) => {
                        report.errors += 1;
                        self.stats.error();
                        tracing::error!(order_id = %due.id, tenant = %due.tenant, error = %error.message, "timing out an order failed");
                    }
                }
            }
            if page.len() < self.settings.batch_size as usize {
                return Ok(());
            }
            after = page.last().cloned();
        }
    }

    /// Every reservation of `shard` held past its expiry, page by page.
    async fn sweep_shard(&self, shard: ShardId, report: &mut PassReport) -> DomainResult<()> {
        let now = self.now();
        let mut after: Option<ReservationCursor> = None;
        loop {
            let page = self
                .schedule
                .expired_reservations(
                    shard,
                    UnixMillis::floor(now),
                    after.as_ref(),
                    self.settings.batch_size,
                )
                .await?;
            for reservation in &page {
                match self.sweep(reservation, now).await {
                    Ok(Swept::OrphanReleased) => {
                        report.orphans_released += 1;
                        self.stats.swept(Swept::OrphanReleased);
                    }
                    Ok(Swept::Settled) => {
                        report.settled += 1;
                        self.stats.swept(Swept::Settled);
                    }
                    Ok(Swept::Left) => {}
                    Err(error) => {
                        report.errors += 1;
                        self.stats.error();
                        tracing::error!(order_id = %reservation.order_id, sku = %reservation.sku, error = %error.message, "sweeping a reservation failed");
                    }
                }
            }
            if page.len() < self.settings.batch_size as usize {
                return Ok(());
            }
            after = page.last().map(ReservationCursor::of);
        }
    }
}
