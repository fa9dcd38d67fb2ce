//! Peak memory of the real `ordercenter export` does not grow with the number of orders: two
//! exports of one tenant's archived orders, both above the Parquet writer's caps (20,000
//! rows a day: more than one 2,048-row batch plus one 16,384-row row group), the second with
//! four times the rows of the first, on MariaDB shards and the HBase cold store. The orders
//! are generated straight into the cold store (`ColdStore::put`, 32 at a time), not through
//! the API (100,000 through the API took 622 s). Ignored by default (it writes 100,000 rows
//! to HBase); run by hand, it prints rows/s and the peak resident set of each export:
//!
//! ```sh
//! OC_TEST_MYSQL_URL=mysql://oc_test:oc_test@127.0.0.1:3306 OC_TEST_HBASE_ADDRESS=127.0.0.1:9090 \
//!   cargo nextest run -p ordercenter --test export_memory --run-ignored ignored-only --no-capture
//! ```
//!
//! The peak is the process's `VmHWM` (/proc), read every 10 ms until it exits.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt as _;
use oc_cold_store::{HbaseColdStore, HbaseConfig};
use oc_model::order::{
    Channel, Extension, Finance, LogisticsService, Marketing, Operation, OrderLine, OrderMain,
    Parties,
};
use oc_model::ports::ColdStore;
use oc_model::{
    Bucket, BusinessIdentity, Currency, Money, Order, OrderIdGenerator, OrderType, PartyId,
    StatusCode, TenantId,
};
use time::OffsetDateTime;

/// Rows a day: above one record batch (2,048) plus one row group (16,384).
const PER_DAY: u64 = 20_000;

/// 2026-11-01T00:00:00Z.
const DAY0_MS: u64 = 1_793_491_200_000;
const DAY_MS: u64 = 86_400_000;

/// A closed retail order of one line, created at `unix_ms` (no parties: nothing to seal).
fn order(tenant: &TenantId, ids: &OrderIdGenerator, n: u64, unix_ms: u64) -> Order {
    let id = ids.next(Bucket::new((n % 1024) as u16).unwrap(), unix_ms);
    let created =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap();
    let price = Money::new(1_000 + (n % 97) as i64, Currency::CNY);
    Order {
        main: OrderMain {
            id,
            tenant: tenant.clone(),
            business_identity: BusinessIdentity::parse("retail").unwrap(),
            order_type: OrderType::parse("standard").unwrap(),
            status: StatusCode::parse("closed").unwrap(),
            version: 4,
            buyer_id: PartyId::parse(format!("buyer-{}", n % 5_000)).unwrap(),
            merchant_id: None,
            external_ref: None,
            created_at: created,
            updated_at: created,
            pay_deadline: None,
        },
        lines: vec![OrderLine {
            line_no: 1,
            sku: format!("SKU-{}", n % 300),
            product_name: "Tea set".into(),
            quantity: 1,
            unit_price: price,
            unit_weight_grams: None,
            promotion_type: None,
            payable: price,
            ext: Default::default(),
        }],
        logistics: LogisticsService::default(),
        marketing: Marketing::default(),
        finance: Finance {
            currency: Currency::CNY,
            goods_total: price,
            discount_total: Money::zero(Currency::CNY),
            freight: Money::zero(Currency::CNY),
            payable: price,
            payments: vec![],
        },
        channel: Channel {
            source: Some("app".into()),
            customer_channel: None,
        },
        parties: Parties {
            shipper: None,
            receiver: None,
        },
        operation: Operation::default(),
        extension: Extension {
            columns: Default::default(),
            identifiers: vec![],
        },
    }
}

/// `days` × [`PER_DAY`] orders from day `first_day` on, spread over each day.
async fn seed(cold: &HbaseColdStore, tenant: &TenantId, first_day: u64, days: u64) {
    let ids = OrderIdGenerator::new(3).unwrap();
    let total = days * PER_DAY;
    let orders = (0..total).map(|n| {
        let day = first_day + n / PER_DAY;
        let within = (n % PER_DAY) * (DAY_MS / PER_DAY);
        order(tenant, &ids, n, DAY0_MS + day * DAY_MS + within)
    });
    let written: Vec<bool> = futures_util::stream::iter(orders)
        .map(|order| async move { cold.put(&order).await.unwrap() })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(written.into_iter().all(|w| w));
}

/// `ordercenter export` of `[from, to)`: its JSON report and its peak resident set (kB).
fn export(
    mut command: Command,
    from: &str,
    to: &str,
    out: &std::path::Path,
) -> (serde_json::Value, u64) {
    let mut child = command
        .args(["export", "--tenant", "retail", "--from", from, "--to", to])
        .args(["--format", "parquet", "--quiet", "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let deadline = Instant::now() + Duration::from_secs(900);
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kb) = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        {
            peak = peak.max(kb);
        }
        assert!(Instant::now() < deadline, "the export never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (serde_json::from_slice(&output.stdout).unwrap(), peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "writes 100,000 orders to HBase; run by hand for the figures"]
async fn export_peak_memory_does_not_grow_with_the_number_of_orders() {
    let databases = oc_test_support::TestDatabases::create("export_memory", 2)
        .await
        .unwrap();
    let table = oc_test_support::HbaseTable::new("export_memory")
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let command = || {
        let mut command = common::command(data.path());
        on_shards(&mut command, &databases.urls().join(",")).env(
            "OC_COLD_URL",
            format!(
                "hbase://{}?table={}",
                oc_test_support::hbase_address(),
                table.name()
            ),
        );
        command
    };
    keys_init(command());
    let cold = HbaseColdStore::connect(HbaseConfig {
        table: table.name().to_owned(),
        max_connections: 32,
        create_table: true,
        ..HbaseConfig::new(oc_test_support::hbase_address())
    })
    .await
    .unwrap();
    let retail = TenantId::parse("retail").unwrap();
    let seeding = Instant::now();
    // one day (2026-11-01) for the small export, four (11-02 to 11-05) for the large
    seed(&cold, &retail, 0, 5).await;
    let seeded = seeding.elapsed().as_secs_f64();
    println!("seeded {} orders into HBase in {seeded:.1} s", 5 * PER_DAY);
    drop(cold);

    let out = tempfile::tempdir().unwrap();
    let (small, small_peak) = export(
        command(),
        "2026-11-01",
        "2026-11-02",
        &out.path().join("small"),
    );
    let (large, large_peak) = export(
        command(),
        "2026-11-02",
        "2026-11-06",
        &out.path().join("large"),
    );
    for (name, report, peak) in [("small", &small, small_peak), ("large", &large, large_peak)] {
        println!(
            "{name}: {} rows, {:.0} rows/s, {:.1} s, peak RSS {} kB ({:.1} MiB)",
            report["rows"],
            report["rows_per_second"].as_f64().unwrap(),
            report["seconds"].as_f64().unwrap(),
            peak,
            peak as f64 / 1024.0
        );
    }
    assert_eq!(small["rows"], PER_DAY);
    assert_eq!(large["rows"], 4 * PER_DAY);
    // four times the rows: a memory that grew with them would be far above the small one's
    assert!(
        large_peak * 4 < small_peak * 5,
        "peak {large_peak} kB for {} rows against {small_peak} kB for {}",
        4 * PER_DAY,
        PER_DAY
    );
    databases.cleanup().await.unwrap();
    table.cleanup().await.unwrap();
}
