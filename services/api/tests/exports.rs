//! Analytics exports end to end: orders of two tenants created through the API over 30 days
//! (a manual clock), some archived to the cold store, some projected there and changed
//! since, some only hot; `POST /v1/exports` as the analytics role; the files read back by
//! pyarrow (`exports_check.py`, an independent reader) and compared with what the API
//! returned for every order.
//!
//! Size: `OC_EXPORT_TEST_ORDERS` orders in all (default 1,200: 20 a day and tenant; the
//! issue's 100,000 is run by hand for the figures in the closing note, it takes minutes).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use oc_api::edge::EdgeConfig;
use oc_api::{AppState, router_with};
use oc_core::archive::ArchiveSettings;
use oc_core::{Core, Sealer};
use oc_crypto::{KeyRing, MasterKey};
use oc_model::archive::ArchiveStore;
use oc_model::export::ExportJobs;
use oc_model::lifecycle::TransitionStore;
use oc_model::ports::{ColdStore, ManualClock, OrderStore, ShardScan};
use oc_model::stock::StockStore;
use oc_model::{OrderId, TenantId};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use oc_tenant_config::{ConfigHandle, ConfigSet};

const RETAIL_BL: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";
const RETAIL_ANALYTICS: &str = "oc_test_retail_an_0001_c8a54e1f2d97b036e5f1";
const EXPRESS_BL: &str = "oc_test_express_bl_0001_7c1f4e9a2b6d8035e1a4";
const EXPRESS_ANALYTICS: &str = "oc_test_express_an_0001_9d2a6f14c8e3b7052f6e";

const DAYS: u32 = 30;
/// A few phones shared by many orders: equal phones must get equal tokens.
const PHONES: [&str; 4] = ["13900001111", "13900002222", "13900003333", "13900004444"];

struct Harness {
    router: Router,
    core: Core,
    store: Arc<SqlOrderStore>,
    cold: Arc<dyn ColdStore>,
    clock: Arc<ManualClock>,
    dir: PathBuf,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

fn tenant_configs() -> ConfigSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tenant-config/examples");
    let mut tenants = Vec::new();
    for name in ["express.yaml", "retail.yaml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        tenants.push(ConfigSet::from_yaml_str(name, &text).unwrap());
    }
    ConfigSet::from_tenants(tenants).unwrap()
}

impl Harness {
    async fn sqlite(label: &str) -> Harness {
        let dir = std::env::temp_dir().join(oc_test_support::unique_prefix(label));
        std::fs::create_dir_all(&dir).unwrap();
        let urls = (0..2)
            .map(|i| format!("sqlite://{}/shard-{i}.db", dir.display()))
            .collect();
        let tenants = tenant_configs();
        let master = MasterKey::from_bytes([7u8; 32]);
        let ring = KeyRing::new(&master);
        for tenant in tenants.tenants() {
            ring.create_tenant(tenant.id().as_str()).unwrap();
        }
        let store = Arc::new(
            SqlOrderStore::connect(StoreConfig::new(urls))
                .await
                .unwrap(),
        );
        let cold = oc_cold_store::open(&format!("redb://{}/cold.redb", dir.display()))
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-11-01 0:00 UTC),
        ));
        let core = Core::builder(
            store.clone() as Arc<dyn OrderStore>,
            Arc::new(ConfigHandle::new(tenants)),
            Sealer::from_keys(Arc::new(ring), &master),
        )
        .cold(Some(Arc::clone(&cold)))
        .transitions(store.clone() as Arc<dyn TransitionStore>)
        .stock(store.clone() as Arc<dyn StockStore>)
        .clock(clock.clone())
        .build()
        .unwrap();
        let jobs = oc_export_files::DirJobs::new(dir.join("exports")).unwrap();
        let exporter = core.exporter(
            store.clone() as Arc<dyn ShardScan>,
            Arc::clone(&cold),
            Arc::new(oc_export_files::ArrowFiles),
            Some(Arc::new(jobs) as Arc<dyn ExportJobs>),
        );
        let router = router_with(
            AppState::new(core.clone()).with_exports(exporter),
            EdgeConfig::default(),
        );
        Harness {
            router,
            core,
            store,
            cold,
            clock,
            dir,
        }
    }

    async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Reply {
        loop {
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {key}"));
            if method == "PATCH" {
                // every order this test changes is at its first version
                request = request.header(header::IF_MATCH, "\"1\"");
            }
            let request = match &body {
                Some(body) => request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string())),
                None => request.body(Body::empty()),
            }
            .unwrap();
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            if status == StatusCode::TOO_MANY_REQUESTS {
                // the example tenants' rate limits: wait for the bucket, not a failure here
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Reply { status, body };
        }
    }
}

fn retail_order(n: usize) -> Value {
    let warranty = [0, 6, 12, 24][n % 4];
    let level = ["regular", "silver", "gold", "platinum"][n % 4];
    json!({
        "business_identity": "retail",
        "order_type": "standard",
        "buyer_id": format!("buyer-{}", n % 97),
        "lines": [
            {"sku": "TSHIRT-M", "product_name": "T-shirt", "quantity": 1 + n % 3, "unit_price_minor": 990 + n as i64,
             "extension": {"engraving_text": format!("E{}", n % 7), "warranty_months": warranty}},
            {"sku": "MUG-1", "product_name": "Mug", "quantity": 1, "unit_price_minor": 1500}
        ],
        "receiver": {"name": format!("Receiver Person {}", n % 11), "phone": PHONES[n % PHONES.len()],
                     "address": format!("{} Nanjing Road, Apartment {}", 100 + n % 13, n % 5)},
        "extension": {
            "gift_message": format!("Secret greeting {n}"),
            "invoice_title": format!("Invoice {}", n % 9),
            "member_level": level,
            "buyer_phone_tail": "4321",
            "campaign_id": format!("CAMP-{}", n % 5)
        }
    })
}

fn express_order(n: usize) -> Value {
    json!({
        "business_identity": "cold-chain",
        "order_type": "standard",
        "buyer_id": format!("xbuyer-{}", n % 31),
        "merchant_id": "pharma-7",
        "lines": [{"sku": "VAC-1", "product_name": "Vaccine", "quantity": 2, "unit_price_minor": 12000,
                   "extension": {"storage_band": "chilled"}}],
        "receiver": {"name": "Express Receiver", "phone": "13811112222", "address": "9 Express Street"},
        "extension": {"temperature_min": "2.0", "temperature_max": "8.0", "cargo_category": "vaccine",
                      "cold_box_id": format!("CB-{:08}", n)}
    })
}

/// What the API says of one order, in the export's terms (expected.json of the checker).
fn expected_of(view: &Value) -> Value {
    let created = view["created_at"].as_str().unwrap();
    let mut ext = serde_json::Map::new();
    let mut sealed = serde_json::Map::new();
    for (name, value) in view["extension"].as_object().unwrap() {
        match name.as_str() {
            // encrypted: the checker makes sure the export does not hold this plaintext
            // (a short value like the phone tail is too common to look for in every string)
            "gift_message" | "buyer_phone_tail" => {
                sealed.insert(name.clone(), value.clone());
            }
            // a KV identifier: by domain and key
            "campaign_id" => {
                ext.insert("marketing.campaign_id".into(), value.clone());
            }
            _ => {
                ext.insert(name.clone(), value.clone());
            }
        }
    }
    let lines: Vec<Value> = view["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            let mut out = json!({
                "line_no": line["line_no"],
                "sku": line["sku"],
                "quantity": line["quantity"],
                "payable_minor": line["payable"]["minor"],
            });
            for (name, value) in line["extension"].as_object().unwrap() {
                out[name] = value.clone();
            }
            out
        })
        .collect();
    json!({
        "id": view["id"],
        "date": &created[..10],
        "version": view["version"],
        "status": view["status"],
        "payable_minor": view["finance"]["payable"]["minor"],
        "receiver_phone": view["parties"]["receiver"]["phone"],
        "ext": ext,
        "sealed": sealed,
        "lines": lines,
    })
}

/// Resident set now and its peak since the last reset (kB, from /proc; Linux).
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn reset_peak_rss() {
    // "5" resets the peak resident set size (VmHWM) of the process
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn check_with_pyarrow(dir: &Path, expected: &Value, scratch: &Path) {
    let expected_file = scratch.join(format!(
        "expected-{}.json",
        expected["format"].as_str().unwrap()
    ));
    std::fs::write(&expected_file, serde_json::to_vec(expected).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/exports_check.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir)
        .arg(&expected_file)
        .output()
        .expect("python3 runs (deploy/local/test.sh installs it with pyarrow)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'pyarrow'"),
        "pyarrow is not installed: deploy/local/test.sh installs it (pip install pyarrow)"
    );
    assert!(
        output.status.success(),
        "the independent reader disagrees with the API:\n{stderr}{}",
        String::from_utf8_lossy(&output.stdout)
    );
    println!("{}", String::from_utf8_lossy(&output.stdout).trim());
}

/// Start an export as `key` and wait for its end (bounded); the job as last recorded.
async fn export(h: &Harness, key: &str, format: &str) -> Value {
    let started = h
        .call(
            "POST",
            "/v1/exports",
            key,
            Some(json!({"from": "2026-11-01", "to": "2026-12-01", "format": format})),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    assert_eq!(started.body["status"], "running");
    let id = started.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let job = h.call("GET", &format!("/v1/exports/{id}"), key, None).await;
        assert_eq!(job.status, StatusCode::OK, "{}", job.body);
        if job.body["status"] != "running" {
            return job.body;
        }
        assert!(
            Instant::now() < deadline,
            "export {id} still running: {}",
            job.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_an_export_of_two_tenants_over_thirty_days_reads_back_as_the_api_answered() {
    let total: usize = std::env::var("OC_EXPORT_TEST_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_200);
    let per_day = (total / (2 * DAYS as usize)).max(1);
    let h = Harness::sqlite("exports").await;

    // 1. orders of both tenants, `per_day` a day each, over 30 days
    let mut retail = Vec::new();
    let mut express = Vec::new();
    let created_started = Instant::now();
    for day in 0..DAYS {
        for chunk in (0..per_day).collect::<Vec<_>>().chunks(16) {
            h.clock.advance(time::Duration::seconds(1));
            let calls = chunk.iter().map(|k| {
                let n = day as usize * per_day + k;
                let h = &h;
                async move {
                    let r = h
                        .call("POST", "/v1/orders", RETAIL_BL, Some(retail_order(n)))
                        .await;
                    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
                    let x = h
                        .call("POST", "/v1/orders", EXPRESS_BL, Some(express_order(n)))
                        .await;
                    assert_eq!(x.status, StatusCode::CREATED, "{}", x.body);
                    (
                        r.body["id"].as_str().unwrap().to_owned(),
                        x.body["id"].as_str().unwrap().to_owned(),
                    )
                }
            });
            for (r, x) in futures_util::future::join_all(calls).await {
                retail.push(r);
                express.push(x);
            }
        }
        h.clock.advance(
            time::Duration::days(1) - time::Duration::seconds(per_day.div_ceil(16) as i64),
        );
    }
    let created_seconds = created_started.elapsed().as_secs_f64();

    // 2. four kinds of retail order: archived (cold only, at v + 1), projected to the cold
    //    store and changed since (the shard is newer), projected and unchanged, hot only
    let retail_tenant = TenantId::parse("retail").unwrap();
    let mut archived = 0;
    for (i, id) in retail.iter().enumerate() {
        let order_id: OrderId = id.parse().unwrap();
        match i % 4 {
            0 => {
                let r = h
                    .call(
                        "POST",
                        &format!("/v1/orders/{id}/cancel"),
                        RETAIL_BL,
                        Some(json!({})),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                archived += 1;
            }
            1 | 2 => {
                let order = h
                    .store
                    .get(&retail_tenant, order_id)
                    .await
                    .unwrap()
                    .unwrap();
                assert!(h.cold.put(&order).await.unwrap());
                if i % 4 == 1 {
                    let patch = json!({"extension": {"invoice_title": format!("Changed {i}")}});
                    let r = h
                        .call("PATCH", &format!("/v1/orders/{id}"), RETAIL_BL, Some(patch))
                        .await;
                    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                }
            }
            _ => {}
        }
    }
    h.clock.advance(time::Duration::days(200));
    let archiver = h.core.archiver(
        h.store.clone() as Arc<dyn ArchiveStore>,
        Arc::clone(&h.cold),
        ArchiveSettings {
            rate_per_sec: 0,
            ..ArchiveSettings::default()
        },
    );
    let report = archiver.pass().await;
    assert_eq!(report.moved, archived as u64, "{report:?}");

    // 3. what the API answers for every retail order (archived ones from the cold store)
    let mut orders = Vec::new();
    let mut secrets = std::collections::BTreeSet::new();
    for id in &retail {
        let r = h
            .call("GET", &format!("/v1/orders/{id}"), RETAIL_BL, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let receiver = &r.body["parties"]["receiver"];
        for field in ["name", "phone", "address"] {
            secrets.insert(receiver[field].as_str().unwrap().to_owned());
        }
        secrets.insert(
            r.body["extension"]["gift_message"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        orders.push(expected_of(&r.body));
    }
    let hot_versions: Vec<_> = orders
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 == 1)
        .map(|(_, o)| o["version"].as_u64().unwrap())
        .collect();
    assert!(
        hot_versions.iter().all(|v| *v == 2),
        "changed after projection"
    );

    // 4. who may export what
    let plain = h
        .call(
            "POST",
            "/v1/exports",
            RETAIL_ANALYTICS,
            Some(json!({"from": "2026-11-01", "to": "2026-12-01", "pii": "plain"})),
        )
        .await;
    assert_eq!(plain.status, StatusCode::FORBIDDEN, "{}", plain.body);
    assert_eq!(plain.body["field"], "/pii", "{}", plain.body);
    let bad = h
        .call(
            "POST",
            "/v1/exports",
            RETAIL_ANALYTICS,
            Some(json!({"from": "2026-11-31", "to": "2026-12-01"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let not_analytics = h
        .call(
            "POST",
            "/v1/exports",
            RETAIL_BL,
            Some(json!({"from": "2026-11-01", "to": "2026-12-01"})),
        )
        .await;
    assert_eq!(
        not_analytics.status,
        StatusCode::FORBIDDEN,
        "{}",
        not_analytics.body
    );

    // 5. the exports, read back by pyarrow
    let mut expected = json!({
        "tenant": "retail",
        "pii": "token",
        "orders": orders,
        "other_tenant_ids": express,
        "secrets": secrets.into_iter().collect::<Vec<_>>(),
    });
    for format in ["parquet", "csv"] {
        let (rss_before, _) = rss_kb();
        reset_peak_rss();
        let started = Instant::now();
        let job = export(&h, RETAIL_ANALYTICS, format).await;
        let seconds = started.elapsed().as_secs_f64();
        let (_, peak) = rss_kb();
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["requested_by"], "bi-export");
        assert_eq!(job["role"], "analytics");
        assert_eq!(job["pii"], "token");
        assert_eq!(job["progress"]["rows"], retail.len(), "{job}");
        assert_eq!(job["progress"]["days_done"], DAYS);
        let files = job["files"].as_array().unwrap();
        assert!(files.iter().all(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .contains("tenant=retail/date=2026-1")
        }));
        println!(
            "export {format}: {} orders in {seconds:.2} s = {:.0} rows/s; RSS before {} MiB, peak during {} MiB (+{} MiB); creating {} orders took {created_seconds:.1} s",
            retail.len(),
            retail.len() as f64 / seconds,
            rss_before / 1024,
            peak / 1024,
            peak.saturating_sub(rss_before) / 1024,
            2 * retail.len(),
        );
        let dir = h.dir.join("exports").join(job["id"].as_str().unwrap());
        expected["format"] = json!(format);
        check_with_pyarrow(&dir, &expected, &h.dir);
    }

    // 6. a job is its tenant's: the other tenant's analytics key does not find it
    let job = export(&h, RETAIL_ANALYTICS, "parquet").await;
    let other = h
        .call(
            "GET",
            &format!("/v1/exports/{}", job["id"].as_str().unwrap()),
            EXPRESS_ANALYTICS,
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.body);

    std::fs::remove_dir_all(&h.dir).ok();
}
