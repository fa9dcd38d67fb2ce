//! API tests: the router in-process (`oneshot`), the example tenant config, real MariaDB
//! shards (two databases) or SQLite files, real encryption.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::Row;
use tower::ServiceExt;

use oc_api::edge::EdgeConfig;
use oc_api::{AppState, router_with};
use oc_cache::{
    L1Config, RedisCache, RedisCacheConfig, RedisStockGate, RedisStockGateConfig, TieredCache,
};
use oc_core::payments::{PaymentProviders, PaymentSettings};
use oc_core::{Core, Sealer};
use oc_crypto::{KeyRing, MasterKey};
use oc_model::aftersale::AfterSaleStore;
use oc_model::aftersale::listing::AfterSaleListing;
use oc_model::lifecycle::TransitionStore;
use oc_model::payment::{PaymentSecrets, PaymentStore};
use oc_model::ports::{Cache, OrderStore, SearchIndex};
use oc_model::stock::{Sku, StockGate, StockStore};
use oc_model::{OrderId, TenantId};
use oc_search::{CommitPolicy, TantivyConfig, TantivySearchIndex, document_from_order};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use oc_tenant_config::{ConfigHandle, ConfigSet};

/// Example credentials from `tenant-config/examples` (test keys, documented there).
const EXPRESS_BL: &str = "oc_test_express_bl_0001_7c1f4e9a2b6d8035e1a4";
const EXPRESS_CS: &str = "oc_test_express_cs_0001_3b8e0d52f9a6c1477d20";
const EXPRESS_ANALYTICS: &str = "oc_test_express_an_0001_9d2a6f14c8e3b7052f6e";
const RETAIL_BL: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";
const RETAIL_CS: &str = "oc_test_retail_cs_0001_06f3d8a2c7b5e1943a0d";
const RETAIL_ANALYTICS: &str = "oc_test_retail_an_0001_c8a54e1f2d97b036e5f1";
/// Scoped to merchant `acme`.
const RETAIL_MERCHANT: &str = "oc_test_retail_mch_0001_5f2b8d1e7a04c39b6e18";
const RETAIL_ADMIN: &str = "oc_test_retail_admin_0001_a7c3e91f04b25d6e8f3a";

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tenant-config/examples")
}

/// Keys of the test-only tenant `market` (`tests/tenants/market.yaml`).
const MARKET_BL: &str = "oc_test_market_bl_0001_383779c243608c33e8ab";
/// Masked PII, granted `pii_filters`.
const MARKET_SUPPORT: &str = "oc_test_market_cs_0001_265d5666dd1d1bc1c181";
const MARKET_ANALYTICS: &str = "oc_test_market_an_0001_be7202a930f748905a16";

/// The example tenants and the API tests' own (`tests/tenants`: knobs the examples leave at
/// their defaults).
fn tenant_configs() -> ConfigSet {
    let mut tenants = Vec::new();
    let test_tenants = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tenants");
    for dir in [examples_dir(), test_tenants] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let name = file.display().to_string();
            tenants.push(
                ConfigSet::from_yaml_str(&name, &text)
                    .unwrap_or_else(|errors| panic!("{name} loads: {errors}")),
            );
        }
    }
    ConfigSet::from_tenants(tenants).unwrap()
}

/// No provider accounts: these tests write captured payments through the store (the payment
/// flow itself is `ordercenter`'s payments suite, with the sandbox provider).
#[derive(Debug)]
struct NoPaymentAccounts;

impl PaymentSecrets for NoPaymentAccounts {
    fn credentials(
        &self,
        _: &TenantId,
        _: &oc_model::ProviderName,
    ) -> Option<oc_model::payment::ProviderCredentials> {
        None
    }

    fn tenant_of_account(&self, _: &oc_model::ProviderName, _: &str) -> Option<TenantId> {
        None
    }
}

struct TestApp {
    router: Router,
    store: Arc<SqlOrderStore>,
    cache: Arc<TieredCache>,
    /// The embedded search index the API searches; `index_all` feeds it the way the
    /// projector does (re-read by primary key, fields by configured name).
    search: Arc<TantivySearchIndex>,
    tenants: Arc<ConfigHandle>,
    redis: Option<oc_test_support::RedisPrefix>,
    /// The stock gate of identities with `accelerator: redis` (MariaDB shape only).
    gate: Option<RedisStockGate>,
    /// The core behind the router (a scheduler over it sweeps what the API left).
    core: Core,
    databases: Option<oc_test_support::TestDatabases>,
    sqlite_dir: Option<PathBuf>,
}

/// Which parts of the read side a test app gets.
struct Shape {
    edge: EdgeConfig,
    cache: Arc<TieredCache>,
    with_search: bool,
    stock_gate: Option<Arc<dyn StockGate>>,
}

impl TestApp {
    async fn build(
        urls: Vec<String>,
        shape: Shape,
    ) -> (
        Router,
        Arc<SqlOrderStore>,
        Arc<TantivySearchIndex>,
        Arc<ConfigHandle>,
        Core,
    ) {
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
        let search = Arc::new(
            TantivySearchIndex::open(
                TantivyConfig::in_memory().with_commit(CommitPolicy::EveryWrite),
            )
            .unwrap(),
        );
        let tenants = Arc::new(ConfigHandle::new(tenants));
        let core = Core::builder(
            store.clone() as Arc<dyn OrderStore>,
            tenants.clone(),
            Sealer::from_keys(Arc::new(ring), &master),
        )
        .cache(Some(shape.cache as Arc<dyn Cache>))
        .search(
            shape
                .with_search
                .then(|| search.clone() as Arc<dyn SearchIndex>),
        )
        .transitions(store.clone() as Arc<dyn TransitionStore>)
        .stock(store.clone() as Arc<dyn StockStore>)
        .payments(
            store.clone() as Arc<dyn PaymentStore>,
            PaymentProviders::new(Arc::new(NoPaymentAccounts)),
            PaymentSettings::default(),
        )
        .after_sales(store.clone() as Arc<dyn AfterSaleStore>)
        .after_sale_lists(store.clone() as Arc<dyn AfterSaleListing>)
        .stock_gate(shape.stock_gate)
        .node_id(2)
        .build()
        .unwrap();
        (
            router_with(AppState::new(core.clone()), shape.edge),
            store,
            search,
            tenants,
            core,
        )
    }

    async fn mariadb(label: &str) -> TestApp {
        // cluster shape: MariaDB shards and moka in front of a real Redis
        let databases = oc_test_support::TestDatabases::create(label, 2)
            .await
            .unwrap();
        let redis = oc_test_support::RedisPrefix::new(label).unwrap();
        let l2_config = RedisCacheConfig::new(oc_test_support::redis_url())
            .with_key_prefix(format!("{}:", redis.prefix()));
        let l2 = RedisCache::connect(l2_config).await.unwrap();
        let cache = Arc::new(TieredCache::with_redis(L1Config::default(), l2));
        let gate = RedisStockGate::connect(
            RedisStockGateConfig::new(oc_test_support::redis_url())
                .with_key_prefix(format!("{}:", redis.prefix())),
        )
        .unwrap();
        let shape = Shape {
            edge: EdgeConfig::default(),
            cache: cache.clone(),
            with_search: true,
            stock_gate: Some(Arc::new(gate.clone())),
        };
        let (router, store, search, tenants, core) =
            Self::build(databases.urls().to_vec(), shape).await;
        TestApp {
            router,
            store,
            cache,
            search,
            tenants,
            redis: Some(redis),
            gate: Some(gate),
            core,
            databases: Some(databases),
            sqlite_dir: None,
        }
    }

    async fn sqlite(label: &str) -> TestApp {
        Self::sqlite_with(label, EdgeConfig::default(), true).await
    }

    async fn sqlite_with(label: &str, edge: EdgeConfig, with_search: bool) -> TestApp {
        let dir = std::env::temp_dir().join(oc_test_support::unique_prefix(label));
        std::fs::create_dir_all(&dir).unwrap();
        let urls = (0..2)
            .map(|i| format!("sqlite://{}/shard-{i}.db", dir.display()))
            .collect();
        // single-node shape: SQLite shards and an in-process cache
        let cache = Arc::new(TieredCache::moka_only(L1Config::single_node()));
        let shape = Shape {
            edge,
            cache: cache.clone(),
            with_search,
            stock_gate: None,
        };
        let (router, store, search, tenants, core) = Self::build(urls, shape).await;
        TestApp {
            router,
            store,
            cache,
            search,
            tenants,
            redis: None,
            gate: None,
            core,
            databases: None,
            sqlite_dir: Some(dir),
        }
    }

    /// Index every order of every shard, as the projector would.
    async fn index_all(&self) {
        let config = self.tenants.current();
        for shard in self.store.shards() {
            let pool = self.store.shard_pool(shard).unwrap();
            let rows = sqlx::query("SELECT tenant, id FROM orders")
                .fetch_all(pool)
                .await
                .unwrap();
            for row in rows {
                let tenant: String = text_cell(&row, 0);
                let id = OrderId::from_raw(row.try_get::<i64, _>(1).unwrap() as u64).unwrap();
                let tenant = TenantId::parse(tenant).unwrap();
                let order = self.store.get(&tenant, id).await.unwrap().unwrap();
                let document = document_from_order(&order, &*config).unwrap();
                self.search.upsert(&document).await.unwrap();
            }
        }
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some(databases) = self.databases {
            databases.cleanup().await.unwrap();
        }
        if let Some(redis) = self.redis {
            redis.cleanup().await.unwrap();
        }
        if let Some(dir) = self.sqlite_dir {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn create(&self, key: &str, body: Value) -> Reply {
        self.call("POST", "/v1/orders", Some(key), &[], Some(body))
            .await
    }

    /// `PUT /v1/stock/{sku}` of `available` units as `key`: the reply, unchecked.
    async fn put_stock(&self, key: &str, sku: &str, available: u64) -> Reply {
        self.call(
            "PUT",
            &format!("/v1/stock/{sku}"),
            Some(key),
            &[],
            Some(json!({"available": available})),
        )
        .await
    }

    /// `(available, reserved, sold)` of `sku` as the stock API shows it to `key` (an admin).
    async fn stock(&self, key: &str, sku: &str) -> (u64, u64, u64) {
        let level = self
            .call("GET", &format!("/v1/stock/{sku}"), Some(key), &[], None)
            .await;
        level.expect(StatusCode::OK);
        let count = |name: &str| level.body[name].as_u64().unwrap();
        (count("available"), count("reserved"), count("sold"))
    }

    /// The stock gate's counter of `sku` for `tenant` in Redis, if it holds one.
    async fn gate_counter(&self, tenant: &str, sku: &str) -> Option<i64> {
        let mut get = redis::cmd("GET");
        get.arg(self.gate_key(tenant, sku));
        self.redis_query(get).await
    }

    /// Sets the stock gate's counter of `sku` by hand; `None` deletes it, as a Redis
    /// restarted empty would.
    async fn set_gate_counter(&self, tenant: &str, sku: &str, value: Option<i64>) {
        let key = self.gate_key(tenant, sku);
        let command = match value {
            Some(value) => {
                let mut set = redis::cmd("SET");
                set.arg(key).arg(value);
                set
            }
            None => {
                let mut del = redis::cmd("DEL");
                del.arg(key);
                del
            }
        };
        let () = self.redis_query(command).await;
    }

    fn gate_key(&self, tenant: &str, sku: &str) -> String {
        self.gate
            .as_ref()
            .unwrap()
            .key(&TenantId::parse(tenant).unwrap(), &Sku::parse(sku).unwrap())
    }

    async fn redis_query<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> T {
        let mut redis = self.redis.as_ref().unwrap().connection().await.unwrap();
        command.query_async(&mut redis).await.unwrap()
    }

    /// Places `order` as `key` (it must be created) and fires `pay` on it at version 1: the
    /// paid order's id.
    async fn paid_order(&self, key: &str, order: Value) -> String {
        let created = self.create(key, order).await;
        created.expect(StatusCode::CREATED);
        let id = created.id();
        fire(self, key, &id, Some("\"1\""), json!({"event": "pay"}))
            .await
            .expect(StatusCode::OK);
        id
    }

    /// `POST /v1/after-sales/{after_sale}/transitions` of `body` as `key`: the reply,
    /// unchecked.
    async fn after_sale_step(&self, key: &str, after_sale: &str, body: Value) -> Reply {
        let path = format!("/v1/after-sales/{after_sale}/transitions");
        self.call("POST", &path, Some(key), &[], Some(body)).await
    }

    /// Rows across every shard of a table.
    async fn count(&self, table: &str) -> i64 {
        let mut total = 0;
        for shard in self.store.shards() {
            let pool = self.store.shard_pool(shard).unwrap();
            total += sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap();
        }
        total
    }

    /// Every text cell of every row of a table, across shards, as one string.
    async fn dump(&self, table: &str) -> String {
        let mut out = String::new();
        for shard in self.store.shards() {
            let pool = self.store.shard_pool(shard).unwrap();
            let rows = sqlx::query(&format!("SELECT * FROM {table}"))
                .fetch_all(pool)
                .await
                .unwrap();
            for row in rows {
                for index in 0..row.len() {
                    if let Ok(Some(text)) = row.try_get::<Option<String>, _>(index) {
                        out.push_str(&text);
                    } else if let Ok(Some(bytes)) = row.try_get::<Option<Vec<u8>>, _>(index) {
                        out.push_str(&String::from_utf8_lossy(&bytes));
                    }
                    out.push('\u{1}');
                }
            }
        }
        out
    }
}

/// A text cell (MySQL reports binary-collated text as bytes).
fn text_cell(row: &sqlx::any::AnyRow, index: usize) -> String {
    row.try_get::<String, _>(index)
        .or_else(|_| {
            row.try_get::<Vec<u8>, _>(index)
                .map(|b| String::from_utf8(b).unwrap())
        })
        .unwrap()
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Reply {
    fn etag(&self) -> String {
        self.headers
            .get(header::ETAG)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn id(&self) -> String {
        self.body["id"].as_str().unwrap().to_owned()
    }

    #[track_caller]
    fn expect(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}",
            serde_json::to_string_pretty(&self.body).unwrap()
        );
        self
    }

    #[track_caller]
    fn problem(&self, status: StatusCode, code: &str, field: Option<&str>) {
        self.expect(status);
        assert_eq!(
            self.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status.as_u16());
        assert_eq!(self.body["field"].as_str(), field, "{}", self.body);
    }
}

const PHONE: &str = "13812345678";
const ADDRESS: &str = "上海市浦东新区世纪大道100号";

/// A cold-chain order of tenant `express` with every kind of extension field.
fn cold_chain_order(buyer: &str) -> Value {
    json!({
        "business_identity": "cold-chain",
        "order_type": "standard",
        "buyer_id": buyer,
        "merchant_id": "pharma-7",
        "lines": [
            {"sku": "VAC-1", "product_name": "流感疫苗", "quantity": 2, "unit_price_minor": 12000,
             "extension": {"storage_band": "chilled", "batch_no": "B2026-11", "expiry_date": "2027-05-31"}},
            {"sku": "ICE-9", "product_name": "冰袋", "quantity": 3, "unit_price_minor": 500,
             "extension": {"storage_band": "frozen"}}
        ],
        "promotions": [{"code": "COLD10", "promotion_type": "full_reduction", "discount_minor": 1000, "line_nos": [1]}],
        "freight_minor": 1500,
        "receiver": {"name": "张三", "phone": PHONE, "address": ADDRESS, "region": "310115"},
        "shipper": {"name": "Pharma Depot", "phone": "021-55501234", "address": "Warehouse 7, Jiading", "region": "310114"},
        "extension": {
            "temperature_min": "2.0",
            "temperature_max": "8.0",
            "cargo_category": "vaccine",
            "consignee_id_number": "11010519491231002X",
            "cold_box_id": "CB-00012345",
            "handling_profile": {"pre_cool_minutes": 30, "stack_limit": 4}
        }
    })
}

fn retail_order(buyer: &str) -> Value {
    oc_test_support::fixtures::CreateRequest::new("retail", buyer)
        .line("TSHIRT-M", "T-shirt", 1, 9900)
        .li_lei()
        .json()
}

async fn create_get_update_cancel(app: &TestApp) {
    let created = app.create(EXPRESS_BL, cold_chain_order("buyer-1")).await;
    created.expect(StatusCode::CREATED);
    let id = created.id();
    assert_eq!(created.etag(), "\"1\"");
    assert_eq!(
        created
            .headers
            .get(header::LOCATION)
            .unwrap()
            .to_str()
            .unwrap(),
        format!("/v1/orders/{id}")
    );
    let body = &created.body;
    assert_eq!(body["status"], "pending_payment");
    // 2 × 120.00 + 3 × 5.00 = 255.00, minus 10.00 on line 1, plus 15.00 freight
    assert_eq!(
        body["finance"]["goods_total"],
        json!({"minor": 25500, "currency": "CNY"})
    );
    assert_eq!(
        body["finance"]["payable"],
        json!({"minor": 26000, "currency": "CNY"})
    );
    assert_eq!(body["lines"][0]["payable"]["minor"], 23000);
    // extension fields by their configured names, typed; never as ext_NN
    assert_eq!(body["extension"]["temperature_min"], "2.0");
    assert_eq!(body["extension"]["cargo_category"], "vaccine");
    assert_eq!(
        body["extension"]["consignee_id_number"],
        "11010519491231002X"
    );
    assert_eq!(body["extension"]["cold_box_id"], "CB-00012345");
    assert_eq!(body["extension"]["handling_profile"]["stack_limit"], 4);
    assert_eq!(body["lines"][0]["extension"]["expiry_date"], "2027-05-31");
    assert!(!body.to_string().contains("ext_0"), "{body}");
    // a KV identifier row holds the plain canonical value, so the identifier index finds it
    let mut found = 0;
    for shard in app.store.shards() {
        let pool = app.store.shard_pool(shard).unwrap();
        let row = sqlx::query("SELECT COUNT(*) FROM order_identifiers WHERE tenant = ? AND domain = ? AND id_key = ? AND id_value = ?")
            .bind("express")
            .bind("logistics")
            .bind("cold_box_id")
            .bind("CB-00012345")
            .fetch_one(pool)
            .await
            .unwrap();
        found += row.try_get::<i64, _>(0).unwrap();
    }
    assert_eq!(found, 1);
    assert_eq!(body["parties"]["receiver"]["phone"], PHONE);
    assert_eq!(body["parties"]["receiver"]["pii"], "full");

    let fetched = app
        .call(
            "GET",
            &format!("/v1/orders/{id}"),
            Some(EXPRESS_BL),
            &[],
            None,
        )
        .await;
    fetched.expect(StatusCode::OK);
    assert_eq!(fetched.body, created.body);

    // customer service sees masks, analytics may not read single orders at all
    let masked = app
        .call(
            "GET",
            &format!("/v1/orders/{id}"),
            Some(EXPRESS_CS),
            &[],
            None,
        )
        .await;
    masked.expect(StatusCode::OK);
    assert_eq!(masked.body["parties"]["receiver"]["phone"], "138****5678");
    assert_eq!(masked.body["parties"]["receiver"]["pii"], "masked");
    assert_ne!(
        masked.body["extension"]["consignee_id_number"],
        "11010519491231002X"
    );
    app.call(
        "GET",
        &format!("/v1/orders/{id}"),
        Some(EXPRESS_ANALYTICS),
        &[],
        None,
    )
    .await
    .problem(StatusCode::FORBIDDEN, "forbidden", None);

    let patch = json!({"remark": "call before delivery", "extension": {"temperature_log_required": true, "cold_box_id": null},
                       "lines": [{"line_no": 2, "extension": {"batch_no": "B-ICE"}}]});
    let missing_if_match = app
        .call(
            "PATCH",
            &format!("/v1/orders/{id}"),
            Some(EXPRESS_BL),
            &[],
            Some(patch.clone()),
        )
        .await;
    missing_if_match.expect(StatusCode::PRECONDITION_REQUIRED);
    let updated = app
        .call(
            "PATCH",
            &format!("/v1/orders/{id}"),
            Some(EXPRESS_BL),
            &[("if-match", "\"1\"")],
            Some(patch),
        )
        .await;
    updated.expect(StatusCode::OK);
    assert_eq!(updated.etag(), "\"2\"");
    assert_eq!(updated.body["operation"]["remark"], "call before delivery");
    assert_eq!(updated.body["extension"]["temperature_log_required"], true);
    assert!(updated.body["extension"].get("cold_box_id").is_none());
    assert_eq!(updated.body["lines"][1]["extension"]["batch_no"], "B-ICE");

    let cancelled = app
        .call(
            "POST",
            &format!("/v1/orders/{id}/cancel"),
            Some(EXPRESS_BL),
            &[("if-match", "\"2\"")],
            Some(json!({"reason": "customer changed plans"})),
        )
        .await;
    cancelled.expect(StatusCode::OK);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["version"], 3);
    // a cancelled order is final
    app.call(
        "POST",
        &format!("/v1/orders/{id}/cancel"),
        Some(EXPRESS_BL),
        &[],
        None,
    )
    .await
    .problem(StatusCode::CONFLICT, "invalid_transition", None);
    app.call(
        "PATCH",
        &format!("/v1/orders/{id}"),
        Some(EXPRESS_BL),
        &[("if-match", "\"3\"")],
        Some(json!({"remark": "x"})),
    )
    .await
    .problem(StatusCode::CONFLICT, "invalid_transition", None);
    assert_eq!(app.count("outbox").await, 3, "created, updated, cancelled");
}

async fn stale_if_match_changes_nothing(app: &TestApp) {
    let id = app
        .create(EXPRESS_BL, cold_chain_order("buyer-2"))
        .await
        .id();
    let path = format!("/v1/orders/{id}");
    app.call(
        "PATCH",
        &path,
        Some(EXPRESS_BL),
        &[("if-match", "\"1\"")],
        Some(json!({"remark": "first"})),
    )
    .await
    .expect(StatusCode::OK);
    let stale = app
        .call(
            "PATCH",
            &path,
            Some(EXPRESS_BL),
            &[("if-match", "\"1\"")],
            Some(json!({"remark": "second"})),
        )
        .await;
    stale.problem(StatusCode::PRECONDITION_FAILED, "precondition_failed", None);
    let current = app.call("GET", &path, Some(EXPRESS_BL), &[], None).await;
    assert_eq!(current.body["operation"]["remark"], "first");
    assert_eq!(current.body["version"], 2);
    app.call(
        "POST",
        &format!("{path}/cancel"),
        Some(EXPRESS_BL),
        &[("if-match", "\"1\"")],
        None,
    )
    .await
    .problem(StatusCode::PRECONDITION_FAILED, "precondition_failed", None);
    assert_eq!(app.count("outbox").await, 2);
}

async fn concurrent_idempotent_creates_make_one_order(app: &TestApp) {
    let body = cold_chain_order("buyer-idem");
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let body = body.clone();
            async move {
                app.call(
                    "POST",
                    "/v1/orders",
                    Some(EXPRESS_BL),
                    &[("idempotency-key", "order-123")],
                    Some(body),
                )
                .await
            }
        })
        .collect();
    let replies = futures_join_all(calls).await;
    let ids: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| {
            r.expect(StatusCode::CREATED);
            r.id()
        })
        .collect();
    assert_eq!(ids.len(), 1, "all 64 answers name the same order");
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.headers.get("idempotent-replayed").is_none())
            .count(),
        1,
        "exactly one was created"
    );
    assert_eq!(app.count("orders").await, 1);
    // same key, different body
    let mut other = body.clone();
    other["merchant_id"] = json!("someone-else");
    app.call(
        "POST",
        "/v1/orders",
        Some(EXPRESS_BL),
        &[("idempotency-key", "order-123")],
        Some(other),
    )
    .await
    .problem(StatusCode::CONFLICT, "conflict", None);
    assert_eq!(app.count("orders").await, 1);
}

/// Join futures without pulling in the futures crate: spawn them on the runtime.
async fn futures_join_all<F: std::future::Future<Output = Reply>>(futures: Vec<F>) -> Vec<Reply> {
    let mut set = Vec::new();
    let futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    // poll all concurrently
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> = futures.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for slot in pending.iter_mut() {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(reply) => {
                        set.push(reply);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    set
}

async fn cross_tenant_access_is_404_everywhere(app: &TestApp) {
    let id = app
        .create(EXPRESS_BL, cold_chain_order("buyer-3"))
        .await
        .id();
    let path = format!("/v1/orders/{id}");
    app.call("GET", &path, Some(RETAIL_BL), &[], None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
    app.call(
        "PATCH",
        &path,
        Some(RETAIL_BL),
        &[("if-match", "\"1\"")],
        Some(json!({"remark": "mine now"})),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found", None);
    app.call(
        "POST",
        &format!("{path}/cancel"),
        Some(RETAIL_BL),
        &[],
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found", None);
    let list = app
        .call(
            "GET",
            "/v1/orders?buyer_id=buyer-3",
            Some(RETAIL_BL),
            &[],
            None,
        )
        .await;
    list.expect(StatusCode::OK);
    assert_eq!(list.body["items"], json!([]));
    // the owner still sees it, unchanged
    let own = app.call("GET", &path, Some(EXPRESS_BL), &[], None).await;
    own.expect(StatusCode::OK);
    assert_eq!(own.body["version"], 1);
    assert!(own.body["operation"].get("remark").is_none());
    // malformed and unknown ids look the same
    app.call("GET", "/v1/orders/not-an-id", Some(EXPRESS_BL), &[], None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
    app.call("GET", "/v1/orders/12345", Some(EXPRESS_BL), &[], None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
}

async fn bad_input_names_the_field_and_writes_nothing(app: &TestApp) {
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut o = cold_chain_order("b");
                o["extension"]["temperature_min"] = json!("warm");
                o
            },
            "/extension/temperature_min",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["extension"]["cargo_category"] = json!("plutonium");
                o
            },
            "/extension/cargo_category",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["extension"]["handling_profile"] = json!({"stack_limit": 0});
                o
            },
            "/extension/handling_profile/stack_limit",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["extension"]["no_such_field"] = json!(1);
                o
            },
            "/extension/no_such_field",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["extension"]
                    .as_object_mut()
                    .unwrap()
                    .remove("temperature_max");
                o
            },
            "/extension/temperature_max",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["lines"][1]["extension"]["storage_band"] = json!("lukewarm");
                o
            },
            "/lines/1/extension/storage_band",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["lines"][0]["quantity"] = json!(0);
                o
            },
            "/lines/0/quantity",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["lines"][0]["quantity"] = json!(-1);
                o
            },
            "/lines/0/quantity",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["lines"][0]["colour"] = json!("red");
                o
            },
            "/lines/0/colour",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["promotions"][0]["discount_minor"] = json!(1_000_000);
                o
            },
            "/promotions/0/discount_minor",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["order_type"] = json!("teleport");
                o
            },
            "/order_type",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["receiver"]["phone"] = json!("call me");
                o
            },
            "/receiver/phone",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["buyer_id"] = json!("");
                o
            },
            "/buyer_id",
        ),
        (
            {
                let mut o = cold_chain_order("b");
                o["currency"] = json!("XXX");
                o
            },
            "/currency",
        ),
    ];
    for (body, field) in cases {
        let reply = app.create(EXPRESS_BL, body).await;
        reply.problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some(field),
        );
    }
    let not_json = app
        .call(
            "POST",
            "/v1/orders",
            Some(EXPRESS_BL),
            &[("content-type", "application/json")],
            None,
        )
        .await;
    not_json.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", None);
    for table in [
        "orders",
        "order_lines",
        "order_identifiers",
        "outbox",
        "idempotency",
    ] {
        assert_eq!(app.count(table).await, 0, "{table} stays empty");
    }
    // a bad update changes nothing either
    let id = app
        .create(EXPRESS_BL, cold_chain_order("buyer-4"))
        .await
        .id();
    app.call(
        "PATCH",
        &format!("/v1/orders/{id}"),
        Some(EXPRESS_BL),
        &[("if-match", "\"1\"")],
        Some(json!({"extension": {"temperature_max": "hot"}})),
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/extension/temperature_max"),
    );
    let current = app
        .call(
            "GET",
            &format!("/v1/orders/{id}"),
            Some(EXPRESS_BL),
            &[],
            None,
        )
        .await;
    assert_eq!(current.body["version"], 1);
    assert_eq!(current.body["extension"]["temperature_max"], "8.0");
}

async fn no_plaintext_pii_in_raw_rows(app: &TestApp) {
    let created = app.create(EXPRESS_BL, cold_chain_order("buyer-5")).await;
    created.expect(StatusCode::CREATED);
    let mut raw = String::new();
    for table in [
        "orders",
        "order_lines",
        "order_identifiers",
        "outbox",
        "idempotency",
    ] {
        raw.push_str(&app.dump(table).await);
    }
    assert!(
        raw.contains("CB-00012345"),
        "the dump really reads the rows"
    );
    for secret in [
        PHONE,
        "55501234",
        ADDRESS,
        "世纪大道",
        "张三",
        "Warehouse 7",
        "11010519491231002X",
    ] {
        assert!(
            !raw.contains(secret),
            "{secret:?} found in plaintext in the database"
        );
    }
}

async fn auth_and_roles(app: &TestApp) {
    app.call("GET", "/v1/orders?buyer_id=x", None, &[], None)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    let wrong = app
        .call(
            "GET",
            "/v1/orders?buyer_id=x",
            Some("oc_test_nope"),
            &[],
            None,
        )
        .await;
    wrong.problem(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    assert!(wrong.headers.get(header::WWW_AUTHENTICATE).is_some());
    app.create(EXPRESS_CS, cold_chain_order("buyer-6"))
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden", None);
    app.create(RETAIL_BL, retail_order("buyer-6"))
        .await
        .expect(StatusCode::CREATED);
}

/// Every role of the retail example against every order route: a route the role's config
/// does not grant answers 403 before anything is read; a granted one never does. Each role
/// sees the PII its config gives it.
async fn role_matrix_follows_the_tenant_config(app: &TestApp) {
    use oc_tenant_config::{Endpoint, PiiAccess};
    let config = app.tenants.current();
    let tenant = config
        .tenant(&TenantId::parse("retail").unwrap())
        .unwrap()
        .clone();
    let keys = [
        ("business_line", RETAIL_BL),
        ("customer_service", RETAIL_CS),
        ("analytics", RETAIL_ANALYTICS),
        ("merchant", RETAIL_MERCHANT),
        ("tenant_admin", RETAIL_ADMIN),
    ];
    let mut seen_roles = std::collections::BTreeSet::new();
    for (role_name, key) in keys {
        let role = tenant
            .role(&oc_model::RoleName::parse(role_name).unwrap())
            .unwrap_or_else(|| panic!("retail example defines role {role_name}"));
        seen_roles.insert(role_name);
        // an order of merchant acme (so the merchant key may see it), fresh per role
        let mut order = retail_order(&format!("buyer-matrix-{role_name}"));
        order["merchant_id"] = json!("acme");
        let id = app.create(RETAIL_BL, order.clone()).await.id();
        let calls: [(Endpoint, &str, String, Option<Value>); 6] = [
            (
                Endpoint::OrdersCreate,
                "POST",
                "/v1/orders".to_owned(),
                Some(order),
            ),
            (Endpoint::OrdersGet, "GET", format!("/v1/orders/{id}"), None),
            (
                Endpoint::OrdersSearch,
                "GET",
                format!("/v1/orders/search?buyer_id=buyer-matrix-{role_name}"),
                None,
            ),
            (
                Endpoint::OrdersList,
                "GET",
                format!("/v1/orders?buyer_id=buyer-matrix-{role_name}"),
                None,
            ),
            (
                Endpoint::OrdersUpdate,
                "PATCH",
                format!("/v1/orders/{id}"),
                Some(json!({"remark": "checked"})),
            ),
            (
                Endpoint::OrdersCancel,
                "POST",
                format!("/v1/orders/{id}/cancel"),
                Some(json!({"reason": "matrix"})),
            ),
        ];
        for (endpoint, method, path, body) in calls {
            let headers: &[(&str, &str)] = if method == "PATCH" {
                &[("if-match", "\"1\"")]
            } else {
                &[]
            };
            let reply = app.call(method, &path, Some(key), headers, body).await;
            if role.endpoints.contains(&endpoint) {
                assert!(
                    reply.status.is_success(),
                    "{role_name} may call {} ({method} {path}) but got {}: {}",
                    endpoint.as_str(),
                    reply.status,
                    reply.body
                );
            } else {
                reply.problem(StatusCode::FORBIDDEN, "forbidden", None);
            }
        }
        // PII as the role's config says (read as the role where it may read single orders)
        if role.endpoints.contains(&Endpoint::OrdersGet) {
            let read = app
                .call("GET", &format!("/v1/orders/{id}"), Some(key), &[], None)
                .await;
            read.expect(StatusCode::OK);
            let receiver = &read.body["parties"]["receiver"];
            match role.pii {
                PiiAccess::Full => {
                    assert_eq!(receiver["phone"], "13900001111", "{role_name}");
                    assert_eq!(receiver["pii"], "full");
                }
                PiiAccess::Masked => {
                    assert_eq!(receiver["phone"], "139****1111", "{role_name}");
                    assert_eq!(receiver["pii"], "masked");
                }
                PiiAccess::None => {
                    assert!(
                        receiver.get("phone").is_none_or(Value::is_null),
                        "{role_name}"
                    );
                }
            }
        }
    }
    let configured: std::collections::BTreeSet<&str> =
        tenant.roles().keys().map(|r| r.as_str()).collect();
    assert_eq!(configured, seen_roles, "every configured role is exercised");
}

/// A merchant-scoped key sees only its merchant's orders: another merchant's is 404 (and
/// unchanged by a cancel), its searches are confined to its merchant, and naming another
/// merchant is refused with the field.
async fn merchant_keys_see_only_their_merchant(app: &TestApp) {
    let mut ours = retail_order("buyer-mch");
    ours["merchant_id"] = json!("acme");
    let ours = app.create(RETAIL_BL, ours).await.id();
    let mut theirs = retail_order("buyer-mch");
    theirs["merchant_id"] = json!("globex");
    let theirs = app.create(RETAIL_BL, theirs).await.id();
    let unassigned = app.create(RETAIL_BL, retail_order("buyer-mch")).await.id();
    app.index_all().await;

    app.call(
        "GET",
        &format!("/v1/orders/{ours}"),
        Some(RETAIL_MERCHANT),
        &[],
        None,
    )
    .await
    .expect(StatusCode::OK);
    for other in [&theirs, &unassigned] {
        app.call(
            "GET",
            &format!("/v1/orders/{other}"),
            Some(RETAIL_MERCHANT),
            &[],
            None,
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
        app.call(
            "POST",
            &format!("/v1/orders/{other}/cancel"),
            Some(RETAIL_MERCHANT),
            &[],
            None,
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
        let still = app
            .call(
                "GET",
                &format!("/v1/orders/{other}"),
                Some(RETAIL_BL),
                &[],
                None,
            )
            .await;
        still.expect(StatusCode::OK);
        assert_eq!(still.body["status"], "pending_payment");
    }
    let found = app
        .call(
            "GET",
            "/v1/orders/search?buyer_id=buyer-mch",
            Some(RETAIL_MERCHANT),
            &[],
            None,
        )
        .await;
    found.expect(StatusCode::OK);
    let ids: Vec<&str> = found.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![ours.as_str()], "{}", found.body);
    // the business line sees all three
    let all = app
        .call(
            "GET",
            "/v1/orders/search?buyer_id=buyer-mch",
            Some(RETAIL_BL),
            &[],
            None,
        )
        .await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        all.body
    );
    app.call(
        "GET",
        "/v1/orders/search?merchant_id=globex",
        Some(RETAIL_MERCHANT),
        &[],
        None,
    )
    .await
    .problem(
        StatusCode::FORBIDDEN,
        "forbidden",
        Some("/query/merchant_id"),
    );
}

async fn reads_come_from_the_cache_and_follow_writes(app: &TestApp) {
    let id = app
        .create(EXPRESS_BL, cold_chain_order("buyer-cache"))
        .await
        .id();
    let path = format!("/v1/orders/{id}");
    let before = app.cache.stats();
    let first = app.call("GET", &path, Some(EXPRESS_BL), &[], None).await;
    first.expect(StatusCode::OK);
    let after = app.cache.stats();
    assert!(
        after.l1_hits + after.l2_hits > before.l1_hits + before.l2_hits,
        "the create wrote through: the GET is a cache hit (L1, or L2 once L1 expired)"
    );
    app.call(
        "PATCH",
        &path,
        Some(EXPRESS_BL),
        &[("if-match", "\"1\"")],
        Some(json!({"remark": "v2"})),
    )
    .await
    .expect(StatusCode::OK);
    let second = app.call("GET", &path, Some(EXPRESS_BL), &[], None).await;
    assert_eq!(
        second.body["version"], 2,
        "a write replaces the cached copy at once"
    );
    assert_eq!(second.body["operation"]["remark"], "v2");
    // the cache holds sealed values only: it serves other roles with their own view
    let masked = app.call("GET", &path, Some(EXPRESS_CS), &[], None).await;
    assert_eq!(masked.body["parties"]["receiver"]["phone"], "138****5678");
    // the cache never answers for another tenant
    app.call("GET", &path, Some(RETAIL_BL), &[], None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
}

async fn search_filters_by_core_extension_and_encrypted_fields(app: &TestApp) {
    let mut ids = Vec::new();
    for (n, (category, min)) in [("vaccine", "2.0"), ("frozen", "-18"), ("vaccine", "4.5")]
        .iter()
        .enumerate()
    {
        let mut order = cold_chain_order(&format!("buyer-s{n}"));
        order["extension"]["cargo_category"] = json!(category);
        order["extension"]["temperature_min"] = json!(min);
        order["extension"]["cold_box_id"] = json!(format!("CB-0000000{n}"));
        order["extension"]["consignee_id_number"] = json!(format!("11010519491231000{n}"));
        order["receiver"]["phone"] = json!(format!("1380000000{n}"));
        ids.push(app.create(EXPRESS_BL, order).await.id());
    }
    app.create(RETAIL_BL, retail_order("buyer-s0"))
        .await
        .expect(StatusCode::CREATED);
    app.index_all().await;
    let search = |query: &str| {
        let path = format!("/v1/orders/search?{query}");
        async move { app.call("GET", &path, Some(EXPRESS_BL), &[], None).await }
    };
    let found = |reply: &Reply| -> Vec<String> {
        reply.expect(StatusCode::OK);
        assert_eq!(reply.body["degraded"], false);
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // every express order, newest first; never the retail one
    assert_eq!(
        found(&search("").await),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(
        found(&search("ext.cargo_category=vaccine&sort=created_at").await),
        vec![ids[0].clone(), ids[2].clone()]
    );
    assert_eq!(
        found(&search("ext.temperature_min.min=0&ext.temperature_min.max=3").await),
        vec![ids[0].clone()]
    );
    assert_eq!(
        found(&search("ext.cold_box_id=CB-00000001").await),
        vec![ids[1].clone()]
    );
    // encrypted fields: equality through the blind index, with the phone normalised
    assert_eq!(
        found(&search("ext.consignee_id_number=110105194912310002").await),
        vec![ids[2].clone()]
    );
    assert_eq!(
        found(&search("receiver_phone=%2B86%20138-0000-0001").await),
        vec![ids[1].clone()]
    );
    assert_eq!(
        found(&search("buyer_id=buyer-s0").await),
        vec![ids[0].clone()]
    );
    assert_eq!(
        found(&search("q=疫苗&status=pending_payment").await).len(),
        3
    );
    assert!(found(&search("status=cancelled").await).is_empty());
    // pages
    let first = search("limit=2").await;
    assert_eq!(found(&first).len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        found(&search(&format!("limit=2&cursor={cursor}")).await),
        vec![ids[0].clone()]
    );
    // bad parameters name themselves
    search("ext.nope=1").await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/query/ext.nope"),
    );
    search("ext.temperature_min=warm").await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/query/ext.temperature_min"),
    );
    search("colour=red").await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/query/colour"),
    );
    search("limit=500").await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/query/limit"),
    );
    search("sort=price").await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/query/sort"),
    );
    // another tenant searches its own orders only
    let retail = app
        .call("GET", "/v1/orders/search", Some(RETAIL_BL), &[], None)
        .await;
    let retail_ids = found(&retail);
    assert_eq!(retail_ids.len(), 1);
    assert!(ids.iter().all(|id| !retail_ids.contains(id)));
    assert_eq!(retail.body["items"][0]["tenant"], "retail");
    // analytics may search, and sees no personal data in the results
    let analytics = app
        .call(
            "GET",
            "/v1/orders/search?limit=1",
            Some(EXPRESS_ANALYTICS),
            &[],
            None,
        )
        .await;
    analytics.expect(StatusCode::OK);
    assert_eq!(
        analytics.body["items"][0]["parties"]["receiver"]["phone"],
        "******"
    );
    assert_eq!(
        analytics.body["items"][0]["parties"]["receiver"]["pii"],
        "none"
    );
}

async fn buyer_list_pages(app: &TestApp) {
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(app.create(RETAIL_BL, retail_order("buyer-list")).await.id());
    }
    app.create(RETAIL_BL, retail_order("buyer-else"))
        .await
        .expect(StatusCode::CREATED);
    let mut seen = Vec::new();
    let mut path = "/v1/orders?buyer_id=buyer-list&limit=3".to_owned();
    loop {
        let page = app.call("GET", &path, Some(RETAIL_BL), &[], None).await;
        page.expect(StatusCode::OK);
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/v1/orders?buyer_id=buyer-list&limit=3&cursor={cursor}")
            }
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    app.call(
        "GET",
        "/v1/orders?buyer_id=buyer-list&limit=0",
        Some(RETAIL_BL),
        &[],
        None,
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/query/limit"),
    );
    app.call(
        "GET",
        "/v1/orders?buyer_id=buyer-list&cursor=%%%",
        Some(RETAIL_BL),
        &[],
        None,
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/query"),
    );
    app.call("GET", "/v1/orders", Some(RETAIL_BL), &[], None)
        .await
        .problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("/query"),
        );
}

/// Issue #13 item 5: a clear KV field whose text looks sealed is a clear value like any
/// other. It is stored verbatim, shown as sent, and every later update and cancel of the
/// order works (they used to re-seal it as if it were a ciphertext and fail with 500).
async fn a_clear_kv_value_that_looks_sealed_stays_clear(app: &TestApp) {
    let look_alike = r#"{"sealed":{"c":"AQIDBA"}}"#;
    let mut order = retail_order("buyer-look-alike");
    order["extension"] = json!({ "campaign_id": look_alike });
    let created = app.create(RETAIL_BL, order).await;
    created.expect(StatusCode::CREATED);
    assert_eq!(created.body["extension"]["campaign_id"], look_alike);
    let id = created.id();
    assert!(
        app.dump("order_identifiers").await.contains(look_alike),
        "stored verbatim"
    );
    let updated = app
        .call(
            "PATCH",
            &format!("/v1/orders/{id}"),
            Some(RETAIL_BL),
            &[("if-match", &created.etag())],
            Some(json!({ "remark": "leave at the door" })),
        )
        .await;
    updated.expect(StatusCode::OK);
    assert_eq!(updated.body["extension"]["campaign_id"], look_alike);
    let cancelled = app
        .call(
            "POST",
            &format!("/v1/orders/{id}/cancel"),
            Some(RETAIL_BL),
            &[("if-match", &updated.etag())],
            None,
        )
        .await;
    cancelled.expect(StatusCode::OK);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["extension"]["campaign_id"], look_alike);
    let read = app
        .call(
            "GET",
            &format!("/v1/orders/{id}"),
            Some(RETAIL_BL),
            &[],
            None,
        )
        .await;
    read.expect(StatusCode::OK);
    assert_eq!(read.body["extension"]["campaign_id"], look_alike);
}

/// Issue #13 item 14: If-Match is compared strongly (RFC 9110 §13.1.1): a weak tag never
/// matches, so `W/"1"` is 412 and changes nothing; an unquoted `1` is not an entity tag at all
/// (400, naming the header), nor is any other malformed value.
async fn if_match_compares_strong_entity_tags_only(app: &TestApp) {
    let id = app
        .create(RETAIL_BL, retail_order("buyer-if-match"))
        .await
        .id();
    let path = format!("/v1/orders/{id}");
    let patch = || Some(json!({"remark": "weakly matched"}));
    app.call(
        "PATCH",
        &path,
        Some(RETAIL_BL),
        &[("if-match", "W/\"1\"")],
        patch(),
    )
    .await
    .problem(StatusCode::PRECONDITION_FAILED, "precondition_failed", None);
    app.call(
        "POST",
        &format!("{path}/cancel"),
        Some(RETAIL_BL),
        &[("if-match", "W/\"1\"")],
        None,
    )
    .await
    .problem(StatusCode::PRECONDITION_FAILED, "precondition_failed", None);
    // well-formed tags that cannot match: weak ones, and strong ones that are not the
    // version's own text (compared character by character: "01" is not "1")
    for never in [
        "\"x\"",
        "\"\"",
        "\"01\"",
        "W/\"1\", W/\"2\"",
        "\"7\", W/\"1\"",
    ] {
        app.call(
            "PATCH",
            &path,
            Some(RETAIL_BL),
            &[("if-match", never)],
            patch(),
        )
        .await
        .problem(StatusCode::PRECONDITION_FAILED, "precondition_failed", None);
    }
    for malformed in ["1", "\"1", "W/1", "w/\"1\"", "\"1\" junk", "*, \"1\""] {
        app.call(
            "PATCH",
            &path,
            Some(RETAIL_BL),
            &[("if-match", malformed)],
            patch(),
        )
        .await
        .problem(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            Some("/header/if-match"),
        );
    }
    let current = app.call("GET", &path, Some(RETAIL_BL), &[], None).await;
    current.expect(StatusCode::OK);
    assert_eq!(current.body["version"], 1, "nothing was applied");
    assert!(current.body["operation"].get("remark").is_none());
    assert_eq!(current.body["status"], "pending_payment");
    // the strong tag of the current version applies
    app.call(
        "PATCH",
        &path,
        Some(RETAIL_BL),
        &[("if-match", "\"1\"")],
        patch(),
    )
    .await
    .expect(StatusCode::OK);
}

/// A path id no order can have (here longer than any id) is 404 before `If-Match` is
/// judged: schemathesis sent an over-long id with an empty If-Match and got 412, an answer
/// about a version of an order that cannot exist. And a body over the limit is 413, as the
/// document says, on every operation that takes one.
async fn an_impossible_order_id_is_404_whatever_the_if_match(app: &TestApp) {
    let impossible = "0".repeat(65);
    let path = format!("/v1/orders/{impossible}");
    for if_match in ["", "\"1\"", "W/\"1\""] {
        app.call(
            "PATCH",
            &path,
            Some(RETAIL_BL),
            &[("if-match", if_match)],
            Some(json!({"remark": "never"})),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
        app.call(
            "POST",
            &format!("{path}/cancel"),
            Some(RETAIL_BL),
            &[("if-match", if_match)],
            None,
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
        app.call(
            "POST",
            &format!("{path}/transitions"),
            Some(RETAIL_BL),
            &[("if-match", if_match)],
            Some(json!({"event": "pay"})),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
    }
    let id = app
        .create(RETAIL_BL, retail_order("buyer-too-large"))
        .await
        .id();
    let huge = "x".repeat(300 * 1024);
    app.call(
        "PATCH",
        &format!("/v1/orders/{id}"),
        Some(RETAIL_BL),
        &[("if-match", "\"1\"")],
        Some(json!({ "remark": huge })),
    )
    .await
    .problem(StatusCode::PAYLOAD_TOO_LARGE, "invalid_input", None);
    let current = app
        .call(
            "GET",
            &format!("/v1/orders/{id}"),
            Some(RETAIL_BL),
            &[],
            None,
        )
        .await;
    current.expect(StatusCode::OK);
    assert_eq!(current.body["version"], 1, "nothing was applied");
}

/// Issue #13 item 2: a filter on personal data (a party's name or phone, an encrypted
/// extension field) confirms a guessed value, so only a role that sees that data in full may
/// use one: a masked role could recover a masked phone in 10⁴ searches, a role that sees no
/// PII could confirm any guess (and `total` would count the matches). Refused with 403 at the
/// parameter, before the index is asked; clear filters stay open to every searching role.
async fn only_roles_seeing_pii_in_full_filter_by_it(app: &TestApp) {
    let id = app
        .create(EXPRESS_BL, cold_chain_order("buyer-pii-filter"))
        .await
        .id();
    app.index_all().await;
    let search = |key: &'static str, query: &str| {
        let path = format!("/v1/orders/search?{query}");
        async move { app.call("GET", &path, Some(key), &[], None).await }
    };
    let by_phone = format!("receiver_phone={PHONE}");
    let full = search(EXPRESS_BL, &by_phone).await;
    full.expect(StatusCode::OK);
    assert_eq!(full.body["items"][0]["id"], id.as_str());
    for key in [EXPRESS_CS, EXPRESS_ANALYTICS] {
        for (query, parameter) in [
            (by_phone.as_str(), "receiver_phone"),
            ("receiver_name=%E5%BC%A0%E4%B8%89", "receiver_name"),
            ("shipper_phone=021-55501234", "shipper_phone"),
            ("shipper_name=Pharma%20Depot", "shipper_name"),
            (
                "ext.consignee_id_number=11010519491231002X",
                "ext.consignee_id_number",
            ),
        ] {
            let refused = search(key, query).await;
            refused.problem(
                StatusCode::FORBIDDEN,
                "forbidden",
                Some(&format!("/query/{parameter}")),
            );
            assert!(refused.body.get("total").is_none());
        }
        // what is not personal data stays searchable
        let clear = search(key, "ext.cargo_category=vaccine").await;
        clear.expect(StatusCode::OK);
        assert_eq!(clear.body["items"][0]["id"], id.as_str());
    }
    // a masked role the tenant config grants `pii_filters` may filter, and still sees masks
    let mut order = retail_order("buyer-pii-grant");
    order["business_identity"] = json!("market");
    order["order_type"] = json!("goods");
    order["extension"] = json!({"buyer_id_number": "11010519491231002X"});
    let market_id = app.create(MARKET_BL, order).await.id();
    app.index_all().await;
    for query in [
        "receiver_phone=13900001111",
        "ext.buyer_id_number=11010519491231002X",
    ] {
        let granted = search(MARKET_SUPPORT, query).await;
        granted.expect(StatusCode::OK);
        assert_eq!(granted.body["items"][0]["id"], market_id.as_str());
        assert_eq!(
            granted.body["items"][0]["parties"]["receiver"]["phone"],
            "139****1111"
        );
        search(MARKET_ANALYTICS, query).await.problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            Some(&format!("/query/{}", query.split('=').next().unwrap())),
        );
    }
}

/// Issue #13 item 4: an idempotent retry answers the first order only to a caller who may see
/// it. The request fingerprint includes the caller's merchant scope, so a merchant key reusing
/// another caller's key and body does not replay that caller's order; and a replay of an order
/// that has since left the caller's view answers 404, as a GET of it does.
async fn idempotent_replays_respect_the_callers_scope(app: &TestApp) {
    let body = retail_order("buyer-idem-scope");
    let key = [("idempotency-key", "shared-key-1")];
    let first = app
        .call(
            "POST",
            "/v1/orders",
            Some(RETAIL_BL),
            &key,
            Some(body.clone()),
        )
        .await;
    first.expect(StatusCode::CREATED);
    let first_id = first.id();
    // the business line's own retry replays
    let retry = app
        .call(
            "POST",
            "/v1/orders",
            Some(RETAIL_BL),
            &key,
            Some(body.clone()),
        )
        .await;
    retry.expect(StatusCode::CREATED);
    assert_eq!(retry.id(), first_id);
    // the merchant key cannot read that order (it has no merchant) ...
    app.call(
        "GET",
        &format!("/v1/orders/{first_id}"),
        Some(RETAIL_MERCHANT),
        &[],
        None,
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found", None);
    // ... so the same key and body from it replay nothing
    let foreign = app
        .call(
            "POST",
            "/v1/orders",
            Some(RETAIL_MERCHANT),
            &key,
            Some(body.clone()),
        )
        .await;
    foreign.problem(StatusCode::CONFLICT, "conflict", None);
    assert!(
        !foreign.body.to_string().contains(&first_id),
        "{}",
        foreign.body
    );
    // an order the merchant created, moved to another merchant, is no longer replayed to it
    let own_key = [("idempotency-key", "merchant-key-1")];
    let own = app
        .call(
            "POST",
            "/v1/orders",
            Some(RETAIL_MERCHANT),
            &own_key,
            Some(body.clone()),
        )
        .await;
    own.expect(StatusCode::CREATED);
    assert_eq!(own.body["merchant_id"], "acme");
    let own_id = own.id();
    app.call(
        "PATCH",
        &format!("/v1/orders/{own_id}"),
        Some(RETAIL_BL),
        &[("if-match", "\"1\"")],
        Some(json!({"merchant_id": "globex"})),
    )
    .await
    .expect(StatusCode::OK);
    let moved = app
        .call(
            "POST",
            "/v1/orders",
            Some(RETAIL_MERCHANT),
            &own_key,
            Some(body),
        )
        .await;
    moved.problem(StatusCode::NOT_FOUND, "not_found", None);
    assert!(!moved.body.to_string().contains(&own_id), "{}", moved.body);
    assert_eq!(app.count("orders").await, 2, "no retry wrote an order");
}

/// Issue #13 item 15: external references are unique per merchant, so a merchant key never
/// learns from a 409 that another merchant used a reference; a merchant's own duplicate is
/// still refused.
async fn external_refs_are_unique_per_merchant(app: &TestApp) {
    let mut theirs = retail_order("buyer-ext-ref");
    theirs["merchant_id"] = json!("globex");
    theirs["external_ref"] = json!("ERP-77");
    app.create(RETAIL_BL, theirs)
        .await
        .expect(StatusCode::CREATED);
    let mut ours = retail_order("buyer-ext-ref");
    ours["external_ref"] = json!("ERP-77");
    let created = app.create(RETAIL_MERCHANT, ours.clone()).await;
    created.expect(StatusCode::CREATED);
    assert_eq!(created.body["external_ref"], "ERP-77");
    app.create(RETAIL_MERCHANT, ours).await.problem(
        StatusCode::CONFLICT,
        "already_exists",
        Some("/external_ref"),
    );
    // orders of no merchant keep one namespace of their own
    let mut plain = retail_order("buyer-ext-ref");
    plain["external_ref"] = json!("ERP-77");
    app.create(RETAIL_BL, plain.clone())
        .await
        .expect(StatusCode::CREATED);
    app.create(RETAIL_BL, plain).await.problem(
        StatusCode::CONFLICT,
        "already_exists",
        Some("/external_ref"),
    );
    assert_eq!(app.count("orders").await, 3);
}

/// Issue #13 item 16: an order's currency must be one the tenant takes (retail: CNY only);
/// `USD` was accepted.
async fn a_currency_the_tenant_does_not_take_is_refused(app: &TestApp) {
    let mut dollars = retail_order("buyer-new");
    dollars["currency"] = json!("USD");
    app.create(RETAIL_BL, dollars).await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/currency"),
    );
    assert_eq!(app.count("orders").await, 0);
}

/// Issue #13 item 16: `points_used: 18446744073709551615` was accepted, payable unchanged.
async fn points_no_order_can_be_worth_are_refused(app: &TestApp) {
    let mut points = retail_order("buyer-new");
    points["points_used"] = json!(u64::MAX);
    app.create(RETAIL_BL, points).await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/points_used"),
    );
    assert_eq!(app.count("orders").await, 0);
}

/// Issue #13 item 13: `points_used` was stored but never deducted from the payable. Seed 003
/// prices "base price + promotions - coupons - points"; a point redeems one minor unit.
async fn points_are_deducted_from_the_payable(app: &TestApp) {
    let mut order = retail_order("buyer-points");
    order["points_used"] = json!(900);
    let created = app.create(RETAIL_BL, order).await;
    created.expect(StatusCode::CREATED);
    assert_eq!(created.body["finance"]["goods_total"]["minor"], 9900);
    assert_eq!(created.body["finance"]["discount_total"]["minor"], 900);
    assert_eq!(created.body["finance"]["payable"]["minor"], 9000);
    assert_eq!(created.body["lines"][0]["payable"]["minor"], 9000);
    assert_eq!(created.body["marketing"]["points_used"], 900);
    // more points than the goods are worth: refused at the field, nothing written
    let mut too_many = retail_order("buyer-points");
    too_many["points_used"] = json!(9901);
    app.create(RETAIL_BL, too_many).await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/points_used"),
    );
    assert_eq!(app.count("orders").await, 1);
}

/// Issue #13 item 16: whether an order type needs a receiver is tenant config
/// (`receiver_required`): retail's `presale` goods are shipped and need one, its `standard`
/// orders (gift cards among them) do not.
async fn a_receiver_is_required_where_the_order_type_says_so(app: &TestApp) {
    let presale = |receiver: bool| {
        let mut order = json!({
            "business_identity": "retail",
            "order_type": "presale",
            "buyer_id": "buyer-presale",
            "lines": [{"sku": "PS-1", "product_name": "Pre-sale tea", "quantity": 1, "unit_price_minor": 5000}],
            "extension": {"deposit_amount": "10.00", "final_payment_due": "2030-01-31"}
        });
        if receiver {
            order["receiver"] =
                json!({"name": "Li Lei", "phone": "13900001111", "address": "1 Nanjing Road"});
        }
        order
    };
    app.create(RETAIL_BL, presale(false)).await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/receiver"),
    );
    assert_eq!(app.count("orders").await, 0);
    app.create(RETAIL_BL, presale(true))
        .await
        .expect(StatusCode::CREATED);
    let mut standard = retail_order("buyer-gift-card");
    standard.as_object_mut().unwrap().remove("receiver");
    app.create(RETAIL_BL, standard)
        .await
        .expect(StatusCode::CREATED);
}

/// Issue #13 item 16: a free-text remark often holds phone numbers, so the tenant config can
/// mark it encrypted (retail's `presale`: `remark: { encrypted: true }`). Then it is sealed
/// at rest (no plaintext in any row, the outbox or the search document; the raw order row
/// holds `{"sealed": …}`), written sealed by create and PATCH, and shown by role like other
/// personal data: in full, masked, or not at all. An order type without the flag (retail's
/// `standard`) keeps its remark in clear.
async fn an_encrypted_remark_is_sealed_at_rest_and_shown_by_role(app: &TestApp) {
    const FIRST: &str = "call 13912345678 before delivery";
    const SECOND: &str = "ring 13800001111 at the gate";
    let order = json!({
        "business_identity": "retail",
        "order_type": "presale",
        "buyer_id": "buyer-remark",
        "lines": [{"sku": "PS-9", "product_name": "Pre-sale tea", "quantity": 1, "unit_price_minor": 5000}],
        "extension": {"deposit_amount": "10.00", "final_payment_due": "2030-01-31"},
        "receiver": {"name": "Li Lei", "phone": "13900001111", "address": "1 Nanjing Road"},
        "remark": FIRST
    });
    let created = app.create(RETAIL_BL, order).await;
    created.expect(StatusCode::CREATED);
    assert_eq!(created.body["operation"]["remark"], FIRST);
    let id = created.id();
    let raw_remark = async || -> Value {
        for shard in app.store.shards() {
            let pool = app.store.shard_pool(shard).unwrap();
            let row = sqlx::query("SELECT body FROM orders WHERE id = ?")
                .bind(id.parse::<i64>().unwrap())
                .fetch_optional(pool)
                .await
                .unwrap();
            if let Some(row) = row {
                let body: Value = serde_json::from_str(&text_cell(&row, 0)).unwrap();
                return body["operation"]["remark"].clone();
            }
        }
        panic!("order {id} has no row");
    };
    let stored = raw_remark().await;
    assert!(
        stored["sealed"]["c"].is_string(),
        "sealed in the row: {stored}"
    );
    assert!(
        stored["sealed"].get("b").is_none(),
        "a remark is not searchable"
    );
    let no_plaintext = async |secret: &str| {
        let mut raw = String::new();
        for table in ["orders", "outbox", "idempotency"] {
            raw.push_str(&app.dump(table).await);
        }
        assert!(raw.contains(&id), "the dump really reads the rows");
        assert!(
            !raw.contains(secret),
            "{secret:?} in plaintext in the database"
        );
        let order = app
            .store
            .get(&TenantId::parse("retail").unwrap(), id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let document = document_from_order(&order, &*app.tenants.current()).unwrap();
        assert!(
            !format!("{document:?}").contains(secret),
            "{secret:?} in the search document"
        );
        // the cold store archives exactly the order's JSON (`oc-cold-store`'s codec)
        let archived = serde_json::to_string(&order).unwrap();
        assert!(archived.contains("\"remark\":{\"sealed\""), "{archived}");
        assert!(
            !archived.contains(secret),
            "{secret:?} in the archived order"
        );
    };
    no_plaintext("13912345678").await;
    // by role: in full, masked (first and last character kept), not at all
    let get = async |key: &str| {
        let reply = app
            .call("GET", &format!("/v1/orders/{id}"), Some(key), &[], None)
            .await;
        reply.expect(StatusCode::OK);
        reply.body["operation"].clone()
    };
    assert_eq!(get(RETAIL_BL).await["remark"], FIRST);
    let masked = get(RETAIL_CS).await["remark"].as_str().unwrap().to_owned();
    assert_eq!(masked.chars().count(), FIRST.chars().count());
    assert!(masked.starts_with('c') && masked.ends_with('y') && !masked.contains("139"));
    assert!(masked.contains("****"), "{masked}");
    app.index_all().await;
    let found = app
        .call(
            "GET",
            "/v1/orders/search?buyer_id=buyer-remark",
            Some(RETAIL_ANALYTICS),
            &[],
            None,
        )
        .await;
    found.expect(StatusCode::OK);
    let operation = &found.body["items"][0]["operation"];
    assert!(operation.is_object(), "{}", found.body);
    assert!(
        operation.get("remark").is_none(),
        "pii: none sees no remark"
    );
    // PATCH seals the new remark at the same site
    let patched = app
        .call(
            "PATCH",
            &format!("/v1/orders/{id}"),
            Some(RETAIL_BL),
            &[("if-match", "\"1\"")],
            Some(json!({"remark": SECOND})),
        )
        .await;
    patched.expect(StatusCode::OK);
    assert_eq!(patched.body["operation"]["remark"], SECOND);
    let restored = raw_remark().await;
    assert!(restored["sealed"]["c"].is_string(), "{restored}");
    assert_ne!(restored, stored);
    no_plaintext("13800001111").await;
    assert_eq!(get(RETAIL_BL).await["remark"], SECOND);
    // without the flag the remark stays in clear
    let mut standard = retail_order("buyer-remark-clear");
    standard["remark"] = json!("leave it at 13700002222");
    let clear = app.create(RETAIL_BL, standard).await;
    clear.expect(StatusCode::CREATED);
    assert!(app.dump("orders").await.contains("leave it at 13700002222"));
    let reply = app
        .call(
            "GET",
            &format!("/v1/orders/{}", clear.id()),
            Some(RETAIL_CS),
            &[],
            None,
        )
        .await;
    assert_eq!(reply.body["operation"]["remark"], "leave it at 13700002222");
}

/// Issue #13 item 16 through a transition: event data written `into: operation.remark` of
/// an order type whose remark is encrypted (the test tenant `market`) is sealed in the
/// order and left out of the history row and the outbox event, which carry data in clear.
async fn a_remark_set_by_transition_data_is_sealed_and_kept_out_of_the_event(app: &TestApp) {
    const NOTE: &str = "call 13911112222 at the door";
    let mut order = retail_order("buyer-market-note");
    order["business_identity"] = json!("market");
    order["order_type"] = json!("goods");
    let id = app.create(MARKET_BL, order).await.id();
    let paid = fire(
        app,
        MARKET_BL,
        &id,
        Some("\"1\""),
        json!({"event": "pay", "data": {"delivery_note": NOTE}}),
    )
    .await;
    paid.expect(StatusCode::OK);
    assert_eq!(paid.body["operation"]["remark"], NOTE);
    let mut raw = String::new();
    for table in ["orders", "outbox", "order_history"] {
        raw.push_str(&app.dump(table).await);
    }
    assert!(raw.contains(&id), "the dump really reads the rows");
    assert!(
        !raw.contains("13911112222"),
        "the note in plaintext in the database"
    );
    assert!(
        raw.contains("\"remark\":{\"sealed\""),
        "the remark is sealed"
    );
    let got = app
        .call(
            "GET",
            &format!("/v1/orders/{id}"),
            Some(MARKET_SUPPORT),
            &[],
            None,
        )
        .await;
    got.expect(StatusCode::OK);
    let masked = got.body["operation"]["remark"].as_str().unwrap();
    assert!(
        masked.starts_with('c') && !masked.contains("139"),
        "{masked}"
    );
}

/// Issue #13 item 14 on the transitions route: a weak tag never matches (412), an unquoted
/// version is not an entity tag (400), and nothing changes.
async fn transitions_compare_if_match_strongly(app: &TestApp) {
    let id = app
        .create(RETAIL_BL, retail_order("buyer-if-match-transition"))
        .await
        .id();
    let pay = || json!({"event": "pay"});
    fire(app, RETAIL_BL, &id, Some("W/\"1\""), pay())
        .await
        .problem(StatusCode::PRECONDITION_FAILED, "precondition_failed", None);
    fire(app, RETAIL_BL, &id, Some("1"), pay()).await.problem(
        StatusCode::BAD_REQUEST,
        "invalid_input",
        Some("/header/if-match"),
    );
    let current = app
        .call(
            "GET",
            &format!("/v1/orders/{id}"),
            Some(RETAIL_BL),
            &[],
            None,
        )
        .await;
    assert_eq!(current.body["version"], 1, "nothing was applied");
    assert_eq!(current.body["status"], "pending_payment");
}

/// Issue #13 item 16: an unknown business identity was reported at `/order_type`.
async fn an_unknown_business_identity_is_named_at_its_field(app: &TestApp) {
    let mut identity = retail_order("buyer-new");
    identity["business_identity"] = json!("wholesale");
    app.create(RETAIL_BL, identity).await.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/business_identity"),
    );
}

/// Issue #13 item 16: a JSON array body was answered with the parser's internal wording
/// ("expected struct CreateOrderRequest with 17 elements"): say what was expected, at `""`.
async fn a_json_array_body_is_refused_in_plain_words(app: &TestApp) {
    let array = app
        .create(RETAIL_BL, json!([retail_order("buyer-new")]))
        .await;
    array.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", None);
    let detail = array.body["detail"].as_str().unwrap();
    assert!(detail.contains("JSON object"), "{detail}");
    assert!(
        !detail.contains("struct") && !detail.contains("CreateOrderRequest"),
        "{detail}"
    );
    // the same for a nested member that must be an object
    let mut nested = retail_order("buyer-new");
    nested["lines"] = json!([[1, 2]]);
    let reply = app.create(RETAIL_BL, nested).await;
    reply.problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/lines/0"),
    );
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("JSON object") && !detail.contains("struct"),
        "{detail}"
    );
    assert_eq!(app.count("orders").await, 0);
}

/// Issue #13 item 16: search values that cannot exist (a status no state machine has, a
/// value an enum field does not allow, an identity or order type the tenant does not
/// configure) answered 200 with nothing; they are refused at their parameter.
async fn search_values_that_cannot_exist_are_refused(app: &TestApp) {
    for (query, parameter) in [
        ("status=pendng", "status"),
        ("status=paid,shiped", "status"),
        ("ext.member_level=diamond", "ext.member_level"),
        ("business_identity=wholesale", "business_identity"),
        ("order_type=auction", "order_type"),
    ] {
        app.call(
            "GET",
            &format!("/v1/orders/search?{query}"),
            Some(RETAIL_BL),
            &[],
            None,
        )
        .await
        .problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some(&format!("/query/{parameter}")),
        );
    }
    // values that can exist are searched
    app.call(
        "GET",
        "/v1/orders/search?status=pending_payment,paid&ext.member_level=gold&business_identity=retail&order_type=standard",
        Some(RETAIL_BL),
        &[],
        None,
    )
    .await
    .expect(StatusCode::OK);
}

macro_rules! api_tests {
    ($($case:ident),* $(,)?) => {
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let app = super::TestApp::mariadb(stringify!($case)).await;
                    super::$case(&app).await;
                    app.finish().await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let app = super::TestApp::sqlite(stringify!($case)).await;
                    super::$case(&app).await;
                    app.finish().await;
                }
            )*
        }
    };
}

api_tests!(
    create_get_update_cancel,
    stale_if_match_changes_nothing,
    concurrent_idempotent_creates_make_one_order,
    cross_tenant_access_is_404_everywhere,
    bad_input_names_the_field_and_writes_nothing,
    no_plaintext_pii_in_raw_rows,
    auth_and_roles,
    role_matrix_follows_the_tenant_config,
    merchant_keys_see_only_their_merchant,
    buyer_list_pages,
    reads_come_from_the_cache_and_follow_writes,
    search_filters_by_core_extension_and_encrypted_fields,
    a_clear_kv_value_that_looks_sealed_stays_clear,
    if_match_compares_strong_entity_tags_only,
    an_impossible_order_id_is_404_whatever_the_if_match,
    only_roles_seeing_pii_in_full_filter_by_it,
    idempotent_replays_respect_the_callers_scope,
    external_refs_are_unique_per_merchant,
    a_currency_the_tenant_does_not_take_is_refused,
    points_no_order_can_be_worth_are_refused,
    points_are_deducted_from_the_payable,
    transitions_compare_if_match_strongly,
    after_sales_apply_review_appeal_and_refund_once,
    after_sale_lists_from_the_index_and_the_shards,
    after_sale_steps_walk_each_type_through_its_machine,
    sixty_four_applications_from_three_channels_take_exactly_the_bought_units,
    after_sale_rules_come_from_the_callers_tenant_config,
    an_after_sales_personal_data_is_shown_by_role,
    a_receiver_is_required_where_the_order_type_says_so,
    an_encrypted_remark_is_sealed_at_rest_and_shown_by_role,
    a_remark_set_by_transition_data_is_sealed_and_kept_out_of_the_event,
    an_unknown_business_identity_is_named_at_its_field,
    a_json_array_body_is_refused_in_plain_words,
    search_values_that_cannot_exist_are_refused,
    an_order_walks_its_state_machine_with_history_and_typed_events,
    refused_transitions_change_nothing,
    cancel_is_the_cancel_transition,
    placement_reserves_stock_all_or_nothing_and_transitions_settle_it,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_index_buyer_searches_fall_back_to_the_shard_and_say_so() {
    let app = TestApp::sqlite_with("degraded", EdgeConfig::default(), false).await;
    let first = app
        .create(EXPRESS_BL, cold_chain_order("buyer-d"))
        .await
        .id();
    let second = app
        .create(EXPRESS_BL, cold_chain_order("buyer-d"))
        .await
        .id();
    app.call(
        "POST",
        &format!("/v1/orders/{first}/cancel"),
        Some(EXPRESS_BL),
        &[],
        None,
    )
    .await
    .expect(StatusCode::OK);
    let reply = app
        .call(
            "GET",
            "/v1/orders/search?buyer_id=buyer-d&status=pending_payment",
            Some(EXPRESS_BL),
            &[],
            None,
        )
        .await;
    reply.expect(StatusCode::OK);
    assert_eq!(reply.body["degraded"], true);
    let ids: Vec<&str> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str()]);
    // what only the index can answer is refused, not answered wrongly
    app.call(
        "GET",
        "/v1/orders/search?buyer_id=buyer-d&ext.cargo_category=vaccine",
        Some(EXPRESS_BL),
        &[],
        None,
    )
    .await
    .problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    app.call(
        "GET",
        "/v1/orders/search?status=pending_payment",
        Some(EXPRESS_BL),
        &[],
        None,
    )
    .await
    .problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    app.finish().await;
}

#[tokio::test]
async fn metrics_count_requests_by_tenant_route_template_and_status() {
    let app = TestApp::sqlite("metrics").await;
    let id = app.create(RETAIL_BL, retail_order("buyer-m")).await.id();
    app.call(
        "GET",
        &format!("/v1/orders/{id}"),
        Some(RETAIL_BL),
        &[],
        None,
    )
    .await
    .expect(StatusCode::OK);
    app.call("GET", "/v1/orders/12345", Some(RETAIL_BL), &[], None)
        .await
        .expect(StatusCode::NOT_FOUND);
    app.call("GET", "/v1/orders/12345", None, &[], None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let scrape = app.call("GET", "/metrics", None, &[], None).await;
    scrape.expect(StatusCode::OK);
    let text = scrape.body.as_str().unwrap().to_owned();
    for line in [
        r#"oc_http_requests_total{tenant="retail",route="/v1/orders",status="201"} 1"#,
        r#"oc_http_requests_total{tenant="retail",route="/v1/orders/{id}",status="200"} 1"#,
        r#"oc_http_requests_total{tenant="retail",route="/v1/orders/{id}",status="404"} 1"#,
        r#"oc_http_requests_total{tenant="-",route="/v1/orders/{id}",status="401"} 1"#,
        r#"oc_http_request_duration_seconds_count{tenant="retail",route="/v1/orders/{id}"} 2"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(
        !text.contains(&id),
        "labels carry route templates, never order ids"
    );
    app.finish().await;
}

#[tokio::test]
async fn openapi_document_matches_snapshot_and_routes() {
    let app = TestApp::sqlite("openapi").await;
    let reply = app.call("GET", "/openapi.json", None, &[], None).await;
    reply.expect(StatusCode::OK);
    insta::assert_json_snapshot!("openapi", reply.body);
    let paths: Vec<&String> = reply.body["paths"].as_object().unwrap().keys().collect();
    for path in [
        "/v1/orders",
        "/v1/orders/search",
        "/v1/orders/{id}",
        "/v1/orders/{id}/cancel",
        "/v1/orders/{id}/transitions",
        "/v1/orders/{id}/history",
        "/v1/orders/{id}/payments",
        "/v1/orders/{id}/after-sales",
        "/v1/after-sales",
        "/v1/after-sales/{id}",
        "/v1/after-sales/{id}/review",
        "/v1/after-sales/{id}/appeal",
        "/v1/after-sales/{id}/refund",
        "/v1/after-sales/{id}/transitions",
        "/v1/payments/callbacks/{provider}",
        "/v1/orders/{id}/payments/{payment_id}/refunds",
        "/v1/payments/refunds/failed",
        "/v1/payments/refund-callbacks/{provider}",
        "/v1/stock/{sku}",
        "/v1/exports",
        "/v1/exports/{id}",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/metrics",
    ] {
        assert!(paths.iter().any(|p| *p == path), "{path} is documented");
    }
    assert_eq!(
        paths.len(),
        25,
        "every documented path is routed (and the reverse)"
    );
    app.call("GET", "/healthz", None, &[], None)
        .await
        .expect(StatusCode::OK);
    let ready = app.call("GET", "/readyz", None, &[], None).await;
    ready.expect(StatusCode::OK);
    assert_eq!(ready.body["dependencies"]["shards"]["status"], "up");
    assert_eq!(ready.body["dependencies"]["shards"]["required"], true);
    app.call("DELETE", "/v1/orders", Some(RETAIL_BL), &[], None)
        .await
        .problem(StatusCode::METHOD_NOT_ALLOWED, "invalid_input", None);
    app.call("GET", "/nowhere", None, &[], None).await.problem(
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_neighbour_gets_429_while_the_other_tenant_is_served() {
    let app = TestApp::sqlite("noisy").await;
    // express/bl-main may burst 600 at 300/s: in-process requests outrun the refill
    let mut throttled = 0;
    let mut retry_after_seen = false;
    // until the bucket runs dry (a slow machine sends slower, so count, do not time), capped
    for n in 0..20_000 {
        if throttled >= 20 {
            break;
        }
        let reply = app
            .call("GET", "/v1/orders/1", Some(EXPRESS_BL), &[], None)
            .await;
        match reply.status {
            StatusCode::TOO_MANY_REQUESTS => {
                throttled += 1;
                assert_eq!(reply.body["code"], "rate_limited");
                let seconds: u64 = reply
                    .headers
                    .get(header::RETRY_AFTER)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                retry_after_seen |= seconds >= 1;
            }
            StatusCode::NOT_FOUND => {}
            other => panic!("unexpected {other}"),
        }
        // tenant retail, interleaved, is never throttled by express's traffic
        if n % 20 == 0 {
            let reply = app
                .call("GET", "/v1/orders/1", Some(RETAIL_BL), &[], None)
                .await;
            reply.problem(StatusCode::NOT_FOUND, "not_found", None);
        }
    }
    assert!(throttled > 0, "express exceeded its limit");
    assert!(retry_after_seen);
    // unauthenticated requests never reach (or drain) a tenant's bucket
    app.call("GET", "/v1/orders/1", Some("oc_test_wrong"), &[], None)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503_instead_of_queueing() {
    let edge = EdgeConfig {
        request_timeout: std::time::Duration::from_secs(10),
        max_in_flight: 1,
        layers: true,
    };
    let app = TestApp::sqlite_with("shed", edge, true).await;
    let calls: Vec<_> = (0..32)
        .map(|_| app.call("GET", "/v1/orders/1", Some(RETAIL_BL), &[], None))
        .collect();
    let replies = futures_join_all(calls).await;
    let shed: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let served = replies
        .iter()
        .filter(|r| r.status == StatusCode::NOT_FOUND)
        .count();
    assert!(served >= 1, "the request inside the limit is served");
    assert!(
        !shed.is_empty(),
        "requests beyond the limit are refused at once"
    );
    assert_eq!(served + shed.len(), 32);
    for reply in shed {
        assert_eq!(reply.body["code"], "unavailable");
        assert!(reply.headers.get(header::RETRY_AFTER).is_some());
    }
    app.finish().await;
}

/// Free-text search parameters longer than the OpenAPI document allows are refused with
/// their field (found by schemathesis: an over-long `sku` was accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_search_parameters_are_refused_with_their_field() {
    let app = TestApp::sqlite("long-query").await;
    for (name, max) in [
        ("sku", 128),
        ("q", 100),
        ("receiver_phone", 40),
        ("cursor", 512),
    ] {
        let at_limit = format!("/v1/orders/search?{name}={}", "7".repeat(max));
        // at the limit the value is taken (an unknown cursor is a field error of its own)
        let reply = app.call("GET", &at_limit, Some(RETAIL_BL), &[], None).await;
        if name != "cursor" {
            reply.expect(StatusCode::OK);
        }
        let over = format!("/v1/orders/search?{name}={}", "7".repeat(max + 1));
        app.call("GET", &over, Some(RETAIL_BL), &[], None)
            .await
            .problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                Some(&format!("/query/{name}")),
            );
    }
    app.finish().await;
}

/// A log writer the test reads back.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Issue #13 item 16: a request's log line names its tenant once (the edge and the metrics
/// layer both recorded it on the request span, and the text format printed `tenant=` twice),
/// in both log formats the binary writes.
///
/// It runs in a process of its own: `tracing` caches per call site whether anyone listens,
/// process-wide. Under a harness that runs tests as threads of one process, another test's
/// thread reaching `request finished` first (no subscriber there) could cache "never"
/// while this test installed its subscriber, and this test then saw no line at all (it
/// failed about once in six runs of the sqlite cases beside it).
#[test]
fn request_log_lines_name_the_tenant_once() {
    const CHILD: &str = "API_TEST_LOG_LINES_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(log_lines_name_the_tenant_once());
    }
    let run = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "request_log_lines_name_the_tenant_once",
            "--exact",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{output}");
    assert!(
        output.contains("1 passed"),
        "the test ran in the child: {output}"
    );
}

async fn log_lines_name_the_tenant_once() {
    let app = TestApp::sqlite("log-tenant").await;
    for json in [false, true] {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let _scope = if json {
            tracing::subscriber::set_default(builder.json().finish())
        } else {
            tracing::subscriber::set_default(builder.finish())
        };
        for key in [Some(RETAIL_BL), None] {
            app.call("GET", "/v1/orders/12345", key, &[], None).await;
        }
        let text = logs.text();
        let finished: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("request finished"))
            .collect();
        assert_eq!(finished.len(), 2, "{text}");
        for line in finished {
            let named = if json {
                line.matches("\"tenant\":").count()
            } else {
                line.matches("tenant=").count()
            };
            assert_eq!(named, 1, "json {json}: {line}");
        }
        assert!(text.contains("retail"), "{text}");
    }
    app.finish().await;
}

/// The outbox payloads of one order, oldest first (every shard).
async fn outbox_of(app: &TestApp, id: &str) -> Vec<Value> {
    let mut payloads = Vec::new();
    for shard in app.store.shards() {
        let pool = app.store.shard_pool(shard).unwrap();
        let rows = sqlx::query("SELECT payload FROM outbox WHERE order_id = ? ORDER BY version")
            .bind(id.parse::<i64>().unwrap())
            .fetch_all(pool)
            .await
            .unwrap();
        for row in rows {
            payloads.push(serde_json::from_str(&text_cell(&row, 0)).unwrap());
        }
    }
    payloads
}

async fn fire(app: &TestApp, key: &str, id: &str, etag: Option<&str>, body: Value) -> Reply {
    let headers: Vec<(&str, &str)> = etag.map(|tag| ("if-match", tag)).into_iter().collect();
    app.call(
        "POST",
        &format!("/v1/orders/{id}/transitions"),
        Some(key),
        &headers,
        Some(body),
    )
    .await
}

async fn history(app: &TestApp, key: &str, id: &str) -> Reply {
    app.call(
        "GET",
        &format!("/v1/orders/{id}/history"),
        Some(key),
        &[],
        None,
    )
    .await
}

/// pay → ship (with the carrier and waybill the config declares) → receive → complete: each
/// step one history row and one outbox event typed after the transition.
async fn an_order_walks_its_state_machine_with_history_and_typed_events(app: &TestApp) {
    let created = app.create(RETAIL_BL, retail_order("walker")).await;
    created.expect(StatusCode::CREATED);
    let id = created.id();
    let empty = history(app, RETAIL_BL, &id).await;
    empty.expect(StatusCode::OK);
    assert_eq!(empty.body["order_id"], id.as_str());
    assert_eq!(empty.body["items"], json!([]));

    let paid = fire(app, RETAIL_BL, &id, Some("\"1\""), json!({"event": "pay"})).await;
    paid.expect(StatusCode::OK);
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(paid.etag(), "\"2\"");
    let shipped = fire(
        app,
        RETAIL_BL,
        &id,
        Some("\"2\""),
        json!({"event": "ship", "reason": "picked at dawn",
               "data": {"carrier": "sf", "waybill_no": "SF12345678"}}),
    )
    .await;
    shipped.expect(StatusCode::OK);
    assert_eq!(shipped.body["status"], "shipped");
    assert_eq!(shipped.body["logistics"]["carrier"], "sf");
    assert_eq!(shipped.body["logistics"]["waybill_no"], "SF12345678");
    for (version, event, status) in [(3, "receive", "received"), (4, "complete", "completed")] {
        let tag = format!("\"{version}\"");
        let moved = fire(app, RETAIL_BL, &id, Some(&tag), json!({"event": event})).await;
        moved.expect(StatusCode::OK);
        assert_eq!(moved.body["status"], status);
        assert_eq!(moved.body["version"], version + 1);
    }
    let fetched = app
        .call(
            "GET",
            &format!("/v1/orders/{id}"),
            Some(RETAIL_BL),
            &[],
            None,
        )
        .await;
    assert_eq!(fetched.body["status"], "completed");
    assert_eq!(fetched.body["logistics"]["carrier"], "sf");

    // customer service may read the history (orders.get) but not fire events
    let read = history(app, RETAIL_CS, &id).await;
    read.expect(StatusCode::OK);
    let items = read.body["items"].as_array().unwrap();
    let steps: Vec<(u64, &str, &str, &str)> = items
        .iter()
        .map(|item| {
            (
                item["version"].as_u64().unwrap(),
                item["from"].as_str().unwrap(),
                item["event"].as_str().unwrap(),
                item["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            (2, "pending_payment", "pay", "paid"),
            (3, "paid", "ship", "shipped"),
            (4, "shipped", "receive", "received"),
            (5, "received", "complete", "completed"),
        ]
    );
    for item in items {
        assert_eq!(item["operator"], "shop-api", "{item}");
        assert_eq!(item["source_system"], "api");
        assert!(item["occurred_at"].is_string());
    }
    assert_eq!(items[1]["reason"], "picked at dawn");
    assert_eq!(
        items[1]["data"],
        json!({"carrier": "sf", "waybill_no": "SF12345678"})
    );
    fire(
        app,
        RETAIL_CS,
        &id,
        Some("\"5\""),
        json!({"event": "complete"}),
    )
    .await
    .problem(StatusCode::FORBIDDEN, "forbidden", None);

    // one outbox event per version, named after the transition
    let outbox = outbox_of(app, &id).await;
    let kinds: Vec<(&str, Option<&str>)> = outbox
        .iter()
        .map(|event| {
            (
                event["kind"].as_str().unwrap(),
                event["transition"]["event_type"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("created", None),
            ("status_changed", Some("paid")),
            ("status_changed", Some("shipped")),
            ("status_changed", Some("received")),
            ("status_changed", Some("completed")),
        ]
    );
    assert_eq!(outbox[2]["transition"]["data"]["waybill_no"], "SF12345678");
    assert_eq!(outbox[2]["transition"]["from"], "paid");
    assert_eq!(app.count("order_history").await, 4);

    // another tenant's key: the order does not exist
    history(app, EXPRESS_BL, &id)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
    fire(
        app,
        EXPRESS_BL,
        &id,
        Some("\"5\""),
        json!({"event": "complete"}),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found", None);
}

/// Every refusal answers a problem and writes nothing: no If-Match, a stale one, an event the
/// state machine does not allow here (409 naming the status and the allowed events), data the
/// config does not declare or that fails its checks, an unknown event.
async fn refused_transitions_change_nothing(app: &TestApp) {
    let id = app.create(RETAIL_BL, retail_order("refused")).await.id();
    let outbox_before = app.count("outbox").await;
    fire(app, RETAIL_BL, &id, None, json!({"event": "pay"}))
        .await
        .problem(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_failed",
            None,
        );
    fire(app, RETAIL_BL, &id, Some("\"7\""), json!({"event": "pay"}))
        .await
        .problem(StatusCode::PRECONDITION_FAILED, "precondition_failed", None);
    let refused = fire(app, RETAIL_BL, &id, Some("\"1\""), json!({"event": "ship"})).await;
    refused.problem(StatusCode::CONFLICT, "invalid_transition", None);
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("pending_payment"), "{detail}");
    assert!(detail.contains("[cancel, pay, timeout]"), "{detail}");
    fire(
        app,
        RETAIL_BL,
        &id,
        Some("\"1\""),
        json!({"event": "Not An Event"}),
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/event"),
    );
    fire(
        app,
        RETAIL_BL,
        &id,
        Some("\"1\""),
        json!({"event": "pay", "data": {"note": "x"}}),
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/data/note"),
    );
    fire(
        app,
        RETAIL_BL,
        &id,
        Some("\"1\""),
        json!({"event": "pay", "extra": 1}),
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/extra"),
    );
    assert_eq!(app.count("outbox").await, outbox_before);

    fire(app, RETAIL_BL, &id, Some("\"1\""), json!({"event": "pay"}))
        .await
        .expect(StatusCode::OK);
    let ship = |data: Value| json!({"event": "ship", "data": data});
    fire(
        app,
        RETAIL_BL,
        &id,
        Some("\"2\""),
        ship(json!({"carrier": "sf"})),
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/data/waybill_no"),
    );
    fire(
        app,
        RETAIL_BL,
        &id,
        Some("\"2\""),
        ship(json!({"carrier": "pigeon", "waybill_no": "SF12345678"})),
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/data/carrier"),
    );
    fire(
        app,
        RETAIL_BL,
        &id,
        Some("\"2\""),
        ship(json!({"carrier": "sf", "waybill_no": "lower-case"})),
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/data/waybill_no"),
    );
    // paid orders of retail cannot be cancelled: refused, and the order is still paid
    let refused = app
        .call(
            "POST",
            &format!("/v1/orders/{id}/cancel"),
            Some(RETAIL_BL),
            &[],
            None,
        )
        .await;
    refused.problem(StatusCode::CONFLICT, "invalid_transition", None);
    assert!(refused.body["detail"].as_str().unwrap().contains("paid"));
    let order = app
        .call(
            "GET",
            &format!("/v1/orders/{id}"),
            Some(RETAIL_BL),
            &[],
            None,
        )
        .await;
    assert_eq!(order.body["status"], "paid");
    assert_eq!(order.body["version"], 2);
    assert!(order.body["logistics"].get("carrier").is_none());
    assert_eq!(app.count("outbox").await, outbox_before + 1);
    let rows = history(app, RETAIL_BL, &id).await;
    assert_eq!(rows.body["items"].as_array().unwrap().len(), 1);
}

/// `POST /cancel` is the `cancel` event: a history row with the reason, an event typed
/// `cancelled`, the reason on the order.
async fn cancel_is_the_cancel_transition(app: &TestApp) {
    let id = app
        .create(EXPRESS_BL, cold_chain_order("canceller"))
        .await
        .id();
    let cancelled = app
        .call(
            "POST",
            &format!("/v1/orders/{id}/cancel"),
            Some(EXPRESS_BL),
            &[],
            Some(json!({"reason": "changed my mind"})),
        )
        .await;
    cancelled.expect(StatusCode::OK);
    assert_eq!(
        cancelled.body["operation"]["cancel_reason"],
        "changed my mind"
    );
    let rows = history(app, EXPRESS_BL, &id).await;
    let items = rows.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["event"], "cancel");
    assert_eq!(items[0]["from"], "pending_payment");
    assert_eq!(items[0]["to"], "cancelled");
    assert_eq!(items[0]["reason"], "changed my mind");
    let outbox = outbox_of(app, &id).await;
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[1]["kind"], "cancelled");
    assert_eq!(outbox[1]["transition"]["event_type"], "cancelled");
    assert_eq!(outbox[1]["transition"]["event"], "cancel");
}

async fn stock_of(app: &TestApp, sku: &str) -> (u64, u64, u64) {
    app.stock(RETAIL_ADMIN, sku).await
}

/// Retail keeps stock (`inventory: builtin`): placement reserves every line's units or none
/// (409 out_of_stock naming the SKU and its line), `pay` sells them, `cancel` gives them
/// back; SKUs nobody set stock for are sold without a reservation (`untracked_skus: allow`).
async fn placement_reserves_stock_all_or_nothing_and_transitions_settle_it(app: &TestApp) {
    let set = app.put_stock(RETAIL_ADMIN, "TSHIRT-M", 2).await;
    set.expect(StatusCode::OK);
    assert_eq!(set.body["available"], 2);
    app.put_stock(RETAIL_ADMIN, "VASE-1", 3)
        .await
        .expect(StatusCode::OK);
    app.put_stock(RETAIL_BL, "TSHIRT-M", 100).await.problem(
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    app.call("GET", "/v1/stock/NEVER-SET", Some(RETAIL_ADMIN), &[], None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);

    let first = app.create(RETAIL_BL, retail_order("stock-1")).await;
    first.expect(StatusCode::CREATED);
    assert_eq!(stock_of(app, "TSHIRT-M").await, (1, 1, 0));

    // the vase lines are short (SKUs are reserved in order: the T-shirt first), so the
    // T-shirt's reservation is given back: nothing is reserved
    let mut two_lines = retail_order("stock-2");
    two_lines["lines"] = json!([
        {"sku": "TSHIRT-M", "product_name": "T-shirt", "quantity": 1, "unit_price_minor": 9900},
        {"sku": "VASE-1", "product_name": "Vase", "quantity": 2, "unit_price_minor": 1500},
        {"sku": "VASE-1", "product_name": "Vase", "quantity": 2, "unit_price_minor": 1500}
    ]);
    let orders_before = app.count("orders").await;
    let refused = app.create(RETAIL_BL, two_lines).await;
    refused.problem(StatusCode::CONFLICT, "out_of_stock", Some("/lines/1/sku"));
    assert!(refused.body["detail"].as_str().unwrap().contains("VASE-1"));
    assert_eq!(app.count("orders").await, orders_before);
    assert_eq!(stock_of(app, "TSHIRT-M").await, (1, 1, 0));
    assert_eq!(stock_of(app, "VASE-1").await, (3, 0, 0));

    // an untracked SKU is sold without a reservation
    let mut untracked = retail_order("stock-3");
    untracked["lines"][0]["sku"] = json!("GIFT-CARD");
    app.create(RETAIL_BL, untracked)
        .await
        .expect(StatusCode::CREATED);

    let id = first.id();
    fire(app, RETAIL_BL, &id, Some("\"1\""), json!({"event": "pay"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(stock_of(app, "TSHIRT-M").await, (1, 0, 1));
    let rows = history(app, RETAIL_BL, &id).await;
    assert_eq!(rows.body["items"][0]["event"], "pay");

    let second = app.create(RETAIL_BL, retail_order("stock-4")).await;
    second.expect(StatusCode::CREATED);
    assert_eq!(stock_of(app, "TSHIRT-M").await, (0, 1, 1));
    app.create(RETAIL_BL, retail_order("stock-5"))
        .await
        .problem(StatusCode::CONFLICT, "out_of_stock", Some("/lines/0/sku"));
    app.call(
        "POST",
        &format!("/v1/orders/{}/cancel", second.id()),
        Some(RETAIL_BL),
        &[],
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(stock_of(app, "TSHIRT-M").await, (1, 0, 1));
    let outbox = outbox_of(app, &second.id()).await;
    assert_eq!(outbox[1]["transition"]["stock"], "release");
}

/// Keys of the test-only tenant `flash` (`tests/tenants/flash.yaml`): stock kept, KETTLE-1
/// and TV-55 behind the Redis stock gate.
const FLASH_BL: &str = "oc_test_flash_bl_0001_5c2e8a17d94b03f6";
const FLASH_ADMIN: &str = "oc_test_flash_admin_0001_e7a94d21b3c608f5";

fn flash_order(buyer: &str, lines: &[(&str, u32)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(sku, quantity)| {
            json!({"sku": sku, "product_name": "Flash item", "quantity": quantity,
                   "unit_price_minor": 10000})
        })
        .collect();
    json!({"business_identity": "flash", "order_type": "sale", "buyer_id": buyer,
           "lines": lines})
}

/// The Redis stock gate in front of SQL for the hot SKUs of `flash`: counters are seeded
/// from SQL on first use and taken for every hot SKU of an order at once (a sold-out one
/// refuses the order before SQL, naming the SKU and its line, nothing taken); a counter
/// too high (here set by hand, as a seed read before other buyers reached SQL leaves it)
/// cannot oversell: SQL refuses and the units go back; a counter too low refuses until it
/// is gone, and a missing one (Redis restarted empty) is rebuilt from SQL; a cancel and a
/// new stock level reach the gate; a non-hot SKU never gets a counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_stock_gate_admits_hot_skus_in_front_of_sql() {
    let app = TestApp::mariadb("api_stock_gate").await;
    let counter = async |sku: &str| app.gate_counter("flash", sku).await;
    let stock = async |sku: &str| app.stock(FLASH_ADMIN, sku).await;
    for (sku, units) in [("KETTLE-1", 3), ("TV-55", 1), ("MUG-1", 5)] {
        app.put_stock(FLASH_ADMIN, sku, units)
            .await
            .expect(StatusCode::OK);
    }

    // the first placement seeds the hot counters from SQL and takes from them
    let first = app
        .create(
            FLASH_BL,
            flash_order("b1", &[("KETTLE-1", 1), ("TV-55", 1), ("MUG-1", 1)]),
        )
        .await;
    first.expect(StatusCode::CREATED);
    assert_eq!(counter("KETTLE-1").await, Some(2));
    assert_eq!(counter("TV-55").await, Some(0));
    assert_eq!(counter("MUG-1").await, None, "MUG-1 is not hot");
    assert_eq!(stock("KETTLE-1").await, (2, 1, 0));

    // TV-55 is sold out at the gate: refused naming it at its line; the kettle keeps its
    // units in the gate and in SQL, no order is written
    let orders = app.count("orders").await;
    let refused = app
        .create(
            FLASH_BL,
            flash_order("b2", &[("KETTLE-1", 1), ("TV-55", 1)]),
        )
        .await;
    refused.problem(StatusCode::CONFLICT, "out_of_stock", Some("/lines/1/sku"));
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("SKU TV-55 is out of stock")
    );
    assert_eq!(app.count("orders").await, orders);
    assert_eq!(counter("KETTLE-1").await, Some(2));
    assert_eq!(stock("KETTLE-1").await, (2, 1, 0));

    // a counter too high: SQL's conditional decrement refuses, the gate gets its units back
    app.set_gate_counter("flash", "KETTLE-1", Some(100)).await;
    app.create(FLASH_BL, flash_order("b3", &[("KETTLE-1", 3)]))
        .await
        .problem(StatusCode::CONFLICT, "out_of_stock", Some("/lines/0/sku"));
    assert_eq!(counter("KETTLE-1").await, Some(100));
    assert_eq!(stock("KETTLE-1").await, (2, 1, 0));

    // a counter too low refuses while it lives; deleted (Redis restarted empty), it is
    // rebuilt from SQL and the units sell
    app.set_gate_counter("flash", "KETTLE-1", Some(0)).await;
    app.create(FLASH_BL, flash_order("b4", &[("KETTLE-1", 2)]))
        .await
        .problem(StatusCode::CONFLICT, "out_of_stock", Some("/lines/0/sku"));
    app.set_gate_counter("flash", "KETTLE-1", None).await;
    let second = app
        .create(FLASH_BL, flash_order("b4", &[("KETTLE-1", 2)]))
        .await;
    second.expect(StatusCode::CREATED);
    assert_eq!(counter("KETTLE-1").await, Some(0));
    assert_eq!(stock("KETTLE-1").await, (0, 3, 0));

    // a cancel gives the units back to SQL and to the gate
    app.call(
        "POST",
        &format!("/v1/orders/{}/cancel", second.id()),
        Some(FLASH_BL),
        &[],
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(stock("KETTLE-1").await, (2, 1, 0));
    assert_eq!(counter("KETTLE-1").await, Some(2));

    // setting the stock drops the counter; the next placement seeds it from the new level
    app.put_stock(FLASH_ADMIN, "KETTLE-1", 10)
        .await
        .expect(StatusCode::OK);
    assert_eq!(counter("KETTLE-1").await, None);
    app.create(FLASH_BL, flash_order("b5", &[("KETTLE-1", 4)]))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(counter("KETTLE-1").await, Some(6));
    assert_eq!(stock("KETTLE-1").await, (6, 5, 0));
    app.finish().await;
}

/// A captured payment of `amount` for a paid order, written through the payments store.
async fn captured_payment(app: &TestApp, order_id: &str, amount: i64) {
    use oc_model::payment::{NewPayment, PaymentSettlement};
    use oc_model::{
        Checkout, Money, OrderEffect, OrderEvent, OrderIdGenerator, Payment, PaymentEventType,
        PaymentId, PaymentNote, PaymentStatus, ProviderName,
    };
    let tenant = TenantId::parse("retail").unwrap();
    let order_id: OrderId = order_id.parse().unwrap();
    let order = OrderStore::get(app.store.as_ref(), &tenant, order_id)
        .await
        .unwrap()
        .unwrap();
    let now = order.main.updated_at;
    let id = PaymentId::generated(OrderIdGenerator::new(9).unwrap().next(order_id.bucket(), 1));
    let money = Money::new(amount, order.finance.currency);
    let payment = Payment {
        tenant: tenant.clone(),
        id,
        order_id,
        provider: ProviderName::parse("sandbox").unwrap(),
        amount: money,
        status: PaymentStatus::Pending,
        checkout: Checkout::default(),
        captured: 0,
        reported: None,
        effect: OrderEffect::None,
        created_at: now,
        updated_at: now,
        expires_at: now,
        paid_at: None,
        next_query_at: None,
        query_attempts: 0,
    };
    let event = OrderEvent::payment(
        &order,
        PaymentNote {
            what: PaymentEventType::Created,
            payment_id: id,
            provider: payment.provider.clone(),
            amount: money,
            reported: None,
            reason: None,
            refund_id: None,
        },
        now,
    );
    app.store
        .insert_payment(NewPayment {
            payment,
            idempotency: None,
            event,
        })
        .await
        .unwrap();
    app.store
        .settle_payment(PaymentSettlement {
            tenant,
            id,
            status: PaymentStatus::Succeeded,
            captured: amount,
            provider_txn_id: None,
            reported: None,
            effect: OrderEffect::Applied,
            paid_at: Some(now),
            at: now,
            transition: None,
            events: Vec::new(),
        })
        .await
        .unwrap();
}

async fn after_sale_call(app: &TestApp, key: &str, path: &str, body: Option<Value>) -> Reply {
    let method = if body.is_some() { "POST" } else { "GET" };
    app.call(method, path, Some(key), &[], body).await
}

/// A retail order of merchant `acme` with `lines`.
fn acme_order(buyer: &str, lines: Value) -> Value {
    let mut order = retail_order(buyer);
    order["merchant_id"] = json!("acme");
    order["lines"] = lines;
    order
}

/// An after-sale application of `type` through `channel` for one unit of line `skuB`
/// (promotion `1`).
fn one_unit_of_b(kind: &str, channel: &str) -> Value {
    json!({"type": kind, "channel": channel,
           "lines": [{"sku": "skuB", "promotion_type": "1", "quantity": 1}]})
}

/// After-sales through the API (seed 000, AFTERSALES.md §4 and §6): the duplicate-`skuA`
/// request is refused naming its second line with nothing recorded; a user's application goes
/// to the merchant, a rejection is appealed once to customer service, whose approval the
/// merchant cannot override; eight concurrent refunds from two consoles issue one refund on
/// the payment; the merchant's own application is approved at once and takes the last unit;
/// another tenant sees none of it.
async fn after_sales_apply_review_appeal_and_refund_once(app: &TestApp) {
    let order = acme_order(
        "buyer-after-sale",
        json!([
        {"sku": "skuA", "product_name": "A", "quantity": 1, "unit_price_minor": 1000, "promotion_type": "1"},
        {"sku": "skuB", "product_name": "B", "quantity": 2, "unit_price_minor": 1500, "promotion_type": "1"}
        ]),
    );
    let created = app.create(RETAIL_BL, order).await;
    created.expect(StatusCode::CREATED);
    let id = created.id();
    let applications = format!("/v1/orders/{id}/after-sales");
    // nothing to after-sale before the order is paid
    let early = after_sale_call(
        app,
        RETAIL_BL,
        &applications,
        Some(one_unit_of_b("refund_only", "user")),
    )
    .await;
    early.problem(StatusCode::CONFLICT, "invalid_transition", None);
    fire(app, RETAIL_BL, &id, Some("\"1\""), json!({"event": "pay"}))
        .await
        .expect(StatusCode::OK);
    captured_payment(app, &id, 4_000).await;

    let attack = json!({"type": "refund_only", "channel": "customer_service", "lines": [
        {"quantity": 1, "sku": "skuA", "promotion_type": "1"},
        {"quantity": 1, "sku": "skuA", "promotion_type": "1"}
    ]});
    after_sale_call(app, RETAIL_CS, &applications, Some(attack))
        .await
        .problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("/lines/1/quantity"),
        );
    assert_eq!(app.count("after_sales").await, 0, "nothing recorded");

    let mut damaged = one_unit_of_b("refund_only", "user");
    damaged["reason"] = json!("damaged");
    let applied = after_sale_call(app, RETAIL_BL, &applications, Some(damaged)).await;
    applied.expect(StatusCode::CREATED);
    assert_eq!(applied.body["status"], "applied");
    assert_eq!(applied.body["reviewer"], "merchant");
    assert_eq!(applied.body["refund_amount"]["minor"], 1_500);
    let after_sale = applied.id();
    let path = format!("/v1/after-sales/{after_sale}");

    // another tenant, or a malformed id: 404
    after_sale_call(app, EXPRESS_CS, &path, None).await.problem(
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    after_sale_call(app, RETAIL_CS, "/v1/after-sales/nope", None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);
    after_sale_call(app, EXPRESS_CS, &applications, None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found", None);

    let review = format!("{path}/review");
    let appeal = format!("{path}/appeal");
    let rejected = after_sale_call(
        app,
        RETAIL_MERCHANT,
        &review,
        Some(json!({"decision": "reject", "reason": "used"})),
    )
    .await;
    rejected.expect(StatusCode::OK);
    assert_eq!(rejected.body["status"], "rejected");
    after_sale_call(app, RETAIL_BL, &format!("{path}/refund"), Some(json!({})))
        .await
        .expect(StatusCode::FORBIDDEN);
    let appealed = after_sale_call(
        app,
        RETAIL_BL,
        &appeal,
        Some(json!({"reason": "it arrived broken"})),
    )
    .await;
    appealed.expect(StatusCode::OK);
    assert_eq!(appealed.body["status"], "appealed");
    assert_eq!(appealed.body["reviewer"], "customer_service");
    after_sale_call(
        app,
        RETAIL_MERCHANT,
        &review,
        Some(json!({"decision": "approve"})),
    )
    .await
    .problem(StatusCode::FORBIDDEN, "forbidden", None);
    let approved = after_sale_call(
        app,
        RETAIL_CS,
        &review,
        Some(json!({"decision": "approve"})),
    )
    .await;
    approved.expect(StatusCode::OK);
    assert_eq!(approved.body["status"], "approved");
    // appeal once only
    after_sale_call(app, RETAIL_BL, &appeal, Some(json!({})))
        .await
        .problem(StatusCode::CONFLICT, "invalid_transition", None);
    after_sale_call(app, RETAIL_CS, &review, Some(json!({"decision": "maybe"})))
        .await
        .problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("/decision"),
        );

    // eight reviewers refund at once: one refund record, its amount reserved once
    let refund = format!("{path}/refund");
    let replies = futures_join_all(
        (0..8)
            .map(|n| {
                let key = if n % 2 == 0 {
                    RETAIL_CS
                } else {
                    RETAIL_MERCHANT
                };
                let refund = refund.clone();
                async move { after_sale_call(app, key, &refund, Some(json!({}))).await }
            })
            .collect(),
    )
    .await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!(ok >= 1, "{replies:?}");
    for reply in &replies {
        assert!(
            reply.status == StatusCode::OK || reply.status == StatusCode::CONFLICT,
            "{reply:?}"
        );
    }
    assert_eq!(app.count("payment_refunds").await, 1);
    assert_eq!(app.count("after_sale_refunds").await, 1);
    let read = after_sale_call(app, RETAIL_CS, &path, None).await;
    read.expect(StatusCode::OK);
    assert_eq!(read.body["status"], "refunding");
    // only its refund completes a refunding after-sale, never the steps route
    app.after_sale_step(RETAIL_CS, &after_sale, json!({"event": "complete"}))
        .await
        .problem(StatusCode::CONFLICT, "invalid_transition", None);
    assert_eq!(read.body["refund"]["amount"]["minor"], 1_500);
    let events: Vec<&str> = read.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["apply", "reject", "appeal", "approve", "refund"]);

    // the merchant's own application: approved at once, takes the last B
    let own = after_sale_call(
        app,
        RETAIL_MERCHANT,
        &applications,
        Some(json!({"type": "return_and_refund", "channel": "merchant",
                    "lines": [{"line_no": 2, "quantity": 1}]})),
    )
    .await;
    own.expect(StatusCode::CREATED);
    assert_eq!(own.body["status"], "approved");
    assert_eq!(own.body["reviewer"], "none");
    after_sale_call(
        app,
        RETAIL_CS,
        &applications,
        Some(one_unit_of_b("exchange", "customer_service")),
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/lines/0/quantity"),
    );
    let listed = after_sale_call(app, RETAIL_CS, &applications, None).await;
    listed.expect(StatusCode::OK);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
}

/// The steps after review (`POST /v1/after-sales/{id}/transitions`): an exchange walks
/// approved → returned → shipped → completed and gives its unit back; a return and refund
/// gets its goods back but is never completed by the route (its refund completes it); a
/// user's application is cancelled by the applicant and a rejected one closed, each giving
/// its unit back; the reviewer's steps need `after_sales.review`; a step the machine does not
/// allow is 409, an unknown one 422 naming `/event`.
async fn after_sale_steps_walk_each_type_through_its_machine(app: &TestApp) {
    let order = acme_order(
        "buyer-steps",
        json!([
        {"sku": "skuB", "product_name": "B", "quantity": 2, "unit_price_minor": 1500, "promotion_type": "1"}
        ]),
    );
    let id = app.paid_order(RETAIL_BL, order).await;
    let applications = format!("/v1/orders/{id}/after-sales");
    let apply = |key: &'static str, kind: &'static str, channel: &'static str| {
        let applications = applications.clone();
        async move {
            let reply =
                after_sale_call(app, key, &applications, Some(one_unit_of_b(kind, channel))).await;
            reply.expect(StatusCode::CREATED);
            reply.id()
        }
    };

    let exchange = apply(RETAIL_MERCHANT, "exchange", "merchant").await;
    app.after_sale_step(RETAIL_BL, &exchange, json!({"event": "receive_return"}))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.after_sale_step(RETAIL_MERCHANT, &exchange, json!({"event": "ship"}))
        .await
        .problem(StatusCode::CONFLICT, "invalid_transition", None);
    app.after_sale_step(RETAIL_MERCHANT, &exchange, json!({"event": "teleport"}))
        .await
        .problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("/event"),
        );
    for (event, status) in [
        ("receive_return", "returned"),
        ("ship", "shipped"),
        ("complete", "completed"),
    ] {
        let moved = app
            .after_sale_step(RETAIL_MERCHANT, &exchange, json!({"event": event}))
            .await;
        moved.expect(StatusCode::OK);
        assert_eq!(moved.body["status"], status, "{:?}", moved.body);
    }
    let read = after_sale_call(app, RETAIL_CS, &format!("/v1/after-sales/{exchange}"), None).await;
    let events: Vec<&str> = read.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["approve", "receive_return", "ship", "complete"]);

    // both units free again after the exchange: a return takes one, gets its goods back, and
    // only its refund completes it
    let back = apply(RETAIL_MERCHANT, "return_and_refund", "merchant").await;
    let received = app
        .after_sale_step(RETAIL_CS, &back, json!({"event": "receive_return"}))
        .await;
    received.expect(StatusCode::OK);
    assert_eq!(received.body["status"], "returned");
    app.after_sale_step(RETAIL_CS, &back, json!({"event": "complete"}))
        .await
        .problem(StatusCode::CONFLICT, "invalid_transition", None);
    app.after_sale_step(RETAIL_BL, &back, json!({"event": "cancel"}))
        .await
        .problem(StatusCode::CONFLICT, "invalid_transition", None);

    // the last unit: the user withdraws, applies again, is rejected and accepts it
    let withdrawn = apply(RETAIL_BL, "refund_only", "user").await;
    let cancelled = app
        .after_sale_step(RETAIL_BL, &withdrawn, json!({"event": "cancel"}))
        .await;
    cancelled.expect(StatusCode::OK);
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = apply(RETAIL_BL, "refund_only", "user").await;
    after_sale_call(
        app,
        RETAIL_MERCHANT,
        &format!("/v1/after-sales/{again}/review"),
        Some(json!({"decision": "reject"})),
    )
    .await
    .expect(StatusCode::OK);
    let closed = app
        .after_sale_step(
            RETAIL_BL,
            &again,
            json!({"event": "close", "reason": "fair enough"}),
        )
        .await;
    closed.expect(StatusCode::OK);
    assert_eq!(closed.body["status"], "closed");
    // closed gives the unit back too
    apply(RETAIL_BL, "refund_only", "user").await;
    after_sale_call(
        app,
        RETAIL_BL,
        &applications,
        Some(one_unit_of_b("refund_only", "user")),
    )
    .await
    .problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("/lines/0/quantity"),
    );
}

/// 64 applications at once through the API from the three channels (the business line's key
/// for the user, customer service's, the merchant's) for one unit each of a 3-unit line:
/// exactly 3 are accepted, every other is 422 naming the line, and the accepted units refund
/// the line's 4,500 exactly.
async fn sixty_four_applications_from_three_channels_take_exactly_the_bought_units(app: &TestApp) {
    let order = acme_order(
        "buyer-race",
        json!([
        {"sku": "skuB", "product_name": "B", "quantity": 3, "unit_price_minor": 1500, "promotion_type": "1"}
        ]),
    );
    let id = app.paid_order(RETAIL_BL, order).await;
    let applications = format!("/v1/orders/{id}/after-sales");
    let channels = [
        (RETAIL_BL, "user"),
        (RETAIL_CS, "customer_service"),
        (RETAIL_MERCHANT, "merchant"),
    ];
    let replies = futures_join_all(
        (0..64)
            .map(|n| {
                let (key, channel) = channels[n % 3];
                let applications = applications.clone();
                async move {
                    after_sale_call(
                        app,
                        key,
                        &applications,
                        Some(one_unit_of_b("refund_only", channel)),
                    )
                    .await
                }
            })
            .collect(),
    )
    .await;
    let accepted: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(accepted.len(), 3, "exactly the bought units");
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        reply.problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("/lines/0/quantity"),
        );
    }
    let refunded: i64 = accepted
        .iter()
        .map(|r| r.body["refund_amount"]["minor"].as_i64().unwrap())
        .sum();
    assert_eq!(refunded, 4_500);
    assert_eq!(app.count("after_sales").await, 3);
}

/// The reservation sweeper's releases reach the stock gate, as a transition's release does:
/// an orphaned reservation (a placement that took units from the gate and SQL, then died
/// before its order's transaction) and a cancel whose stock settling was lost both give
/// their units back to the hot SKU's counter, not only to SQL. Else the counter stays low,
/// refusing buyers SQL has units for, until it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweepers_releases_give_units_back_to_the_stock_gate() {
    use oc_model::lifecycle::TransitionWrite;
    use oc_model::ports::NewOrder;
    use oc_model::schedule::ScheduleStore;
    use oc_model::stock::{GateOutcome, Hold, ReserveOutcome};
    use oc_model::{
        HistoryEntry, OrderEvent, OrderEventKind, StatusCode as Status, StockEffect,
        TransitionEvent,
    };
    let app = TestApp::mariadb("api_sweep_gate").await;
    let gate = app.gate.clone().unwrap();
    let tenant = TenantId::parse("flash").unwrap();
    let sku = Sku::parse("KETTLE-1").unwrap();
    let counter = async || app.gate_counter("flash", "KETTLE-1").await;
    app.put_stock(FLASH_ADMIN, "KETTLE-1", 5)
        .await
        .expect(StatusCode::OK);
    gate.seed(&tenant, &sku, 5).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    // both reservations expired a second ago and are older than any create
    let expired_hold = |order_id: OrderId, quantity: u64| Hold {
        tenant: tenant.clone(),
        order_id,
        sku: sku.clone(),
        quantity,
        expires_at: now - time::Duration::seconds(1),
        created_at: now - time::Duration::minutes(10),
    };
    let take = async |order_id: OrderId, quantity: u64| {
        assert_eq!(
            gate.admit(&tenant, &[(sku.clone(), quantity)])
                .await
                .unwrap(),
            GateOutcome::Admitted
        );
        assert_eq!(
            app.store
                .reserve(&expired_hold(order_id, quantity))
                .await
                .unwrap(),
            ReserveOutcome::Reserved
        );
    };
    // the orphan: 1 unit, its order never written
    take(OrderId::from_raw(9_100_001).unwrap(), 1).await;
    // the lost settle: 2 units of an order whose cancel committed, its release never ran
    let mut order = oc_test_support::fixtures::order(&tenant, "buyer-lost-settle");
    order.main.status = Status::parse("pending_payment").unwrap();
    order.main.pay_deadline = None;
    app.store
        .insert(NewOrder {
            order: order.clone(),
            idempotency: None,
            event: OrderEvent::of(&order, OrderEventKind::Created),
        })
        .await
        .unwrap();
    take(order.main.id, 2).await;
    let mut next = order.clone();
    next.main.version += 1;
    next.main.status = Status::parse("cancelled").unwrap();
    let entry = HistoryEntry {
        tenant: tenant.clone(),
        order_id: order.main.id,
        version: next.main.version,
        from: order.main.status.clone(),
        to: next.main.status.clone(),
        event: TransitionEvent::parse("cancel").unwrap(),
        operator: "bl".into(),
        source_system: "api".into(),
        reason: None,
        data: Default::default(),
        stock: StockEffect::Release,
        occurred_at: now,
    };
    let event = OrderEvent::of(&next, OrderEventKind::Cancelled);
    app.store
        .commit_transition(TransitionWrite {
            expected_version: order.main.version,
            order: next,
            event,
            history: Some(entry),
        })
        .await
        .unwrap();
    assert_eq!(counter().await, Some(2));
    let level = app.store.stock_level(&tenant, &sku).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved), (2, 3));

    let scheduler = app.core.scheduler(
        app.store.clone() as Arc<dyn ScheduleStore>,
        oc_core::scheduler::SchedulerSettings {
            orphan_grace: time::Duration::ZERO,
            ..Default::default()
        },
    );
    let report = scheduler.pass().await;
    assert_eq!(
        (report.orphans_released, report.settled),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(report.errors, 0, "{report:?}");
    let level = app.store.stock_level(&tenant, &sku).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved), (5, 0));
    assert_eq!(
        counter().await,
        Some(5),
        "the gate got back every unit the sweeper released"
    );
    // a second pass finds nothing: no unit is given back twice
    let again = scheduler.pass().await;
    assert_eq!((again.orphans_released, again.settled), (0, 0));
    assert_eq!(counter().await, Some(5));
    app.finish().await;
}

/// Paid retail order of merchant `merchant` with one `skuA` (10.00) and two `skuB` (15.00
/// each) (paid by the transition; no payment record, which only a refund needs): the id.
async fn paid_order_of(app: &TestApp, buyer: &str, merchant: &str) -> String {
    let mut order = acme_order(
        buyer,
        json!([
        {"sku": "skuA", "product_name": "A", "quantity": 1, "unit_price_minor": 1000, "promotion_type": "1"},
        {"sku": "skuB", "product_name": "B", "quantity": 2, "unit_price_minor": 1500, "promotion_type": "1"}
        ]),
    );
    order["merchant_id"] = json!(merchant);
    let created = app.create(RETAIL_BL, order).await;
    created.expect(StatusCode::CREATED);
    let id = created.id();
    fire(app, RETAIL_BL, &id, Some("\"1\""), json!({"event": "pay"}))
        .await
        .expect(StatusCode::OK);
    id
}

/// Every outbox event of every shard so far, in commit order per shard.
async fn outbox_events(app: &TestApp) -> Vec<oc_model::OrderEvent> {
    let mut events = Vec::new();
    for shard in app.store.shards() {
        let pending = app.store.pending_outbox(shard, 10_000).await.unwrap();
        events.extend(pending.into_iter().map(|entry| entry.event));
    }
    events
}

/// The after-sale ids of a list reply, in order.
fn listed(reply: &Reply) -> Vec<String> {
    reply.expect(StatusCode::OK);
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// After-sale lists (issue #20 item 6): the projector re-reads each after-sale an event
/// names and writes its whole document, so events applied in reverse or replayed stale never
/// regress it; `GET /v1/after-sales` filters on status, type, channel, merchant, order, SKU
/// and creation time with cursor pages, details read from the shard; another tenant sees
/// none, a merchant key its merchant's only; bad parameters are named; and without the index
/// the shards give the same answers, flagged degraded.
async fn after_sale_lists_from_the_index_and_the_shards(app: &TestApp) {
    use oc_model::aftersale::listing::AfterSaleQuery;
    use oc_model::ports::SearchFields;
    use oc_projector::{Projector, ProjectorConfig, Sinks};

    let first = paid_order_of(app, "buyer-lists-1", "acme").await;
    let second = paid_order_of(app, "buyer-lists-2", "zeta").await;
    let mut applied = Vec::new();
    let mut with_reason = one_unit_of_b("refund_only", "user");
    with_reason["reason"] = json!("parcel arrived crushed");
    for (key, order, body) in [
        (RETAIL_BL, &first, with_reason),
        (
            RETAIL_MERCHANT,
            &first,
            json!({"type": "return_and_refund", "channel": "merchant",
                   "lines": [{"sku": "skuA", "promotion_type": "1", "quantity": 1}]}),
        ),
        (
            RETAIL_CS,
            &second,
            one_unit_of_b("exchange", "customer_service"),
        ),
    ] {
        // distinct creation milliseconds, so the expected order is plain
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let reply = after_sale_call(
            app,
            key,
            &format!("/v1/orders/{order}/after-sales"),
            Some(body),
        )
        .await;
        reply.expect(StatusCode::CREATED);
        applied.push(reply.body.clone());
    }
    let id_of = |n: usize| applied[n]["id"].as_str().unwrap().to_owned();
    let (refund, ret, exchange) = (id_of(0), id_of(1), id_of(2));
    let status_of = |n: usize| applied[n]["status"].as_str().unwrap().to_owned();
    assert_eq!(
        status_of(1),
        "approved",
        "the merchant's own: approved at once"
    );

    let projector = Projector::new(
        app.store.clone() as Arc<dyn OrderStore>,
        Sinks::none().with_search(app.search.clone()),
        app.tenants.clone() as Arc<dyn SearchFields>,
        ProjectorConfig::default(),
    )
    .with_after_sales(app.store.clone() as Arc<dyn AfterSaleStore>);
    let mut events = outbox_events(app).await;
    events.reverse();
    projector.apply_events(&events).await.unwrap();

    // the merchant rejects the user's application: a newer version of the same after-sale
    after_sale_call(
        app,
        RETAIL_MERCHANT,
        &format!("/v1/after-sales/{refund}/review"),
        Some(json!({"decision": "reject", "reason": "used"})),
    )
    .await
    .expect(StatusCode::OK);
    let everything = outbox_events(app).await;
    let newest: Vec<_> = everything[events.len()..].to_vec();
    assert!(!newest.is_empty());
    projector.apply_events(&newest).await.unwrap();
    // a late redelivery of the application's event re-reads the row: still rejected
    projector.apply_events(&everything).await.unwrap();
    app.search.refresh().await.unwrap();

    let list = |key: &'static str, query: String| async move {
        let path = if query.is_empty() {
            "/v1/after-sales".to_owned()
        } else {
            format!("/v1/after-sales?{query}")
        };
        app.call("GET", &path, Some(key), &[], None).await
    };
    let all = list(RETAIL_CS, String::new()).await;
    assert_eq!(
        listed(&all),
        vec![exchange.clone(), ret.clone(), refund.clone()]
    );
    assert_eq!(all.body["degraded"], false);
    assert_eq!(
        all.body["items"][2]["status"], "rejected",
        "details from the shard"
    );
    assert_eq!(all.body["items"][2]["lines"][0]["sku"], "skuB");
    // a list shows a reason as the caller's role may see it, as a GET does (customer
    // service's role is masked: never the text in the clear)
    let got = after_sale_call(app, RETAIL_CS, &format!("/v1/after-sales/{refund}"), None).await;
    got.expect(StatusCode::OK);
    assert_ne!(all.body["items"][2]["reason"], "parcel arrived crushed");
    assert_eq!(all.body["items"][2]["reason"], got.body["reason"]);

    let at = |n: usize| applied[n]["created_at"].as_str().unwrap().to_owned();
    let cases: Vec<(String, Vec<String>)> = vec![
        ("status=rejected".into(), vec![refund.clone()]),
        (
            format!("status=approved,{}", status_of(2)),
            vec![exchange.clone(), ret.clone()],
        ),
        ("type=exchange".into(), vec![exchange.clone()]),
        ("type=refund_only".into(), vec![refund.clone()]),
        ("channel=merchant".into(), vec![ret.clone()]),
        ("channel=user".into(), vec![refund.clone()]),
        ("merchant=zeta".into(), vec![exchange.clone()]),
        (format!("order={first}"), vec![ret.clone(), refund.clone()]),
        ("sku=skuA".into(), vec![ret.clone()]),
        ("sku=skuB".into(), vec![exchange.clone(), refund.clone()]),
        ("sku=skuZ".into(), vec![]),
        (
            format!("from={}", at(1)),
            vec![exchange.clone(), ret.clone()],
        ),
        (format!("to={}", at(1)), vec![refund.clone()]),
        (
            format!("order={first}&status=approved&channel=merchant&sku=skuA"),
            vec![ret.clone()],
        ),
    ];
    for (query, expected) in &cases {
        assert_eq!(
            &listed(&list(RETAIL_CS, query.clone()).await),
            expected,
            "{query}"
        );
    }

    // pages of one, through the cursor
    let mut walked = Vec::new();
    let mut query = "limit=1".to_owned();
    for _ in 0..10 {
        let page = list(RETAIL_CS, query.clone()).await;
        walked.extend(listed(&page));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, vec![exchange.clone(), ret.clone(), refund.clone()]);

    // scope: the merchant key sees acme's only; another tenant sees none
    assert_eq!(
        listed(&list(RETAIL_MERCHANT, String::new()).await),
        vec![ret.clone(), refund.clone()]
    );
    list(RETAIL_MERCHANT, "merchant=zeta".into()).await.problem(
        StatusCode::FORBIDDEN,
        "forbidden",
        Some("/query/merchant"),
    );
    assert!(listed(&list(EXPRESS_CS, String::new()).await).is_empty());
    list(RETAIL_BL, String::new())
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden", None);
    for (query, field) in [
        ("type=refund", "/query/type"),
        ("channel=app", "/query/channel"),
        ("colour=red", "/query/colour"),
        ("limit=0", "/query/limit"),
        ("from=yesterday", "/query/from"),
        ("order=x", "/query/order"),
        ("cursor=garbage", "/query/cursor"),
    ] {
        list(RETAIL_CS, query.into()).await.problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some(field),
        );
    }

    // the degraded switch: no index, the shards answer the same, flagged
    let shards = oc_core::aftersales::list::AfterSaleLists::new(
        app.core.after_sales.clone().unwrap(),
        None,
        app.store.clone() as Arc<dyn AfterSaleListing>,
    );
    let config = app.tenants.current();
    let params = |query: &str| -> std::collections::BTreeMap<String, String> {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect()
    };
    let ids = |list: &oc_core::aftersales::list::AfterSaleList| -> Vec<String> {
        list.items
            .iter()
            .map(|view| view.after_sale.id.to_string())
            .collect()
    };
    let cs = oc_core::authenticate(&config, RETAIL_CS).unwrap();
    let merchant = oc_core::authenticate(&config, RETAIL_MERCHANT).unwrap();
    let other_tenant = oc_core::authenticate(&config, EXPRESS_CS).unwrap();
    let degraded = shards.list(&cs, &params("")).await.unwrap();
    assert!(degraded.degraded);
    assert_eq!(
        ids(&degraded),
        vec![exchange.clone(), ret.clone(), refund.clone()]
    );
    for (query, expected) in &cases {
        let answer = shards.list(&cs, &params(query)).await.unwrap();
        assert_eq!(&ids(&answer), expected, "degraded {query}");
    }
    assert_eq!(
        ids(&shards.list(&merchant, &params("")).await.unwrap()),
        vec![ret.clone(), refund.clone()]
    );
    assert!(ids(&shards.list(&other_tenant, &params("")).await.unwrap()).is_empty());
    let mut walked = Vec::new();
    let mut query = "limit=1".to_owned();
    for _ in 0..10 {
        let page = shards.list(&cs, &params(&query)).await.unwrap();
        walked.extend(ids(&page));
        match page.next_cursor {
            Some(cursor) => query = format!("limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, vec![exchange.clone(), ret.clone(), refund.clone()]);
    let error = shards
        .list(&cs, &params("cursor=garbage"))
        .await
        .unwrap_err();
    assert_eq!(error.field.as_deref(), Some("/query/cursor"));

    // a backfill into an empty index covers the after-sales too
    let retail = TenantId::parse("retail").unwrap();
    let fresh = Arc::new(
        TantivySearchIndex::open(TantivyConfig::in_memory().with_commit(CommitPolicy::EveryWrite))
            .unwrap(),
    );
    let rebuilt = Projector::new(
        app.store.clone() as Arc<dyn OrderStore>,
        Sinks::none().with_search(fresh.clone()),
        app.tenants.clone() as Arc<dyn SearchFields>,
        ProjectorConfig::default(),
    )
    .with_after_sales(app.store.clone() as Arc<dyn AfterSaleStore>);
    let options = oc_projector::BackfillOptions {
        tenant: Some(retail.clone()),
        ..oc_projector::BackfillOptions::default()
    };
    oc_projector::backfill(app.store.as_ref(), &rebuilt, &options)
        .await
        .unwrap();
    let page = fresh
        .search_after_sales(&retail, &AfterSaleQuery::default())
        .await
        .unwrap();
    let backfilled: Vec<String> = page.ids().iter().map(ToString::to_string).collect();
    assert_eq!(
        backfilled,
        vec![exchange.clone(), ret.clone(), refund.clone()]
    );

    // reconcile: clean; then an application and an appeal the projector never saw are
    // reported missing and stale, and the repair re-indexes exactly those
    let now = time::OffsetDateTime::now_utc();
    let window = oc_projector::ReconcileOptions::new(
        retail.clone(),
        now - time::Duration::hours(1),
        now + time::Duration::hours(1),
    );
    let listing = app.store.clone() as Arc<dyn AfterSaleListing>;
    let clean =
        oc_projector::reconcile_after_sales(listing.as_ref(), app.search.as_ref(), None, &window)
            .await
            .unwrap();
    assert!(clean.clean, "{clean:?}");
    assert_eq!(clean.shard_count, 3);
    let unseen = after_sale_call(
        app,
        RETAIL_CS,
        &format!("/v1/orders/{second}/after-sales"),
        Some(json!({"type": "refund_only", "channel": "customer_service",
                    "lines": [{"sku": "skuA", "promotion_type": "1", "quantity": 1}]})),
    )
    .await;
    unseen.expect(StatusCode::CREATED);
    after_sale_call(
        app,
        RETAIL_BL,
        &format!("/v1/after-sales/{refund}/appeal"),
        Some(json!({"reason": "it arrived broken"})),
    )
    .await
    .expect(StatusCode::OK);
    let dirty =
        oc_projector::reconcile_after_sales(listing.as_ref(), app.search.as_ref(), None, &window)
            .await
            .unwrap();
    let missing: Vec<String> = dirty.missing.iter().map(ToString::to_string).collect();
    assert_eq!(missing, vec![unseen.id()]);
    assert_eq!(dirty.stale.len(), 1, "{dirty:?}");
    assert_eq!(dirty.stale[0].after_sale_id.to_string(), refund);
    assert!(
        dirty.ahead.is_empty() && dirty.extra.is_empty(),
        "{dirty:?}"
    );
    let repaired = oc_projector::repair_after_sales(listing.as_ref(), &projector, &window)
        .await
        .unwrap();
    assert_eq!(repaired.reapplied_orders, 2);
    assert!(repaired.after.clean, "{:?}", repaired.after);
    assert_eq!(
        listed(&list(RETAIL_CS, "status=appealed".into()).await),
        vec![refund]
    );
}

/// The figure of issue #20 item 6: after-sale list latency from the index (tantivy and
/// OpenSearch) against the shards (the degraded switch), through the list use case, each
/// page's after-sales read from MariaDB either way. Bounded: 120 orders with two
/// after-sales each, 300 lists per path over six filter mixes; prints p50/p99, asserts
/// nothing about speed.
///
/// `cargo nextest run -p oc-api --test api after_sale_list_latency --run-ignored only --no-capture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn after_sale_list_latency_index_against_shards() {
    use oc_core::aftersales::list::AfterSaleLists;
    use oc_model::ports::SearchFields;
    use oc_projector::{Projector, ProjectorConfig, Sinks};
    use oc_search::{EsConfig, EsSearchIndex, MappedEsIndex};

    const ORDERS: usize = 120;
    const LISTS: usize = 300;
    let app = TestApp::mariadb("aslist_latency").await;
    let prefix = oc_test_support::SearchPrefix::new("aslist_latency")
        .await
        .unwrap();
    // as the binary wires it: the projector writes the orders to their mapped indexes too
    let opensearch: Arc<dyn SearchIndex> = Arc::new(MappedEsIndex::new(
        EsSearchIndex::connect(EsConfig {
            index_prefix: prefix.prefix().to_owned(),
            number_of_replicas: 0,
            ..EsConfig::new(prefix.url())
        })
        .unwrap(),
        app.tenants.clone() as Arc<dyn SearchFields>,
    ));
    for n in 0..ORDERS {
        let merchant = if n % 3 == 0 { "zeta" } else { "acme" };
        let order = paid_order_of(&app, &format!("buyer-lat-{n}"), merchant).await;
        let applications = format!("/v1/orders/{order}/after-sales");
        after_sale_call(
            &app,
            RETAIL_BL,
            &applications,
            Some(one_unit_of_b("refund_only", "user")),
        )
        .await
        .expect(StatusCode::CREATED);
        after_sale_call(
            &app,
            RETAIL_CS,
            &applications,
            Some(
                json!({"type": "return_and_refund", "channel": "customer_service",
                        "lines": [{"sku": "skuA", "promotion_type": "1", "quantity": 1}]}),
            ),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let events = outbox_events(&app).await;
    for index in [
        app.search.clone() as Arc<dyn SearchIndex>,
        opensearch.clone(),
    ] {
        Projector::new(
            app.store.clone() as Arc<dyn OrderStore>,
            Sinks::none().with_search(index.clone()),
            app.tenants.clone() as Arc<dyn SearchFields>,
            ProjectorConfig::default(),
        )
        .with_after_sales(app.store.clone() as Arc<dyn AfterSaleStore>)
        .apply_events(&events)
        .await
        .unwrap();
        index.refresh().await.unwrap();
    }
    let service = app.core.after_sales.clone().unwrap();
    let listing = app.store.clone() as Arc<dyn AfterSaleListing>;
    let paths = [
        ("tantivy", Some(app.search.clone() as Arc<dyn SearchIndex>)),
        ("opensearch", Some(opensearch.clone())),
        ("shards (degraded)", None),
    ];
    let mixes = [
        "",
        "status=applied",
        "type=return_and_refund",
        "sku=skuA&limit=50",
        "merchant=zeta",
        "channel=user&limit=10",
    ];
    let caller = oc_core::authenticate(&app.tenants.current(), RETAIL_CS).unwrap();
    println!(
        "after-sale lists: {} after-sales on 2 MariaDB shards, {LISTS} lists per path (limit 20 unless set)",
        ORDERS * 2
    );
    for (name, index) in paths {
        let lists = AfterSaleLists::new(service.clone(), index, listing.clone());
        let mut micros = Vec::with_capacity(LISTS);
        for n in 0..LISTS {
            let params: std::collections::BTreeMap<String, String> = mixes[n % mixes.len()]
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap();
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            let started = std::time::Instant::now();
            let page = lists.list(&caller, &params).await.unwrap();
            micros.push(started.elapsed().as_micros() as u64);
            assert!(!page.items.is_empty());
        }
        micros.sort_unstable();
        let at = |q: f64| {
            micros[((micros.len() as f64 * q) as usize).min(micros.len() - 1)] as f64 / 1000.0
        };
        println!(
            "  {name:<18} p50 {:>7.2} ms   p99 {:>7.2} ms",
            at(0.50),
            at(0.99)
        );
    }
    prefix.cleanup().await.unwrap();
    app.finish().await;
}

/// Issue #20: review routing and after-sale machines come from the CALLER's tenant config.
/// `express` (its example config) sends a user's and customer service's applications to
/// customer service and its refund only cannot be withdrawn once approved; `retail`, which
/// configures nothing, keeps the defaults: merchant review, withdrawal allowed.
async fn after_sale_rules_come_from_the_callers_tenant_config(app: &TestApp) {
    let id = app
        .paid_order(EXPRESS_BL, cold_chain_order("buyer-as-rules"))
        .await;
    let applications = format!("/v1/orders/{id}/after-sales");
    let mut express = Vec::new();
    for (channel, line_no) in [("user", 1), ("customer_service", 2)] {
        let applied = after_sale_call(
            app,
            EXPRESS_CS,
            &applications,
            Some(json!({"type": "refund_only", "channel": channel,
                        "lines": [{"line_no": line_no, "quantity": 1}]})),
        )
        .await;
        applied.expect(StatusCode::CREATED);
        assert_eq!(applied.body["status"], "applied");
        assert_eq!(applied.body["reviewer"], "customer_service", "{channel}");
        express.push(applied.id());
    }
    after_sale_call(
        app,
        EXPRESS_CS,
        &format!("/v1/after-sales/{}/review", express[0]),
        Some(json!({"decision": "approve"})),
    )
    .await
    .expect(StatusCode::OK);
    // express's machine has no `approved --cancel-->`
    app.after_sale_step(EXPRESS_CS, &express[0], json!({"event": "cancel"}))
        .await
        .problem(StatusCode::CONFLICT, "invalid_transition", None);

    let order = acme_order(
        "buyer-as-rules",
        json!([
        {"sku": "skuB", "product_name": "B", "quantity": 2, "unit_price_minor": 1500, "promotion_type": "1"}
        ]),
    );
    let id = app.paid_order(RETAIL_BL, order).await;
    let applications = format!("/v1/orders/{id}/after-sales");
    let mut retail = Vec::new();
    for channel in ["user", "customer_service"] {
        let applied = after_sale_call(
            app,
            RETAIL_CS,
            &applications,
            Some(one_unit_of_b("refund_only", channel)),
        )
        .await;
        applied.expect(StatusCode::CREATED);
        assert_eq!(applied.body["reviewer"], "merchant", "{channel}");
        retail.push(applied.id());
    }
    after_sale_call(
        app,
        RETAIL_MERCHANT,
        &format!("/v1/after-sales/{}/review", retail[0]),
        Some(json!({"decision": "approve"})),
    )
    .await
    .expect(StatusCode::OK);
    let cancelled = app
        .after_sale_step(RETAIL_CS, &retail[0], json!({"event": "cancel"}))
        .await;
    cancelled.expect(StatusCode::OK);
    assert_eq!(cancelled.body["status"], "cancelled");
}

/// Issue #20 item 7: an after-sale's personal data by role, rendered like an order's. The
/// free-text reason (here with a phone number in it) is in full for a `pii: full` role,
/// masked for a masked one and left out for `pii: none`; the pickup contact of a return (the
/// order's receiver) is opened, masked or withheld like the order's parties. Lists mask too.
async fn an_after_sales_personal_data_is_shown_by_role(app: &TestApp) {
    const REASON: &str = "broken; call me on 13900001111";
    let order = acme_order(
        "buyer-as-pii",
        json!([
        {"sku": "skuB", "product_name": "B", "quantity": 2, "unit_price_minor": 1500, "promotion_type": "1"}
        ]),
    );
    let id = app.paid_order(RETAIL_BL, order).await;
    let applications = format!("/v1/orders/{id}/after-sales");
    let mut body = one_unit_of_b("return_and_refund", "user");
    body["reason"] = json!(REASON);
    let applied = after_sale_call(app, RETAIL_BL, &applications, Some(body)).await;
    applied.expect(StatusCode::CREATED);
    assert_eq!(applied.body["reason"], REASON);
    let path = format!("/v1/after-sales/{}", applied.id());

    let full = after_sale_call(app, RETAIL_BL, &path, None).await;
    full.expect(StatusCode::OK);
    assert_eq!(full.body["reason"], REASON);
    assert_eq!(full.body["history"][0]["reason"], REASON);
    let contact = &full.body["pickup_contact"];
    assert_eq!(contact["name"], "Li Lei");
    assert_eq!(contact["phone"], "13900001111");
    assert_eq!(contact["address"], "1 Nanjing Road");
    assert_eq!(contact["pii"], "full");

    let masked = after_sale_call(app, RETAIL_CS, &path, None).await;
    masked.expect(StatusCode::OK);
    let reason = masked.body["reason"].as_str().unwrap();
    assert!(
        reason != REASON && !reason.contains("13900001111") && reason.starts_with('b'),
        "{reason}"
    );
    assert_eq!(masked.body["history"][0]["reason"], reason);
    let contact = &masked.body["pickup_contact"];
    assert_eq!(contact["phone"], "139****1111");
    assert_ne!(contact["name"], "Li Lei");
    assert_ne!(contact["address"], "1 Nanjing Road");
    assert_eq!(contact["pii"], "masked");
    let listed = after_sale_call(app, RETAIL_CS, &applications, None).await;
    listed.expect(StatusCode::OK);
    assert_eq!(listed.body["items"][0]["reason"], reason);
    // a refund only sends nothing back: no pickup contact
    let refund_only = after_sale_call(
        app,
        RETAIL_BL,
        &applications,
        Some(one_unit_of_b("refund_only", "user")),
    )
    .await;
    refund_only.expect(StatusCode::CREATED);
    assert!(refund_only.body.get("pickup_contact").is_none());

    // `pii: none` (the test tenant market's analytics role reads after-sales)
    let mut order = retail_order("buyer-as-pii");
    order["business_identity"] = json!("market");
    order["order_type"] = json!("goods");
    let id = app.paid_order(MARKET_BL, order).await;
    let applied = after_sale_call(
        app,
        MARKET_BL,
        &format!("/v1/orders/{id}/after-sales"),
        Some(
            json!({"type": "return_and_refund", "channel": "user", "reason": REASON,
                    "lines": [{"line_no": 1, "quantity": 1}]}),
        ),
    )
    .await;
    applied.expect(StatusCode::CREATED);
    let none = after_sale_call(
        app,
        MARKET_ANALYTICS,
        &format!("/v1/after-sales/{}", applied.id()),
        None,
    )
    .await;
    none.expect(StatusCode::OK);
    assert!(none.body.get("reason").is_none(), "{}", none.body);
    assert!(none.body["history"][0].get("reason").is_none());
    let contact = &none.body["pickup_contact"];
    assert_eq!(contact["phone"], oc_core::orders::WITHHELD);
    assert_eq!(contact["name"], oc_core::orders::WITHHELD);
    assert_eq!(contact["pii"], "none");
}
