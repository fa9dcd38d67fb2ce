//! Degrade, never lose — the API side, under the circuit breakers, on real MariaDB shards and
//! the real Redis (reached through a loopback [`TcpProxy`] the test cuts and restores):
//!
//! * Redis cut off: GET by id answers from the shard, correctly; the cache breaker opens;
//!   `/readyz` stays 200 and says the cache is down; once Redis is back the breaker closes
//!   and the cache holds the orders again.
//! * search index failing: buyer-scoped searches are served from the shard and flagged
//!   `degraded`; other searches answer 503; the breaker opens so the index is not called
//!   meanwhile; once the index answers again the breaker closes and searches use it.
//!
//! * Redis of the stock gate not answering: placements of a hot SKU go on in SQL alone; the
//!   gate's breaker opens after the first few time out, so later placements do not wait
//!   for the gate at all; once Redis answers, a probe closes it and the gate admits again.
//!
//! The failing index is the real embedded tantivy index behind a switch that makes every call
//! answer `Unavailable` (what the Elasticsearch adapter answers when its cluster does not
//! answer); Elasticsearch itself cannot run here.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use oc_api::ready::{Dependency, Probe};
use oc_api::{AppState, router};
use oc_cache::{
    L1Config, RedisCache, RedisCacheConfig, RedisStockGate, RedisStockGateConfig, TieredCache,
};
use oc_core::{Core, Sealer};
use oc_crypto::{KeyRing, MasterKey};
use oc_model::lifecycle::TransitionStore;
use oc_model::ports::{Cache, OrderStore, SearchIndex};
use oc_model::search::{SearchDocument, SearchPage, SearchQuery};
use oc_model::stock::{Sku, StockGate, StockStore};
use oc_model::{DomainError, DomainResult, OrderId, TenantId};
use oc_resilience::{BreakerConfig, BreakerState, CircuitBreaker, Guarded};
use oc_search::{CommitPolicy, TantivyConfig, TantivySearchIndex, document_from_order};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use oc_tenant_config::{ConfigHandle, ConfigSet};
use oc_test_support::TcpProxy;

const RETAIL_BL: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";
const RETAIL_CS: &str = "oc_test_retail_cs_0001_06f3d8a2c7b5e1943a0d";

/// No payment provider accounts: after-sales are wired (they need the payments domain), no
/// payment is made here.
#[derive(Debug)]
struct NoPaymentAccounts;

impl oc_model::payment::PaymentSecrets for NoPaymentAccounts {
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
/// Upper bound of every wait for the breaker to move.
const WAIT: Duration = Duration::from_secs(20);

fn breaker_config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: 3,
        failure_rate: 1.0,
        minimum_calls: 100,
        window_ms: 10_000,
        open_ms: 1_000,
        half_open_probes: 1,
        call_timeout_ms: 2_000,
    }
}

/// The real tantivy index behind a switch: while `down`, every call answers `Unavailable`.
#[derive(Debug)]
struct SwitchableIndex {
    inner: TantivySearchIndex,
    down: AtomicBool,
    /// Calls that reached this adapter (a breaker that is open keeps this still).
    calls: AtomicU64,
}

impl SwitchableIndex {
    fn check(&self) -> DomainResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(DomainError::unavailable(
                "search: connection refused (index down)",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl SearchIndex for SwitchableIndex {
    async fn upsert(&self, document: &SearchDocument) -> DomainResult<bool> {
        self.check()?;
        self.inner.upsert(document).await
    }
    async fn delete(&self, tenant: &TenantId, id: OrderId) -> DomainResult<()> {
        self.check()?;
        self.inner.delete(tenant, id).await
    }
    async fn get_version(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<u64>> {
        self.check()?;
        self.inner.get_version(tenant, id).await
    }
    async fn search(&self, tenant: &TenantId, query: &SearchQuery) -> DomainResult<SearchPage> {
        self.check()?;
        self.inner.search(tenant, query).await
    }
    async fn upsert_after_sale(
        &self,
        document: &oc_model::aftersale::listing::AfterSaleDocument,
    ) -> DomainResult<bool> {
        self.check()?;
        self.inner.upsert_after_sale(document).await
    }
    async fn after_sale_version(
        &self,
        tenant: &TenantId,
        id: oc_model::aftersale::AfterSaleId,
    ) -> DomainResult<Option<u64>> {
        self.check()?;
        self.inner.after_sale_version(tenant, id).await
    }
    async fn search_after_sales(
        &self,
        tenant: &TenantId,
        query: &oc_model::aftersale::listing::AfterSaleQuery,
    ) -> DomainResult<oc_model::aftersale::listing::AfterSalePage> {
        self.check()?;
        self.inner.search_after_sales(tenant, query).await
    }
    async fn refresh(&self) -> DomainResult<()> {
        self.check()?;
        self.inner.refresh().await
    }
    async fn health(&self) -> DomainResult<()> {
        self.check()?;
        self.inner.health().await
    }
}

/// A loopback listener in front of the real Redis that, while `silent`, accepts connections
/// and reads every request without ever answering (a Redis that hangs: each call costs the
/// client its whole time limit); once `answer` is called it forwards new connections to
/// Redis and drops the silent ones (so the client reconnects instead of waiting for replies
/// that will never come).
struct SilentRedis {
    address: std::net::SocketAddr,
    answering: Arc<AtomicBool>,
    /// Every byte the silent connections received, one buffer per connection.
    heard: Arc<Mutex<Vec<Vec<u8>>>>,
    cut: tokio::sync::watch::Sender<bool>,
}

impl SilentRedis {
    async fn start(target: String) -> SilentRedis {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let answering = Arc::new(AtomicBool::new(false));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let (cut, _) = tokio::sync::watch::channel(false);
        let (flag, buffers, cuts) = (answering.clone(), heard.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    let target = target.clone();
                    tokio::spawn(async move {
                        if let Ok(mut redis) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                        }
                    });
                    continue;
                }
                let index = {
                    let mut buffers = buffers.lock().unwrap();
                    buffers.push(Vec::new());
                    buffers.len() - 1
                };
                let (buffers, mut cut) = (buffers.clone(), cuts.subscribe());
                tokio::spawn(async move {
                    let mut chunk = [0u8; 4096];
                    loop {
                        tokio::select! {
                            _ = cut.changed() => return,
                            read = client.read(&mut chunk) => match read {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffers.lock().unwrap()[index].extend_from_slice(&chunk[..n]),
                            },
                        }
                    }
                });
            }
        });
        SilentRedis {
            address,
            answering,
            heard,
            cut,
        }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.address)
    }

    /// What the silent Redis was sent: connections and bytes (the client's handshake and
    /// commands; a handshake that gets no answer never gets to the gate's script).
    fn heard(&self) -> (usize, usize) {
        let heard = self.heard.lock().unwrap();
        (heard.len(), heard.iter().map(Vec::len).sum())
    }

    fn answer(&self) {
        self.answering.store(true, Ordering::SeqCst);
        self.cut.send_replace(true);
    }
}

struct App {
    router: Router,
    store: Arc<SqlOrderStore>,
    tenants: Arc<ConfigHandle>,
    cache: Arc<TieredCache>,
    redis: RedisCache,
    redis_proxy: TcpProxy,
    cache_breaker: Arc<CircuitBreaker>,
    index: Arc<SwitchableIndex>,
    search_breaker: Arc<CircuitBreaker>,
    /// The Redis of the stock gate (`retail`'s hot SKU), silent until told to answer.
    gate_redis: SilentRedis,
    gate: RedisStockGate,
    gate_breaker: Arc<CircuitBreaker>,
    databases: oc_test_support::TestDatabases,
    prefix: oc_test_support::RedisPrefix,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

impl App {
    /// Wired like `ordercenter serve` in cluster mode: MariaDB shards, moka in front of Redis
    /// (through the proxy) with a breaker on Redis, the index behind a breaker, both on
    /// `/readyz`.
    async fn start(label: &str) -> App {
        let databases = oc_test_support::TestDatabases::create(label, 2)
            .await
            .unwrap();
        let store = Arc::new(
            SqlOrderStore::connect(StoreConfig::new(databases.urls().to_vec()))
                .await
                .unwrap(),
        );
        let redis_target = oc_test_support::redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let redis_proxy = TcpProxy::start(redis_target.clone()).await.unwrap();
        let gate_redis = SilentRedis::start(redis_target).await;
        let prefix = oc_test_support::RedisPrefix::new(label).unwrap();
        let redis = RedisCache::connect(
            RedisCacheConfig::new(format!("redis://{}", redis_proxy.host_port()))
                .with_key_prefix(format!("{}:", prefix.prefix())),
        )
        .await
        .unwrap();
        let cache_breaker = CircuitBreaker::new("cache", breaker_config());
        let cache = Arc::new(
            TieredCache::with_redis(L1Config::default(), redis.clone())
                .with_l2_breaker(cache_breaker.clone()),
        );
        let index = Arc::new(SwitchableIndex {
            inner: TantivySearchIndex::open(
                TantivyConfig::in_memory().with_commit(CommitPolicy::EveryWrite),
            )
            .unwrap(),
            down: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        });
        let search_breaker = CircuitBreaker::new("search", breaker_config());
        // the stock gate behind its breaker, as `ordercenter serve` wires it
        let gate = RedisStockGate::connect(
            RedisStockGateConfig::new(gate_redis.url())
                .with_key_prefix(format!("{}:", prefix.prefix())),
        )
        .unwrap();
        // open long enough to watch placements bypass it (see the gate's test)
        let gate_breaker = CircuitBreaker::new(
            "stock_gate",
            BreakerConfig {
                open_ms: 4_000,
                ..breaker_config()
            },
        );
        let guarded_gate: Arc<dyn StockGate> = Arc::new(Guarded::new(
            Arc::new(gate.clone()) as Arc<dyn StockGate>,
            gate_breaker.clone(),
        ));
        let guarded_index: Arc<dyn SearchIndex> = Arc::new(Guarded::new(
            index.clone() as Arc<dyn SearchIndex>,
            search_breaker.clone(),
        ));

        let config = ConfigSet::load_dir(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tenant-config/examples"),
        )
        .unwrap();
        let master = MasterKey::from_bytes([9u8; 32]);
        let ring = KeyRing::new(&master);
        for tenant in config.tenants() {
            ring.create_tenant(tenant.id().as_str()).unwrap();
        }
        let tenants = Arc::new(ConfigHandle::new(config));
        let core = Core::builder(
            store.clone() as Arc<dyn OrderStore>,
            tenants.clone(),
            Sealer::from_keys(Arc::new(ring), &master),
        )
        .cache(Some(cache.clone() as Arc<dyn Cache>))
        .search(Some(guarded_index))
        .transitions(store.clone() as Arc<dyn TransitionStore>)
        .stock(store.clone() as Arc<dyn StockStore>)
        .payments(
            store.clone() as Arc<dyn oc_model::payment::PaymentStore>,
            oc_core::payments::PaymentProviders::new(Arc::new(NoPaymentAccounts)),
            oc_core::payments::PaymentSettings::default(),
        )
        .after_sales(store.clone() as Arc<dyn oc_model::aftersale::AfterSaleStore>)
        .after_sale_lists(store.clone() as Arc<dyn oc_model::aftersale::listing::AfterSaleListing>)
        .stock_gate(Some(guarded_gate))
        .node_id(3)
        .build()
        .unwrap();
        let state = AppState::new(core);
        let probe_redis = redis.clone();
        let redis_probe: Probe = Arc::new(move || {
            let redis = probe_redis.clone();
            Box::pin(async move { redis.health().await })
        });
        state.readiness.register(Dependency {
            name: "cache",
            breaker: Some(cache_breaker.clone()),
            probe: Some(redis_probe),
        });
        let probe_index = index.clone();
        let index_probe: Probe = Arc::new(move || {
            let index = probe_index.clone();
            Box::pin(async move { index.health().await })
        });
        state.readiness.register(Dependency {
            name: "search",
            breaker: Some(search_breaker.clone()),
            probe: Some(index_probe),
        });
        App {
            router: router(state),
            store,
            tenants,
            cache,
            redis,
            redis_proxy,
            cache_breaker,
            index,
            search_breaker,
            gate_redis,
            gate,
            gate_breaker,
            databases,
            prefix,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_as(RETAIL_BL, method, path, body).await
    }

    async fn call_as(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        let request = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                request.body(Body::from(body.to_string()))
            }
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body }
    }

    async fn create(&self, buyer: &str, sku: &str) -> Value {
        let reply = self
            .call(
                "POST",
                "/v1/orders",
                Some(json!({
                    "business_identity": "retail",
                    "order_type": "standard",
                    "buyer_id": buyer,
                    "lines": [{"sku": sku, "product_name": "T-shirt", "quantity": 2, "unit_price_minor": 9900}],
                    "receiver": {"name": "Li Lei", "phone": "13900001111", "address": "1 Nanjing Road"}
                })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    async fn readyz(&self) -> Reply {
        let request = Request::builder()
            .uri("/readyz")
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap(),
        }
    }

    /// Feeds the index the way the projector does (re-read by primary key).
    async fn index(&self, tenant: &TenantId, id: OrderId) {
        let config = self.tenants.current();
        let order = self.store.get(tenant, id).await.unwrap().unwrap();
        let document = document_from_order(&order, &*config).unwrap();
        self.index.inner.upsert(&document).await.unwrap();
    }

    async fn finish(self) {
        self.store.close().await;
        self.databases.cleanup().await.unwrap();
        self.prefix.cleanup().await.unwrap();
    }
}

async fn wait_for_state(
    breaker: &CircuitBreaker,
    state: BreakerState,
    mut poke: impl AsyncFnMut(),
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while breaker.state() != state {
        assert!(
            tokio::time::Instant::now() < deadline,
            "breaker {} stayed {} (waiting for {state})",
            breaker.dependency(),
            breaker.state()
        );
        poke().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn id_of(order: &Value) -> String {
    order["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_reads_come_from_the_shard_and_the_cache_comes_back() {
    let app = App::start("degrade_redis").await;
    let tenant = TenantId::parse("retail").unwrap();
    let before = app.create("buyer-r1", "SKU-BEFORE").await;
    let before_id: OrderId = id_of(&before).parse().unwrap();
    assert!(
        app.redis.get(&tenant, before_id).await.unwrap().is_some(),
        "a create writes through to Redis"
    );

    app.redis_proxy.block();
    // creates still succeed (the write-through fails and is logged; the shard has the order)
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(app.create("buyer-r1", &format!("SKU-{n}")).await);
    }
    assert_eq!(
        app.cache_breaker.state(),
        BreakerState::Open,
        "3 failed Redis writes in a row open the breaker"
    );
    // GET by id: L1 never held these (their write-through failed), Redis is cut: the shard
    // answers, with exactly what the create returned
    for order in &created {
        let reply = app
            .call("GET", &format!("/v1/orders/{}", id_of(order)), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(&reply.body, order);
    }
    let stats = app.cache.stats();
    assert!(stats.misses >= 5, "{stats:?}");
    let refused_before = app.redis_proxy.refused();
    let rejected = app.cache_breaker.snapshot().rejected;
    assert!(
        rejected >= 1,
        "the open breaker refused Redis calls: {rejected}"
    );
    // readiness: the shards are up (200); the cache is down, with its breaker open
    let ready = app.readyz().await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["dependencies"]["shards"]["status"], "up");
    assert_eq!(ready.body["dependencies"]["cache"]["status"], "down");
    assert_eq!(ready.body["dependencies"]["cache"]["breaker"], "open");
    assert!(
        ready.body["dependencies"]["cache"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("redis")),
        "{}",
        ready.body
    );
    assert!(
        app.redis_proxy.refused() > refused_before,
        "the readiness probe tried Redis itself"
    );

    app.redis_proxy.restore();
    // the next read after the open time is the probe; it succeeds and closes the breaker
    let first = id_of(&created[0]);
    wait_for_state(&app.cache_breaker, BreakerState::Closed, async || {
        let reply = app.call("GET", &format!("/v1/orders/{first}"), None).await;
        assert_eq!(reply.status, StatusCode::OK);
    })
    .await;
    // the cache is used again: a read fills Redis (write-through of what the shard answered)
    for order in &created {
        let reply = app
            .call("GET", &format!("/v1/orders/{}", id_of(order)), None)
            .await;
        assert_eq!(&reply.body, order);
        let id: OrderId = id_of(order).parse().unwrap();
        let cached = app.redis.get(&tenant, id).await.unwrap();
        assert!(cached.is_some(), "order {id} is back in Redis");
    }
    let ready = app.readyz().await;
    assert_eq!(ready.body["dependencies"]["cache"]["status"], "up");
    assert_eq!(ready.body["dependencies"]["cache"]["breaker"], "closed");
    let transitions = app.cache_breaker.snapshot().transitions;
    assert!(transitions[BreakerState::Open as usize] >= 1);
    assert_eq!(transitions[BreakerState::Closed as usize], 1);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_index_down_buyer_lists_fall_back_to_the_shard_flagged_degraded() {
    let app = App::start("degrade_search").await;
    let tenant = TenantId::parse("retail").unwrap();
    let mut ids = Vec::new();
    for n in 0..4 {
        let order = app.create("buyer-s1", &format!("SKU-{n}")).await;
        let id: OrderId = id_of(&order).parse().unwrap();
        app.index(&tenant, id).await;
        ids.push(id_of(&order));
    }
    app.create("buyer-other", "SKU-X").await;
    let listed = |reply: &Reply| -> Vec<String> {
        let mut items: Vec<String> = reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect();
        items.sort();
        items
    };
    let mut expected = ids.clone();
    expected.sort();

    let from_index = app
        .call("GET", "/v1/orders/search?buyer_id=buyer-s1", None)
        .await;
    assert_eq!(from_index.status, StatusCode::OK, "{}", from_index.body);
    assert_eq!(from_index.body["degraded"], false);
    assert_eq!(listed(&from_index), expected);

    app.index.down.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        let reply = app
            .call(
                "GET",
                "/v1/orders/search?buyer_id=buyer-s1&status=pending_payment",
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["degraded"], true);
        assert_eq!(
            listed(&reply),
            expected,
            "the shard answers the same orders"
        );
    }
    assert_eq!(app.search_breaker.state(), BreakerState::Open);
    // open: the index is not called at all
    let calls = app.index.calls.load(Ordering::SeqCst);
    let reply = app
        .call("GET", "/v1/orders/search?buyer_id=buyer-s1", None)
        .await;
    assert_eq!(reply.body["degraded"], true);
    assert_eq!(app.index.calls.load(Ordering::SeqCst), calls);
    // a search the shard cannot answer: 503, problem+json
    let merchant_wide = app
        .call("GET", "/v1/orders/search?status=pending_payment", None)
        .await;
    assert_eq!(merchant_wide.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(merchant_wide.body["code"], "unavailable");
    let ready = app.readyz().await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["dependencies"]["search"]["status"], "down");
    assert_eq!(ready.body["dependencies"]["search"]["breaker"], "open");

    app.index.down.store(false, Ordering::SeqCst);
    wait_for_state(&app.search_breaker, BreakerState::Closed, async || {
        app.call("GET", "/v1/orders/search?buyer_id=buyer-s1", None)
            .await;
    })
    .await;
    let back = app
        .call("GET", "/v1/orders/search?buyer_id=buyer-s1", None)
        .await;
    assert_eq!(back.body["degraded"], false);
    assert_eq!(listed(&back), expected);
    let ready = app.readyz().await;
    assert_eq!(ready.body["dependencies"]["search"]["status"], "up");
    app.finish().await;
}

/// After-sale lists behind the same index breaker (issue #20 item 6): with the index down
/// the shards answer, flagged degraded, and once the breaker is open the index is not called;
/// back up, lists come from the index again. (That the shards give the same answers as the
/// index is `api.rs`'s `after_sale_lists_from_the_index_and_the_shards`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_index_down_after_sale_lists_come_from_the_shards_flagged_degraded() {
    let app = App::start("degrade_as_lists").await;
    let list = async || {
        let reply = app
            .call_as(RETAIL_CS, "GET", "/v1/after-sales?status=applied", None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["items"], json!([]));
        reply.body["degraded"].as_bool().unwrap()
    };
    assert!(!list().await, "the index answers");
    app.index.down.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        assert!(list().await, "the shards answer, flagged");
    }
    assert_eq!(app.search_breaker.state(), BreakerState::Open);
    let calls = app.index.calls.load(Ordering::SeqCst);
    assert!(list().await);
    assert_eq!(
        app.index.calls.load(Ordering::SeqCst),
        calls,
        "open: the index is not called"
    );
    app.index.down.store(false, Ordering::SeqCst);
    wait_for_state(&app.search_breaker, BreakerState::Closed, async || {
        list().await;
    })
    .await;
    assert!(!list().await, "back on the index");
    app.finish().await;
}

/// The "a slow Redis costs up to its 100 ms limit on every placement before SQL":
/// the gate's Redis accepts and never answers. Placements of the hot SKU still succeed (SQL
/// decides); after three timed-out admissions the gate's breaker is open, and placements made
/// meanwhile send the gate nothing (no admission reaches the silent Redis). Once Redis
/// answers, a placement after the open time is the half-open probe: it succeeds, the breaker
/// closes, and the gate's counter is seeded from SQL and admits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stock_gate_is_bypassed_by_its_breaker_until_a_probe_finds_redis_back() {
    let app = App::start("degrade_gate").await;
    let tenant = TenantId::parse("retail").unwrap();
    let hot = Sku::parse("FLASH-KETTLE-1").unwrap();
    app.store
        .set_available(&tenant, &hot, 1_000, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let mut placed = 0u64;
    let mut n = 0;
    wait_for_state(&app.gate_breaker, BreakerState::Open, async || {
        n += 1;
        app.create(&format!("buyer-g{n}"), hot.as_str()).await;
        placed += 1;
    })
    .await;
    assert!(
        app.gate_redis.heard().1 > 0,
        "the first placements asked the silent Redis"
    );
    // the client's connection manager may still retry the connection of the last call it
    // was given; wait until that tail is over (300 ms without a byte, at most 2 s)
    let mut heard = app.gate_redis.heard();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = app.gate_redis.heard();
        if now == heard {
            break;
        }
        heard = now;
    }
    // open: placements go to SQL alone without asking the gate
    for m in 0..5 {
        app.create(&format!("buyer-open{m}"), hot.as_str()).await;
        placed += 1;
    }
    assert_eq!(app.gate_breaker.state(), BreakerState::Open);
    assert_eq!(
        app.gate_redis.heard(),
        heard,
        "nothing reached Redis while the breaker was open"
    );
    let level = app.store.stock_level(&tenant, &hot).await.unwrap().unwrap();
    assert_eq!(
        (level.available, level.reserved),
        (1_000 - 2 * placed, 2 * placed)
    );

    app.gate_redis.answer();
    wait_for_state(&app.gate_breaker, BreakerState::Closed, async || {
        n += 1;
        app.create(&format!("buyer-g{n}"), hot.as_str()).await;
    })
    .await;
    // the gate is used again: the next placement takes from a counter seeded from SQL
    app.create("buyer-after", hot.as_str()).await;
    let level = app.store.stock_level(&tenant, &hot).await.unwrap().unwrap();
    let mut redis = app.prefix.connection().await.unwrap();
    let counter: Option<u64> = redis::cmd("GET")
        .arg(app.gate.key(&tenant, &hot))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(counter, Some(level.available), "the gate admits again");
    drop(redis);
    app.finish().await;
}
