//! The real `ordercenter scheduler` processes on real MariaDB shards (`serve` places the
//! orders): unpaid orders are cancelled by their `timeout` exactly once while two schedulers
//! race and one is SIGKILLed and restarted, every reserved unit comes back exactly once, an
//! order paid before its deadline stays paid; and reservations whose order was never
//! written come back after their expiry, exactly once with two sweepers, while the
//! reservation of an order that exists is left to the order.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

struct Cluster {
    databases: oc_test_support::TestDatabases,
    data: tempfile::TempDir,
    tenants: tempfile::TempDir,
}

impl Cluster {
    /// Two MariaDB shards and the example tenants with retail's `standard` orders given a
    /// payment window of `window_seconds`; data keys initialised.
    async fn start(label: &str, window_seconds: u32) -> Cluster {
        let databases = oc_test_support::TestDatabases::create(label, 2)
            .await
            .unwrap();
        let tenants = copy_of_examples();
        with_payment_window(tenants.path(), "retail", window_seconds.into());
        let cluster = Cluster {
            databases,
            data: tempfile::tempdir().unwrap(),
            tenants,
        };
        keys_init(cluster.command());
        cluster
    }

    fn command(&self) -> Command {
        let mut command = command(self.data.path());
        on_shards(&mut command, &self.databases.urls().join(","))
            .env("OC_TENANT_CONFIG_DIR", self.tenants.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    fn spawn(&self, subcommand: &str, extra: &[(&str, String)]) -> Server {
        let mut command = self.command();
        command.arg(subcommand);
        for (name, value) in extra {
            command.env(name, value);
        }
        Server(command.spawn().unwrap())
    }

    /// A scheduler passing every 200 ms, its `/metrics` on `port`.
    fn scheduler(&self, port: u16, orphan_grace_ms: u64) -> Server {
        let server = self.spawn(
            "scheduler",
            &[
                ("OC_LISTEN", format!("127.0.0.1:{port}")),
                ("OC_SCHEDULER_POLL_MS", "200".to_owned()),
                ("OC_SCHEDULER_ORPHAN_GRACE_MS", orphan_grace_ms.to_string()),
            ],
        );
        wait_healthy(port);
        server
    }

    async fn pools(&self) -> Vec<sqlx::MySqlPool> {
        let mut pools = Vec::new();
        for index in 0..self.databases.len() {
            pools.push(self.databases.connect(index).await.unwrap());
        }
        pools
    }
}

/// The value of the sample named exactly `name` (with its labels) at `/metrics` on `port`.
fn metric(port: u16, name: &str) -> f64 {
    let (status, body) = http(port, "GET", "/metrics", None).unwrap();
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.trim().parse::<f64>().unwrap())
        .sum()
}

/// A retail order of one unit of `sku` with a coupon `CPN-<buyer>`; its id.
fn place(port: u16, buyer: &str, sku: &str) -> String {
    let order = CreateRequest::retail(buyer)
        .sku(sku)
        .set(
            "coupons",
            serde_json::json!([{"code": format!("CPN-{buyer}"), "discount_minor": 100}]),
        )
        .body();
    let (status, body) = http(port, "POST", "/v1/orders", Some(&order)).unwrap();
    assert_eq!(status, 201, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    view["id"].as_str().unwrap().to_owned()
}

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The issue's "Timeout exactly once": 1,000 unpaid orders with a 10 s window (placed in a
/// few seconds on this 2-core machine; the whole test takes about 16 s), two schedulers find
/// the same due orders; one is SIGKILLed mid-run and restarted.
/// Every order is cancelled by exactly one `timeout` (one history row, one outbox event
/// naming its coupon), every unit is back exactly once, and the order paid just before its
/// deadline is paid and sold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_one_killed_time_out_every_unpaid_order_exactly_once() {
    const ORDERS: usize = 1_000;
    const WINDOW_SECONDS: u32 = 10;
    const SKUS: usize = 3;
    const UNITS: u64 = 400;
    let cluster = Cluster::start("sched_timeout", WINDOW_SECONDS).await;
    let pools = cluster.pools().await;
    let port = free_port();
    let mut api = cluster.spawn("serve", &[("OC_LISTEN", format!("127.0.0.1:{port}"))]);
    wait_healthy(port);
    for sku in 0..SKUS {
        set_stock(port, &format!("SKU-{sku}"), UNITS);
    }
    let (port_a, port_b) = (free_port(), free_port());
    let mut scheduler_a = cluster.scheduler(port_a, 60_000);
    let mut scheduler_b = cluster.scheduler(port_b, 60_000);

    // the order paid at the last moment: placed first, paid 500 ms before its deadline
    let payer = place(port, "buyer-payer", "SKU-0");
    let placed_at = Instant::now();
    // the order shows when it times out: its window after placement
    let (status, body) = http(port, "GET", &format!("/v1/orders/{payer}"), None).unwrap();
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let at = |name: &str| {
        time::OffsetDateTime::parse(
            view[name].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(
        at("pay_deadline") - at("created_at"),
        time::Duration::seconds(i64::from(WINDOW_SECONDS))
    );
    let pay = std::thread::spawn({
        let payer = payer.clone();
        move || {
            std::thread::sleep(
                (placed_at + Duration::from_secs(u64::from(WINDOW_SECONDS)))
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(Duration::from_millis(500)),
            );
            request(
                port,
                "POST",
                &format!("/v1/orders/{payer}/transitions"),
                &[("If-Match", "\"1\"")],
                Some(r#"{"event":"pay"}"#),
            )
            .unwrap()
        }
    });
    let placers: Vec<_> = (0..4)
        .map(|thread| {
            std::thread::spawn(move || {
                (0..ORDERS / 4)
                    .map(|n| {
                        let n = thread * (ORDERS / 4) + n;
                        place(port, &format!("buyer-{n}"), &format!("SKU-{}", n % SKUS))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut unpaid: Vec<String> = Vec::new();
    for placer in placers {
        unpaid.extend(placer.join().unwrap());
    }
    let placed = placed_at.elapsed();
    assert_eq!(unpaid.len(), ORDERS);
    let (status, body) = pay.join().unwrap();
    assert_eq!(status, 200, "the payment before the deadline wins: {body}");

    let timeouts = "SELECT COUNT(*) FROM order_history WHERE event = 'timeout'";
    // kill one scheduler in the middle of the run, then start it again
    wait_for("the first timeouts", Duration::from_secs(30), async || {
        sum(&pools, timeouts).await >= (ORDERS / 5) as i64
    })
    .await;
    scheduler_a.0.kill().unwrap();
    scheduler_a.0.wait().unwrap();
    let killed_at = sum(&pools, timeouts).await;
    assert!(killed_at < ORDERS as i64, "the kill came after the run");
    let port_a = free_port();
    scheduler_a = cluster.scheduler(port_a, 60_000);

    wait_for(
        "every order timed out",
        Duration::from_secs(60),
        async || sum(&pools, timeouts).await >= ORDERS as i64,
    )
    .await;
    // the last order's deadline passed at most `placed` after the first's window ended
    let all_timed_out = placed_at.elapsed();
    eprintln!(
        "{ORDERS} orders placed in {placed:?}; the first window ended after {WINDOW_SECONDS} s, \
         all timed out after {all_timed_out:?}; the kill came after {killed_at} timeouts"
    );
    // releases follow their timeouts (or, after the kill, the sweeper's settle)
    wait_for(
        "every reservation settled",
        Duration::from_secs(30),
        async || {
            sum(
                &pools,
                "SELECT COUNT(*) FROM stock_reservations WHERE state = 'reserved'",
            )
            .await
                == 0
        },
    )
    .await;
    // a few more passes of both: nothing fires twice
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert_eq!(sum(&pools, timeouts).await, ORDERS as i64);
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(*) FROM (SELECT order_id FROM order_history WHERE event = 'timeout' GROUP BY order_id HAVING COUNT(*) = 1) once"
        )
        .await,
        ORDERS as i64,
        "one timeout row per order"
    );
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(*) FROM orders WHERE status = 'cancelled' AND pay_deadline_ms IS NULL"
        )
        .await,
        ORDERS as i64
    );
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(DISTINCT order_id) FROM outbox WHERE payload LIKE '%\"event\":\"timeout\"%'"
        )
        .await,
        ORDERS as i64
    );
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(*) FROM outbox WHERE payload LIKE '%\"event\":\"timeout\"%'"
        )
        .await,
        ORDERS as i64,
        "one timeout event per order"
    );
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(*) FROM outbox WHERE payload LIKE '%\"event\":\"timeout\"%' AND payload LIKE '%\"coupons\":[\"CPN-buyer-%'"
        )
        .await,
        ORDERS as i64,
        "every timeout event names the coupon to give back"
    );
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(*) FROM stock_reservations WHERE state = 'released'"
        )
        .await,
        ORDERS as i64
    );
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(*) FROM stock_reservations WHERE state = 'confirmed'"
        )
        .await,
        1
    );
    assert_eq!(
        (
            sum(
                &pools,
                "SELECT CAST(SUM(available) AS SIGNED) FROM stock_levels"
            )
            .await,
            sum(
                &pools,
                "SELECT CAST(SUM(reserved) AS SIGNED) FROM stock_levels"
            )
            .await,
            sum(&pools, "SELECT CAST(SUM(sold) AS SIGNED) FROM stock_levels").await,
        ),
        (SKUS as i64 * UNITS as i64 - 1, 0, 1),
        "every unit back exactly once, the paid one sold"
    );
    let (status, body) = http(port, "GET", &format!("/v1/orders/{payer}/history"), None).unwrap();
    assert_eq!(status, 200, "{body}");
    let history: serde_json::Value = serde_json::from_str(&body).unwrap();
    let events: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["pay"], "paid before the deadline: never timed out");

    // both found the same orders: the surviving instance fired some and lost races on
    // others (or found them no longer due), none of which is an error
    let fired = metric(port_b, "oc_scheduler_timeouts_total{outcome=\"fired\"}");
    assert!(fired > 0.0, "{fired}");
    assert_eq!(metric(port_b, "oc_scheduler_errors_total"), 0.0);
    let (_, text) = http(port_b, "GET", "/metrics", None).unwrap();
    assert!(text.contains("oc_scheduler_lag_ms{shard=\"0\"}"), "{text}");
    stop(&mut scheduler_a);
    stop(&mut scheduler_b);
    stop(&mut api);
    drop(pools);
    cluster.databases.cleanup().await.unwrap();
}

/// The issue's "No stock leak": reservations whose order never committed (made on the store
/// directly, as a placement killed between its reservation and its order's transaction
/// leaves them) come back once expired, exactly once with two sweepers running; the expired
/// reservation of an order that exists and still waits is left to the order, and the one of
/// an order whose cancel committed but whose release did not happen is settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_returns_every_unit_of_reservations_whose_order_never_committed() {
    use oc_model::lifecycle::{TransitionStore, TransitionWrite};
    use oc_model::ports::{NewOrder, OrderStore};
    use oc_model::stock::{Hold, ReserveOutcome, StockStore};
    use oc_model::{
        HistoryEntry, OrderEvent, OrderEventKind, OrderId, ReservationState, Sku, StatusCode,
        StockEffect, TenantId, TransitionEvent,
    };
    const ORPHANS: u64 = 40;
    // the placement path is not used here: the example's window is kept
    let cluster = Cluster::start("sched_sweep", 1800).await;
    let pools = cluster.pools().await;
    let store = Arc::new(
        oc_store_sql::SqlOrderStore::connect(oc_store_sql::StoreConfig::new(
            cluster.databases.urls().to_vec(),
        ))
        .await
        .unwrap(),
    );
    let tenant = TenantId::parse("retail").unwrap();
    let sku = Sku::parse("LEAK-1").unwrap();
    let now = time::OffsetDateTime::now_utc();
    store.set_available(&tenant, &sku, 100, now).await.unwrap();
    let hold = |order_id: OrderId, quantity: u64| Hold {
        tenant: tenant.clone(),
        order_id,
        sku: sku.clone(),
        quantity,
        expires_at: now + time::Duration::seconds(2),
        created_at: now,
    };
    for n in 0..ORPHANS {
        let order_id = OrderId::from_raw(7_000 + n).unwrap();
        assert_eq!(
            store.reserve(&hold(order_id, 1 + n % 2)).await.unwrap(),
            ReserveOutcome::Reserved
        );
    }
    // an order that exists and waits (its own timeout or payment decides): 3 units
    let mut waiting = oc_test_support::fixtures::order(&tenant, "buyer-waiting");
    waiting.main.status = StatusCode::parse("pending_payment").unwrap();
    waiting.main.pay_deadline = None;
    store
        .insert(NewOrder {
            order: waiting.clone(),
            idempotency: None,
            event: OrderEvent::of(&waiting, OrderEventKind::Created),
        })
        .await
        .unwrap();
    store.reserve(&hold(waiting.main.id, 3)).await.unwrap();
    // an order whose cancel committed (history: release) but whose release never ran: 4 units
    let mut cancelled = oc_test_support::fixtures::order(&tenant, "buyer-cancelled");
    cancelled.main.status = StatusCode::parse("pending_payment").unwrap();
    cancelled.main.pay_deadline = None;
    store
        .insert(NewOrder {
            order: cancelled.clone(),
            idempotency: None,
            event: OrderEvent::of(&cancelled, OrderEventKind::Created),
        })
        .await
        .unwrap();
    store.reserve(&hold(cancelled.main.id, 4)).await.unwrap();
    let mut next = cancelled.clone();
    next.main.version += 1;
    next.main.status = StatusCode::parse("cancelled").unwrap();
    let entry = HistoryEntry {
        tenant: tenant.clone(),
        order_id: cancelled.main.id,
        version: next.main.version,
        from: cancelled.main.status.clone(),
        to: next.main.status.clone(),
        event: TransitionEvent::parse("cancel").unwrap(),
        operator: "shop-api".into(),
        source_system: "api".into(),
        reason: None,
        data: Default::default(),
        stock: StockEffect::Release,
        occurred_at: now,
    };
    let event = OrderEvent::of(&next, OrderEventKind::Cancelled);
    store
        .commit_transition(TransitionWrite {
            expected_version: cancelled.main.version,
            order: next,
            event,
            history: Some(entry),
        })
        .await
        .unwrap();
    let orphan_units: u64 = (0..ORPHANS).map(|n| 1 + n % 2).sum();
    let level = store.stock_level(&tenant, &sku).await.unwrap().unwrap();
    assert_eq!(level.reserved, orphan_units + 3 + 4);

    let (port_a, port_b) = (free_port(), free_port());
    let mut scheduler_a = cluster.scheduler(port_a, 1_000);
    let mut scheduler_b = cluster.scheduler(port_b, 1_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let level = store.stock_level(&tenant, &sku).await.unwrap().unwrap();
        assert_eq!(level.total(), 100, "{level:?}");
        if level.reserved <= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sweeper did not return the units: {level:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // more passes of both: nothing moves twice, the waiting order keeps its units
    tokio::time::sleep(Duration::from_secs(1)).await;
    let level = store.stock_level(&tenant, &sku).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved, level.sold), (97, 3, 0));
    assert_eq!(
        store
            .reservation(&tenant, waiting.main.id, &sku)
            .await
            .unwrap()
            .unwrap()
            .state,
        ReservationState::Reserved
    );
    assert_eq!(
        store
            .reservation(&tenant, cancelled.main.id, &sku)
            .await
            .unwrap()
            .unwrap()
            .state,
        ReservationState::Released
    );
    let swept = |outcome: &str| {
        let name = format!("oc_scheduler_reservations_swept_total{{outcome=\"{outcome}\"}}");
        metric(port_a, &name) + metric(port_b, &name)
    };
    assert_eq!(
        swept("orphan_released") as u64,
        ORPHANS,
        "each orphan released once"
    );
    assert_eq!(swept("settled") as u64, 1);
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(*) FROM stock_reservations WHERE state = 'released'"
        )
        .await,
        ORPHANS as i64 + 1
    );
    stop(&mut scheduler_a);
    stop(&mut scheduler_b);
    store.close().await;
    drop(pools);
    cluster.databases.cleanup().await.unwrap();
}

/// "No stock leak" through the real server: placements run on four connections while the
/// server is SIGKILLed, so some die between their reservation and their order's commit.
/// After the windows end, every unit is back: the placed orders by their timeout, the
/// reservations whose order never committed by the sweeper; nothing was sold twice or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_placement_leaks_no_stock() {
    const UNITS: u64 = 100_000;
    let cluster = Cluster::start("sched_kill", 3).await;
    let pools = cluster.pools().await;
    let port = free_port();
    let mut api = cluster.spawn("serve", &[("OC_LISTEN", format!("127.0.0.1:{port}"))]);
    wait_healthy(port);
    set_stock(port, "SKU-K", UNITS);
    let scheduler_port = free_port();
    let mut scheduler = cluster.scheduler(scheduler_port, 1_000);
    let placers: Vec<_> = (0..4)
        .map(|thread| {
            std::thread::spawn(move || {
                let mut placed = 0;
                for n in 0.. {
                    let order = CreateRequest::retail(&format!("buyer-{thread}-{n}"))
                        .sku("SKU-K")
                        .body();
                    match http(port, "POST", "/v1/orders", Some(&order)) {
                        Ok((201, _)) => placed += 1,
                        // the server is gone: killed mid-request or refusing connections
                        _ => return placed,
                    }
                }
                placed
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    api.0.kill().unwrap();
    api.0.wait().unwrap();
    let placed: usize = placers.into_iter().map(|p| p.join().unwrap()).sum();
    assert!(placed > 0);
    let reserved_units = sum(
        &pools,
        "SELECT CAST(SUM(quantity) AS SIGNED) FROM stock_reservations",
    )
    .await;
    let orders = sum(&pools, "SELECT COUNT(*) FROM orders").await;
    wait_for("every unit back", Duration::from_secs(40), async || {
        sum(
            &pools,
            "SELECT CAST(SUM(reserved) AS SIGNED) FROM stock_levels",
        )
        .await
            == 0
    })
    .await;
    let orphans = metric(
        scheduler_port,
        "oc_scheduler_reservations_swept_total{outcome=\"orphan_released\"}",
    );
    eprintln!(
        "{placed} placements answered, {orders} orders written, {reserved_units} units reserved, \
         {orphans} orphaned reservations released"
    );
    assert_eq!(
        (
            sum(
                &pools,
                "SELECT CAST(SUM(available) AS SIGNED) FROM stock_levels"
            )
            .await,
            sum(&pools, "SELECT CAST(SUM(sold) AS SIGNED) FROM stock_levels").await,
        ),
        (UNITS as i64, 0),
        "every unit back on sale"
    );
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(*) FROM stock_reservations WHERE state <> 'released'"
        )
        .await,
        0
    );
    // the orders that were written timed out; the rest of the reservations were orphans
    assert_eq!(
        sum(
            &pools,
            "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"
        )
        .await,
        orders
    );
    assert_eq!(
        orders + orphans as i64,
        sum(&pools, "SELECT COUNT(*) FROM stock_reservations").await,
        "each reservation released once: by its order's timeout or as an orphan"
    );
    stop(&mut scheduler);
    drop(pools);
    cluster.databases.cleanup().await.unwrap();
}

/// Orders the worker cannot time out never hold up the others, and are not retried forever:
/// one whose state machine does not allow `timeout` from its status (its config changed
/// since it was placed) loses its deadline once, with no history row; one of a tenant no
/// longer configured is left as it is. A due order behind them in the index is timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_the_worker_cannot_time_out_are_skipped_without_blocking_the_rest() {
    let cluster = Cluster::start("sched_skip", 1800).await;
    let pools = cluster.pools().await;
    let port = free_port();
    let mut api = cluster.spawn("serve", &[("OC_LISTEN", format!("127.0.0.1:{port}"))]);
    wait_healthy(port);
    let not_allowed = place(port, "buyer-paid", "SKU-X");
    let ghost = place(port, "buyer-ghost", "SKU-X");
    let due = place(port, "buyer-due", "SKU-X");
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1_000;
    // each statement changes the one shard holding the order
    for pool in &pools {
        for sql in [
            format!(
                "UPDATE orders SET status = 'paid', pay_deadline_ms = {} WHERE id = {not_allowed}",
                now_ms - 1_000
            ),
            format!(
                "UPDATE orders SET tenant = 'ghost', pay_deadline_ms = {} WHERE id = {ghost}",
                now_ms - 2_000
            ),
            format!(
                "UPDATE orders SET pay_deadline_ms = {} WHERE id = {due}",
                now_ms - 500
            ),
        ] {
            sqlx::query(&sql).execute(pool).await.unwrap();
        }
    }
    let scheduler_port = free_port();
    let mut scheduler = cluster.scheduler(scheduler_port, 60_000);
    let fired =
        format!("SELECT COUNT(*) FROM order_history WHERE order_id = {due} AND event = 'timeout'");
    wait_for(
        "the due order timed out",
        Duration::from_secs(20),
        async || sum(&pools, &fired).await == 1,
    )
    .await;
    // more passes: the skipped ones stay skipped, nothing is written twice
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sum(
            &pools,
            &format!("SELECT COUNT(*) FROM orders WHERE id = {not_allowed} AND status = 'paid' AND version = 2 AND pay_deadline_ms IS NULL")
        )
        .await,
        1,
        "the deadline cleared once, the status untouched"
    );
    assert_eq!(
        sum(
            &pools,
            &format!("SELECT COUNT(*) FROM order_history WHERE order_id = {not_allowed}")
        )
        .await,
        0,
        "clearing a deadline is no transition"
    );
    assert_eq!(
        sum(
            &pools,
            &format!("SELECT COUNT(*) FROM outbox WHERE order_id = {not_allowed}")
        )
        .await,
        2,
        "created, then the cleared deadline"
    );
    assert_eq!(
        sum(
            &pools,
            &format!("SELECT COUNT(*) FROM orders WHERE id = {ghost} AND version = 1 AND pay_deadline_ms IS NOT NULL")
        )
        .await,
        1,
        "an unknown tenant's order is left as it is"
    );
    let outcome = |name: &str| {
        metric(
            scheduler_port,
            &format!("oc_scheduler_timeouts_total{{outcome=\"{name}\"}}"),
        )
    };
    assert_eq!(outcome("fired"), 1.0);
    assert_eq!(outcome("not_allowed"), 1.0);
    assert!(outcome("unknown_tenant") >= 2.0, "skipped on every pass");
    assert_eq!(metric(scheduler_port, "oc_scheduler_errors_total"), 0.0);
    stop(&mut scheduler);
    stop(&mut api);
    drop(pools);
    cluster.databases.cleanup().await.unwrap();
}
