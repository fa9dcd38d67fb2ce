//! The generated traffic against the real API in-process (router of `oc-api`, the example
//! tenant config, SQLite shards in a temp dir, real encryption, the embedded search index):
//! every generated order must be accepted, every generated search and transition answered.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use oc_api::{AppState, router};
use oc_cache::{L1Config, TieredCache};
use oc_core::{Core, Sealer};
use oc_crypto::{KeyRing, MasterKey};
use oc_model::lifecycle::TransitionStore;
use oc_model::ports::{Cache, OrderStore, SearchIndex};
use oc_model::stock::StockStore;
use oc_search::{CommitPolicy, TantivyConfig, TantivySearchIndex};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use oc_tenant_config::{ConfigHandle, ConfigSet};

use crate::orders::{Generator, TENANTS, tenant_of_request};

pub(crate) async fn app(dir: &std::path::Path) -> Router {
    let examples =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tenant-config/examples");
    let tenants = ConfigSet::load_dir(&examples).expect("example tenant config loads");
    let master = MasterKey::from_bytes([9u8; 32]);
    let ring = KeyRing::new(&master);
    for tenant in tenants.tenants() {
        ring.create_tenant(tenant.id().as_str()).unwrap();
    }
    let urls = (0..2)
        .map(|i| format!("sqlite://{}/shard-{i}.db", dir.display()))
        .collect();
    let store = SqlOrderStore::connect(StoreConfig::new(urls))
        .await
        .unwrap();
    let search =
        TantivySearchIndex::open(TantivyConfig::in_memory().with_commit(CommitPolicy::EveryWrite))
            .unwrap();
    let store = Arc::new(store);
    let core = Core::builder(
        store.clone() as Arc<dyn OrderStore>,
        Arc::new(ConfigHandle::new(tenants)),
        Sealer::from_keys(Arc::new(ring), &master),
    )
    .cache(Some(
        Arc::new(TieredCache::moka_only(L1Config::single_node())) as Arc<dyn Cache>,
    ))
    .search(Some(Arc::new(search) as Arc<dyn SearchIndex>))
    .transitions(store.clone() as Arc<dyn TransitionStore>)
    .stock(store as Arc<dyn StockStore>)
    .node_id(3)
    .build()
    .unwrap();
    router(AppState::new(core))
}

pub(crate) async fn call(
    app: &Router,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json");
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_orders_searches_and_transitions_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let generator = Generator::default();
    let mut created = Vec::new();
    for n in 0..300 {
        let tenant = tenant_of_request(n);
        let (order, buyer) = generator.order(tenant, n);
        let (status, body) = call(&app, "POST", "/v1/orders", tenant.key, Some(&order)).await;
        assert_eq!(
            status, 201,
            "order {n} of {} refused: {body}\n{order}",
            tenant.name
        );
        // the amounts the service computed agree with the generator's discounts
        let goods: i64 = order["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["unit_price_minor"].as_i64().unwrap() * l["quantity"].as_i64().unwrap())
            .sum();
        let discounts: i64 = ["promotions", "coupons"]
            .iter()
            .filter_map(|k| order[*k].as_array())
            .flatten()
            .map(|d| d["discount_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(body["finance"]["goods_total"]["minor"], json!(goods));
        assert_eq!(
            body["finance"]["payable"]["minor"],
            json!(goods - discounts + order["freight_minor"].as_i64().unwrap())
        );
        assert_eq!(body["buyer_id"], json!(crate::orders::buyer_id(buyer)));
        created.push((tenant, body["id"].as_str().unwrap().to_owned()));
    }
    for tenant in TENANTS {
        for n in 0..40 {
            let query = generator.search_query(tenant, n);
            let (status, body) = call(
                &app,
                "GET",
                &format!("/v1/orders/search?{query}"),
                tenant.key,
                None,
            )
            .await;
            assert_eq!(status, 200, "search {query} of {}: {body}", tenant.name);
        }
    }
    // the hottest buyer has many orders (the index is not fed here: list from the shard)
    let retail = crate::orders::tenant("retail").unwrap();
    let (status, list) = call(
        &app,
        "GET",
        "/v1/orders?buyer_id=buyer-0&limit=100",
        retail.key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list["items"].as_array().unwrap().len() >= 5,
        "buyer-0 is hot: {list}"
    );
    for (tenant, id) in created.iter().take(20) {
        let (status, body) = call(
            &app,
            "POST",
            &format!("/v1/orders/{id}/cancel"),
            tenant.key,
            Some(&json!({"reason": "buyer changed their mind"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], json!("cancelled"));
    }
}

/// The `lifecycle` and `hot-sku` scenarios against the real API on a loopback port: every
/// lifecycle step ends with its order completed (a refused event fails the step), and every
/// hot-SKU placement reserves one unit of the one SKU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_and_hot_sku_scenarios_complete_and_reserve() {
    use crate::engine::Step;
    use crate::scenarios::{HOT_SKU, RETAIL_ADMIN_KEY, Scenario, Traffic};

    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.clone()).await });
    let http = crate::http::Http::new(&format!("http://{address}")).unwrap();
    let retail = crate::orders::tenant("retail").unwrap();

    let lifecycle = Traffic::new(http.clone(), Scenario::Lifecycle, retail).keep_created(20);
    for n in 0..20 {
        let outcome = lifecycle.step(n).await;
        assert_eq!(outcome.status, 200, "lifecycle {n}: {outcome:?}");
    }
    let created = lifecycle.created();
    assert_eq!(created.len(), 20);
    for (_, id) in &created {
        let history = http
            .call(
                "GET",
                &format!("/v1/orders/{id}/history"),
                retail.key,
                None,
                &[],
            )
            .await
            .unwrap()
            .json();
        let events: Vec<&str> = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, ["pay", "ship", "receive", "complete"], "{history}");
    }

    let hot = Traffic::new(http.clone(), Scenario::HotSku, retail)
        .prepare(0)
        .await
        .unwrap();
    for n in 0..10 {
        let outcome = hot.step(n).await;
        assert_eq!(outcome.status, 201, "hot SKU {n}: {outcome:?}");
    }
    let level = http
        .call(
            "GET",
            &format!("/v1/stock/{HOT_SKU}"),
            RETAIL_ADMIN_KEY,
            None,
            &[],
        )
        .await
        .unwrap()
        .json();
    assert_eq!(level["reserved"], json!(10), "{level}");
}
