//! The cold-store conformance suite: the same cases run against the embedded redb adapter
//! (a fresh file per test) and the HBase adapter on the live HBase of
//! `deploy/local/services.sh` (its Thrift1 server, `OC_TEST_HBASE_ADDRESS`; a fresh table
//! per test, dropped afterwards). HBase-only checks follow the suite, on the live server too:
//! the row layout and cell timestamps, the repair of a writer that died after its claim, a
//! late stale write, the salt-count guard, a cut connection.
//!
//! The Thrift test double (`hbase_double`) stays only for what a live server cannot show:
//! which calls the adapter makes and how many, that every scanner is closed, an `IOError`
//! answer, and the framed + compact wire (the test server speaks the default buffered
//! binary wire).

mod hbase_double;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hbase_double::{HbaseDouble, Wire};
use oc_cold_store::hbase::{
    self as hb, COLUMN_CREATED, COLUMN_ORDER, COLUMN_STATUS, COLUMN_VERSION,
};
use oc_cold_store::{HbaseColdStore, HbaseConfig, RedbColdStore};
use oc_model::aftersale::{
    AfterSale, AfterSaleChannel, AfterSaleHistoryEntry, AfterSaleId, AfterSaleLine,
    AfterSaleRefund, AfterSaleType, Reviewer,
};
use oc_model::archive::ArchivedAfterSale;
use oc_model::ext::Sealed;
use oc_model::order::{
    Channel, Extension, Finance, LogisticsService, Marketing, Operation, OrderLine, OrderMain,
    Parties, Party,
};
use oc_model::ports::{ColdStore, PageRequest};
use oc_model::{
    Bucket, BusinessIdentity, ColumnIndex, Currency, ErrorCode, ExtValue, Money, Order, OrderId,
    OrderIdGenerator, OrderType, PartyId, Protected, StatusCode, TenantId,
};
use oc_test_support::{HbaseTable, TcpProxy, hbase_address, with_hbase_client};
use rand::seq::SliceRandom;
use time::OffsetDateTime;

// ---- harness ----

enum Backend {
    Redb { path: PathBuf },
    Hbase { table: HbaseTable },
    HbaseDouble { address: String, table: String },
}

struct Harness {
    store: Arc<dyn ColdStore>,
    backend: Backend,
}

fn unique_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "oc-cold-store-{label}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    ))
}

fn hbase_config(address: &str, table: &str) -> HbaseConfig {
    HbaseConfig {
        table: table.to_owned(),
        max_connections: 6,
        ..HbaseConfig::new(address)
    }
}

impl Harness {
    async fn redb(label: &str) -> Harness {
        let path = unique_dir(label).join("cold.redb");
        let store = RedbColdStore::open(&path).await.unwrap();
        Harness {
            store: Arc::new(store),
            backend: Backend::Redb { path },
        }
    }

    async fn hbase(label: &str) -> Harness {
        let table = HbaseTable::new(label).await.unwrap();
        let store = HbaseColdStore::connect(hbase_config(&hbase_address(), table.name()))
            .await
            .unwrap();
        Harness {
            store: Arc::new(store),
            backend: Backend::Hbase { table },
        }
    }

    /// The HBase adapter on a Thrift double, for what only the double can tell.
    async fn hbase_double(label: &str, double: &HbaseDouble) -> Harness {
        let address = double.address();
        let table = format!("oc_cold_{label}");
        let store = HbaseColdStore::connect(hbase_config(&address, &table))
            .await
            .unwrap();
        Harness {
            store: Arc::new(store),
            backend: Backend::HbaseDouble { address, table },
        }
    }

    fn store(&self) -> &dyn ColdStore {
        &*self.store
    }

    /// Drop the store and open a new one over the same data (file or server).
    async fn reopen(&mut self) {
        // release the redb file lock before opening it again
        self.store = Arc::new(Unopened);
        self.store = match &self.backend {
            Backend::Redb { path } => Arc::new(RedbColdStore::open(path).await.unwrap()),
            Backend::Hbase { table } => Arc::new(
                HbaseColdStore::connect(hbase_config(&hbase_address(), table.name()))
                    .await
                    .unwrap(),
            ),
            Backend::HbaseDouble { address, table } => Arc::new(
                HbaseColdStore::connect(hbase_config(address, table))
                    .await
                    .unwrap(),
            ),
        };
    }

    async fn finish(self) {
        drop(self.store);
        match self.backend {
            Backend::Redb { path } => std::fs::remove_dir_all(path.parent().unwrap()).unwrap(),
            Backend::Hbase { table } => table.cleanup().await.unwrap(),
            Backend::HbaseDouble { .. } => {}
        }
    }
}

/// A placeholder while a store is reopened.
#[derive(Debug)]
struct Unopened;

#[async_trait::async_trait]
impl ColdStore for Unopened {
    async fn put(&self, _: &Order) -> oc_model::DomainResult<bool> {
        unreachable!()
    }
    async fn get(&self, _: &TenantId, _: OrderId) -> oc_model::DomainResult<Option<Order>> {
        unreachable!()
    }
    async fn scan(
        &self,
        _: &TenantId,
        _: OffsetDateTime,
        _: OffsetDateTime,
        _: PageRequest,
    ) -> oc_model::DomainResult<oc_model::ports::Page<Order>> {
        unreachable!()
    }
    async fn put_history(
        &self,
        _: &TenantId,
        _: OrderId,
        _: &[oc_model::HistoryEntry],
    ) -> oc_model::DomainResult<()> {
        unreachable!()
    }
    async fn history(
        &self,
        _: &TenantId,
        _: OrderId,
    ) -> oc_model::DomainResult<Option<Vec<oc_model::HistoryEntry>>> {
        unreachable!()
    }
    async fn put_after_sales(
        &self,
        _: &TenantId,
        _: OrderId,
        _: &[ArchivedAfterSale],
    ) -> oc_model::DomainResult<()> {
        unreachable!()
    }
    async fn after_sales(
        &self,
        _: &TenantId,
        _: OrderId,
    ) -> oc_model::DomainResult<Option<Vec<ArchivedAfterSale>>> {
        unreachable!()
    }
    async fn after_sale_order(
        &self,
        _: &TenantId,
        _: AfterSaleId,
    ) -> oc_model::DomainResult<Option<OrderId>> {
        unreachable!()
    }
}

// ---- fixtures ----

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn sealed(tag: &str) -> Protected<String> {
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

/// Base time of the fixtures: 2026-09-21T…Z.
const BASE_MS: u64 = 1_790_000_000_000;

fn at_ms(unix_ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap()
}

/// The id a fresh generator hands out for `bucket` at `unix_ms`. A generator shared by the
/// tests would borrow milliseconds ahead (it never goes back), and the scan cases need ids
/// at exact times; the cases keep `(bucket, unix_ms)` distinct where ids must differ.
fn id_at(bucket: u16, unix_ms: u64) -> OrderId {
    OrderIdGenerator::new(2)
        .unwrap()
        .next(Bucket::new(bucket).unwrap(), unix_ms)
}

/// A valid, populated order (sealed PII, extension columns) with the given identity.
fn order(tenant_id: &TenantId, id: OrderId, version: u64) -> Order {
    let created = at_ms(id.unix_ms());
    let mut order_ext = BTreeMap::new();
    order_ext.insert(
        ColumnIndex::new(1).unwrap(),
        Protected::Plain(ExtValue::Enum("frozen".into())),
    );
    order_ext.insert(
        ColumnIndex::new(3).unwrap(),
        Protected::Sealed {
            sealed: Sealed {
                ciphertext: "AQAAAAEcipher".into(),
                blind_index: None,
            },
        },
    );
    Order {
        main: OrderMain {
            id,
            tenant: tenant_id.clone(),
            business_identity: BusinessIdentity::parse("cold-chain").unwrap(),
            order_type: OrderType::parse("standard").unwrap(),
            status: StatusCode::parse(format!("status-v{version}")).unwrap(),
            version,
            buyer_id: PartyId::parse("buyer-1").unwrap(),
            merchant_id: Some(PartyId::parse("merchant-9").unwrap()),
            external_ref: Some(format!("ext-{id}")),
            created_at: created,
            updated_at: created + time::Duration::seconds(version as i64),
            pay_deadline: None,
        },
        lines: vec![OrderLine {
            line_no: 1,
            sku: "sku-a".into(),
            product_name: "冻品 A".into(),
            quantity: 2,
            unit_price: cny(300),
            unit_weight_grams: Some(500),
            promotion_type: None,
            payable: cny(600),
            ext: BTreeMap::new(),
        }],
        logistics: LogisticsService {
            service_product: Some("cold-chain-2-8c".into()),
            ..Default::default()
        },
        marketing: Marketing::default(),
        finance: Finance {
            currency: Currency::CNY,
            goods_total: cny(600),
            discount_total: cny(0),
            freight: cny(0),
            payable: cny(600),
            payments: vec![],
        },
        channel: Channel {
            source: Some("app".into()),
            customer_channel: None,
        },
        parties: Parties {
            shipper: None,
            receiver: Some(Party {
                name: sealed("n"),
                phone: sealed("p"),
                address: sealed("a"),
                region: Some("310000".into()),
            }),
        },
        operation: Operation {
            created_by: Some("bl-main".into()),
            ..Default::default()
        },
        extension: Extension {
            columns: order_ext,
            identifiers: vec![],
        },
    }
}

fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest { cursor, limit }
}

/// Every order of a scan, page by page; panics on a repeated id.
async fn scan_all(
    store: &dyn ColdStore,
    tenant_id: &TenantId,
    from: OffsetDateTime,
    to: OffsetDateTime,
    limit: u32,
) -> Vec<Order> {
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = None;
    for _page in 0..10_000 {
        let result = store
            .scan(tenant_id, from, to, page(limit, cursor))
            .await
            .unwrap();
        assert!(result.items.len() <= limit as usize);
        for order in &result.items {
            assert!(seen.insert(order.main.id), "{} twice", order.main.id);
        }
        all.extend(result.items);
        match result.next_cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("scan did not end");
}

// ---- the cases ----

async fn put_then_get_round_trips(harness: &mut Harness) {
    let store = harness.store();
    let acme = tenant("acme");
    let original = order(&acme, id_at(17, BASE_MS), 1);
    assert!(store.put(&original).await.unwrap());
    let read = store.get(&acme, original.main.id).await.unwrap().unwrap();
    assert_eq!(
        read, original,
        "the full order, sealed PII and extensions included"
    );
}

async fn missing_order_is_none(harness: &mut Harness) {
    let store = harness.store();
    let acme = tenant("acme");
    assert!(store.get(&acme, id_at(3, BASE_MS)).await.unwrap().is_none());
    let stored = order(&acme, id_at(3, BASE_MS), 1);
    store.put(&stored).await.unwrap();
    // the neighbour ids (same bucket, next sequence) are still missing
    let next = OrderId::from_raw(stored.main.id.get() + 1).unwrap();
    assert!(store.get(&acme, next).await.unwrap().is_none());
}

async fn stale_versions_never_overwrite(harness: &mut Harness) {
    let store = harness.store();
    let acme = tenant("acme");
    let id = id_at(99, BASE_MS);
    assert!(store.put(&order(&acme, id, 1)).await.unwrap());
    assert!(
        !store.put(&order(&acme, id, 1)).await.unwrap(),
        "same version is a no-op"
    );
    assert!(store.put(&order(&acme, id, 3)).await.unwrap(), "newer wins");
    assert!(
        !store.put(&order(&acme, id, 2)).await.unwrap(),
        "stale is ignored"
    );
    assert!(
        !store.put(&order(&acme, id, 1)).await.unwrap(),
        "stale is ignored"
    );
    assert!(
        !store.put(&order(&acme, id, 3)).await.unwrap(),
        "same version is a no-op"
    );
    let read = store.get(&acme, id).await.unwrap().unwrap();
    assert_eq!(read, order(&acme, id, 3));
    let scanned = scan_all(store, &acme, at_ms(BASE_MS), at_ms(BASE_MS + 1), 10).await;
    assert_eq!(
        scanned,
        vec![order(&acme, id, 3)],
        "one entry per order, the latest"
    );
}

async fn reads_are_tenant_scoped(harness: &mut Harness) {
    let store = harness.store();
    let acme = tenant("acme");
    let acme2 = tenant("acme2");
    let id = id_at(5, BASE_MS);
    store.put(&order(&acme, id, 1)).await.unwrap();
    assert!(store.get(&acme2, id).await.unwrap().is_none());
    assert!(store.get(&tenant("acm"), id).await.unwrap().is_none());
    // the same id under another tenant is another order
    store.put(&order(&acme2, id, 7)).await.unwrap();
    assert_eq!(store.get(&acme, id).await.unwrap().unwrap().main.version, 1);
    assert_eq!(
        store.get(&acme2, id).await.unwrap().unwrap().main.version,
        7
    );
    let window = (at_ms(BASE_MS - 1000), at_ms(BASE_MS + 1000));
    let of_acme = scan_all(store, &acme, window.0, window.1, 10).await;
    assert_eq!(of_acme, vec![order(&acme, id, 1)]);
    let of_other = scan_all(store, &tenant("other"), window.0, window.1, 10).await;
    assert!(of_other.is_empty());
}

async fn scan_pages_a_time_window_in_id_order(harness: &mut Harness) {
    let store = harness.store();
    let acme = tenant("acme");
    let neighbours = [tenant("acme2"), tenant("acm"), tenant("zeta")];
    let buckets = [0u16, 1, 7, 15, 16, 100, 511, 1023];
    let mut acme_orders = Vec::new();
    // 240 orders of acme, 8 buckets, one every 250 ms over a minute; neighbours in between
    for step in 0..240u64 {
        let unix_ms = BASE_MS + step * 250;
        let bucket = buckets[(step as usize * 5) % buckets.len()];
        let mine = order(&acme, id_at(bucket, unix_ms), 1 + step % 3);
        store.put(&mine).await.unwrap();
        acme_orders.push(mine);
        if step % 4 == 0 {
            let other = &neighbours[(step as usize / 4) % neighbours.len()];
            store
                .put(&order(other, id_at(bucket, unix_ms), 1))
                .await
                .unwrap();
        }
    }
    // [from, to): from is an order's exact millisecond (included), to another's (excluded)
    let from = BASE_MS + 10 * 250;
    let to = BASE_MS + 200 * 250;
    let mut expected: Vec<Order> = acme_orders
        .iter()
        .filter(|o| (from..to).contains(&o.main.id.unix_ms()))
        .cloned()
        .collect();
    expected.sort_by_key(|o| o.main.id);
    assert_eq!(expected.len(), 190);
    for limit in [1, 7, 64, 1000] {
        let scanned = scan_all(store, &acme, at_ms(from), at_ms(to), limit).await;
        let ids: Vec<OrderId> = scanned.iter().map(|o| o.main.id).collect();
        let expected_ids: Vec<OrderId> = expected.iter().map(|o| o.main.id).collect();
        assert_eq!(ids, expected_ids, "limit {limit}");
        assert_eq!(scanned, expected, "limit {limit}");
    }
    // a window inside one millisecond holds nothing; an inverted window too
    let inside = at_ms(from) + time::Duration::microseconds(10);
    assert!(
        scan_all(store, &acme, inside, at_ms(from + 1), 10)
            .await
            .is_empty()
    );
    assert!(
        scan_all(store, &acme, at_ms(to), at_ms(from), 10)
            .await
            .is_empty()
    );
    // the whole history
    let everything = scan_all(store, &acme, at_ms(0), at_ms(BASE_MS * 2), 100).await;
    assert_eq!(everything.len(), 240);
    // an exactly full last page knows it is the last (the adapters look one row ahead)
    let exact = store
        .scan(&acme, at_ms(from), at_ms(from + 2 * 250), page(2, None))
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 2);
    assert_eq!(exact.next_cursor, None);
    let first = store
        .scan(&acme, at_ms(from), at_ms(from + 3 * 250), page(2, None))
        .await
        .unwrap();
    let rest = store
        .scan(
            &acme,
            at_ms(from),
            at_ms(from + 3 * 250),
            page(2, first.next_cursor),
        )
        .await
        .unwrap();
    assert_eq!((first.items.len(), rest.items.len()), (2, 1));
    assert_eq!(rest.next_cursor, None);
}

async fn bad_cursor_is_invalid_input(harness: &mut Harness) {
    let store = harness.store();
    let error = store
        .scan(
            &tenant("acme"),
            at_ms(BASE_MS),
            at_ms(BASE_MS + 1000),
            page(10, Some("not-a-cursor".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert_eq!(error.field.as_deref(), Some("/cursor"));
}

async fn plaintext_pii_is_refused(harness: &mut Harness) {
    let store = harness.store();
    let acme = tenant("acme");
    let mut leaky = order(&acme, id_at(8, BASE_MS), 1);
    leaky.parties.receiver.as_mut().unwrap().phone = Protected::Plain("13800000000".into());
    let error = store.put(&leaky).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Internal);
    assert!(store.get(&acme, leaky.main.id).await.unwrap().is_none());
}

async fn data_survives_reopen(harness: &mut Harness) {
    let acme = tenant("acme");
    let orders: Vec<Order> = (0..20u64)
        .map(|i| order(&acme, id_at((i * 37) as u16 % 1024, BASE_MS + i), 2))
        .collect();
    for order in &orders {
        harness.store().put(order).await.unwrap();
    }
    harness.reopen().await;
    let store = harness.store();
    for order in &orders {
        assert_eq!(
            store.get(&acme, order.main.id).await.unwrap().as_ref(),
            Some(order)
        );
    }
    assert!(
        !store.put(&orders[0]).await.unwrap(),
        "versions survive too"
    );
    let scanned = scan_all(store, &acme, at_ms(BASE_MS), at_ms(BASE_MS + 20), 6).await;
    assert_eq!(scanned.len(), 20);
}

async fn concurrent_versions_end_with_the_newest(harness: &mut Harness) {
    const VERSIONS: u64 = 24;
    let acme = tenant("acme");
    let id = id_at(444, BASE_MS);
    for round in 0..3 {
        let id = OrderId::from_raw(id.get() + round).unwrap();
        let mut versions: Vec<u64> = (1..=VERSIONS).collect();
        versions.shuffle(&mut rand::thread_rng());
        let tasks: Vec<_> = versions
            .into_iter()
            .map(|version| {
                let store = Arc::clone(&harness.store);
                let order = order(&acme, id, version);
                tokio::spawn(async move { store.put(&order).await.unwrap() })
            })
            .collect();
        let mut written = 0;
        for task in tasks {
            written += u64::from(task.await.unwrap());
        }
        assert!((1..=VERSIONS).contains(&written), "{written} writes");
        let read = harness.store().get(&acme, id).await.unwrap().unwrap();
        assert_eq!(read, order(&acme, id, VERSIONS), "round {round}");
    }
}

fn history_entry(tenant_id: &TenantId, id: OrderId, version: u64) -> oc_model::HistoryEntry {
    oc_model::HistoryEntry {
        tenant: tenant_id.clone(),
        order_id: id,
        version,
        from: StatusCode::parse(format!("status-v{}", version - 1)).unwrap(),
        to: StatusCode::parse(format!("status-v{version}")).unwrap(),
        event: oc_model::TransitionEvent::parse("ship").unwrap(),
        operator: "op-1".into(),
        source_system: "wms".into(),
        reason: Some("shipped from 上海".into()),
        data: BTreeMap::from([("waybill".to_owned(), serde_json::json!("SF123"))]),
        stock: oc_model::StockEffect::default(),
        occurred_at: at_ms(id.unix_ms() + version * 1000),
    }
}

async fn history_round_trips_is_replaced_and_tenant_scoped(harness: &mut Harness) {
    let acme = tenant("acme");
    let other = tenant("acme2");
    let id = id_at(21, BASE_MS + 7);
    assert!(harness.store().put(&order(&acme, id, 3)).await.unwrap());
    assert_eq!(harness.store().history(&acme, id).await.unwrap(), None);
    let first = vec![history_entry(&acme, id, 2)];
    harness
        .store()
        .put_history(&acme, id, &first)
        .await
        .unwrap();
    assert_eq!(
        harness.store().history(&acme, id).await.unwrap(),
        Some(first)
    );
    // an archive that ran again after another transition stores the longer history
    let longer = vec![history_entry(&acme, id, 2), history_entry(&acme, id, 3)];
    harness
        .store()
        .put_history(&acme, id, &longer)
        .await
        .unwrap();
    assert_eq!(
        harness.store().history(&acme, id).await.unwrap(),
        Some(longer.clone())
    );
    // another tenant never sees it
    assert_eq!(harness.store().history(&other, id).await.unwrap(), None);
    // the order itself is untouched by its history, and a scan still finds it once
    assert_eq!(
        harness.store().get(&acme, id).await.unwrap(),
        Some(order(&acme, id, 3))
    );
    let found = scan_all(
        harness.store(),
        &acme,
        at_ms(BASE_MS),
        at_ms(BASE_MS + 1000),
        10,
    )
    .await;
    assert_eq!(found.len(), 1);
    // durable
    harness.reopen().await;
    assert_eq!(
        harness.store().history(&acme, id).await.unwrap(),
        Some(longer)
    );
}

fn archived_after_sale(
    tenant_id: &TenantId,
    order_id: OrderId,
    id: AfterSaleId,
    refunded: bool,
) -> ArchivedAfterSale {
    let at = at_ms(order_id.unix_ms() + 5_000);
    let amount = Money::new(1_250, Currency::CNY);
    let status = StatusCode::parse(if refunded { "completed" } else { "cancelled" }).unwrap();
    ArchivedAfterSale {
        after_sale: AfterSale {
            tenant: tenant_id.clone(),
            id,
            order_id,
            kind: AfterSaleType::RefundOnly,
            channel: AfterSaleChannel::User,
            applicant: "key-1".into(),
            reviewer: Reviewer::Merchant,
            status: status.clone(),
            version: 2,
            appealed: false,
            reason: Some("破损".into()),
            lines: vec![AfterSaleLine {
                line_no: 1,
                sku: "TEA".into(),
                promotion_type: None,
                unit_price: amount,
                quantity: 1,
                amount,
            }],
            refund_amount: amount,
            pickup_at: None,
            pickup_id: None,
            waybill_no: None,
            created_at: at,
            updated_at: at,
        },
        history: vec![AfterSaleHistoryEntry {
            version: 2,
            from: Some(StatusCode::parse("applied").unwrap()),
            to: status,
            event: oc_model::TransitionEvent::parse("cancel").unwrap(),
            channel: AfterSaleChannel::User,
            operator: "key-1".into(),
            reason: None,
            occurred_at: at,
        }],
        refund: refunded.then(|| AfterSaleRefund {
            refund_id: oc_model::RefundId::from_raw(id.get()).unwrap(),
            payment_id: oc_model::PaymentId::from_raw(order_id.get()).unwrap(),
            amount,
        }),
    }
}

async fn after_sales_round_trip_are_indexed_by_id_and_tenant_scoped(harness: &mut Harness) {
    let acme = tenant("acme");
    let other = tenant("acme2");
    let id = id_at(22, BASE_MS + 8);
    let first_id = AfterSaleId::generated(id_at(22, BASE_MS + 9));
    let second_id = AfterSaleId::generated(id_at(22, BASE_MS + 10));
    assert!(harness.store().put(&order(&acme, id, 3)).await.unwrap());
    assert_eq!(harness.store().after_sales(&acme, id).await.unwrap(), None);
    assert_eq!(
        harness
            .store()
            .after_sale_order(&acme, first_id)
            .await
            .unwrap(),
        None
    );
    let first = vec![archived_after_sale(&acme, id, first_id, true)];
    harness
        .store()
        .put_after_sales(&acme, id, &first)
        .await
        .unwrap();
    assert_eq!(
        harness.store().after_sales(&acme, id).await.unwrap(),
        Some(first.clone())
    );
    // an archive that ran again after another application stores both
    let both = vec![
        first[0].clone(),
        archived_after_sale(&acme, id, second_id, false),
    ];
    harness
        .store()
        .put_after_sales(&acme, id, &both)
        .await
        .unwrap();
    assert_eq!(
        harness.store().after_sales(&acme, id).await.unwrap(),
        Some(both.clone())
    );
    for after_sale in [first_id, second_id] {
        assert_eq!(
            harness
                .store()
                .after_sale_order(&acme, after_sale)
                .await
                .unwrap(),
            Some(id)
        );
        // another tenant never sees them
        assert_eq!(
            harness
                .store()
                .after_sale_order(&other, after_sale)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(harness.store().after_sales(&other, id).await.unwrap(), None);
    // the order and its history are untouched, and a scan over the after-sales' times
    // still finds exactly the order (the index entries are not orders)
    assert_eq!(
        harness.store().get(&acme, id).await.unwrap(),
        Some(order(&acme, id, 3))
    );
    let found = scan_all(
        harness.store(),
        &acme,
        at_ms(BASE_MS),
        at_ms(BASE_MS + 1000),
        10,
    )
    .await;
    assert_eq!(found.len(), 1);
    assert!(
        scan_all(
            harness.store(),
            &other,
            at_ms(BASE_MS),
            at_ms(BASE_MS + 1000),
            10
        )
        .await
        .is_empty()
    );
    // durable
    harness.reopen().await;
    assert_eq!(
        harness.store().after_sales(&acme, id).await.unwrap(),
        Some(both)
    );
    assert_eq!(
        harness
            .store()
            .after_sale_order(&acme, second_id)
            .await
            .unwrap(),
        Some(id)
    );
}

async fn scan_stream_yields_the_window_once_in_id_order_a_page_at_a_time(harness: &mut Harness) {
    use futures_util::StreamExt as _;
    let store = harness.store();
    let acme = tenant("acme");
    let other = tenant("acme2");
    // 23 orders in the window (some at the same millisecond in other buckets), one before,
    // one at its end (excluded), and the other tenant's in the same window
    let mut inside = Vec::new();
    for i in 0..23u64 {
        let id = id_at(30 + (i % 3) as u16, BASE_MS + 10 + i / 3);
        assert!(store.put(&order(&acme, id, 1)).await.unwrap());
        inside.push(id);
    }
    for id in [id_at(40, BASE_MS + 9), id_at(40, BASE_MS + 100)] {
        assert!(store.put(&order(&acme, id, 1)).await.unwrap());
    }
    assert!(
        store
            .put(&order(&other, id_at(41, BASE_MS + 20), 1))
            .await
            .unwrap()
    );
    inside.sort();
    let (from, to) = (at_ms(BASE_MS + 10), at_ms(BASE_MS + 100));
    for page_size in [1, 4, 23, 1000] {
        let streamed: Vec<OrderId> = store
            .scan_stream(&acme, from, to, page_size)
            .map(|order| order.unwrap().main.id)
            .collect()
            .await;
        assert_eq!(streamed, inside, "page size {page_size}");
    }
    // lazy: taking the first orders reads only what they need, and dropping the rest is fine
    let first: Vec<OrderId> = store
        .scan_stream(&acme, from, to, 2)
        .take(3)
        .map(|order| order.unwrap().main.id)
        .collect()
        .await;
    assert_eq!(first, inside[..3]);
    // an empty window ends at once; an error (a bad window is none) would be yielded once
    let empty: Vec<_> = store.scan_stream(&acme, to, from, 5).collect().await;
    assert!(empty.is_empty());
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let mut harness = super::Harness::redb(stringify!($case)).await;
                    super::$case(&mut harness).await;
                    harness.finish().await;
                }
            )*
        }
        mod hbase {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let mut harness = super::Harness::hbase(stringify!($case)).await;
                    super::$case(&mut harness).await;
                    harness.finish().await;
                }
            )*
        }
    };
}

conformance!(
    put_then_get_round_trips,
    missing_order_is_none,
    stale_versions_never_overwrite,
    reads_are_tenant_scoped,
    scan_pages_a_time_window_in_id_order,
    bad_cursor_is_invalid_input,
    plaintext_pii_is_refused,
    data_survives_reopen,
    concurrent_versions_end_with_the_newest,
    history_round_trips_is_replaced_and_tenant_scoped,
    after_sales_round_trip_are_indexed_by_id_and_tenant_scoped,
    scan_stream_yields_the_window_once_in_id_order_a_page_at_a_time,
);

// ---- HBase only, on the live server: the row layout, races and failures ----

/// A store on a fresh table of the live server (default salt count, 16).
async fn live_store(label: &str) -> (HbaseColdStore, HbaseTable) {
    let table = HbaseTable::new(label).await.unwrap();
    let store = HbaseColdStore::connect(hbase_config(&hbase_address(), table.name()))
        .await
        .unwrap();
    (store, table)
}

/// The cells of one row, read over Thrift: column → (value, timestamp).
async fn live_row(table: &HbaseTable, row: &[u8]) -> BTreeMap<Vec<u8>, (Vec<u8>, i64)> {
    let (table, row) = (table.name().as_bytes().to_vec(), row.to_vec());
    let rows = with_hbase_client("getRow", move |client| {
        use hbase_thrift::hbase::THbaseSyncClient;
        client.get_row(table, row, BTreeMap::new())
    })
    .await
    .unwrap();
    rows.into_iter()
        .flat_map(|result| result.columns.unwrap_or_default())
        .map(|(column, cell)| {
            (
                column,
                (
                    cell.value.unwrap_or_default(),
                    cell.timestamp.unwrap_or_default(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn hbase_rows_follow_the_documented_layout() {
    let (store, table) = live_store("layout").await;
    let acme = tenant("acme");
    let id = id_at(37, BASE_MS);
    let stored = order(&acme, id, 5);
    assert!(store.put(&stored).await.unwrap());

    let name = table.name().as_bytes().to_vec();
    let families = with_hbase_client("getColumnDescriptors", move |client| {
        use hbase_thrift::hbase::THbaseSyncClient;
        client.get_column_descriptors(name)
    })
    .await
    .unwrap();
    let families: BTreeMap<Vec<u8>, i32> = families
        .into_iter()
        .map(|(family, descriptor)| (family, descriptor.max_versions.unwrap_or_default()))
        .collect();
    assert_eq!(
        families,
        BTreeMap::from([(b"d:".to_vec(), 1)]),
        "family d, one version"
    );
    let row = hb::row_key(16, &acme, id);
    assert_eq!(row[0], 37 % 16, "salt = bucket % salt_buckets");
    assert_eq!(
        &row[1..],
        [b"acme\0".as_slice(), &id.get().to_be_bytes()].concat()
    );
    let cells = live_row(&table, &row).await;
    assert!(!cells.is_empty(), "the row is stored under that key");

    let (json, json_timestamp) = &cells[COLUMN_ORDER];
    assert_eq!(
        *json_timestamp, 5,
        "data cells carry the version as timestamp"
    );
    assert_eq!(serde_json::from_slice::<Order>(json).unwrap(), stored);
    let (version, _server_time) = &cells[COLUMN_VERSION];
    assert_eq!(version.as_slice(), 5u64.to_be_bytes());
    let (status, status_timestamp) = &cells[COLUMN_STATUS];
    assert_eq!(
        (*status_timestamp, status.as_slice()),
        (5, b"status-v5".as_slice())
    );
    let (created, _) = &cells[COLUMN_CREATED];
    assert_eq!(created.as_slice(), (BASE_MS as i64).to_be_bytes());
    drop(store);
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_same_version_repairs_a_writer_that_died_after_its_claim() {
    let (store, table) = live_store("repair").await;
    let acme = tenant("acme");
    let id = id_at(2, BASE_MS);
    store.put(&order(&acme, id, 1)).await.unwrap();
    // a writer of version 2 claimed d:v (a put at server time, as its checkAndPut does) and
    // died before its data cells
    let row = hb::row_key(16, &acme, id);
    let (name, claimed_row) = (table.name().as_bytes().to_vec(), row.clone());
    with_hbase_client("mutateRow", move |client| {
        use hbase_thrift::hbase::{Mutation, THbaseSyncClient};
        let claim = Mutation::new(
            false,
            COLUMN_VERSION.to_vec(),
            2u64.to_be_bytes().to_vec(),
            true,
        );
        client.mutate_row(name, claimed_row, vec![claim], BTreeMap::new())
    })
    .await
    .unwrap();
    assert_eq!(store.get(&acme, id).await.unwrap().unwrap().main.version, 1);
    // redelivery of version 2 writes nothing new but repairs the data
    assert!(!store.put(&order(&acme, id, 2)).await.unwrap());
    assert_eq!(
        store.get(&acme, id).await.unwrap().unwrap(),
        order(&acme, id, 2)
    );
    drop(store);
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_a_late_stale_data_write_stays_hidden() {
    let (store, table) = live_store("late").await;
    let acme = tenant("acme");
    let id = id_at(2, BASE_MS);
    store.put(&order(&acme, id, 3)).await.unwrap();
    // the race the cell timestamps close: a writer of version 2 claimed d:v before version 3
    // did, and its data write arrives last, over the wire, with timestamp 2
    let row = hb::row_key(16, &acme, id);
    let stale = serde_json::to_vec(&order(&acme, id, 2)).unwrap();
    let name = table.name().as_bytes().to_vec();
    with_hbase_client("mutateRowTs", move |client| {
        use hbase_thrift::hbase::{Mutation, THbaseSyncClient};
        let mutation = Mutation::new(false, COLUMN_ORDER.to_vec(), stale, true);
        client.mutate_row_ts(name, row, vec![mutation], 2, BTreeMap::new())
    })
    .await
    .unwrap();
    assert_eq!(
        store.get(&acme, id).await.unwrap().unwrap(),
        order(&acme, id, 3)
    );
    assert!(!store.put(&order(&acme, id, 2)).await.unwrap());
    drop(store);
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_salt_count_cannot_change_for_a_table() {
    let (store, table) = live_store("salted").await;
    drop(store);
    let error = HbaseColdStore::connect(HbaseConfig {
        salt_buckets: 8,
        ..hbase_config(&hbase_address(), table.name())
    })
    .await
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput);
    assert_eq!(error.field.as_deref(), Some("/cold_store/salt_buckets"));
    // same count: fine (how often createTable is called is counted on the double, below)
    HbaseColdStore::connect(hbase_config(&hbase_address(), table.name()))
        .await
        .unwrap();
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_missing_table_is_refused_when_creation_is_off() {
    let table = HbaseTable::new("absent").await.unwrap();
    let error = HbaseColdStore::connect(HbaseConfig {
        create_table: false,
        ..hbase_config(&hbase_address(), table.name())
    })
    .await
    .unwrap_err();
    assert_eq!(error.field.as_deref(), Some("/cold_store/table"));
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn hbase_a_cut_connection_is_unavailable_and_the_store_recovers() {
    let table = HbaseTable::new("cut").await.unwrap();
    let proxy = TcpProxy::start(hbase_address()).await.unwrap();
    let store = HbaseColdStore::connect(HbaseConfig {
        io_timeout: std::time::Duration::from_secs(2),
        connect_timeout: std::time::Duration::from_secs(1),
        ..hbase_config(&proxy.host_port(), table.name())
    })
    .await
    .unwrap();
    let acme = tenant("acme");
    let first = order(&acme, id_at(1, BASE_MS), 1);
    assert!(store.put(&first).await.unwrap());

    proxy.block();
    let second = order(&acme, id_at(2, BASE_MS + 1), 1);
    let error = store.put(&second).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    let error = store.get(&acme, first.main.id).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);

    proxy.restore();
    assert!(
        store.put(&second).await.unwrap(),
        "a new connection works once the server is reachable again"
    );
    assert_eq!(store.get(&acme, first.main.id).await.unwrap(), Some(first));
    drop(store);
    table.cleanup().await.unwrap();
}

/// Found by the soak (tests/soak.rs in `ordercenter`): a cut kills every idle pooled
/// connection, and each one used to fail a call of its own after the server came back; the
/// projector then took an order failing right after others went through for a bad order
/// and dead-lettered it. The first failure on the wire now drops the idle ones too.
#[tokio::test]
async fn hbase_after_a_cut_no_call_fails_on_a_dead_idle_connection() {
    let table = HbaseTable::new("cut_idle").await.unwrap();
    let proxy = TcpProxy::start(hbase_address()).await.unwrap();
    let store = std::sync::Arc::new(
        HbaseColdStore::connect(HbaseConfig {
            io_timeout: std::time::Duration::from_secs(2),
            connect_timeout: std::time::Duration::from_secs(1),
            max_connections: 8,
            ..hbase_config(&proxy.host_port(), table.name())
        })
        .await
        .unwrap(),
    );
    let acme = tenant("acme");
    // several connections at once, all back in the pool afterwards
    let puts: Vec<_> = (0..8u64)
        .map(|n| {
            let store = std::sync::Arc::clone(&store);
            let order = order(&acme, id_at(10 + n as u16, BASE_MS + n), 1);
            tokio::spawn(async move { store.put(&order).await })
        })
        .collect();
    for put in puts {
        assert!(put.await.unwrap().unwrap());
    }
    assert!(proxy.forwarded() >= 2, "the pool holds several connections");

    proxy.block();
    let error = store.get(&acme, id_at(10, BASE_MS)).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    proxy.restore();
    for n in 0..4u64 {
        let order = order(&acme, id_at(30 + n as u16, BASE_MS + 100 + n), 1);
        assert!(
            store.put(&order).await.unwrap(),
            "call {n} after the restore failed"
        );
    }
    drop(store);
    table.cleanup().await.unwrap();
}

#[tokio::test]
async fn cold_store_urls_open_both_adapters() {
    let table = HbaseTable::new("by_url").await.unwrap();
    let store = oc_cold_store::ColdStoreConfig::parse(&format!(
        "hbase://{}?table={}&salt_buckets=4",
        hbase_address(),
        table.name()
    ))
    .unwrap()
    .open()
    .await
    .unwrap();
    let acme = tenant("acme");
    let stored = order(&acme, id_at(6, BASE_MS), 1);
    assert!(store.put(&stored).await.unwrap());
    let row = hb::row_key(4, &acme, stored.main.id);
    assert_eq!(row[0], 6 % 4);
    assert!(
        !live_row(&table, &row).await.is_empty(),
        "stored under the 4-salt key"
    );
    drop(store);
    table.cleanup().await.unwrap();

    let dir = unique_dir("url");
    let url = format!("redb://{}", dir.join("cold.redb").display());
    let store = oc_cold_store::ColdStoreConfig::parse(&url)
        .unwrap()
        .open()
        .await
        .unwrap();
    assert!(store.put(&stored).await.unwrap());
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}

// ---- HBase only, on the Thrift double: what a live server cannot show ----

async fn hbase_store(double: &HbaseDouble, table: &str) -> HbaseColdStore {
    HbaseColdStore::connect(hbase_config(&double.address(), table))
        .await
        .unwrap()
}

/// Which calls a put makes, and that a second connect does not create the table again.
#[tokio::test]
async fn hbase_double_counts_the_calls_of_a_put_and_of_a_reconnect() {
    let double = HbaseDouble::start();
    let store = hbase_store(&double, "layout").await;
    let acme = tenant("acme");
    let stored = order(&acme, id_at(37, BASE_MS), 5);
    assert!(store.put(&stored).await.unwrap());
    assert_eq!(
        double.calls("checkAndPut"),
        2,
        "salt meta row + the version claim"
    );
    assert_eq!(double.calls("mutateRowTs"), 1);
    hbase_store(&double, "layout").await;
    assert_eq!(double.calls("createTable"), 1);
}

/// Every scanner a scan opens is closed, also after a bad cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hbase_double_sees_every_scanner_closed() {
    let double = HbaseDouble::start();
    for (label, case) in [("scan", 0), ("tenants", 1), ("cursor", 2)] {
        let mut harness = Harness::hbase_double(label, &double).await;
        match case {
            0 => scan_pages_a_time_window_in_id_order(&mut harness).await,
            1 => reads_are_tenant_scoped(&mut harness).await,
            _ => bad_cursor_is_invalid_input(&mut harness).await,
        }
        assert_eq!(double.open_scanners(), 0, "every scanner closed ({label})");
        harness.finish().await;
    }
}

#[tokio::test]
async fn hbase_framed_compact_wire_and_unsalted_keys_work() {
    let double = HbaseDouble::start_with(Wire {
        framed: true,
        compact: true,
    });
    let store = HbaseColdStore::connect(HbaseConfig {
        framed: true,
        compact: true,
        salt_buckets: 1,
        ..hbase_config(&double.address(), "framed")
    })
    .await
    .unwrap();
    let acme = tenant("acme");
    let orders: Vec<Order> = (0..30u64)
        .map(|i| order(&acme, id_at((i * 101 % 1024) as u16, BASE_MS + i * 10), 1))
        .collect();
    for order in &orders {
        assert!(store.put(order).await.unwrap());
    }
    let scanned = scan_all(&store, &acme, at_ms(BASE_MS), at_ms(BASE_MS + 300), 4).await;
    assert_eq!(scanned, orders);
    assert!(
        double
            .row_keys("framed")
            .iter()
            .all(|row| row[0] == 0 || row[0] == 0xff)
    );
}

#[tokio::test]
async fn hbase_failures_are_unavailable() {
    let double = HbaseDouble::start();
    let store = hbase_store(&double, "failing").await;
    let acme = tenant("acme");
    let stored = order(&acme, id_at(1, BASE_MS), 1);
    double.set_failing(true);
    let error = store.put(&stored).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    let error = store.get(&acme, stored.main.id).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    double.set_failing(false);
    assert!(
        store.put(&stored).await.unwrap(),
        "the pooled connection still works"
    );

    // nothing listening: refused connections are Unavailable too
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let error = HbaseColdStore::connect(HbaseConfig::new(closed.to_string()))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
}

/// A row over the live HBase's cell size limit (`hbase.client.keyvalue.maxsize`, 10 MB by
/// default) is refused with `IllegalArgument`: permanent for that order (the projector
/// dead-letters it), not "HBase is down" (the projector would stall on it forever). The next
/// order goes in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hbase_refuses_an_oversized_row_for_good_and_takes_the_next() {
    let harness = Harness::hbase("oversized").await;
    let acme = tenant("acme");
    let mut huge = order(&acme, id_at(3, BASE_MS), 1);
    huge.lines[0].product_name = "x".repeat(11 * 1024 * 1024);
    let error = harness.store.put(&huge).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidInput, "{error}");
    assert!(!error.is_transient());
    assert!(error.message.contains("KeyValue size too large"), "{error}");
    assert!(
        !error.message.contains('\n'),
        "the server's stack trace is not kept: {error}"
    );
    let fine = order(&acme, id_at(4, BASE_MS), 1);
    assert!(harness.store.put(&fine).await.unwrap());
    harness.finish().await;
}
