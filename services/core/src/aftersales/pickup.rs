//! The combined return pickup worker (issue #20 item 5, seed 000 "Return Logistics";
//! `ordercenter pickup`, and inside single-node `serve`). Each pass walks every shard twice:
//!
//! 1. **Gather.** Orders with an approved after-sale that sends goods back, has a pickup time
//!    within the lead (`OC_PICKUP_LEAD_MS`, seed: 10 minutes before the earliest) and no
//!    pickup yet. For each, every such after-sale of the order goes into **one** pickup: the
//!    nearest pickup time, their products and their total weight. The pickup row and the
//!    after-sales' claim on it are one transaction ([`PickupStore::create_pickup`]), so two
//!    workers gathering the same order cannot both write one.
//! 2. **Book.** Pending pickups whose next call is due: the call is claimed first (a
//!    compare-and-set on the attempt count that also moves the next call one backoff ahead,
//!    so a worker that dies mid-call leaves the pickup due again later), then the carrier is
//!    asked for a waybill with the pickup's idempotency key
//!    ([`ReturnPickup::idempotency_key`], derived from the durable row): a retry, a restarted
//!    worker or a second worker gets the waybill the carrier already made. Success writes the
//!    waybill on the pickup and on each after-sale with an `after_sale.pickup_booked` event;
//!    after `max_attempts` failed calls the pickup is skipped for an operator with an
//!    `after_sale.pickup_skipped` event on each after-sale (the alert) and
//!    `oc_pickup_alerts_total`. Other orders' pickups go on meanwhile.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use oc_model::aftersale::{AfterSale, AfterSaleHistoryEntry};
use oc_model::logistics::{
    AfterSaleMark, LogisticsProvider, PickupCandidate, PickupContact, PickupCreate, PickupItem,
    PickupOutcome, PickupRequest, PickupStatus, PickupStore, ReturnPickup, Waybill,
};
use oc_model::order::PartyRole;
use oc_model::sealing::{PartyField, SealedSite};
use oc_model::{DomainError, DomainResult, ErrorCode, Order, TransitionEvent, UnixMillis};

use super::{AfterSaleService, event};

/// The worker's pace and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickupSettings {
    /// Pause between two passes.
    pub poll_interval: Duration,
    /// How long before an after-sale's pickup time its order's pickup is gathered (seed: 10
    /// minutes before the earliest).
    pub lead: Duration,
    /// Carrier calls of one pickup before it is skipped and raised.
    pub max_attempts: u32,
    /// The wait after the first call; doubled after each, up to `backoff_max`. A claimed
    /// call is not made again before it, so it is also the longest a call may take.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Candidates and due pickups read per shard and pass.
    pub batch: u32,
}

impl Default for PickupSettings {
    fn default() -> Self {
        PickupSettings {
            poll_interval: Duration::from_secs(5),
            lead: Duration::from_secs(600),
            max_attempts: 5,
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(600),
            batch: 100,
        }
    }
}

impl PickupSettings {
    /// The wait after call `attempt` (1-based): `initial × 2^(attempt-1)`, capped. Not
    /// jittered: the claim already makes concurrent workers take turns.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PickupReport {
    /// Pickups written (each for one order's returns).
    pub created: u64,
    /// Pickups a waybill was recorded for.
    pub booked: u64,
    /// Carrier calls that failed (retried later).
    pub failed_calls: u64,
    /// Pickups skipped after their last attempt (each raised an alert).
    pub skipped: u64,
    /// Work another worker did first.
    pub lost: u64,
    /// Store errors (the work is found again next pass).
    pub errors: u64,
}

/// The worker's counters since start, at `/metrics`.
#[derive(Debug, Default)]
pub struct PickupStats {
    passes: AtomicU64,
    created: AtomicU64,
    booked: AtomicU64,
    failed_calls: AtomicU64,
    skipped: AtomicU64,
    lost: AtomicU64,
    errors: AtomicU64,
}

impl PickupStats {
    fn add(&self, report: &PickupReport) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.created.fetch_add(report.created, Ordering::Relaxed);
        self.booked.fetch_add(report.booked, Ordering::Relaxed);
        self.failed_calls
            .fetch_add(report.failed_calls, Ordering::Relaxed);
        self.skipped.fetch_add(report.skipped, Ordering::Relaxed);
        self.lost.fetch_add(report.lost, Ordering::Relaxed);
        self.errors.fetch_add(report.errors, Ordering::Relaxed);
    }

    /// Pickups skipped since start: each an alert.
    pub fn alerts_total(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The counters in the Prometheus text format: pickups by outcome
    /// (`oc_pickup_pickups_total{outcome=created|booked|skipped|lost}`), failed carrier calls
    /// (`oc_pickup_failed_calls_total`), alerts (`oc_pickup_alerts_total`: pickups skipped
    /// after their last attempt, for an operator), passes and errors.
    pub fn render(&self, out: &mut String) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        out.push_str("# HELP oc_pickup_pickups_total Combined return pickups, by outcome.\n# TYPE oc_pickup_pickups_total counter\n");
        for (outcome, counter) in [
            ("created", &self.created),
            ("booked", &self.booked),
            ("skipped", &self.skipped),
            ("lost", &self.lost),
        ] {
            let _ = writeln!(
                out,
                "oc_pickup_pickups_total{{outcome=\"{outcome}\"}} {}",
                load(counter)
            );
        }
        let _ = write!(
            out,
            "# HELP oc_pickup_failed_calls_total Carrier calls that failed (retried with backoff).\n# TYPE oc_pickup_failed_calls_total counter\noc_pickup_failed_calls_total {}\n\
             # HELP oc_pickup_alerts_total Pickups skipped after their last attempt, left for an operator.\n# TYPE oc_pickup_alerts_total counter\noc_pickup_alerts_total {}\n\
             # HELP oc_pickup_passes_total Passes of the pickup worker.\n# TYPE oc_pickup_passes_total counter\noc_pickup_passes_total {}\n\
             # HELP oc_pickup_errors_total Store errors of the pickup worker (retried next pass).\n# TYPE oc_pickup_errors_total counter\noc_pickup_errors_total {}\n",
            load(&self.failed_calls),
            load(&self.skipped),
            load(&self.passes),
            load(&self.errors),
        );
    }
}

/// The worker. Built by [`AfterSaleService::pickup_worker`]; cheap to clone. Any number may
/// run.
#[derive(Debug, Clone)]
pub struct PickupWorker {
    after_sales: AfterSaleService,
    store: Arc<dyn PickupStore>,
    provider: Arc<dyn LogisticsProvider>,
    settings: PickupSettings,
    stats: Arc<PickupStats>,
}

/// The operator name pickup changes carry in the after-sale history.
const OPERATOR: &str = "pickup";

impl AfterSaleService {
    /// The combined return pickup worker over `store`, booking with `provider`.
    pub fn pickup_worker(
        &self,
        store: Arc<dyn PickupStore>,
        provider: Arc<dyn LogisticsProvider>,
        settings: PickupSettings,
    ) -> PickupWorker {
        PickupWorker {
            after_sales: self.clone(),
            store,
            provider,
            settings,
            stats: Arc::new(PickupStats::default()),
        }
    }
}

fn to_std(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

impl PickupWorker {
    pub fn stats(&self) -> Arc<PickupStats> {
        Arc::clone(&self.stats)
    }

    pub fn settings(&self) -> &PickupSettings {
        &self.settings
    }

    /// Passes until `stop` resolves (a pass is dropped mid-way then: everything it wrote is
    /// whole, and what it did not finish is found again by the next worker).
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                report = self.pass() => {
                    if report.errors > 0 || report.skipped > 0 {
                        tracing::warn!(?report, "pickup pass had errors or skipped pickups");
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.after_sales.orders.now_ms()
    }

    /// One pass: gather, then book, on every shard.
    pub async fn pass(&self) -> PickupReport {
        let mut report = PickupReport::default();
        for shard in self.store.pickup_shards() {
            let due_by = self.now() + to_std(self.settings.lead);
            match self
                .store
                .orders_due_for_pickup(shard, due_by, self.settings.batch)
                .await
            {
                Ok(candidates) => {
                    for candidate in candidates {
                        if let Err(error) = self.gather(&candidate, &mut report).await {
                            tracing::warn!(%error, tenant = %candidate.tenant, order_id = %candidate.order_id, "gathering a pickup failed");
                            report.errors += 1;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, shard = shard.0, "listing orders due for pickup failed");
                    report.errors += 1;
                }
            }
            match self
                .store
                .pickups_due(shard, self.now(), self.settings.batch)
                .await
            {
                Ok(due) => {
                    for pickup in due {
                        if let Err(error) = self.book(&pickup, &mut report).await {
                            tracing::warn!(%error, tenant = %pickup.tenant, pickup_id = %pickup.id, "booking a pickup failed");
                            report.errors += 1;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, shard = shard.0, "listing due pickups failed");
                    report.errors += 1;
                }
            }
        }
        self.stats.add(&report);
        report
    }

    /// Write one pickup for every approved return of the candidate's order without one.
    async fn gather(
        &self,
        candidate: &PickupCandidate,
        report: &mut PickupReport,
    ) -> DomainResult<()> {
        let order = self
            .after_sales
            .order_of(&candidate.tenant, candidate.order_id)
            .await?;
        let waiting: Vec<AfterSale> = self
            .after_sales
            .store
            .after_sales_of_order(&candidate.tenant, candidate.order_id)
            .await?
            .into_iter()
            .filter(|a| {
                a.status.as_str() == "approved"
                    && a.kind.returns_goods()
                    && a.pickup_at.is_some()
                    && a.pickup_id.is_none()
            })
            .collect();
        let Some(pickup_at) = waiting.iter().filter_map(|a| a.pickup_at).min() else {
            return Ok(());
        };
        let mut items = Vec::new();
        for after_sale in &waiting {
            for line in &after_sale.lines {
                let order_line = order.lines.iter().find(|l| l.line_no == line.line_no);
                let unit_weight = order_line
                    .and_then(|l| l.unit_weight_grams)
                    .map_or(0, u64::from);
                items.push(PickupItem {
                    after_sale_id: after_sale.id,
                    sku: line.sku.clone(),
                    product_name: order_line
                        .map(|l| l.product_name.clone())
                        .unwrap_or_default(),
                    quantity: line.quantity,
                    weight_grams: unit_weight * u64::from(line.quantity),
                });
            }
        }
        let now = self.now();
        let pickup = ReturnPickup {
            tenant: candidate.tenant.clone(),
            id: self
                .after_sales
                .orders
                .ids
                .next(order.main.id.bucket(), UnixMillis::floor(now).as_u64()),
            order_id: order.main.id,
            // assigned by the store, inside the transaction
            seq: 0,
            status: PickupStatus::Pending,
            pickup_at,
            total_weight_grams: items.iter().map(|i| i.weight_grams).sum(),
            items,
            attempts: 0,
            next_attempt_at: Some(now),
            waybill: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        let taken: Vec<_> = waiting.iter().map(|a| (a.id, a.version)).collect();
        match self.store.create_pickup(pickup, &taken).await? {
            PickupCreate::Created(pickup) => {
                tracing::info!(tenant = %pickup.tenant, order_id = %pickup.order_id, pickup_id = %pickup.id, after_sales = taken.len(), "pickup written");
                report.created += 1;
            }
            PickupCreate::Lost => report.lost += 1,
        }
        Ok(())
    }

    /// The buyer's contact, opened from the order's receiver.
    fn contact(&self, order: &Order) -> DomainResult<PickupContact> {
        let receiver = order.parties.receiver.as_ref().ok_or_else(|| {
            DomainError::invalid("/receiver", "the order has no receiver to collect from")
        })?;
        let sealer = &self.after_sales.orders.sealer;
        let open = |field: PartyField| {
            sealer.open_text(
                &order.main.tenant,
                order.main.id,
                &SealedSite::Party {
                    role: PartyRole::Receiver,
                    field,
                },
                receiver.pii_field(field),
            )
        };
        Ok(PickupContact {
            name: open(PartyField::Name)?,
            phone: open(PartyField::Phone)?,
            address: open(PartyField::Address)?,
            region: receiver.region.clone(),
        })
    }

    /// Claim and make one carrier call for a due pickup; record what it answered.
    async fn book(&self, pickup: &ReturnPickup, report: &mut PickupReport) -> DomainResult<()> {
        let now = self.now();
        if pickup.attempts >= self.settings.max_attempts {
            // the last call failed and the skip was not written (a crash in between)
            let error = pickup.last_error.clone().unwrap_or_default();
            return self.skip(pickup, error, report).await;
        }
        let attempt = pickup.attempts + 1;
        let next = now + to_std(self.settings.backoff(attempt));
        if !self
            .store
            .claim_pickup_attempt(&pickup.tenant, pickup.id, pickup.attempts, next, now)
            .await?
        {
            report.lost += 1;
            return Ok(());
        }
        let order = self
            .after_sales
            .order_of(&pickup.tenant, pickup.order_id)
            .await?;
        let answer = match self.contact(&order) {
            Ok(contact) => {
                let request = PickupRequest {
                    idempotency_key: pickup.idempotency_key(),
                    tenant: pickup.tenant.clone(),
                    order_id: pickup.order_id,
                    pickup_at: pickup.pickup_at,
                    contact,
                    items: pickup.items.clone(),
                    total_weight_grams: pickup.total_weight_grams,
                };
                self.provider.create_pickup(&request).await
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(waybill) => {
                if self
                    .finish(pickup, PickupStatus::Booked, Some(waybill), None)
                    .await?
                {
                    report.booked += 1;
                } else {
                    report.lost += 1;
                }
                Ok(())
            }
            Err(error) => {
                report.failed_calls += 1;
                tracing::info!(error = %error.message, tenant = %pickup.tenant, pickup_id = %pickup.id, attempt, "carrier call failed");
                self.store
                    .record_pickup_failure(&pickup.tenant, pickup.id, &error.message, self.now())
                    .await?;
                if attempt >= self.settings.max_attempts {
                    self.skip(pickup, error.message, report).await?;
                }
                Ok(())
            }
        }
    }

    async fn skip(
        &self,
        pickup: &ReturnPickup,
        error: String,
        report: &mut PickupReport,
    ) -> DomainResult<()> {
        if self
            .finish(pickup, PickupStatus::Skipped, None, Some(error.clone()))
            .await?
        {
            tracing::error!(tenant = %pickup.tenant, order_id = %pickup.order_id, pickup_id = %pickup.id, attempts = self.settings.max_attempts, %error, "pickup skipped after its last attempt: alert");
            report.skipped += 1;
        } else {
            report.lost += 1;
        }
        Ok(())
    }

    /// End the pickup and mark its after-sales, re-reading them if one moved meanwhile.
    async fn finish(
        &self,
        pickup: &ReturnPickup,
        status: PickupStatus,
        waybill: Option<Waybill>,
        error: Option<String>,
    ) -> DomainResult<bool> {
        let fired: TransitionEvent = event(match status {
            PickupStatus::Skipped => "pickup_skipped",
            _ => "pickup_booked",
        });
        let mut attempts_left = 3;
        loop {
            let order = self
                .after_sales
                .order_of(&pickup.tenant, pickup.order_id)
                .await?;
            let now = self.now();
            let after_sales = self
                .after_sales
                .store
                .after_sales_of_order(&pickup.tenant, pickup.order_id)
                .await?;
            let marks = after_sales
                .into_iter()
                .filter(|a| a.pickup_id == Some(pickup.id))
                .map(|after_sale| {
                    let mut next = after_sale.clone();
                    next.version += 1;
                    next.updated_at = now;
                    next.waybill_no = waybill.as_ref().map(|w| w.waybill_no.clone());
                    AfterSaleMark {
                        id: after_sale.id,
                        expected_version: after_sale.version,
                        history: AfterSaleHistoryEntry {
                            version: next.version,
                            from: Some(after_sale.status.clone()),
                            to: after_sale.status.clone(),
                            event: fired.clone(),
                            channel: after_sale.channel,
                            operator: OPERATOR.to_owned(),
                            reason: waybill
                                .as_ref()
                                .map(|w| format!("waybill {} ({})", w.waybill_no, w.carrier))
                                .or_else(|| error.clone())
                                .map(|text| text.chars().take(512).collect()),
                            occurred_at: now,
                        },
                        event: next.order_event(&order, &fired),
                    }
                })
                .collect();
            match self
                .store
                .finish_pickup(PickupOutcome {
                    tenant: pickup.tenant.clone(),
                    id: pickup.id,
                    status,
                    waybill: waybill.clone(),
                    error: error.clone(),
                    at: now,
                    marks,
                })
                .await
            {
                Err(e) if e.code == ErrorCode::PreconditionFailed && attempts_left > 1 => {
                    attempts_left -= 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_the_first_wait_up_to_its_cap() {
        let settings = PickupSettings {
            backoff_initial: Duration::from_millis(300),
            backoff_max: Duration::from_secs(2),
            ..PickupSettings::default()
        };
        let waits: Vec<u128> = (1..=6).map(|n| settings.backoff(n).as_millis()).collect();
        assert_eq!(waits, [300, 600, 1_200, 2_000, 2_000, 2_000]);
        // far past any real attempt count: capped, no overflow
        assert_eq!(settings.backoff(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn a_skipped_pickup_is_an_alert_on_the_metrics() {
        let stats = PickupStats::default();
        stats.add(&PickupReport {
            created: 1,
            failed_calls: 3,
            skipped: 1,
            ..PickupReport::default()
        });
        let mut out = String::new();
        stats.render(&mut out);
        assert!(out.contains("oc_pickup_alerts_total 1\n"), "{out}");
        assert!(out.contains("oc_pickup_failed_calls_total 3\n"), "{out}");
        assert!(
            out.contains("oc_pickup_pickups_total{outcome=\"created\"} 1\n"),
            "{out}"
        );
        assert_eq!(stats.alerts_total(), 1);
    }
}
