//! Combined return pickup (issue #20 item 5, AFTERSALES.md case 7) with the real binaries: the
//! after-sales are applied through `ordercenter serve`, the worker is `ordercenter pickup`
//! (`--once` passes, or the long-running worker SIGKILLed mid-call), and the carrier is the
//! sandbox logistics provider over loopback HTTP — on SQLite shards (single node) and on
//! MariaDB shards (cluster). Three approved returns of one order with pickup times 30 minutes
//! apart get one pickup and one waybill; carrier failures and an answer lost to a timeout, a
//! worker killed while its call was in flight, and a pickup whose every attempt fails each
//! leave at most that one waybill, and the last is skipped with an alert.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use oc_logistics_http::{Faults, Sandbox};
use sqlx::Row;
use time::format_description::well_known::Rfc3339;

enum Mode {
    SingleNode,
    Cluster(oc_test_support::TestDatabases),
}

struct Env {
    mode: Mode,
    data: tempfile::TempDir,
    sandbox: Sandbox,
    sandbox_url: String,
    sandbox_task: tokio::task::JoinHandle<()>,
}

impl Env {
    async fn new(mode: Mode) -> Env {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (sandbox, address, sandbox_task) =
            Sandbox::serve(Some("carrier-token".into()), listener)
                .await
                .unwrap();
        let env = Env {
            mode,
            data: tempfile::tempdir().unwrap(),
            sandbox,
            sandbox_url: format!("http://{address}"),
            sandbox_task,
        };
        if let Mode::Cluster(_) = &env.mode {
            keys_init(env.command());
        }
        env
    }

    async fn single_node() -> Env {
        Env::new(Mode::SingleNode).await
    }

    async fn cluster(label: &str) -> Env {
        Env::new(Mode::Cluster(
            oc_test_support::TestDatabases::create(label, 2)
                .await
                .unwrap(),
        ))
        .await
    }

    fn command(&self) -> Command {
        let mut command = command(self.data.path());
        command.env("OC_ARCHIVE_RATE", "0");
        if let Mode::Cluster(databases) = &self.mode {
            on_shards(&mut command, &databases.urls().join(","));
        }
        command
    }

    /// `ordercenter pickup` against the sandbox, with `backoff_ms` between calls (also the
    /// call's time budget) and at most `attempts` calls per pickup.
    fn pickup(&self, backoff_ms: u64, attempts: u32) -> Command {
        let mut command = self.command();
        command
            .arg("pickup")
            .env("OC_LOGISTICS_URL", &self.sandbox_url)
            .env("OC_LOGISTICS_TOKEN", "carrier-token")
            .env("OC_PICKUP_BACKOFF_MS", backoff_ms.to_string())
            .env("OC_PICKUP_MAX_ATTEMPTS", attempts.to_string())
            .env("OC_PICKUP_POLL_MS", "100");
        command
    }

    /// One `pickup --once` pass: its report.
    fn pass(&self, backoff_ms: u64, attempts: u32) -> serde_json::Value {
        let mut command = self.pickup(backoff_ms, attempts);
        command.arg("--once");
        json_report(command)
    }

    fn shard_urls(&self) -> Vec<String> {
        match &self.mode {
            Mode::SingleNode => (0..2)
                .map(|i| format!("sqlite://{}/shard-{i}.db", self.data.path().display()))
                .collect(),
            Mode::Cluster(databases) => databases.urls().to_vec(),
        }
    }

    /// Rows of `sql` from every shard, each row's columns as text.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        sqlx::any::install_default_drivers();
        let mut found = Vec::new();
        for url in self.shard_urls() {
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            for row in sqlx::query(sql).fetch_all(&pool).await.unwrap() {
                found.push(
                    (0..row.len())
                        .map(|i| {
                            row.try_get::<Option<String>, _>(i)
                                .ok()
                                .flatten()
                                .or_else(|| {
                                    row.try_get::<Option<i64>, _>(i)
                                        .ok()
                                        .flatten()
                                        .map(|v| v.to_string())
                                })
                                // MariaDB reports utf8mb4_bin text as bytes
                                .or_else(|| {
                                    row.try_get::<Option<Vec<u8>>, _>(i)
                                        .ok()
                                        .flatten()
                                        .map(|bytes| String::from_utf8(bytes).unwrap())
                                })
                        })
                        .collect(),
                );
            }
            pool.close().await;
        }
        found
    }

    async fn count(&self, sql: &str) -> i64 {
        self.rows(sql)
            .await
            .iter()
            .map(|row| row[0].as_deref().unwrap_or("0").parse::<i64>().unwrap())
            .sum()
    }

    /// The pickups: (status, attempts, waybill).
    async fn pickups(&self) -> Vec<(String, i64, Option<String>)> {
        self.rows("SELECT status, attempts, waybill_no FROM return_pickups")
            .await
            .into_iter()
            .map(|row| {
                (
                    row[0].clone().unwrap(),
                    row[1].as_deref().unwrap().parse().unwrap(),
                    row[2].clone(),
                )
            })
            .collect()
    }

    /// `pickup --once` passes until the one pickup is `status` (bounded: 60 passes).
    async fn passes_until(
        &self,
        status: &str,
        backoff_ms: u64,
        attempts: u32,
    ) -> Vec<serde_json::Value> {
        let mut reports = Vec::new();
        for _ in 0..60 {
            reports.push(self.pass(backoff_ms, attempts));
            let pickups = self.pickups().await;
            if pickups.len() == 1 && pickups[0].0 == status {
                return reports;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the pickup never became {status}: {reports:?}");
    }

    async fn finish(self) {
        self.sandbox_task.abort();
        if let Mode::Cluster(databases) = self.mode {
            databases.cleanup().await.unwrap();
        }
    }
}

/// Pickup windows of the three returns, from now: 5, 35 and 65 minutes (AFTERSALES.md case
/// 7's 14:00, 14:30 and 15:00 seen at 13:55): the earliest is inside the 10-minute lead.
const WINDOWS_MINUTES: [i64; 3] = [35, 5, 65];

/// Grams of one unit of each line.
const WEIGHTS: [u32; 3] = [1_200, 800, 450];

/// A paid retail order of three lines (A, B, C: one unit each, with weights) and three
/// approved return-type after-sales of it, one per line, applied as the merchant (approved at
/// once). Returns (order id, after-sale ids, the earliest pickup time).
fn three_returns(env: &Env) -> (String, Vec<String>, time::OffsetDateTime) {
    let port = free_port();
    let mut server = serve(env.command(), port);
    for sku in ["RA", "RB", "RC"] {
        set_stock(port, sku, 10);
    }
    let lines: Vec<String> = ["RA", "RB", "RC"]
        .iter()
        .zip(WEIGHTS)
        .map(|(sku, grams)| {
            format!(
                r#"{{"sku":"{sku}","product_name":"Product {sku}","quantity":1,"unit_price_minor":1000,"unit_weight_grams":{grams}}}"#
            )
        })
        .collect();
    let order = format!(
        r#"{{"business_identity":"retail","order_type":"standard","buyer_id":"buyer-returns",
        "lines":[{}],
        "receiver":{{"name":"Li Lei","phone":"13900001111","address":"1 Nanjing Road"}}}}"#,
        lines.join(",")
    );
    let (status, body) = http(port, "POST", "/v1/orders", Some(&order)).unwrap();
    assert_eq!(status, 201, "{body}");
    let order: serde_json::Value = serde_json::from_str(&body).unwrap();
    let order_id = order["id"].as_str().unwrap().to_owned();
    let (status, body) = request(
        port,
        "POST",
        &format!("/v1/orders/{order_id}/transitions"),
        &[("If-Match", "\"1\"")],
        Some(r#"{"event":"pay"}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let now = time::OffsetDateTime::now_utc();
    // a refund-only after-sale sends nothing back: a pickup time is refused, naming the field
    let refund_only = format!(
        r#"{{"type":"refund_only","channel":"merchant","lines":[{{"sku":"RA","quantity":1}}],"pickup_at":"{}"}}"#,
        now.format(&Rfc3339).unwrap()
    );
    let (status, body) = http(
        port,
        "POST",
        &format!("/v1/orders/{order_id}/after-sales"),
        Some(&refund_only),
    )
    .unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("/pickup_at"), "{body}");
    let mut ids = Vec::new();
    let kinds = ["return_and_refund", "exchange", "repair"];
    for ((sku, minutes), kind) in ["RA", "RB", "RC"].iter().zip(WINDOWS_MINUTES).zip(kinds) {
        let pickup_at = (now + time::Duration::minutes(minutes))
            .format(&Rfc3339)
            .unwrap();
        let application = format!(
            r#"{{"type":"{kind}","channel":"merchant","lines":[{{"sku":"{sku}","quantity":1}}],"pickup_at":"{pickup_at}"}}"#
        );
        let (status, body) = http(
            port,
            "POST",
            &format!("/v1/orders/{order_id}/after-sales"),
            Some(&application),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
        let after_sale: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(after_sale["status"], "approved", "{body}");
        assert_eq!(after_sale["pickup_at"], pickup_at.as_str(), "{body}");
        ids.push(after_sale["id"].as_str().unwrap().to_owned());
    }
    stop(&mut server);
    let earliest = now + time::Duration::minutes(5);
    (order_id, ids, earliest)
}

/// Each after-sale's waybill, as the after-sales table holds it.
async fn waybills_of(env: &Env, ids: &[String]) -> Vec<Option<String>> {
    let mut found = Vec::new();
    for id in ids {
        let rows = env
            .rows(&format!(
                "SELECT waybill_no FROM after_sales WHERE id = {id}"
            ))
            .await;
        assert_eq!(rows.len(), 1);
        found.push(rows[0][0].clone());
    }
    found
}

async fn pickup_events(env: &Env, order_id: &str, event: &str) -> i64 {
    env.count(&format!(
        "SELECT COUNT(*) FROM outbox WHERE order_id = {order_id} AND payload LIKE '%\"event\":\"{event}\"%'"
    ))
    .await
}

async fn three_returns_of_one_order_share_one_waybill(env: Env) {
    let (order_id, ids, earliest) = three_returns(&env);
    let report = env.pass(1_000, 5);
    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(report["booked"], 1, "{report}");
    let made = env.sandbox.waybills();
    assert_eq!(made.len(), 1, "one waybill for the order: {made:?}");
    let waybill = &made[0];
    assert_eq!(waybill.order_id, order_id);
    assert_eq!(waybill.items.len(), 3, "every return's products");
    assert_eq!(
        waybill.total_weight_grams,
        WEIGHTS.iter().map(|g| u64::from(*g)).sum::<u64>()
    );
    assert!(
        (waybill.pickup_at - earliest).abs() < time::Duration::seconds(30),
        "the nearest pickup time: {} vs {earliest}",
        waybill.pickup_at
    );
    assert!(
        waybill.has_address,
        "the buyer's address, opened for the call"
    );
    assert_eq!(
        waybills_of(&env, &ids).await,
        vec![Some(waybill.waybill_no.clone()); 3]
    );
    assert_eq!(pickup_events(&env, &order_id, "pickup_booked").await, 3);
    // a second pass finds nothing to do
    let again = env.pass(1_000, 5);
    assert_eq!(
        (again["created"].as_u64(), again["booked"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(env.sandbox.stats().requests, 1);

    // the API shows the waybill and the history entry
    let port = free_port();
    let mut server = serve(env.command(), port);
    let (status, body) = http(port, "GET", &format!("/v1/after-sales/{}", ids[0]), None).unwrap();
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["waybill_no"], waybill.waybill_no.as_str(), "{body}");
    assert!(
        view["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["event"] == "pickup_booked"),
        "{body}"
    );
    stop(&mut server);
    env.finish().await;
}

async fn carrier_failures_and_a_lost_answer_still_make_one_waybill(env: Env) {
    let (order_id, ids, _) = three_returns(&env);
    // two bookings refused, then one made but answered after the caller gave up (300 ms)
    env.sandbox.set_faults(Faults {
        fail_next: 2,
        delay_ms: 1_500,
        ..Faults::default()
    });
    let mut reports = Vec::new();
    for _ in 0..60 {
        reports.push(env.pass(300, 8));
        if env.sandbox.stats().waybills == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.sandbox.stats().waybills, 1, "{reports:?}");
    let pickups = env.pickups().await;
    assert_eq!(pickups.len(), 1);
    assert_eq!(pickups[0].0, "pending", "the answer was lost: {pickups:?}");
    env.sandbox.set_faults(Faults::default());
    reports.extend(env.passes_until("booked", 300, 8).await);
    let made = env.sandbox.waybills();
    assert_eq!(made.len(), 1, "still one waybill: {made:?} {reports:?}");
    assert!(made[0].bookings >= 2, "the retry found it: {made:?}");
    let stats = env.sandbox.stats();
    assert_eq!(stats.failed, 2, "{stats:?}");
    assert_eq!(
        waybills_of(&env, &ids).await,
        vec![Some(made[0].waybill_no.clone()); 3]
    );
    assert_eq!(pickup_events(&env, &order_id, "pickup_booked").await, 3);
    env.finish().await;
}

async fn a_worker_killed_mid_call_and_restarted_makes_no_second_waybill(env: Env) {
    let (order_id, ids, _) = three_returns(&env);
    // the carrier makes the waybill, then answers late: the worker is killed while it waits
    env.sandbox.set_faults(Faults {
        delay_ms: 10_000,
        ..Faults::default()
    });
    let mut worker = Server(
        env.pickup(2_000, 5)
            .env("OC_LISTEN", format!("127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.sandbox.stats().requests == 0 {
        assert!(
            Instant::now() < deadline,
            "the worker never called the carrier"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: the call in flight, its answer never read
    worker.0.kill().unwrap();
    worker.0.wait().unwrap();
    assert_eq!(env.sandbox.stats().waybills, 1);
    let pickups = env.pickups().await;
    assert_eq!(pickups.len(), 1);
    assert_eq!(pickups[0].0, "pending", "{pickups:?}");
    assert_eq!(waybills_of(&env, &ids).await, vec![None; 3]);

    env.sandbox.set_faults(Faults::default());
    env.passes_until("booked", 2_000, 5).await;
    let made = env.sandbox.waybills();
    assert_eq!(made.len(), 1, "no second waybill: {made:?}");
    assert_eq!(
        made[0].bookings, 2,
        "the restarted worker asked again: {made:?}"
    );
    assert_eq!(
        waybills_of(&env, &ids).await,
        vec![Some(made[0].waybill_no.clone()); 3]
    );
    assert_eq!(pickup_events(&env, &order_id, "pickup_booked").await, 3);
    env.finish().await;
}

async fn a_pickup_failing_every_attempt_is_skipped_with_an_alert(env: Env) {
    let (order_id, ids, _) = three_returns(&env);
    env.sandbox.set_faults(Faults {
        fail_all: true,
        ..Faults::default()
    });
    // the long-running worker: the alert is on its /metrics
    let metrics_port = free_port();
    let mut worker = Server(
        env.pickup(100, 3)
            .env("OC_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        if let Ok((200, metrics)) = http(metrics_port, "GET", "/metrics", None)
            && metrics.contains("oc_pickup_alerts_total 1")
        {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no alert on /metrics");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics.contains("oc_pickup_failed_calls_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("oc_pickup_pickups_total{outcome=\"skipped\"} 1"),
        "{metrics}"
    );
    stop(&mut worker);
    let pickups = env.pickups().await;
    assert_eq!(pickups.len(), 1);
    assert_eq!(pickups[0].0, "skipped", "{pickups:?}");
    assert_eq!(pickups[0].1, 3, "exactly the maximum attempts: {pickups:?}");
    assert_eq!(env.sandbox.stats().requests, 3);
    assert_eq!(env.sandbox.stats().waybills, 0);
    // the alert: one event per after-sale of the pickup, and no waybill on them
    assert_eq!(pickup_events(&env, &order_id, "pickup_skipped").await, 3);
    assert_eq!(waybills_of(&env, &ids).await, vec![None; 3]);
    // skipped stays skipped: later passes call nobody
    env.sandbox.set_faults(Faults::default());
    let later = env.pass(100, 3);
    assert_eq!(later["booked"], 0, "{later}");
    assert_eq!(env.sandbox.stats().requests, 3);
    env.finish().await;
}

/// Single-node `serve` with a logistics provider runs the pickup worker itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_serve_books_the_pickup_itself() {
    let env = Env::single_node().await;
    let (_, ids, _) = three_returns(&env);
    let port = free_port();
    let mut command = env.command();
    command
        .env("OC_LOGISTICS_URL", &env.sandbox_url)
        .env("OC_LOGISTICS_TOKEN", "carrier-token")
        .env("OC_PICKUP_POLL_MS", "100");
    let mut server = serve(command, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) =
            http(port, "GET", &format!("/v1/after-sales/{}", ids[2]), None).unwrap();
        assert_eq!(status, 200, "{body}");
        let view: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(waybill) = view["waybill_no"].as_str() {
            assert_eq!(env.sandbox.waybills()[0].waybill_no, waybill);
            break;
        }
        assert!(Instant::now() < deadline, "serve never booked the pickup");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, metrics) = http(port, "GET", "/metrics", None).unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("oc_pickup_pickups_total{outcome=\"booked\"} 1"),
        "{metrics}"
    );
    stop(&mut server);
    assert_eq!(env.sandbox.stats().waybills, 1);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_three_returns_of_one_order_share_one_waybill() {
    three_returns_of_one_order_share_one_waybill(Env::single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_three_returns_of_one_order_share_one_waybill() {
    three_returns_of_one_order_share_one_waybill(Env::cluster("pickup_three").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_carrier_failures_and_a_lost_answer_still_make_one_waybill() {
    carrier_failures_and_a_lost_answer_still_make_one_waybill(Env::single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_carrier_failures_and_a_lost_answer_still_make_one_waybill() {
    carrier_failures_and_a_lost_answer_still_make_one_waybill(
        Env::cluster("pickup_failures").await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_worker_killed_mid_call_and_restarted_makes_no_second_waybill() {
    a_worker_killed_mid_call_and_restarted_makes_no_second_waybill(Env::single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_worker_killed_mid_call_and_restarted_makes_no_second_waybill() {
    a_worker_killed_mid_call_and_restarted_makes_no_second_waybill(
        Env::cluster("pickup_kill").await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_pickup_failing_every_attempt_is_skipped_with_an_alert() {
    a_pickup_failing_every_attempt_is_skipped_with_an_alert(Env::single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_pickup_failing_every_attempt_is_skipped_with_an_alert() {
    a_pickup_failing_every_attempt_is_skipped_with_an_alert(Env::cluster("pickup_skip").await)
        .await;
}
