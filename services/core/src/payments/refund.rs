//! Refunds at the provider (issue #15 item 5; the after-sales use cases call [`PaymentService::refund`]).
//!
//! # A refund's life
//!
//! 1. [`PaymentService::refund`] writes the refund `requested` and reserves its amount on the
//!    payment in one transaction with its `payment.refund_requested` event
//!    (`PaymentStore::insert_refund`: a conditional update that only matches while
//!    `refunded + amount <= captured`, and a `CHECK` on the same rule — however many refunds
//!    race, their sum never exceeds what was captured). A retry with the same refund key is
//!    the same refund. Then it submits attempt 1 to the provider.
//! 2. The provider answers asynchronously: a signed refund callback
//!    (`POST /v1/payments/refund-callbacks/{provider}`), or the answer to the active query
//!    worker's refund query. Either goes through [`PaymentService::apply_refund`], which
//!    applies it exactly once: `succeeded` settles the refund by a compare-and-set on
//!    `requested` (with `payment.refunded`); a `failed` attempt is recorded only while it is
//!    the live attempt (a compare-and-set on the attempt counters), and the worker submits the
//!    next attempt; when the last allowed attempt (`OC_PAYMENT_REFUND_ATTEMPTS`) fails, the
//!    refund settles `failed`, which gives its reservation back to the payment in the same
//!    transaction, with a `payment.refund_failed` event and the
//!    `oc_payment_refunds_failed_total` metric: it waits for manual handling
//!    ([`PaymentService::failed_refunds`], `GET /v1/payments/refunds?status=failed`).
//! 3. A submission the provider did not answer (down, timed out) is made again by the worker
//!    (the same attempt: idempotent at the provider), every `OC_PAYMENT_QUERY_INTERVAL_MS`.

use std::sync::Arc;

use oc_model::payment::{
    ProviderRefundReport, ProviderRefundRequest, ProviderRefundStatus, RefundInsert,
    RefundSettlement,
};
use oc_model::{
    DomainError, DomainResult, ErrorCode, Money, OrderEvent, Payment, PaymentEventType, PaymentId,
    PaymentNote, PaymentStatus, Refund, RefundId, RefundStatus, UnixMillis,
};

use super::PaymentService;
use super::view::{RefundCreated, RefundList, RefundView};
use crate::caller::Caller;

/// The longest refund key (the column's width).
const MAX_REFUND_KEY: usize = 128;

/// The longest reason kept.
const MAX_REASON: usize = 512;

/// Who is told when a refund settles for good: the after-sales domain, whose after-sale id is
/// the refund key. A trait here, implemented there, so the payments module does not import
/// the after-sales one (which calls [`PaymentService::refund_as`]).
pub trait RefundWatcher: Send + Sync + std::fmt::Debug {
    /// `refund` settled `succeeded` (or `failed` on its last attempt, its amount released).
    fn refund_settled<'a>(
        &'a self,
        refund: &'a Refund,
        succeeded: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

/// What a provider's word on a refund did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefundApplied {
    /// Money returned: the refund settled `succeeded`.
    Refunded,
    /// An attempt failed and another one is allowed: the worker submits it.
    Retrying,
    /// The last allowed attempt failed: settled `failed`, the reservation released, raised
    /// for manual handling.
    Failed,
    /// Said before (or about an attempt that is no longer live): nothing changed.
    Duplicate,
    /// Not decided at the provider yet: nothing changed.
    Pending,
}

impl RefundApplied {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundApplied::Refunded => "refunded",
            RefundApplied::Retrying => "retrying",
            RefundApplied::Failed => "failed",
            RefundApplied::Duplicate => "duplicate",
            RefundApplied::Pending => "pending",
        }
    }
}

fn truncated(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

impl PaymentService {
    /// Refund `amount` of a captured payment of an order at its provider — the use case the
    /// after-sales flow calls.
    ///
    /// - `refund_key`: the caller's id of this refund (an after-sale id, 1..=128 characters).
    ///   A retry with the same key answers the same refund (`replayed`), and asks nothing
    ///   of the provider again; the same key with another amount is `Conflict`.
    /// - `amount`: positive, in the payment's currency, at most what is left to refund (the
    ///   captured amount less every refund that did not fail) — else `InvalidInput` at
    ///   `/amount`, nothing written.
    /// - An order or payment the caller does not see is `NotFound`.
    ///
    /// The refund is answered `requested`: the provider's result arrives asynchronously and
    /// is applied by the callback or the active query (see the module documentation). A
    /// provider that does not answer now does not fail the call: the worker submits again.
    pub async fn refund(
        &self,
        caller: &Caller,
        order_id: &str,
        payment_id: &str,
        refund_key: &str,
        amount: Money,
        reason: Option<String>,
    ) -> DomainResult<RefundCreated> {
        self.refund_as(
            caller, order_id, payment_id, refund_key, amount, reason, None,
        )
        .await
    }

    /// [`PaymentService::refund`] under a refund id the caller chose before (an after-sale
    /// names its refund when it claims it); `None` generates one.
    #[allow(clippy::too_many_arguments)]
    pub async fn refund_as(
        &self,
        caller: &Caller,
        order_id: &str,
        payment_id: &str,
        refund_key: &str,
        amount: Money,
        reason: Option<String>,
        id: Option<RefundId>,
    ) -> DomainResult<RefundCreated> {
        if refund_key.trim().is_empty() || refund_key.chars().count() > MAX_REFUND_KEY {
            return Err(DomainError::invalid(
                "/refund_key",
                format!("a refund key is 1 to {MAX_REFUND_KEY} characters"),
            ));
        }
        if amount.minor <= 0 {
            return Err(DomainError::invalid(
                "/amount/minor",
                "a refund amount is positive",
            ));
        }
        let (order, payment) = self.payment_of(caller, order_id, payment_id).await?;
        if amount.currency != payment.amount.currency {
            return Err(DomainError::invalid(
                "/amount/currency",
                format!("the payment is in {}", payment.amount.currency.code()),
            ));
        }
        let now = self.now();
        let id = id.unwrap_or_else(|| {
            RefundId::generated(
                self.transitions
                    .orders
                    .ids
                    .next(payment.id.bucket(), UnixMillis::floor(now).as_u64()),
            )
        });
        let reason = reason.map(|text| truncated(&text, MAX_REASON));
        let refund = Refund {
            tenant: caller.tenant.clone(),
            id,
            payment_id: payment.id,
            order_id: payment.order_id,
            refund_key: refund_key.to_owned(),
            amount,
            status: RefundStatus::Requested,
            reason: reason.clone(),
            attempts: 0,
            failures: 0,
            failure: None,
            // the worker submits it then if the submission below is lost
            next_query_at: Some(now + self.settings.query_delay),
            created_at: now,
            updated_at: now,
        };
        let event = OrderEvent::payment(
            &order,
            refund_note(&payment, &refund, PaymentEventType::RefundRequested, reason),
            now,
        );
        match self.store.insert_refund(refund, vec![event]).await? {
            RefundInsert::Created(refund) => {
                self.stats.refund("request", "requested");
                self.submit_refund(&refund, &payment, "request").await;
                let refund = self
                    .store
                    .get_refund(&refund.tenant, refund.id)
                    .await?
                    .unwrap_or(refund);
                Ok(RefundCreated {
                    view: RefundView::from(&refund),
                    replayed: false,
                })
            }
            RefundInsert::Replayed(refund) if refund.amount == amount => Ok(RefundCreated {
                view: RefundView::from(&refund),
                replayed: true,
            }),
            RefundInsert::Replayed(refund) => Err(DomainError::new(
                ErrorCode::Conflict,
                format!(
                    "refund key {refund_key:?} was used for a refund of {} minor units",
                    refund.amount.minor
                ),
            )),
            RefundInsert::Exceeds { refundable } => Err(DomainError::invalid(
                "/amount",
                if payment.status == PaymentStatus::Succeeded {
                    format!("more than is left to refund of the payment ({refundable} minor units)")
                } else {
                    format!(
                        "the payment is {} and captured nothing to refund",
                        payment.status
                    )
                },
            )),
        }
    }

    /// Registers the domain told of settled refunds (once; later calls are ignored).
    pub fn watch_refunds(&self, watcher: Arc<dyn RefundWatcher>) {
        let _ = self.refund_watcher.set(watcher);
    }

    async fn tell_watcher(&self, refund: &Refund, succeeded: bool) {
        if let Some(watcher) = self.refund_watcher.get() {
            watcher.refund_settled(refund, succeeded).await;
        }
    }

    /// The refunds of an order's payment, oldest first.
    pub async fn refunds(
        &self,
        caller: &Caller,
        order_id: &str,
        payment_id: &str,
    ) -> DomainResult<RefundList> {
        let (_, payment) = self.payment_of(caller, order_id, payment_id).await?;
        let refunds = self
            .store
            .refunds_of_payment(&caller.tenant, payment.id)
            .await?;
        Ok(RefundList {
            items: refunds.iter().map(RefundView::from).collect(),
        })
    }

    /// The tenant's refunds that failed at the provider on every attempt (their amount went
    /// back to the payment): the manual-handling list, newest first, at most `limit`.
    pub async fn failed_refunds(&self, caller: &Caller, limit: u32) -> DomainResult<RefundList> {
        let mut items = Vec::new();
        for shard in self.store.payment_shards() {
            let refunds = self
                .store
                .refunds_with_status(shard, &caller.tenant, RefundStatus::Failed, limit)
                .await?;
            items.extend(refunds);
        }
        items.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
        items.truncate(limit as usize);
        Ok(RefundList {
            items: items.iter().map(RefundView::from).collect(),
        })
    }

    /// The order (the caller must see it) and its payment `payment_id`; anything else 404.
    async fn payment_of(
        &self,
        caller: &Caller,
        order_id: &str,
        payment_id: &str,
    ) -> DomainResult<(oc_model::Order, Payment)> {
        let order = self.transitions.orders.load(caller, order_id).await?;
        let not_found = || DomainError::not_found("payment not found");
        let id: PaymentId = payment_id.parse().map_err(|_| not_found())?;
        let payment = self
            .store
            .get_payment(&caller.tenant, id)
            .await?
            .filter(|payment| payment.order_id == order.main.id)
            .ok_or_else(not_found)?;
        Ok((order, payment))
    }

    /// Submit the next attempt of a refund that has none live at the provider, and apply
    /// the answer. A provider that does not answer leaves it to the worker.
    pub(crate) async fn submit_refund(
        &self,
        refund: &Refund,
        payment: &Payment,
        source: &'static str,
    ) -> Option<RefundApplied> {
        if refund.live_attempt().is_some() || refund.status != RefundStatus::Requested {
            return None;
        }
        let attempt = refund.failures + 1;
        let provider = self.providers.get(&payment.provider)?;
        let credentials = self.credentials(&refund.tenant, &payment.provider)?;
        let request = ProviderRefundRequest {
            refund_id: refund.id,
            payment_id: refund.payment_id,
            attempt,
            amount: refund.amount,
            notify_url: format!(
                "{}/v1/payments/refund-callbacks/{}",
                self.settings.public_url.trim_end_matches('/'),
                payment.provider
            ),
        };
        let report = match provider.refund(&credentials, &request).await {
            Ok(report) => report,
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, attempt, error = %error.message, "submitting a refund failed; the worker submits it again");
                self.stats.refund(source, "unsubmitted");
                return None;
            }
        };
        let now = self.now();
        let recorded = match self
            .store
            .record_refund_attempt(&refund.tenant, refund.id, attempt, now)
            .await
        {
            Ok(recorded) => recorded,
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, error = %error.message, "recording a refund attempt failed");
                return None;
            }
        };
        self.stats.refund(source, "submitted");
        // the answer may already be the result (a synchronous refusal, a quick provider).
        // Recorded, the refund is the one in hand with this attempt live; else someone moved
        // it first and it is read again
        let applied = if recorded {
            let refund = Refund {
                attempts: attempt,
                updated_at: now,
                ..refund.clone()
            };
            self.apply_counted(refund, report, source).await
        } else {
            self.apply_refund_report(refund.tenant.clone(), report, source)
                .await
        };
        match applied {
            Ok(applied) => Some(applied),
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, error = %error.message, "applying a refund answer failed");
                None
            }
        }
    }

    /// Apply a provider's report about a refund of `tenant` (re-reading the refund first).
    pub(crate) async fn apply_refund_report(
        &self,
        tenant: oc_model::TenantId,
        report: ProviderRefundReport,
        source: &'static str,
    ) -> DomainResult<RefundApplied> {
        let refund = self
            .store
            .get_refund(&tenant, report.refund_id)
            .await?
            .ok_or_else(|| DomainError::not_found("refund not found"))?;
        self.apply_counted(refund, report, source).await
    }

    /// [`Self::apply_refund`], counted under `source`.
    pub(crate) async fn apply_counted(
        &self,
        refund: Refund,
        report: ProviderRefundReport,
        source: &'static str,
    ) -> DomainResult<RefundApplied> {
        let applied = self.apply_refund(refund, report).await?;
        self.stats.refund(source, applied.as_str());
        Ok(applied)
    }

    /// Apply a provider's word on `refund` (from a submission's answer, a callback or a
    /// query): the one, exactly-once path (see the module documentation).
    pub async fn apply_refund(
        &self,
        refund: Refund,
        report: ProviderRefundReport,
    ) -> DomainResult<RefundApplied> {
        if refund.status != RefundStatus::Requested {
            return Ok(RefundApplied::Duplicate);
        }
        let now = self.now();
        match report.status {
            ProviderRefundStatus::Pending | ProviderRefundStatus::Unknown => {
                Ok(RefundApplied::Pending)
            }
            ProviderRefundStatus::Succeeded => {
                let settled = self
                    .settle_refund(&refund, RefundStatus::Succeeded, None, report.attempt, now)
                    .await?;
                Ok(if settled {
                    self.tell_watcher(&refund, true).await;
                    RefundApplied::Refunded
                } else {
                    RefundApplied::Duplicate
                })
            }
            ProviderRefundStatus::Failed => {
                let failure = truncated(
                    report.reason.as_deref().unwrap_or("failed at the provider"),
                    MAX_REASON,
                );
                if report.attempt >= self.settings.refund_attempts {
                    // the last allowed attempt: give the amount back and raise it for a person
                    let settled = self
                        .settle_refund(
                            &refund,
                            RefundStatus::Failed,
                            Some(failure),
                            report.attempt,
                            now,
                        )
                        .await?;
                    return Ok(if settled {
                        tracing::error!(refund_id = %refund.id, payment_id = %refund.payment_id, attempts = report.attempt, "refund failed on every attempt: released, raised for manual handling");
                        self.tell_watcher(&refund, false).await;
                        RefundApplied::Failed
                    } else {
                        RefundApplied::Duplicate
                    });
                }
                // only the live attempt's failure counts, once; the worker submits the next now
                let recorded = self
                    .store
                    .record_refund_failure(
                        &refund.tenant,
                        refund.id,
                        report.attempt,
                        &failure,
                        now,
                        now,
                    )
                    .await?;
                Ok(if recorded {
                    RefundApplied::Retrying
                } else {
                    RefundApplied::Duplicate
                })
            }
        }
    }

    async fn settle_refund(
        &self,
        refund: &Refund,
        status: RefundStatus,
        failure: Option<String>,
        attempt: u32,
        now: time::OffsetDateTime,
    ) -> DomainResult<bool> {
        let order = self
            .transitions
            .orders
            .store
            .get(&refund.tenant, refund.order_id)
            .await?
            .ok_or_else(|| DomainError::internal("a refund's order is missing"))?;
        let payment = self
            .store
            .get_payment(&refund.tenant, refund.payment_id)
            .await?
            .ok_or_else(|| DomainError::internal("a refund's payment is missing"))?;
        let what = match status {
            RefundStatus::Failed => PaymentEventType::RefundFailed,
            _ => PaymentEventType::Refunded,
        };
        let event = OrderEvent::payment(
            &order,
            refund_note(
                &payment,
                refund,
                what,
                failure.clone().or(refund.reason.clone()),
            ),
            now,
        );
        self.store
            .settle_refund(RefundSettlement {
                tenant: refund.tenant.clone(),
                id: refund.id,
                status,
                failure,
                attempt,
                at: now,
                events: vec![event],
            })
            .await
    }
}

/// A refund event's note: the payment, its provider, the refund's amount and id.
fn refund_note(
    payment: &Payment,
    refund: &Refund,
    what: PaymentEventType,
    reason: Option<String>,
) -> PaymentNote {
    PaymentNote {
        what,
        payment_id: payment.id,
        provider: payment.provider.clone(),
        amount: refund.amount,
        reported: None,
        reason,
        refund_id: Some(refund.id),
    }
}
