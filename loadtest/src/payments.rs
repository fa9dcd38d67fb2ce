//! The payment-callback step of `loadtest bench` (issue #15): how many provider callbacks
//! the order center verifies and applies per second.
//!
//! The sandbox provider runs in this process for one account of the `retail` tenant (the
//! server reads the same secret from the secrets file it is given). Before the step, orders
//! are created and a payment of each is created through the sandbox (it answers the pay URL);
//! then every step delivers the success callback of the next prepared payment — its body the
//! protocol's `PaymentReport`, signed with `oc_pay_http::protocol::sign`, byte for byte what
//! the sandbox sends — and counts it when the server answers that it `paid` the order (HMAC
//! check, the payment's compare-and-set, the order's `pay` transition and outbox events, one
//! transaction). A step after the prepared payments ran out is an error, never a duplicate
//! counted as applied; the step's `limit` ends the run when they are used up (before, each
//! further step failed at once: a closed loop spun through millions of such failures).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use oc_model::payment::ProviderCredentials;
use oc_model::{Money, PaymentId};
use oc_pay_http::Sandbox;
use oc_pay_http::protocol::{self, PaymentReport, ReportStatus};

use crate::engine::Step;
use crate::http::Http;
use crate::orders::{self, TenantProfile};
use crate::stats::Outcome;

const ACCOUNT: &str = "bench-retail";
const SECRET: &[u8] = b"bench-sandbox-secret-0123456789ab";
const SECRET_BASE64: &str = "YmVuY2gtc2FuZGJveC1zZWNyZXQtMDEyMzQ1Njc4OWFi";

/// The in-process sandbox and the server environment that wires it.
pub struct SandboxProvider {
    task: tokio::task::JoinHandle<()>,
    pub env: Vec<(&'static str, String)>,
}

impl SandboxProvider {
    /// Serve the sandbox on a loopback port and write the secrets file into `dir`.
    pub async fn start(dir: &Path) -> anyhow::Result<SandboxProvider> {
        let accounts = BTreeMap::from([(
            ACCOUNT.to_owned(),
            ProviderCredentials::new(ACCOUNT, SECRET.to_vec()),
        )]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let (_sandbox, address, task): (Sandbox, _, _) = Sandbox::serve(accounts, listener).await?;
        let secrets = dir.join("payment-secrets.json");
        std::fs::write(
            &secrets,
            format!(
                r#"{{"accounts":[{{"tenant":"retail","provider":"sandbox","account":"{ACCOUNT}","secret_base64":"{SECRET_BASE64}"}}]}}"#
            ),
        )?;
        Ok(SandboxProvider {
            task,
            env: vec![
                ("OC_PAYMENT_PROVIDERS", format!("sandbox=http://{address}")),
                ("OC_PAYMENT_SECRETS_FILE", secrets.display().to_string()),
                // the step delivers the callbacks itself: the sandbox sends none
                ("OC_PAYMENT_PUBLIC_URL", "http://127.0.0.1:9".to_owned()),
            ],
        })
    }
}

impl Drop for SandboxProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Create `count` retail orders and a sandbox payment of each, `workers` at a time:
/// (payment id, amount).
pub async fn prepare(
    http: &Http,
    tenant: &'static TenantProfile,
    count: u64,
    workers: u64,
) -> anyhow::Result<Vec<(PaymentId, Money)>> {
    Ok(prepare_orders(http, tenant, count, workers)
        .await?
        .into_iter()
        .map(|(_, payment, amount)| (payment, amount))
        .collect())
}

/// [`prepare`], keeping each payment's order id: (order id, payment id, amount).
pub async fn prepare_orders(
    http: &Http,
    tenant: &'static TenantProfile,
    count: u64,
    workers: u64,
) -> anyhow::Result<Vec<(String, PaymentId, Money)>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (http, next) = (http.clone(), Arc::clone(&next));
        tasks.spawn(async move {
            let generator = orders::Generator::default();
            let mut made = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return anyhow::Ok(made);
                }
                let (order, _) = generator.order(tenant, n);
                let answer = http
                    .call("POST", "/v1/orders", tenant.key, Some(&order), &[])
                    .await?;
                anyhow::ensure!(answer.status == 201, "create order: {}", answer.status);
                let id = answer.id().context("order id")?;
                let answer = http
                    .call(
                        "POST",
                        &format!("/v1/orders/{id}/payments"),
                        tenant.key,
                        Some(&serde_json::json!({ "provider": "sandbox" })),
                        &[],
                    )
                    .await?;
                anyhow::ensure!(
                    answer.status == 201,
                    "create payment: {} {}",
                    answer.status,
                    answer.text()
                );
                let payment = answer.json();
                made.push((
                    id,
                    payment["id"].as_str().context("payment id")?.parse()?,
                    serde_json::from_value(payment["amount"].clone())?,
                ));
            }
        });
    }
    let mut payments = Vec::new();
    while let Some(made) = tasks.join_next().await {
        payments.extend(made??);
    }
    Ok(payments)
}

/// Step `n` delivers the signed success callback of prepared payment `n`.
pub struct Callbacks {
    http: Http,
    payments: Vec<(PaymentId, Money)>,
}

impl Callbacks {
    pub fn new(http: Http, payments: Vec<(PaymentId, Money)>) -> Callbacks {
        Callbacks { http, payments }
    }
}

impl Step for Callbacks {
    fn limit(&self) -> Option<u64> {
        Some(self.payments.len() as u64)
    }

    async fn step(&self, n: u64) -> Outcome {
        // the engine stops at `limit`: this is never reached in a run
        let Some((payment_id, amount)) = self.payments.get(n as usize) else {
            return Outcome::failed(
                "callback",
                "ran out of prepared payments (raise --callback-payments)",
            );
        };
        let now = time::OffsetDateTime::now_utc();
        let report = PaymentReport {
            account: ACCOUNT.to_owned(),
            payment_id: *payment_id,
            status: ReportStatus::Succeeded,
            provider_txn_id: Some(format!("bench-{payment_id}")),
            amount: Some(*amount),
            paid_at: Some(now),
            reason: None,
        };
        // the body is signed as the exact bytes the client sends (it serialises this value)
        let body = match serde_json::to_value(&report) {
            Ok(body) => body,
            Err(error) => return Outcome::failed("callback", error),
        };
        let bytes = match serde_json::to_vec(&body) {
            Ok(bytes) => bytes,
            Err(error) => return Outcome::failed("callback", error),
        };
        let signed = protocol::sign(ACCOUNT, SECRET, now.unix_timestamp(), &bytes);
        let headers: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
        match self
            .http
            .call(
                "POST",
                "/v1/payments/callbacks/sandbox",
                "",
                Some(&body),
                &headers,
            )
            .await
        {
            Ok(answer) if answer.status == 200 && answer.json()["outcome"] == "paid" => {
                Outcome::status("callback", 200)
            }
            Ok(answer) => {
                Outcome::failed("callback", format!("{} {}", answer.status, answer.text()))
            }
            Err(error) => Outcome::failed("callback", error),
        }
    }
}
