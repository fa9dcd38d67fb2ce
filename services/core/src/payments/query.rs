//! The active query (seed 003: "the payment service polls unpaid orders every minute, retries
//! up to 30 minutes"): payments still pending `query_delay` after their creation are asked
//! about at their provider every `query_interval` until they expire, and the answer goes
//! through the one exactly-once path a callback takes ([`PaymentService::apply`]).
//!
//! Several workers (each single-node `serve`, each `ordercenter scheduler`) may walk the same
//! shards: a query is claimed first by moving the payment's `next_query_at` from the value
//! the worker read (a compare-and-set), so one of them asks the provider, and applying the
//! answer is exactly-once whoever does it.
//!
//! Requested refunds are walked the same way: each due one is claimed, then either submitted
//! (no attempt live at the provider: the first submission was lost, or the last attempt
//! failed and another is allowed) or queried, every `query_interval` until it settles.

use std::collections::BTreeMap;
use std::future::Future;

use oc_model::payment::ProviderPaymentState;
use oc_model::{DomainResult, Payment, PaymentStatus, Refund};

use super::{Applied, PaymentService, RefundApplied};

/// What became of one due payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queried {
    /// Asked, and the answer applied (or found nothing to apply).
    Applied(Applied),
    /// Another worker claimed this query first.
    Claimed,
    /// The provider did not answer (or the tenant has no account any more): tried again at
    /// the next query.
    Failed,
}

impl Queried {
    pub fn as_str(self) -> &'static str {
        match self {
            Queried::Applied(applied) => applied.as_str(),
            Queried::Claimed => "claimed",
            Queried::Failed => "unanswered",
        }
    }
}

impl PaymentService {
    /// Pass after pass over every shard until `stop` resolves.
    pub async fn run_queries(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                report = self.query_pass() => {
                    if let Err(error) = report {
                        tracing::warn!(error = %error.message, "payment query pass failed");
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// One pass: every payment due for a query now, on every shard, asked and applied.
    pub async fn query_pass(&self) -> DomainResult<BTreeMap<Queried, u64>> {
        let mut report = BTreeMap::new();
        for shard in self.store.payment_shards() {
            self.refund_pass(shard).await?;
            loop {
                let now = self.now();
                let page = self
                    .store
                    .payments_due(shard, now, self.settings.batch_size)
                    .await?;
                for payment in &page {
                    let outcome = self.query_one(payment.clone()).await;
                    self.stats.applied("query", outcome.as_str());
                    *report.entry(outcome).or_default() += 1;
                }
                // a claimed payment leaves the due set (its next query moved on): a full
                // page means there may be more due now
                if page.len() < self.settings.batch_size as usize {
                    break;
                }
            }
        }
        Ok(report)
    }

    async fn query_one(&self, payment: Payment) -> Queried {
        let Some(seen) = payment.next_query_at else {
            return Queried::Claimed;
        };
        let now = self.now();
        // a query at or after the expiry is the last: the provider takes no money after it,
        // so an answer of "not paid", or none at all, settles the payment `expired`. Its
        // claim still moves the next query on (not to none): a worker that dies before it
        // settles leaves the payment due, and the next pass expires it.
        let last = now >= payment.expires_at;
        let next = Some(now + self.settings.query_interval);
        match self
            .store
            .claim_payment_query(&payment.tenant, payment.id, seen, next)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Queried::Claimed,
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, error = %error.message, "claiming a payment query failed");
                return Queried::Failed;
            }
        }
        let Some(provider) = self.providers.get(&payment.provider) else {
            tracing::warn!(payment_id = %payment.id, provider = %payment.provider, "a pending payment's provider is not configured");
            return self
                .expire_if_last(&payment, last, "its provider is not configured")
                .await;
        };
        let Some(credentials) = self.credentials(&payment.tenant, &payment.provider) else {
            tracing::warn!(payment_id = %payment.id, "the tenant has no account with the payment's provider any more");
            return self
                .expire_if_last(
                    &payment,
                    last,
                    "the tenant has no account with its provider",
                )
                .await;
        };
        let state = match provider.query(&credentials, payment.id).await {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(payment_id = %payment.id, error = %error.message, "querying the provider failed; asking again at the next query");
                return self
                    .expire_if_last(
                        &payment,
                        last,
                        &format!(
                            "the provider did not answer the query at expiry: {}",
                            error.message
                        ),
                    )
                    .await;
            }
        };
        let id = payment.id;
        if last
            && matches!(
                state,
                ProviderPaymentState::Pending | ProviderPaymentState::Unknown
            )
        {
            return self
                .expire_if_last(&payment, last, "the provider reported it unpaid at expiry")
                .await;
        }
        match self.apply(payment, state).await {
            Ok(applied) => Queried::Applied(applied),
            Err(error) => {
                tracing::error!(payment_id = %id, error = %error.message, "applying a queried payment failed");
                Queried::Failed
            }
        }
    }
}

impl PaymentService {
    /// After the last query (`last`) found no money: settle the payment `expired`; before
    /// it, nothing (asked again at the next query).
    async fn expire_if_last(&self, payment: &Payment, last: bool, reason: &str) -> Queried {
        if !last {
            return Queried::Failed;
        }
        match self
            .settle_unpaid(payment, PaymentStatus::Expired, reason)
            .await
        {
            Ok(applied) => Queried::Applied(applied),
            Err(error) => {
                tracing::error!(payment_id = %payment.id, error = %error.message, "expiring a payment failed");
                Queried::Failed
            }
        }
    }

    /// Every refund of `shard` whose next step is due now: claimed, submitted or queried.
    async fn refund_pass(&self, shard: oc_model::ShardId) -> DomainResult<()> {
        loop {
            let now = self.now();
            let page = self
                .store
                .refunds_due(shard, now, self.settings.batch_size)
                .await?;
            for refund in &page {
                self.refund_step(refund.clone()).await;
            }
            if page.len() < self.settings.batch_size as usize {
                return Ok(());
            }
        }
    }

    async fn refund_step(&self, refund: Refund) -> Option<RefundApplied> {
        let seen = refund.next_query_at?;
        let now = self.now();
        match self
            .store
            .claim_refund_step(
                &refund.tenant,
                refund.id,
                seen,
                now + self.settings.query_interval,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => return None,
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, error = %error.message, "claiming a refund step failed");
                return None;
            }
        }
        let payment = match self
            .store
            .get_payment(&refund.tenant, refund.payment_id)
            .await
        {
            Ok(Some(payment)) => payment,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, error = %error.message, "reading a refund's payment failed");
                return None;
            }
        };
        if refund.live_attempt().is_none() {
            return self.submit_refund(&refund, &payment, "query").await;
        }
        let provider = self.providers.get(&payment.provider)?;
        let credentials = self.credentials(&refund.tenant, &payment.provider)?;
        let report = match provider.refund_query(&credentials, refund.id).await {
            Ok(report) => report,
            Err(error) => {
                tracing::warn!(refund_id = %refund.id, error = %error.message, "querying a refund failed; asking again at the next query");
                self.stats.refund("query", "unanswered");
                return None;
            }
        };
        // the claim just proved it requested: applied to the refund in hand, not read again
        let id = refund.id;
        match self.apply_counted(refund, report, "query").await {
            Ok(applied) => Some(applied),
            Err(error) => {
                tracing::error!(refund_id = %id, error = %error.message, "applying a queried refund failed");
                None
            }
        }
    }
}
