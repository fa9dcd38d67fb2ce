//! The after-sales step of `loadtest bench` (issue #20): after-sale applications per second
//! with refunds, against single-node mode with the sandbox payment provider in process.
//!
//! Before the step, retail orders are created, paid through the sandbox and their payments
//! captured by signed success callbacks (the payment step's [`payments::Callbacks`]). Each
//! step then takes the next paid order through a whole refund-only after-sale over HTTP: the
//! business line applies for one unit of the first line on the buyer's behalf (a user's
//! application: merchant review by default), customer service approves it and issues its one
//! refund, which the order center records on the captured payment (ledger check) and submits
//! to the sandbox. A step counts when the refund answer is 200 with the after-sale
//! `refunding` or `completed` (the provider's result is asynchronous: the sandbox sends no
//! callback here, so completion is left to the active query and not part of the figure). The
//! step has a `limit`: the run ends when the prepared orders are used up.

use anyhow::Context;
use oc_model::{Money, PaymentId};

use crate::engine::Step;
use crate::http::Http;
use crate::payments;
use crate::stats::Outcome;

/// The retail example's customer-service console key (TEST ONLY: public).
const RETAIL_CS_KEY: &str = "oc_test_retail_cs_0001_06f3d8a2c7b5e1943a0d";

/// Capture every prepared payment by its success callback, `workers` at a time; the paid
/// orders' ids.
pub async fn capture(
    http: &Http,
    prepared: Vec<(String, PaymentId, Money)>,
    workers: usize,
) -> anyhow::Result<Vec<String>> {
    let (orders, payments): (Vec<String>, Vec<(PaymentId, Money)>) = prepared
        .into_iter()
        .map(|(order, payment, amount)| (order, (payment, amount)))
        .unzip();
    let callbacks = std::sync::Arc::new(payments::Callbacks::new(http.clone(), payments));
    let mut paid = Vec::with_capacity(orders.len());
    for (chunk_start, chunk) in orders.chunks(workers.max(1)).enumerate() {
        let mut tasks = tokio::task::JoinSet::new();
        for offset in 0..chunk.len() {
            let callbacks = std::sync::Arc::clone(&callbacks);
            let n = (chunk_start * workers.max(1) + offset) as u64;
            tasks.spawn(async move { (offset, callbacks.step(n).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            let (offset, outcome) = joined?;
            if outcome.status == 200 {
                paid.push(chunk[offset].clone());
            } else {
                eprintln!(
                    "bench: a payment callback failed while preparing after-sales: {:?}",
                    outcome.detail
                );
            }
        }
    }
    Ok(paid)
}

/// Step `n` takes paid order `n` through apply → approve → refund.
pub struct Refunds {
    http: Http,
    key: &'static str,
    orders: Vec<String>,
}

impl Refunds {
    /// `key`: the business line's key (it applies); customer service reviews and refunds.
    pub fn new(http: Http, key: &'static str, orders: Vec<String>) -> Refunds {
        Refunds { http, key, orders }
    }

    async fn walk(&self, order: &str) -> anyhow::Result<Outcome> {
        let applied = self
            .http
            .call(
                "POST",
                &format!("/v1/orders/{order}/after-sales"),
                self.key,
                Some(
                    &serde_json::json!({"type": "refund_only", "channel": "user",
                    "reason": "bench", "lines": [{"line_no": 1, "quantity": 1}]}),
                ),
                &[],
            )
            .await?;
        if applied.status != 201 {
            return Ok(Outcome::failed(
                "after_sale",
                format!("apply: {} {}", applied.status, applied.text()),
            ));
        }
        let id = applied.id().context("after-sale id")?;
        let approved = self
            .http
            .call(
                "POST",
                &format!("/v1/after-sales/{id}/review"),
                RETAIL_CS_KEY,
                Some(&serde_json::json!({"decision": "approve"})),
                &[],
            )
            .await?;
        if approved.status != 200 {
            return Ok(Outcome::failed(
                "after_sale",
                format!("approve: {} {}", approved.status, approved.text()),
            ));
        }
        let refunded = self
            .http
            .call(
                "POST",
                &format!("/v1/after-sales/{id}/refund"),
                RETAIL_CS_KEY,
                Some(&serde_json::json!({})),
                &[],
            )
            .await?;
        let status = refunded.json()["status"].as_str().map(str::to_owned);
        Ok(match (refunded.status, status.as_deref()) {
            (200, Some("refunding" | "completed")) => Outcome::status("after_sale", 200),
            _ => Outcome::failed(
                "after_sale",
                format!("refund: {} {}", refunded.status, refunded.text()),
            ),
        })
    }
}

impl Step for Refunds {
    fn limit(&self) -> Option<u64> {
        Some(self.orders.len() as u64)
    }

    async fn step(&self, n: u64) -> Outcome {
        let Some(order) = self.orders.get(n as usize) else {
            return Outcome::failed("after_sale", "ran out of paid orders");
        };
        match self.walk(order).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::failed("after_sale", error),
        }
    }
}
