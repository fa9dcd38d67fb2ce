//! Payments end to end (issue #15): the real `ordercenter` (single-node `serve` on SQLite; on
//! MariaDB shards `serve` and `ordercenter scheduler`), the sandbox provider as the external
//! party over real HTTP on loopback, callbacks signed with the secrets file both read.
//!
//! Paid by callback; 50 duplicate callbacks delivered at once fire one `pay`; a forged
//! signature, an old timestamp and a wrong amount are refused with nothing changed; a payment
//! for an order that timed out records the money as `refund_required` and the order stays
//! cancelled; with every callback dropped (and queries failing for a while) the active query
//! pays the order.
//!
//! Refunds at the provider: 32 concurrent refund requests never reserve more than was
//! captured (checked in the shards); a duplicated refund callback applies once; a dropped
//! refund callback is settled by the active query; a refund failing at the provider on every
//! attempt releases its amount and is listed for manual handling.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use oc_model::payment::ProviderCredentials;
use oc_pay_http::protocol::{self, PaymentReport, ReportStatus};
use oc_pay_http::{Faults, Sandbox};

const SECRET: &[u8] = b"sandbox-secret-retail-0123456789";
const ACCOUNT: &str = "retail-shop";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    MariaDb,
}

/// The server (and on MariaDB the scheduler) with the sandbox provider wired in.
struct Setup {
    port: u16,
    sandbox: Sandbox,
    sandbox_port: u16,
    runtime: tokio::runtime::Runtime,
    _servers: Vec<Server>,
    _data: tempfile::TempDir,
    _tenants: tempfile::TempDir,
    databases: Option<oc_test_support::TestDatabases>,
}

impl Setup {
    /// `window_seconds`: retail `standard`'s payment window; `extra`: more environment.
    fn start(backend: Backend, label: &str, window_seconds: u32, extra: &[(&str, &str)]) -> Setup {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let accounts = BTreeMap::from([(
            ACCOUNT.to_owned(),
            ProviderCredentials::new(ACCOUNT, SECRET.to_vec()),
        )]);
        let (sandbox, sandbox_address) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (sandbox, address, _task) = Sandbox::serve(accounts, listener).await.unwrap();
            (sandbox, address)
        });
        let data = tempfile::tempdir().unwrap();
        let secrets = data.path().join("payment-secrets.json");
        std::fs::write(
            &secrets,
            format!(
                r#"{{"accounts":[{{"tenant":"retail","provider":"sandbox","account":"{ACCOUNT}","secret_base64":"{}"}}]}}"#,
                base64_of(SECRET)
            ),
        )
        .unwrap();
        let tenants = copy_of_examples();
        with_payment_window(tenants.path(), "retail", window_seconds.into());
        let databases = match backend {
            Backend::Sqlite => None,
            Backend::MariaDb => Some(
                runtime
                    .block_on(oc_test_support::TestDatabases::create(label, 2))
                    .unwrap(),
            ),
        };
        let port = free_port();
        let base = |data: &std::path::Path| {
            let mut command = command(data);
            command
                .env("OC_TENANT_CONFIG_DIR", tenants.path())
                .env(
                    "OC_PAYMENT_PROVIDERS",
                    format!("sandbox=http://{sandbox_address}"),
                )
                .env("OC_PAYMENT_SECRETS_FILE", &secrets)
                .env("OC_PAYMENT_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
                .env("OC_SCHEDULER_POLL_MS", "200")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (name, value) in extra {
                command.env(name, value);
            }
            if let Some(databases) = &databases {
                on_shards(&mut command, &databases.urls().join(","));
            }
            command
        };
        if databases.is_some() {
            keys_init(base(data.path()));
        }
        let mut servers = vec![serve(base(data.path()), port)];
        if databases.is_some() {
            // a cluster's serve runs no workers: the active query runs in the scheduler
            servers.push(start(base(data.path()), "scheduler", free_port()));
        }
        Setup {
            port,
            sandbox,
            sandbox_port: sandbox_address.port(),
            runtime,
            _servers: servers,
            _data: data,
            _tenants: tenants,
            databases,
        }
    }

    fn finish(mut self) {
        self._servers.clear();
        if let Some(databases) = self.databases.take() {
            self.runtime.block_on(databases.cleanup()).unwrap();
        }
    }

    /// A retail order (88.00 CNY) and a payment of it through the sandbox: (order, payment).
    fn order_with_payment(&self, buyer: &str) -> (serde_json::Value, serde_json::Value) {
        let order = create_retail_order(self.port, buyer, "SKU-PAY");
        let id = order["id"].as_str().unwrap();
        let (status, body) = request(
            self.port,
            "POST",
            &format!("/v1/orders/{id}/payments"),
            &[("Idempotency-Key", &format!("pay-{buyer}"))],
            Some(r#"{"provider":"sandbox"}"#),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
        (order, serde_json::from_str(&body).unwrap())
    }

    fn order(&self, id: &str) -> serde_json::Value {
        let (status, body) = http(self.port, "GET", &format!("/v1/orders/{id}"), None).unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn payments(&self, order_id: &str) -> Vec<serde_json::Value> {
        let (status, body) = http(
            self.port,
            "GET",
            &format!("/v1/orders/{order_id}/payments"),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        list["items"].as_array().unwrap().clone()
    }

    /// The order's history from its shard: (event, to) oldest first. The truth on both
    /// backends: on MariaDB the scheduler process changes orders behind the API's in-process
    /// cache (a cluster's projector refreshes it; these tests run none), so a GET of the order
    /// may trail what the shard holds.
    fn history(&self, order_id: &str) -> Vec<(String, String)> {
        let (status, body) = http(
            self.port,
            "GET",
            &format!("/v1/orders/{order_id}/history"),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let history: serde_json::Value = serde_json::from_str(&body).unwrap();
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["event"].as_str().unwrap().to_owned(),
                    item["to"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn history_events(&self, order_id: &str) -> Vec<String> {
        self.history(order_id)
            .into_iter()
            .map(|(event, _)| event)
            .collect()
    }

    /// The order's status and version as its shard holds them (see [`Self::history`]).
    fn status(&self, order_id: &str) -> (String, usize) {
        let history = self.history(order_id);
        let status = history
            .last()
            .map_or("pending_payment".to_owned(), |(_, to)| to.clone());
        (status, history.len() + 1)
    }

    /// The buyer pays at the sandbox (optionally another amount, in minor units).
    fn pay(&self, payment_id: &str, amount_minor: Option<i64>) {
        let body = amount_minor
            .map(|minor| format!(r#"{{"amount":{{"minor":{minor},"currency":"CNY"}}}}"#));
        let (status, answer) = http(
            self.sandbox_port,
            "POST",
            &format!("/sandbox/pay/{payment_id}"),
            body.as_deref(),
        )
        .unwrap();
        assert_eq!(status, 200, "{answer}");
    }

    fn wait_status(&self, order_id: &str, status: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.status(order_id).0 == status {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "order {order_id} not {status} within {limit:?}: {:?}",
                self.status(order_id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A paid retail order (88.00 CNY): (order id, payment id).
    fn paid_order(&self, buyer: &str) -> (String, String) {
        let (order, payment) = self.order_with_payment(buyer);
        let (order_id, payment_id) = (id_of(&order), id_of(&payment));
        self.pay(&payment_id, None);
        self.wait_status(&order_id, "paid", Duration::from_secs(20));
        (order_id, payment_id)
    }

    /// `POST …/refunds` of `minor` fen with `key`: (status, body).
    fn refund(&self, order_id: &str, payment_id: &str, key: &str, minor: i64) -> (u16, String) {
        request(
            self.port,
            "POST",
            &format!("/v1/orders/{order_id}/payments/{payment_id}/refunds"),
            &[],
            Some(&format!(
                r#"{{"refund_key":"{key}","amount":{{"minor":{minor},"currency":"CNY"}},"reason":"after-sale {key}"}}"#
            )),
        )
        .unwrap()
    }

    fn refunds(&self, order_id: &str, payment_id: &str) -> Vec<serde_json::Value> {
        let (status, body) = http(
            self.port,
            "GET",
            &format!("/v1/orders/{order_id}/payments/{payment_id}/refunds"),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        list["items"].as_array().unwrap().clone()
    }

    /// Wait until every refund of the payment is out of `requested`; answers them.
    fn wait_refunds_settled(
        &self,
        order_id: &str,
        payment_id: &str,
        limit: Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let refunds = self.refunds(order_id, payment_id);
            if refunds.iter().all(|r| r["status"] != "requested") {
                return refunds;
            }
            assert!(
                Instant::now() < deadline,
                "refunds still requested: {refunds:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every payment in every shard, read from the database itself: (captured, refunded
    /// column, sum of the refunds that did not fail).
    fn refund_sums_in_shards(&self) -> Vec<(i64, i64, i64)> {
        let urls = self.shard_urls();
        self.runtime.block_on(async {
            sqlx::any::install_default_drivers();
            let mut sums = Vec::new();
            for url in urls {
                let pool = sqlx::AnyPool::connect(&url).await.unwrap();
                let rows = sqlx::query(
                    "SELECT p.captured, p.refunded, CAST((SELECT COALESCE(SUM(r.amount), 0) FROM payment_refunds r WHERE r.tenant = p.tenant AND r.payment_id = p.id AND r.status IN ('requested', 'succeeded')) AS SIGNED) AS held FROM payments p WHERE p.status = 'succeeded'",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                use sqlx::Row as _;
                for row in rows {
                    let int = |name: &str| -> i64 { row.try_get::<i64, _>(name).unwrap() };
                    sums.push((int("captured"), int("refunded"), int("held")));
                }
                pool.close().await;
            }
            sums
        })
    }

    /// Outbox events of `order_id` that are payment events of kind `what` (CloudEvents type
    /// `com.ordercenter.payment.<what>`), in the shards.
    fn outbox_events(&self, order_id: &str, what: &str) -> i64 {
        let urls = self.shard_urls();
        let pattern = format!("%\"what\":\"{what}\"%");
        self.runtime.block_on(async {
            sqlx::any::install_default_drivers();
            let mut count = 0;
            for url in urls {
                let pool = sqlx::AnyPool::connect(&url).await.unwrap();
                let row = sqlx::query(
                    "SELECT COUNT(*) FROM outbox WHERE order_id = ? AND payload LIKE ?",
                )
                .bind(order_id.parse::<i64>().unwrap())
                .bind(pattern.as_str())
                .fetch_one(&pool)
                .await
                .unwrap();
                use sqlx::Row as _;
                count += row.try_get::<i64, _>(0).unwrap();
                pool.close().await;
            }
            count
        })
    }

    fn shard_urls(&self) -> Vec<String> {
        let urls: Vec<String> = match &self.databases {
            Some(databases) => databases.urls().to_vec(),
            None => std::fs::read_dir(self._data.path())
                .unwrap()
                .filter_map(|entry| {
                    let path = entry.unwrap().path();
                    let name = path.file_name()?.to_str()?.to_owned();
                    (name.starts_with("shard-") && name.ends_with(".db"))
                        .then(|| format!("sqlite://{}", path.display()))
                })
                .collect(),
        };
        assert!(!urls.is_empty());
        urls
    }

    /// Wait until the order's first payment is in `status`; answers it.
    fn wait_payment(&self, order_id: &str, status: &str, limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let payment = self.payments(order_id)[0].clone();
            if payment["status"] == status {
                return payment;
            }
            assert!(
                Instant::now() < deadline,
                "payment not {status} within {limit:?}: {payment}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The buyer's payment fails at the sandbox.
    fn fail(&self, payment_id: &str) {
        let (status, answer) = http(
            self.sandbox_port,
            "POST",
            &format!("/sandbox/fail/{payment_id}"),
            Some(r#"{"reason":"card declined"}"#),
        )
        .unwrap();
        assert_eq!(status, 200, "{answer}");
    }

    fn metric(&self, name: &str) -> f64 {
        let (status, body) = http(self.port, "GET", "/metrics", None).unwrap();
        assert_eq!(status, 200, "{body}");
        body.lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .map(|value| value.trim().parse::<f64>().unwrap())
            .sum()
    }

    /// A callback as a provider sends it: `report` signed by `secret` at `timestamp`.
    fn callback(&self, report: &PaymentReport, secret: &[u8], timestamp: i64) -> (u16, String) {
        let body = serde_json::to_string(report).unwrap();
        let signed = protocol::sign(ACCOUNT, secret, timestamp, body.as_bytes());
        let headers: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
        request(
            self.port,
            "POST",
            "/v1/payments/callbacks/sandbox",
            &headers,
            Some(&body),
        )
        .unwrap()
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn now_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn id_of(value: &serde_json::Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

/// Created with what the buyer pays with, idempotent by key, listed; paid by the sandbox's
/// callback: the order is `paid` through one `pay` transition recorded by `payments`, the
/// payment `succeeded` and `applied`.
fn paid_by_callback(backend: Backend) {
    let setup = Setup::start(backend, "pay_callback", 1800, &[]);
    let (order, payment) = setup.order_with_payment("buyer-cb");
    let (order_id, payment_id) = (id_of(&order), id_of(&payment));
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["amount"], order["finance"]["payable"]);
    assert!(
        payment["pay_url"].as_str().unwrap().contains(&payment_id),
        "{payment}"
    );
    assert!(payment["qr_payload"].as_str().is_some(), "{payment}");
    // the same key: the same payment, not a second one
    let (status, body) = request(
        setup.port,
        "POST",
        &format!("/v1/orders/{order_id}/payments"),
        &[("Idempotency-Key", "pay-buyer-cb")],
        Some(r#"{"provider":"sandbox"}"#),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let replayed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(id_of(&replayed), payment_id);
    assert_eq!(setup.payments(&order_id).len(), 1);

    setup.pay(&payment_id, None);
    setup.wait_status(&order_id, "paid", Duration::from_secs(20));
    assert_eq!(setup.history_events(&order_id), ["pay"]);
    let listed = setup.payments(&order_id);
    assert_eq!(
        (listed[0]["status"].as_str(), listed[0]["effect"].as_str()),
        (Some("succeeded"), Some("applied"))
    );
    assert_eq!(
        setup.order(&order_id)["finance"]["payments"][0]["payment_id"],
        payment_id.as_str()
    );
    setup.finish();
}

/// 50 copies of the callback delivered at once: one `pay` transition; every other copy
/// answered 200 as a duplicate, nothing else changed.
fn fifty_duplicate_callbacks_fire_one_pay(backend: Backend) {
    let setup = Setup::start(backend, "pay_dup", 1800, &[]);
    let (order, payment) = setup.order_with_payment("buyer-dup");
    let (order_id, payment_id) = (id_of(&order), id_of(&payment));
    setup.sandbox.set_faults(Faults {
        duplicates: 49,
        ..Faults::default()
    });
    let started = Instant::now();
    setup.pay(&payment_id, None);
    setup.wait_status(&order_id, "paid", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(20);
    let applied = loop {
        let paid = setup.metric("oc_payment_reports_total{source=\"callback\",outcome=\"paid\"}");
        let duplicate =
            setup.metric("oc_payment_reports_total{source=\"callback\",outcome=\"duplicate\"}");
        if paid + duplicate >= 50.0 || Instant::now() > deadline {
            break (paid, duplicate);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    assert_eq!(applied.0, 1.0, "one callback paid the order");
    assert!(
        applied.1 >= 49.0,
        "every other copy was a duplicate: {applied:?}"
    );
    assert_eq!(setup.history_events(&order_id), ["pay"]);
    assert_eq!(setup.status(&order_id), ("paid".to_owned(), 2));
    println!(
        "{backend:?}: 50 concurrent callbacks answered in {:.0} ms ({:.0} callbacks/s)",
        elapsed.as_secs_f64() * 1000.0,
        50.0 / elapsed.as_secs_f64()
    );
    setup.finish();
}

/// Callbacks delayed, duplicated and followed by a stale `pending` report (delivered out of
/// order): one `pay`; every later copy, and the stale report, answered as a duplicate.
fn delayed_duplicated_and_reordered_callbacks_pay_once(backend: Backend) {
    let setup = Setup::start(backend, "pay_reorder", 1800, &[]);
    let (order, payment) = setup.order_with_payment("buyer-reorder");
    let (order_id, payment_id) = (id_of(&order), id_of(&payment));
    setup.sandbox.set_faults(Faults {
        delay_ms: 300,
        duplicates: 2,
        reorder: true,
        ..Faults::default()
    });
    setup.pay(&payment_id, None);
    setup.wait_status(&order_id, "paid", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(20);
    let counted = |outcome: &str| {
        setup.metric(&format!(
            "oc_payment_reports_total{{source=\"callback\",outcome=\"{outcome}\"}}"
        ))
    };
    while counted("paid") + counted("duplicate") < 4.0 {
        assert!(
            Instant::now() < deadline,
            "three copies and a stale report: {} paid, {} duplicate",
            counted("paid"),
            counted("duplicate")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((counted("paid"), counted("duplicate")), (1.0, 3.0));
    assert_eq!(setup.sandbox.callbacks().0, 4);
    assert_eq!(setup.status(&order_id), ("paid".to_owned(), 2));
    assert_eq!(setup.payments(&order_id)[0]["status"], "succeeded");
    setup.finish();
}

/// A forged signature and an old timestamp are refused (401) and change nothing; a wrong
/// amount settles the payment as a mismatch (event and metric) without paying the order.
fn forged_stale_and_wrong_amount_callbacks_change_nothing(backend: Backend) {
    let setup = Setup::start(backend, "pay_refuse", 1800, &[]);
    let (order, payment) = setup.order_with_payment("buyer-bad");
    let (order_id, payment_id) = (id_of(&order), id_of(&payment));
    let report = PaymentReport {
        account: ACCOUNT.to_owned(),
        payment_id: payment_id.parse().unwrap(),
        status: ReportStatus::Succeeded,
        provider_txn_id: Some("forged-1".into()),
        amount: Some(serde_json::from_value(payment["amount"].clone()).unwrap()),
        paid_at: Some(time::OffsetDateTime::now_utc()),
        reason: None,
    };
    let (status, body) =
        setup.callback(&report, b"not-the-secret-at-all-0123456789", now_seconds());
    assert_eq!(status, 401, "{body}");
    let (status, body) = setup.callback(&report, SECRET, now_seconds() - 3600);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("outside the window"), "{body}");
    assert_eq!(setup.status(&order_id), ("pending_payment".to_owned(), 1));
    assert_eq!(setup.payments(&order_id)[0]["status"], "pending");
    assert_eq!(
        setup.metric("oc_payment_callbacks_refused_total{reason=\"bad_signature\"}"),
        1.0
    );
    assert_eq!(
        setup.metric("oc_payment_callbacks_refused_total{reason=\"stale\"}"),
        1.0
    );

    // the buyer pays one fen less than asked
    let asked = payment["amount"]["minor"].as_i64().unwrap();
    setup.pay(&payment_id, Some(asked - 1));
    setup.wait_payment(&order_id, "mismatch", Duration::from_secs(20));
    let listed = &setup.payments(&order_id)[0];
    assert_eq!(listed["effect"], "none");
    assert_eq!(listed["reported"]["minor"], asked - 1);
    assert_eq!(setup.status(&order_id), ("pending_payment".to_owned(), 1));
    assert!(setup.history_events(&order_id).is_empty());
    assert_eq!(setup.metric("oc_payment_mismatches_total"), 1.0);
    // a correctly signed, fresh callback for the right amount now finds it settled: nothing
    let (status, body) = setup.callback(&report, SECRET, now_seconds());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("duplicate"), "{body}");
    assert_eq!(setup.status(&order_id).0, "pending_payment");
    setup.finish();
}

/// The order times out before the buyer pays: the money is recorded (`succeeded`,
/// `refund_required`), the order stays cancelled.
fn paid_after_timeout_requires_a_refund(backend: Backend) {
    let setup = Setup::start(backend, "pay_late", 2, &[]);
    let (order, payment) = setup.order_with_payment("buyer-late");
    let (order_id, payment_id) = (id_of(&order), id_of(&payment));
    setup.wait_status(&order_id, "cancelled", Duration::from_secs(30));
    setup.pay(&payment_id, None);
    setup.wait_payment(&order_id, "succeeded", Duration::from_secs(20));
    assert_eq!(setup.payments(&order_id)[0]["effect"], "refund_required");
    assert_eq!(setup.status(&order_id).0, "cancelled");
    assert_eq!(setup.history_events(&order_id), ["timeout"]);
    assert_eq!(
        setup.metric("oc_payment_reports_total{source=\"callback\",outcome=\"refund_required\"}"),
        1.0
    );
    setup.finish();
}

/// Every callback dropped and, at first, every query failing: once queries answer again the
/// active query pays the order through the same path.
fn paid_by_active_query_when_every_callback_is_dropped(backend: Backend) {
    let setup = Setup::start(
        backend,
        "pay_query",
        1800,
        &[
            ("OC_PAYMENT_QUERY_DELAY_MS", "300"),
            ("OC_PAYMENT_QUERY_INTERVAL_MS", "500"),
            ("OC_PAYMENT_POLL_MS", "200"),
        ],
    );
    let (order, payment) = setup.order_with_payment("buyer-lost");
    let (order_id, payment_id) = (id_of(&order), id_of(&payment));
    setup.sandbox.set_faults(Faults {
        drop_callbacks: true,
        fail_queries: true,
        ..Faults::default()
    });
    setup.pay(&payment_id, None);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(setup.status(&order_id).0, "pending_payment");
    let dropped_at = Instant::now();
    setup.sandbox.set_faults(Faults {
        drop_callbacks: true,
        ..Faults::default()
    });
    let took = setup.wait_status(&order_id, "paid", Duration::from_secs(20));
    assert_eq!(setup.history_events(&order_id), ["pay"]);
    assert_eq!(setup.sandbox.callbacks().0, 0, "no callback was ever sent");
    println!(
        "{backend:?}: paid by the active query {:.0} ms after queries answered again (query interval 500 ms, poll 200 ms); {:.0} ms since the callback was dropped",
        took.as_secs_f64() * 1000.0,
        (dropped_at.elapsed() + Duration::from_millis(1500)).as_secs_f64() * 1000.0
    );
    setup.finish();
}

/// 32 refund requests of 3.00 against a payment of 88.00, all at once over HTTP: 29 are
/// requested and succeed at the sandbox, 3 are refused (422 at `/amount`); in the shards the
/// sum of requested and succeeded refunds never exceeds the captured amount; a retried key is
/// the same refund; the rest cannot be refunded twice.
fn concurrent_refunds_never_exceed_the_captured_amount(backend: Backend) {
    let setup = Setup::start(backend, "refund_race", 1800, &[]);
    let (order_id, payment_id) = setup.paid_order("buyer-refund-race");
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..32)
            .map(|n| {
                let (setup, order_id, payment_id) = (&setup, &order_id, &payment_id);
                scope.spawn(move || setup.refund(order_id, payment_id, &format!("as-{n}"), 300))
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 422)
        .collect();
    assert_eq!((created, refused.len()), (29, 3), "{answers:?}");
    assert!(refused[0].1.contains("/amount"), "{}", refused[0].1);
    // while the provider's answers arrive, and after: never above the capture
    for _ in 0..5 {
        for (captured, refunded, held) in setup.refund_sums_in_shards() {
            assert!(
                held <= captured && refunded == held,
                "{captured} {refunded} {held}"
            );
        }
    }
    let refunds = setup.wait_refunds_settled(&order_id, &payment_id, Duration::from_secs(30));
    assert_eq!(refunds.len(), 29);
    assert!(
        refunds.iter().all(|r| r["status"] == "succeeded"),
        "{refunds:?}"
    );
    assert_eq!(setup.refund_sums_in_shards(), vec![(8800, 8700, 8700)]);
    // a retry of a key that was created is that refund, asking nothing of the provider again
    let winner = refunds[0]["refund_key"].as_str().unwrap().to_owned();
    let attempts = setup.sandbox.refund_attempts();
    let (status, body) = setup.refund(&order_id, &payment_id, &winner, 300);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        id_of(&serde_json::from_str(&body).unwrap()),
        id_of(&refunds[0])
    );
    assert_eq!(setup.sandbox.refund_attempts(), attempts);
    // what is left, then nothing
    assert_eq!(setup.refund(&order_id, &payment_id, "rest", 100).0, 201);
    let (status, body) = setup.refund(&order_id, &payment_id, "one-more", 1);
    assert_eq!(status, 422, "{body}");
    setup.wait_refunds_settled(&order_id, &payment_id, Duration::from_secs(20));
    assert_eq!(setup.refund_sums_in_shards(), vec![(8800, 8800, 8800)]);
    setup.finish();
}

/// Every refund callback delivered ten times at once: the refund settles once; the other
/// nine copies are answered as duplicates.
fn a_duplicated_refund_callback_applies_once(backend: Backend) {
    let setup = Setup::start(backend, "refund_dup", 1800, &[]);
    let (order_id, payment_id) = setup.paid_order("buyer-refund-dup");
    setup.sandbox.set_faults(Faults {
        duplicates: 9,
        ..Faults::default()
    });
    let (status, body) = setup.refund(&order_id, &payment_id, "as-dup", 1000);
    assert_eq!(status, 201, "{body}");
    let counted = |outcome: &str| {
        setup.metric(&format!(
            "oc_payment_refunds_total{{source=\"callback\",outcome=\"{outcome}\"}}"
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while counted("refunded") + counted("duplicate") < 10.0 {
        assert!(
            Instant::now() < deadline,
            "{} {}",
            counted("refunded"),
            counted("duplicate")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((counted("refunded"), counted("duplicate")), (1.0, 9.0));
    let refunds = setup.refunds(&order_id, &payment_id);
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["status"], "succeeded");
    assert_eq!(setup.refund_sums_in_shards(), vec![(8800, 1000, 1000)]);
    setup.finish();
}

const QUICK_QUERIES: &[(&str, &str)] = &[
    ("OC_PAYMENT_QUERY_DELAY_MS", "300"),
    ("OC_PAYMENT_QUERY_INTERVAL_MS", "500"),
    ("OC_PAYMENT_POLL_MS", "200"),
];

/// Every refund callback dropped: the active query's refund query settles it.
fn a_dropped_refund_callback_is_settled_by_the_active_query(backend: Backend) {
    let setup = Setup::start(backend, "refund_query", 1800, QUICK_QUERIES);
    let (order_id, payment_id) = setup.paid_order("buyer-refund-lost");
    let sent = setup.sandbox.callbacks().0;
    setup.sandbox.set_faults(Faults {
        drop_callbacks: true,
        ..Faults::default()
    });
    let started = Instant::now();
    let (status, body) = setup.refund(&order_id, &payment_id, "as-lost", 2500);
    assert_eq!(status, 201, "{body}");
    let refunds = setup.wait_refunds_settled(&order_id, &payment_id, Duration::from_secs(20));
    let took = started.elapsed();
    assert_eq!(refunds[0]["status"], "succeeded");
    assert_eq!(
        setup.sandbox.callbacks().0,
        sent,
        "no refund callback was sent"
    );
    assert_eq!(setup.refund_sums_in_shards(), vec![(8800, 2500, 2500)]);
    println!(
        "{backend:?}: refund settled by the active query {:.0} ms after it was requested with its callback dropped (query delay 300 ms, poll 200 ms)",
        took.as_secs_f64() * 1000.0
    );
    setup.finish();
}

/// The provider fails every attempt: the refund is tried `OC_PAYMENT_REFUND_ATTEMPTS` (2)
/// times, then settles `failed`, gives its amount back to the payment (the whole capture can
/// be refunded again), and is listed for manual handling with its metric.
fn a_failed_refund_releases_its_amount_and_is_listed_for_manual_handling(backend: Backend) {
    let mut env = QUICK_QUERIES.to_vec();
    env.push(("OC_PAYMENT_REFUND_ATTEMPTS", "2"));
    let setup = Setup::start(backend, "refund_fail", 1800, &env);
    let (order_id, payment_id) = setup.paid_order("buyer-refund-fail");
    setup.sandbox.set_faults(Faults {
        fail_refunds: true,
        ..Faults::default()
    });
    let (status, body) = setup.refund(&order_id, &payment_id, "as-fail", 8800);
    assert_eq!(status, 201, "{body}");
    let refunds = setup.wait_refunds_settled(&order_id, &payment_id, Duration::from_secs(20));
    assert_eq!(refunds[0]["status"], "failed", "{refunds:?}");
    assert_eq!(refunds[0]["attempts"], 2);
    assert!(
        refunds[0]["failure"]
            .as_str()
            .unwrap()
            .contains("fail_refunds")
    );
    assert_eq!(
        setup.sandbox.refund_attempts(),
        2,
        "one retry, then no more"
    );
    assert_eq!(setup.refund_sums_in_shards(), vec![(8800, 0, 0)]);
    let (status, body) = http(setup.port, "GET", "/v1/payments/refunds/failed", None).unwrap();
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["items"][0]["id"], refunds[0]["id"]);
    if backend == Backend::Sqlite {
        // single node: the callbacks and the worker run in this process
        assert_eq!(setup.metric("oc_payment_refunds_failed_total"), 1.0);
    }
    setup.sandbox.set_faults(Faults::default());
    assert_eq!(
        setup.refund(&order_id, &payment_id, "as-again", 8800).0,
        201
    );
    setup.finish();
}

/// The provider reports the payment failed (the callback delivered ten times at once): it
/// settles `failed` once (one `payment.failed` event, the metric), the order still waits
/// for payment; the buyer then pays after all: the late success settles the failed payment
/// `succeeded` and pays the order, once.
fn a_failed_payment_settles_once_and_a_late_success_still_pays(backend: Backend) {
    let setup = Setup::start(backend, "pay_failed", 1800, &[]);
    let (order, payment) = setup.order_with_payment("buyer-failed");
    let (order_id, payment_id) = (id_of(&order), id_of(&payment));
    setup.sandbox.set_faults(Faults {
        duplicates: 9,
        ..Faults::default()
    });
    setup.fail(&payment_id);
    let failed = setup.wait_payment(&order_id, "failed", Duration::from_secs(20));
    assert_eq!(failed["effect"], "none");
    let counted = |outcome: &str| {
        setup.metric(&format!(
            "oc_payment_reports_total{{source=\"callback\",outcome=\"{outcome}\"}}"
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while counted("failed") + counted("duplicate") < 10.0 {
        assert!(Instant::now() < deadline, "ten copies of the failure");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((counted("failed"), counted("duplicate")), (1.0, 9.0));
    assert_eq!(setup.metric("oc_payment_failed_total"), 1.0);
    assert_eq!(setup.outbox_events(&order_id, "failed"), 1);
    assert_eq!(setup.status(&order_id), ("pending_payment".to_owned(), 1));

    setup.sandbox.set_faults(Faults::default());
    setup.pay(&payment_id, None);
    setup.wait_status(&order_id, "paid", Duration::from_secs(20));
    let paid = setup.wait_payment(&order_id, "succeeded", Duration::from_secs(20));
    assert_eq!(paid["effect"], "applied");
    assert_eq!(setup.history_events(&order_id), ["pay"]);
    setup.finish();
}

/// A payment nobody pays: the active query's last query, at its expiry, settles it
/// `expired` (event, metric) — once while the provider fails every query, once when it
/// answers "not paid"; the order is untouched. A success reported after the expiry still
/// pays the order, which is still waiting for payment.
fn an_unpaid_payment_expires_at_its_last_query(backend: Backend) {
    let mut env = QUICK_QUERIES.to_vec();
    env.push(("OC_PAYMENT_EXPIRY_MS", "1500"));
    let setup = Setup::start(backend, "pay_expiry", 1800, &env);
    // the provider unreachable at the expiry
    setup.sandbox.set_faults(Faults {
        fail_queries: true,
        ..Faults::default()
    });
    let (order, _) = setup.order_with_payment("buyer-expiry-down");
    let down = id_of(&order);
    let expired = setup.wait_payment(&down, "expired", Duration::from_secs(20));
    assert_eq!(expired["effect"], "none");
    assert_eq!(setup.outbox_events(&down, "expired"), 1);
    assert_eq!(setup.status(&down), ("pending_payment".to_owned(), 1));

    // the provider answering "not paid" at the expiry
    setup.sandbox.set_faults(Faults::default());
    let (order, payment) = setup.order_with_payment("buyer-expiry");
    let (order_id, payment_id) = (id_of(&order), id_of(&payment));
    setup.wait_payment(&order_id, "expired", Duration::from_secs(20));
    assert_eq!(setup.outbox_events(&order_id, "expired"), 1);
    assert_eq!(setup.status(&order_id), ("pending_payment".to_owned(), 1));
    if backend == Backend::Sqlite {
        // single node: the worker runs in this process
        assert_eq!(setup.metric("oc_payment_expired_total"), 2.0);
    }

    // the money arrives after all: the order still waits for it, so it is paid
    setup.pay(&payment_id, None);
    setup.wait_status(&order_id, "paid", Duration::from_secs(20));
    let paid = setup.wait_payment(&order_id, "succeeded", Duration::from_secs(20));
    assert_eq!(paid["effect"], "applied");
    assert_eq!(setup.history_events(&order_id), ["pay"]);
    setup.finish();
}

/// `POST /v1/orders/{id}/payments` with `body`: (status, body).
fn create_payment(setup: &Setup, order_id: &str, key: &str, body: &str) -> (u16, String) {
    request(
        setup.port,
        "POST",
        &format!("/v1/orders/{order_id}/payments"),
        &[("Idempotency-Key", key)],
        Some(body),
    )
    .unwrap()
}

/// A `retail/presale` order of one unit of `sku` (88.00, a 20.00 deposit) for `buyer`.
fn presale(buyer: &str, sku: &str) -> String {
    CreateRequest::new("retail", buyer)
        .order_type("presale")
        .line(sku, "Pre-sale tea", 1, 8800)
        .extension("deposit_amount", "20.00")
        .extension("final_payment_due", "2030-01-31")
        .li_lei()
        .body()
}

/// A retail `presale` order (partial payments allowed by its tenant config) of 88.00 CNY: a
/// bad amount is refused at its field with nothing written (and a part of a `standard`
/// order, which takes none); a deposit of 20.00 is captured and recorded on the order, which
/// still waits; the balance (asked without an amount: what is left, 68.00) pays it, and
/// the captured payments add up to the payable exactly.
fn a_deposit_then_the_balance_pay_a_presale_order_exactly(backend: Backend) {
    let setup = Setup::start(backend, "pay_deposit", 1800, &[]);
    let presale = presale("buyer-deposit", "PS-1");
    let (status, body) = http(setup.port, "POST", "/v1/orders", Some(&presale)).unwrap();
    assert_eq!(status, 201, "{body}");
    let order: serde_json::Value = serde_json::from_str(&body).unwrap();
    let order_id = id_of(&order);
    assert_eq!(order["finance"]["payable"]["minor"], 8800);
    let with_amount = |minor: i64, currency: &str| {
        format!(r#"{{"provider":"sandbox","amount":{{"minor":{minor},"currency":"{currency}"}}}}"#)
    };
    for (body, field) in [
        (with_amount(0, "CNY"), "/amount/minor"),
        (with_amount(8801, "CNY"), "/amount/minor"),
        (with_amount(-5, "CNY"), "/amount/minor"),
        (with_amount(2000, "USD"), "/amount/currency"),
    ] {
        let (status, answer) = create_payment(&setup, &order_id, &format!("bad-{body}"), &body);
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer.contains(field), "{body}: {answer}");
    }
    assert!(setup.payments(&order_id).is_empty(), "nothing written");
    // a standard order takes no part payment
    let standard = create_retail_order(setup.port, "buyer-whole", "SKU-PAY");
    let (status, answer) = create_payment(
        &setup,
        &id_of(&standard),
        "part-of-standard",
        &with_amount(2000, "CNY"),
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("/amount/minor"), "{answer}");
    assert!(setup.payments(&id_of(&standard)).is_empty());

    // the deposit
    let (status, body) = create_payment(&setup, &order_id, "deposit", &with_amount(2000, "CNY"));
    assert_eq!(status, 201, "{body}");
    let deposit: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(deposit["amount"]["minor"], 2000);
    setup.pay(&id_of(&deposit), None);
    setup.wait_payment(&order_id, "succeeded", Duration::from_secs(20));
    assert_eq!(setup.payments(&order_id)[0]["effect"], "applied");
    assert_eq!(setup.status(&order_id), ("pending_payment".to_owned(), 1));
    assert!(setup.history_events(&order_id).is_empty());
    let recorded = setup.order(&order_id);
    assert_eq!(recorded["finance"]["payments"][0]["amount"]["minor"], 2000);
    assert_eq!(recorded["status"], "pending_payment");

    // more than is left is refused; the balance is what is left
    let (status, answer) = create_payment(&setup, &order_id, "too-much", &with_amount(6801, "CNY"));
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("/amount/minor"), "{answer}");
    let (status, body) = create_payment(&setup, &order_id, "balance", r#"{"provider":"sandbox"}"#);
    assert_eq!(status, 201, "{body}");
    let balance: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(balance["amount"]["minor"], 6800);
    setup.pay(&id_of(&balance), None);
    setup.wait_status(&order_id, "paid", Duration::from_secs(20));
    assert_eq!(setup.history_events(&order_id), ["pay"]);
    let paid = setup.order(&order_id);
    let captured: i64 = paid["finance"]["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["amount"]["minor"].as_i64().unwrap())
        .sum();
    assert_eq!(captured, 8800, "{paid}");
    assert_eq!(
        setup.metric("oc_payment_reports_total{source=\"callback\",outcome=\"part\"}"),
        1.0
    );
    // paid: no more payments
    let (status, answer) = create_payment(&setup, &order_id, "after", r#"{"provider":"sandbox"}"#);
    assert_eq!(status, 409, "{answer}");
    setup.finish();
}

/// Four presale orders, each with a deposit (20.00) and a balance (68.00) payment whose
/// captures are reported at the same moment: the two settlements race on the order's
/// version, the loser decides again on what the winner wrote, and every order ends paid once
/// with both payments recorded, adding up to its payable amount.
fn a_deposit_and_the_balance_captured_at_once_pay_the_order_once(backend: Backend) {
    let setup = Setup::start(backend, "pay_parts_race", 1800, &[]);
    let mut orders = Vec::new();
    for n in 0..4 {
        let presale = presale(&format!("buyer-race-{n}"), "PS-2");
        let (status, body) = http(setup.port, "POST", "/v1/orders", Some(&presale)).unwrap();
        assert_eq!(status, 201, "{body}");
        let order_id = id_of(&serde_json::from_str(&body).unwrap());
        let mut payments = Vec::new();
        for (key, minor) in [("deposit", 2000), ("balance", 6800)] {
            let (status, body) = create_payment(
                &setup,
                &order_id,
                &format!("{key}-{n}"),
                &format!(
                    r#"{{"provider":"sandbox","amount":{{"minor":{minor},"currency":"CNY"}}}}"#
                ),
            );
            assert_eq!(status, 201, "{body}");
            payments.push(id_of(&serde_json::from_str(&body).unwrap()));
        }
        orders.push((order_id, payments));
    }
    std::thread::scope(|scope| {
        for (_, payments) in &orders {
            for payment_id in payments {
                let setup = &setup;
                scope.spawn(move || setup.pay(payment_id, None));
            }
        }
    });
    for (order_id, _) in &orders {
        setup.wait_status(order_id, "paid", Duration::from_secs(20));
        let deadline = Instant::now() + Duration::from_secs(20);
        while setup
            .payments(order_id)
            .iter()
            .any(|payment| payment["status"] != "succeeded")
        {
            assert!(Instant::now() < deadline, "{:?}", setup.payments(order_id));
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            setup
                .payments(order_id)
                .iter()
                .all(|payment| payment["effect"] == "applied"),
            "{:?}",
            setup.payments(order_id)
        );
        assert_eq!(setup.history_events(order_id), ["pay"]);
        let paid = setup.order(order_id);
        let mut captured: Vec<i64> = paid["finance"]["payments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["amount"]["minor"].as_i64().unwrap())
            .collect();
        captured.sort_unstable();
        assert_eq!(captured, [2000, 6800], "{paid}");
    }
    setup.finish();
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $case() { super::$case(super::Backend::Sqlite) } )*
        }
        mod mariadb {
            $( #[test] fn $case() { super::$case(super::Backend::MariaDb) } )*
        }
    };
}

on_both!(
    paid_by_callback,
    fifty_duplicate_callbacks_fire_one_pay,
    delayed_duplicated_and_reordered_callbacks_pay_once,
    forged_stale_and_wrong_amount_callbacks_change_nothing,
    paid_after_timeout_requires_a_refund,
    paid_by_active_query_when_every_callback_is_dropped,
    concurrent_refunds_never_exceed_the_captured_amount,
    a_duplicated_refund_callback_applies_once,
    a_dropped_refund_callback_is_settled_by_the_active_query,
    a_failed_refund_releases_its_amount_and_is_listed_for_manual_handling,
    a_failed_payment_settles_once_and_a_late_success_still_pays,
    an_unpaid_payment_expires_at_its_last_query,
    a_deposit_then_the_balance_pay_a_presale_order_exactly,
    a_deposit_and_the_balance_captured_at_once_pay_the_order_once,
);
