//! The `ColdStore` conformance suite: every case a cold-store adapter must pass, run by
//! [`cold_store_conformance!`](crate::cold_store_conformance) over a harness that opens the
//! adapter under test (redb and HBase in `oc-cold-store`, `Guarded<redb>` in
//! `oc-resilience`). The fixtures are public for the adapters' own engine-specific tests.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use oc_model::aftersale::{
    AfterSale, AfterSaleChannel, AfterSaleHistoryEntry, AfterSaleId, AfterSaleLine,
    AfterSaleRefund, AfterSaleType, Reviewer,
};
use oc_model::archive::ArchivedAfterSale;
use oc_model::ext::Sealed;
use oc_model::order::Finance;
use oc_model::ports::{ColdStore, PageRequest};
use oc_model::{
    Bucket, Currency, ErrorCode, ExtValue, Money, Order, OrderId, OrderIdGenerator, Protected,
    StatusCode, TenantId,
};
use rand::seq::SliceRandom;
use time::OffsetDateTime;

use crate::fixtures::OrderBuilder;
pub use crate::fixtures::{cny, sealed, tenant};

/// One adapter under test, opened fresh for one case.
pub trait ColdStoreHarness: Send {
    /// The store under test, shared (the concurrent cases hand it to tasks).
    fn shared(&self) -> &Arc<dyn ColdStore>;
    /// The store under test.
    fn store(&self) -> &dyn ColdStore {
        &**self.shared()
    }
    /// Drop the store and open a new one over the same data (file or server).
    fn reopen(&mut self) -> impl Future<Output = ()> + Send;
    /// Remove what the case left (file, table).
    fn finish(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized;
}

// ---- fixtures ----

/// Base time of the fixtures: 2026-09-21T…Z.
pub const BASE_MS: u64 = 1_790_000_000_000;

pub fn at_ms(unix_ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap()
}

/// The id a fresh generator hands out for `bucket` at `unix_ms`. A generator shared by the
/// tests would borrow milliseconds ahead (it never goes back), and the scan cases need ids
/// at exact times; the cases keep `(bucket, unix_ms)` distinct where ids must differ.
pub fn id_at(bucket: u16, unix_ms: u64) -> OrderId {
    OrderIdGenerator::new(2)
        .unwrap()
        .next(Bucket::new(bucket).unwrap(), unix_ms)
}

/// A valid, populated order (sealed PII, extension columns) with the given identity,
/// created when its id says, its status and last change telling its version.
pub fn order(tenant_id: &TenantId, id: OrderId, version: u64) -> Order {
    let created = at_ms(id.unix_ms());
    OrderBuilder::minimal(tenant_id, "buyer-1")
        .id(id)
        .created_at(created)
        .version(version)
        .status(&format!("status-v{version}"))
        .business_identity("cold-chain")
        .merchant("merchant-9")
        .sealed_receiver()
        .ext(1, Protected::Plain(ExtValue::Enum("frozen".into())))
        .ext(
            3,
            Protected::Sealed {
                sealed: Sealed {
                    ciphertext: "AQAAAAEcipher".into(),
                    blind_index: None,
                },
            },
        )
        .with(|order| {
            order.main.external_ref = Some(format!("ext-{id}"));
            order.main.updated_at = created + time::Duration::seconds(version as i64);
            let line = &mut order.lines[0];
            line.sku = "sku-a".into();
            line.product_name = "冻品 A".into();
            line.unit_weight_grams = Some(500);
            line.payable = cny(600);
            order.logistics.service_product = Some("cold-chain-2-8c".into());
            order.finance = Finance {
                currency: Currency::CNY,
                goods_total: cny(600),
                discount_total: cny(0),
                freight: cny(0),
                payable: cny(600),
                payments: vec![],
            };
            order.channel.source = Some("app".into());
            order.operation.created_by = Some("bl-main".into());
        })
        .build()
}

pub fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest { cursor, limit }
}

/// Every order of a scan, page by page; panics on a repeated id.
pub async fn scan_all(
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

pub async fn put_then_get_round_trips(harness: &mut impl ColdStoreHarness) {
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

pub async fn missing_order_is_none(harness: &mut impl ColdStoreHarness) {
    let store = harness.store();
    let acme = tenant("acme");
    assert!(store.get(&acme, id_at(3, BASE_MS)).await.unwrap().is_none());
    let stored = order(&acme, id_at(3, BASE_MS), 1);
    store.put(&stored).await.unwrap();
    // the neighbour ids (same bucket, next sequence) are still missing
    let next = OrderId::from_raw(stored.main.id.get() + 1).unwrap();
    assert!(store.get(&acme, next).await.unwrap().is_none());
}

pub async fn stale_versions_never_overwrite(harness: &mut impl ColdStoreHarness) {
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

pub async fn reads_are_tenant_scoped(harness: &mut impl ColdStoreHarness) {
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

pub async fn scan_pages_a_time_window_in_id_order(harness: &mut impl ColdStoreHarness) {
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

pub async fn bad_cursor_is_invalid_input(harness: &mut impl ColdStoreHarness) {
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

pub async fn plaintext_pii_is_refused(harness: &mut impl ColdStoreHarness) {
    let store = harness.store();
    let acme = tenant("acme");
    let mut leaky = order(&acme, id_at(8, BASE_MS), 1);
    leaky.parties.receiver.as_mut().unwrap().phone = Protected::Plain("13800000000".into());
    let error = store.put(&leaky).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Internal);
    assert!(store.get(&acme, leaky.main.id).await.unwrap().is_none());
}

pub async fn data_survives_reopen(harness: &mut impl ColdStoreHarness) {
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

pub async fn concurrent_versions_end_with_the_newest(harness: &mut impl ColdStoreHarness) {
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
                let store = Arc::clone(harness.shared());
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

/// Many puts at once, of many orders (an adapter may commit them together): each put gets
/// its own answer, the answer "unless a newer version is stored" would give it alone.
pub async fn concurrent_puts_of_many_orders_each_get_their_own_answer(
    harness: &mut impl ColdStoreHarness,
) {
    const ORDERS: u16 = 48;
    let acme = tenant("acme");
    let ids: Vec<OrderId> = (0..ORDERS).map(|n| id_at(600 + n, BASE_MS)).collect();
    // every second order is stored at version 2 first
    for id in ids.iter().step_by(2) {
        assert!(harness.store().put(&order(&acme, *id, 2)).await.unwrap());
    }
    // then, all at once: version 1 (stale where 2 is stored), version 3 of every order
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        for version in [1, 3] {
            let store = Arc::clone(harness.shared());
            let order = order(&acme, *id, version);
            tasks.push((
                n,
                version,
                tokio::spawn(async move { store.put(&order).await }),
            ));
        }
    }
    for (n, version, task) in tasks {
        let written = task.await.unwrap().unwrap();
        match version {
            // version 1 of an order stored at 2 is stale; of a new order it is written when
            // it comes before version 3, so either answer is right there
            1 if n % 2 == 0 => assert!(!written, "order {n}: version 1 over version 2"),
            1 => {}
            _ => assert!(written, "order {n}: version 3 is the newest"),
        }
    }
    for (n, id) in ids.iter().enumerate() {
        let read = harness.store().get(&acme, *id).await.unwrap().unwrap();
        assert_eq!(read, order(&acme, *id, 3), "order {n}");
    }
}

pub fn history_entry(tenant_id: &TenantId, id: OrderId, version: u64) -> oc_model::HistoryEntry {
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

pub async fn history_round_trips_is_replaced_and_tenant_scoped(
    harness: &mut impl ColdStoreHarness,
) {
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

pub fn archived_after_sale(
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

pub async fn after_sales_round_trip_are_indexed_by_id_and_tenant_scoped(
    harness: &mut impl ColdStoreHarness,
) {
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

pub async fn scan_stream_yields_the_window_once_in_id_order_a_page_at_a_time(
    harness: &mut impl ColdStoreHarness,
) {
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

/// One `#[tokio::test]` per case in a module `$module`, each on a fresh harness from
/// `$open(label)` (an async fn taking the case's name, resolved beside the macro call);
/// `also: [name, …]` adds the adapter's own cases to the module, each an async fn
/// `name(&harness)` beside the macro call.
#[macro_export]
macro_rules! cold_store_conformance {
    ($module:ident, $open:path $(, also: [$($extra:ident),* $(,)?])?) => {
        $crate::cold_store_conformance!(@cases $module, $open, [$($($extra),*)?];
            put_then_get_round_trips,
            missing_order_is_none,
            stale_versions_never_overwrite,
            reads_are_tenant_scoped,
            scan_pages_a_time_window_in_id_order,
            bad_cursor_is_invalid_input,
            plaintext_pii_is_refused,
            data_survives_reopen,
            concurrent_versions_end_with_the_newest,
            concurrent_puts_of_many_orders_each_get_their_own_answer,
            history_round_trips_is_replaced_and_tenant_scoped,
            after_sales_round_trip_are_indexed_by_id_and_tenant_scoped,
            scan_stream_yields_the_window_once_in_id_order_a_page_at_a_time,
        );
    };
    (@cases $module:ident, $open:path, [$($extra:ident),*]; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    use $crate::cold_store::ColdStoreHarness as _;
                    let mut harness = $open(stringify!($case)).await;
                    $crate::cold_store::$case(&mut harness).await;
                    harness.finish().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $extra() {
                    use $crate::cold_store::ColdStoreHarness as _;
                    let mut harness = $open(stringify!($extra)).await;
                    super::$extra(&mut harness).await;
                    harness.finish().await;
                }
            )*
        }
    };
}
