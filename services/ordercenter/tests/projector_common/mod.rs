//! Fixtures of the projector tests: real MariaDB shards, orders written through the real
//! store (with sealed personal data), the tenant config of `tenant-config/examples`, and the
//! embedded read models on temporary directories.
#![allow(dead_code)]

use oc_test_support::fixtures::retrying;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use oc_cold_store::RedbColdStore;
use oc_model::ext::Sealed;
use oc_model::order::{
    Channel, Extension, Finance, LogisticsService, Marketing, Operation, OrderLine, OrderMain,
    Parties, Party,
};
use oc_model::ports::SearchFields;
use oc_model::ports::{InsertOutcome, NewOrder, OrderStore};
use oc_model::{
    Bucket, BusinessDomain, BusinessIdentity, ColumnIndex, Currency, ExtValue, KvIdentifier,
    KvValue, Money, Order, OrderEvent, OrderEventKind, OrderIdGenerator, OrderType, PartyId,
    Protected, StatusCode, TenantId,
};
use oc_projector::{Projector, ProjectorConfig, Sinks};
use oc_search::{CommitPolicy, TantivyConfig, TantivySearchIndex};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use oc_tenant_config::ConfigSet;
use time::OffsetDateTime;

pub const SHARDS: usize = 2;

static IDS: LazyLock<OrderIdGenerator> = LazyLock::new(|| OrderIdGenerator::new(7).unwrap());

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

fn sealed<T>(tag: &str) -> Protected<T> {
    Protected::Sealed {
        sealed: Sealed {
            ciphertext: format!("AQAAAAE{tag}"),
            blind_index: Some(format!("bi{tag}")),
        },
    }
}

fn cny(minor: i64) -> Money {
    Money::new(minor, Currency::CNY)
}

/// A valid, fully populated `retail/standard` order of `buyer-{n}` (the store conformance
/// fixture, with extension values where the example config puts its fields).
pub fn order(tenant_id: &TenantId, n: usize) -> Order {
    let buyer = PartyId::parse(format!("buyer-{n}")).unwrap();
    LazyLock::force(&STARTED);
    let id = IDS.next(
        Bucket::of(tenant_id, &buyer),
        oc_model::UnixMillis::now().as_u64(),
    );
    // created when its id says (ids embed the creation millisecond)
    let created = oc_model::UnixMillis::new(id.unix_ms() as i64)
        .to_datetime()
        .unwrap();
    let mut order_ext = BTreeMap::new();
    order_ext.insert(ColumnIndex::new(1).unwrap(), sealed("gift"));
    order_ext.insert(
        ColumnIndex::new(3).unwrap(),
        Protected::Plain(ExtValue::Enum("gold".into())),
    );
    order_ext.insert(ColumnIndex::new(4).unwrap(), sealed("tail"));
    let mut line_ext = BTreeMap::new();
    line_ext.insert(
        ColumnIndex::new(2).unwrap(),
        Protected::Plain(ExtValue::Int(12)),
    );
    let identifiers = vec![
        KvIdentifier::new(
            BusinessDomain::Marketing,
            "campaign_id",
            KvValue::clear("c-7"),
        )
        .unwrap(),
    ];
    Order {
        main: OrderMain {
            id,
            tenant: tenant_id.clone(),
            business_identity: BusinessIdentity::parse("retail").unwrap(),
            order_type: OrderType::parse("standard").unwrap(),
            status: StatusCode::parse("pending_payment").unwrap(),
            version: 1,
            buyer_id: buyer,
            merchant_id: Some(PartyId::parse("merchant-9").unwrap()),
            external_ref: None,
            created_at: created,
            updated_at: created,
            pay_deadline: Some(created + time::Duration::minutes(30)),
        },
        lines: vec![OrderLine {
            line_no: 1,
            sku: "sku-a".into(),
            product_name: "冻品 A".into(),
            quantity: 2,
            unit_price: cny(300),
            unit_weight_grams: Some(500),
            promotion_type: Some("full-price".into()),
            payable: cny(500),
            ext: line_ext,
        }],
        logistics: LogisticsService::default(),
        marketing: Marketing {
            points_used: 10,
            ..Default::default()
        },
        finance: Finance {
            currency: Currency::CNY,
            goods_total: cny(600),
            discount_total: cny(100),
            freight: cny(50),
            payable: cny(550),
            payments: vec![],
        },
        channel: Channel::default(),
        parties: Parties {
            shipper: None,
            receiver: Some(Party {
                name: sealed("n"),
                phone: sealed("p"),
                address: sealed("a"),
                region: Some("310000".into()),
            }),
        },
        operation: Operation::default(),
        extension: Extension {
            columns: order_ext,
            identifiers,
        },
    }
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
