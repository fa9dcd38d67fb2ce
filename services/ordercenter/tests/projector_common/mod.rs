//! Fixtures of the projector tests: real MariaDB shards, orders written through the real
//! store (with sealed personal data), the tenant config of `tenant-config/examples`, and the
//! embedded read models on temporary directories.
#![allow(dead_code)]

use oc_test_support::fixtures::{OrderBuilder, retrying, sealed};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use oc_cold_store::RedbColdStore;
use oc_model::ports::SearchFields;
use oc_model::ports::{InsertOutcome, NewOrder, OrderStore};
use oc_model::{
    BusinessDomain, ExtValue, Order, OrderEvent, OrderEventKind, Protected, StatusCode, TenantId,
};
use oc_projector::{Projector, ProjectorConfig, Sinks};
use oc_search::{CommitPolicy, TantivyConfig, TantivySearchIndex};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use oc_tenant_config::ConfigSet;
use time::OffsetDateTime;

pub const SHARDS: usize = 2;

static STARTED: LazyLock<OffsetDateTime> = LazyLock::new(OffsetDateTime::now_utc);

/// The window every fixture order is created in (an hour around the test run).
pub fn window() -> (OffsetDateTime, OffsetDateTime) {
    let started = *STARTED;
    (
        started - time::Duration::hours(1),
        started + time::Duration::hours(1),
    )
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// The example tenant configs (`retail`, `express`): `retail/standard` has searchable
/// `member_level` (order.ext_03, enum), `buyer_phone_tail` (order.ext_04, encrypted) and
/// `campaign_id` (kv).
pub fn fields() -> Arc<dyn SearchFields> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tenant-config/examples");
    Arc::new(ConfigSet::load_dir(&dir).unwrap())
}

pub struct Shards {
    pub store: SqlOrderStore,
    databases: oc_test_support::TestDatabases,
}

impl Shards {
    pub async fn mariadb(label: &str) -> Shards {
        let databases = oc_test_support::TestDatabases::create(label, SHARDS)
            .await
            .unwrap();
        let store = SqlOrderStore::connect(StoreConfig::new(databases.urls().to_vec()))
            .await
            .unwrap();
        Shards { store, databases }
    }

    pub fn store(&self) -> Arc<dyn OrderStore> {
        Arc::new(self.store.clone())
    }

    /// The shard databases' URLs (for the binary's `OC_SHARDS`).
    pub fn urls(&self) -> &[String] {
        self.databases.urls()
    }

    pub async fn finish(self) {
        self.store.close().await;
        self.databases.cleanup().await.unwrap();
    }
}

/// Embedded read models on a temporary directory.
pub struct ReadModels {
    pub dir: tempfile::TempDir,
    pub search: Arc<TantivySearchIndex>,
    pub cold: Arc<RedbColdStore>,
}

impl ReadModels {
    pub async fn open() -> ReadModels {
        let dir = tempfile::tempdir().unwrap();
        let search = TantivySearchIndex::open(
            TantivyConfig::on_disk(dir.path().join("search"))
                .with_commit(CommitPolicy::Interval(Duration::from_millis(200))),
        )
        .unwrap();
        let cold = RedbColdStore::open(dir.path().join("cold.redb"))
            .await
            .unwrap();
        ReadModels {
            dir,
            search: Arc::new(search),
            cold: Arc::new(cold),
        }
    }

    pub fn sinks(&self) -> Sinks {
        Sinks::none()
            .with_search(self.search.clone())
            .with_cold(self.cold.clone())
    }
}

pub fn projector(store: Arc<dyn OrderStore>, sinks: Sinks) -> Projector {
    Projector::new(store, sinks, fields(), ProjectorConfig::default())
}

/// A valid, fully populated `retail/standard` order of `buyer-{n}` (the minimal fixture,
/// with extension values where the example config puts its fields).
pub fn order(tenant_id: &TenantId, n: usize) -> Order {
    LazyLock::force(&STARTED);
    OrderBuilder::minimal(tenant_id, &format!("buyer-{n}"))
        .merchant("merchant-9")
        .sealed_receiver()
        .ext(1, sealed("gift"))
        .ext(3, Protected::Plain(ExtValue::Enum("gold".into())))
        .ext(4, sealed("tail"))
        .line_ext(1, 2, Protected::Plain(ExtValue::Int(12)))
        .identifier(BusinessDomain::Marketing, "campaign_id", "c-7")
        .with(|order| {
            order.main.pay_deadline = Some(order.main.created_at + time::Duration::minutes(30));
            order.marketing.points_used = 10;
            let line = &mut order.lines[0];
            line.sku = "sku-a".into();
            line.product_name = "冻品 A".into();
            line.unit_weight_grams = Some(500);
            line.promotion_type = Some("full-price".into());
        })
        .build()
}

pub fn event_of(order: &Order, kind: OrderEventKind) -> OrderEvent {
    OrderEvent::of(order, kind)
}

/// Creates order `n` and updates it to `versions` versions; returns every version written.
pub async fn create_with_versions(
    store: &SqlOrderStore,
    tenant_id: &TenantId,
    n: usize,
    versions: u64,
) -> Vec<Order> {
    let mut current = order(tenant_id, n);
    let event = event_of(&current, OrderEventKind::Created);
    let created = retrying(|| {
        store.insert(NewOrder {
            order: current.clone(),
            idempotency: None,
            event: event.clone(),
        })
    })
    .await;
    assert!(matches!(created, InsertOutcome::Created(_)));
    let mut written = vec![current.clone()];
    for version in 2..=versions {
        current.main.version = version;
        current.main.status = StatusCode::parse(format!("step_{version}")).unwrap();
        current.main.updated_at = current.main.created_at + time::Duration::seconds(version as i64);
        let event = event_of(&current, OrderEventKind::StatusChanged);
        retrying(|| store.update(version - 1, current.clone(), event.clone())).await;
        written.push(current.clone());
    }
    written
}

/// `count` orders of `tenant_id` (numbered from `first`), order `n` with `1 + n % max_versions`
/// versions, written 8 at a time; every version of each.
pub async fn create_orders(
    store: &SqlOrderStore,
    tenant_id: &TenantId,
    first: usize,
    count: usize,
    max_versions: u64,
) -> Vec<Vec<Order>> {
    tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::stream::iter(first..first + count)
            .map(|n| async move {
                create_with_versions(store, tenant_id, n, 1 + n as u64 % max_versions).await
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("orders written in time")
}
