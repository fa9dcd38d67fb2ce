//! The `OrderStore` conformance suite: every case the system of record must pass, run by
//! [`order_store_conformance!`](crate::order_store_conformance) over a harness that opens
//! the adapter under test (SQLite files and MariaDB databases in `oc-store-sql`). What only
//! the SQL adapter has (group commit, key-ring reports, its shard pools, migrations on
//! reconnect) stays in that crate's own tests.
//!
//! Not run over `Guarded<P>`: the breaker wraps the dependencies a caller can degrade
//! around (search, cold store, bus, cache, stock gate), never the system of record.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use oc_model::ports::{IdempotencyRecord, InsertOutcome, NewOrder, OrderStore, PageRequest};
use oc_model::{
    BusinessDomain, ColumnIndex, ErrorCode, ExtValue, KvIdentifier, KvValue, Order, OrderEvent,
    OrderEventKind, OrderId, PartyId, Protected, ShardId,
};

use crate::fixtures::{order, tenant};

/// One adapter under test, opened fresh (empty) for one case.
pub trait OrderStoreHarness: Send + Sync {
    /// The store under test, shared (the concurrent cases hand it to tasks).
    fn shared(&self) -> &Arc<dyn OrderStore>;
    /// The store under test.
    fn store(&self) -> &dyn OrderStore {
        &**self.shared()
    }
    /// How many records of one kind the store holds over all its shards, named as the SQL
    /// tables are: `orders`, `order_lines`, `order_identifiers`, `outbox`, `idempotency`.
    /// The cases count what a refused write left behind (nothing) through it.
    fn rows(&self, kind: &'static str) -> impl Future<Output = i64> + Send;
    /// The shard that holds `id` (its bucket's).
    fn shard_of(&self, id: OrderId) -> ShardId;
    /// Remove what the case left (files, databases).
    fn finish(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized;
}

pub fn event(order: &Order, kind: OrderEventKind) -> OrderEvent {
    OrderEvent::of(order, kind)
}

pub fn new_order(order: Order, idempotency: Option<IdempotencyRecord>) -> NewOrder {
    let event = event(&order, OrderEventKind::Created);
    NewOrder {
        order,
        idempotency,
        event,
    }
}

/// Inserts `order`, which must be created (not replayed).
pub async fn create(store: &dyn OrderStore, order: Order) -> Order {
    match store.insert(new_order(order, None)).await.unwrap() {
        InsertOutcome::Created(order) => order,
        InsertOutcome::Replayed(_) => panic!("unexpected replay"),
    }
}

// ---- the cases ----

pub async fn create_then_get_round_trips(h: &impl OrderStoreHarness) {
    let store = h.store();
    let original = order(&tenant("express"), "buyer-1");
    let created = create(store, original.clone()).await;
    assert_eq!(created, original);
    let read = store
        .get(&tenant("express"), original.main.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read, original,
        "every group, line, extension column and identifier survives the round trip"
    );
    assert_eq!(h.rows("outbox").await, 1);
    assert_eq!(h.rows("order_lines").await, 2);
    assert_eq!(h.rows("order_identifiers").await, 3);
}

pub async fn reads_are_tenant_scoped(h: &impl OrderStoreHarness) {
    let store = h.store();
    let created = create(store, order(&tenant("express"), "buyer-1")).await;
    assert!(
        store
            .get(&tenant("retail"), created.main.id)
            .await
            .unwrap()
            .is_none()
    );
    let listed = store
        .list_by_buyer(
            &tenant("retail"),
            &created.main.buyer_id,
            PageRequest {
                cursor: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    let mut foreign = created.clone();
    foreign.main.tenant = tenant("retail");
    foreign.main.version = 2;
    let refused = store
        .update(1, foreign.clone(), event(&foreign, OrderEventKind::Updated))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code,
        ErrorCode::NotFound,
        "another tenant's order cannot be updated"
    );
    let unchanged = store
        .get(&tenant("express"), created.main.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.main.version, 1);
}

pub async fn idempotency_replays_and_conflicts(h: &impl OrderStoreHarness) {
    let store = h.store();
    let first = order(&tenant("express"), "buyer-2");
    let record = IdempotencyRecord {
        key: "key-1".into(),
        request_hash: "a".repeat(64),
    };
    let created = store
        .insert(new_order(first.clone(), Some(record.clone())))
        .await
        .unwrap();
    assert!(matches!(created, InsertOutcome::Created(_)));
    // a retry builds a new order (new id) from the same request: the first one comes back
    let retry = order(&tenant("express"), "buyer-2");
    match store
        .insert(new_order(retry, Some(record.clone())))
        .await
        .unwrap()
    {
        InsertOutcome::Replayed(replayed) => assert_eq!(replayed, first),
        InsertOutcome::Created(_) => panic!("a retry created a second order"),
    }
    let other_body = IdempotencyRecord {
        key: "key-1".into(),
        request_hash: "b".repeat(64),
    };
    let refused = store
        .insert(new_order(
            order(&tenant("express"), "buyer-2"),
            Some(other_body),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
    assert_eq!(h.rows("orders").await, 1);
    assert_eq!(h.rows("outbox").await, 1);
}

pub async fn concurrent_identical_creates_make_one_order(h: &impl OrderStoreHarness) {
    let store = Arc::clone(h.shared());
    let record = IdempotencyRecord {
        key: "burst".into(),
        request_hash: "c".repeat(64),
    };
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = Arc::clone(&store);
            let record = record.clone();
            tokio::spawn(async move {
                loop {
                    match store
                        .insert(new_order(
                            order(&tenant("express"), "buyer-burst"),
                            Some(record.clone()),
                        ))
                        .await
                    {
                        Ok(outcome) => return outcome,
                        // SQLite may answer busy under a burst; the API retries these
                        Err(e) if e.code == ErrorCode::Retryable => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            InsertOutcome::Created(order) => {
                created += 1;
                ids.insert(order.main.id);
            }
            InsertOutcome::Replayed(order) => {
                ids.insert(order.main.id);
            }
        }
    }
    assert_eq!(created, 1, "exactly one submission creates");
    assert_eq!(ids.len(), 1, "every submission answers the same order");
    assert_eq!(h.rows("orders").await, 1);
    assert_eq!(h.rows("outbox").await, 1);
}

pub async fn update_is_compare_and_set(h: &impl OrderStoreHarness) {
    let store = h.store();
    let created = create(store, order(&tenant("express"), "buyer-3")).await;
    let mut changed = created.clone();
    changed.main.version = 2;
    changed.operation.remark = Some(Protected::Plain("leave at the door".into()));
    changed
        .extension
        .columns
        .remove(&ColumnIndex::new(20).unwrap());
    changed.extension.identifiers.retain(|i| i.key != "vip");
    changed.lines[1].ext.insert(
        ColumnIndex::new(5).unwrap(),
        Protected::Plain(ExtValue::Int(7)),
    );
    let updated = store
        .update(1, changed.clone(), event(&changed, OrderEventKind::Updated))
        .await
        .unwrap();
    assert_eq!(updated, changed);
    assert_eq!(
        store
            .get(&tenant("express"), created.main.id)
            .await
            .unwrap()
            .unwrap(),
        changed
    );

    // a writer that still holds version 1 loses, and nothing of its change lands
    let mut stale = created.clone();
    stale.main.version = 2;
    stale.operation.remark = Some(Protected::Plain("stale".into()));
    let refused = store
        .update(1, stale.clone(), event(&stale, OrderEventKind::Updated))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::PreconditionFailed);
    assert_eq!(
        store
            .get(&tenant("express"), created.main.id)
            .await
            .unwrap()
            .unwrap(),
        changed
    );
    assert_eq!(
        h.rows("outbox").await,
        2,
        "one event per successful change only"
    );

    let mut missing = order(&tenant("express"), "buyer-3");
    missing.main.version = 2;
    let refused = store
        .update(1, missing.clone(), event(&missing, OrderEventKind::Updated))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::NotFound);
}

/// `order` at `version`, with the version written into every line (`ext_05`) and into the
/// `stamp` identifier: a read that mixes a main row with another version's children shows it.
fn stamped(mut order: Order, version: u64) -> Order {
    order.main.version = version;
    for line in &mut order.lines {
        line.ext.insert(
            ColumnIndex::new(5).unwrap(),
            Protected::Plain(ExtValue::Int(version as i64)),
        );
    }
    order.extension.identifiers.retain(|i| i.key != "stamp");
    order.extension.identifiers.push(
        KvIdentifier::new(
            BusinessDomain::Order,
            "stamp",
            KvValue::clear(version.to_string()),
        )
        .unwrap(),
    );
    order.extension.identifiers.sort();
    order
}

/// Where `order`'s children disagree with its main row's version, if they do.
fn mixed_versions(order: &Order) -> Option<String> {
    let version = order.main.version;
    let lines: Vec<Option<&Protected<ExtValue>>> = order
        .lines
        .iter()
        .map(|line| line.ext.get(&ColumnIndex::new(5).unwrap()))
        .collect();
    let stamps: Vec<&str> = order
        .extension
        .identifiers
        .iter()
        .filter(|i| i.key == "stamp")
        .map(|i| i.value.stored())
        .collect();
    let lines_agree = lines
        .iter()
        .all(|value| *value == Some(&Protected::Plain(ExtValue::Int(version as i64))));
    let version_text = version.to_string();
    if lines_agree && stamps == [version_text.as_str()] {
        None
    } else {
        Some(format!(
            "main row at version {version}, lines {lines:?}, stamp identifiers {stamps:?}"
        ))
    }
}

pub async fn reads_never_mix_versions_of_an_order(h: &impl OrderStoreHarness) {
    let store = h.store();
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const UPDATES: u64 = 300;
    let express = tenant("express");
    let mut current = create(store, stamped(order(&express, "buyer-snapshot"), 1)).await;
    let id = current.main.id;
    let buyer = current.main.buyer_id.clone();
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for reader in 0..4 {
        let (store, express, buyer) = (Arc::clone(h.shared()), express.clone(), buyer.clone());
        let (done, reads) = (done.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut mixed = Vec::new();
            while !done.load(Ordering::Relaxed) {
                // three readers by id, one by the buyer's list: both read an order's rows
                let read = if reader == 0 {
                    let page = PageRequest {
                        limit: 10,
                        cursor: None,
                    };
                    let page = store.list_by_buyer(&express, &buyer, page).await.unwrap();
                    page.items.into_iter().next().unwrap()
                } else {
                    store.get(&express, id).await.unwrap().unwrap()
                };
                if let Some(problem) = mixed_versions(&read) {
                    mixed.push(problem);
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            mixed
        }));
    }
    for version in 2..=UPDATES {
        // every update is raced by at least one read
        let seen = reads.load(Ordering::Relaxed);
        while reads.load(Ordering::Relaxed) == seen {
            tokio::task::yield_now().await;
        }
        let next = stamped(current.clone(), version);
        current = store
            .update(
                version - 1,
                next.clone(),
                event(&next, OrderEventKind::Updated),
            )
            .await
            .unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let mut mixed = Vec::new();
    for reader in readers {
        mixed.extend(reader.await.unwrap());
    }
    assert!(
        mixed.is_empty(),
        "{} of {} reads mixed versions, e.g. {:?}",
        mixed.len(),
        reads.load(Ordering::Relaxed),
        mixed.iter().take(3).collect::<Vec<_>>()
    );
    assert_eq!(
        store.get(&express, id).await.unwrap().unwrap(),
        current,
        "the last version is read whole"
    );
}

pub async fn outbox_is_ordered_and_marked(h: &impl OrderStoreHarness) {
    let store = h.store();
    let mut expected = Vec::new();
    for n in 0..6 {
        let created = create(store, order(&tenant("express"), &format!("buyer-o{n}"))).await;
        expected.push((created.main.id, 1));
        let mut next = created.clone();
        next.main.version = 2;
        store
            .update(1, next.clone(), event(&next, OrderEventKind::Updated))
            .await
            .unwrap();
        expected.push((created.main.id, 2));
    }
    let mut seen = Vec::new();
    for shard in store.shards() {
        let pending = store.pending_outbox(shard, 100).await.unwrap();
        assert!(pending.windows(2).all(|w| w[0].sequence < w[1].sequence));
        for entry in &pending {
            assert_eq!(entry.shard, shard);
            assert_eq!(h.shard_of(entry.event.order_id), shard);
            seen.push((entry.event.order_id, entry.event.version));
        }
        // per order, version 1 precedes version 2
        let versions: Vec<_> = pending
            .iter()
            .map(|e| (e.event.order_id, e.event.version))
            .collect();
        for (id, _) in &versions {
            let mine: Vec<u64> = versions
                .iter()
                .filter(|(i, _)| i == id)
                .map(|(_, v)| *v)
                .collect();
            assert_eq!(mine, vec![1, 2]);
        }
        let first_two: Vec<u64> = pending.iter().take(2).map(|e| e.sequence).collect();
        store.mark_published(shard, &first_two).await.unwrap();
        let left = store.pending_outbox(shard, 100).await.unwrap();
        assert_eq!(left.len(), pending.len() - first_two.len());
        assert!(left.iter().all(|e| !first_two.contains(&e.sequence)));
    }
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

pub async fn buyer_lists_page_newest_first(h: &impl OrderStoreHarness) {
    let store = h.store();
    let mut mine = Vec::new();
    for _ in 0..25 {
        mine.push(
            create(store, order(&tenant("express"), "buyer-list"))
                .await
                .main
                .id,
        );
    }
    create(store, order(&tenant("express"), "buyer-other")).await;
    create(store, order(&tenant("retail"), "buyer-list")).await;
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_by_buyer(
                &tenant("express"),
                &PartyId::parse("buyer-list").unwrap(),
                PageRequest { cursor, limit: 10 },
            )
            .await
            .unwrap();
        pages.push(page.items.iter().map(|o| o.main.id).collect::<Vec<_>>());
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5]
    );
    let listed: Vec<_> = pages.concat();
    mine.reverse();
    assert_eq!(
        listed, mine,
        "newest first, each order once, no other buyer or tenant"
    );
}

pub async fn plaintext_pii_is_refused(h: &impl OrderStoreHarness) {
    let store = h.store();
    let mut leaky = order(&tenant("express"), "buyer-4");
    if let Some(receiver) = leaky.parties.receiver.as_mut() {
        receiver.phone = Protected::Plain("13812345678".into());
    }
    let refused = store.insert(new_order(leaky, None)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Internal);
    assert_eq!(h.rows("orders").await, 0);
}

pub async fn duplicate_external_ref_writes_nothing(h: &impl OrderStoreHarness) {
    let store = h.store();
    let mut first = order(&tenant("express"), "buyer-5");
    first.main.external_ref = Some("ERP-1".into());
    create(store, first).await;
    let mut second = order(&tenant("express"), "buyer-5");
    second.main.external_ref = Some("ERP-1".into());
    let refused = store.insert(new_order(second, None)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::AlreadyExists);
    assert_eq!(refused.field.as_deref(), Some("/external_ref"));
    assert_eq!(h.rows("orders").await, 1);
    assert_eq!(h.rows("order_lines").await, 2);
    assert_eq!(h.rows("outbox").await, 1);
}

/// An order id generated twice (two nodes with one node id) is a server fault, not the
/// caller's duplicate external reference, and writes nothing.
pub async fn a_reused_order_id_is_not_blamed_on_the_caller(h: &impl OrderStoreHarness) {
    let store = h.store();
    let first = create(store, order(&tenant("express"), "buyer-7")).await;
    let mut second = order(&tenant("express"), "buyer-7");
    second.main.id = first.main.id;
    second.main.external_ref = Some("ERP-2".into());
    let refused = store.insert(new_order(second, None)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Internal, "{refused:?}");
    assert_eq!(refused.field, None);
    assert_eq!(h.rows("orders").await, 1);
    assert_eq!(h.rows("order_lines").await, 2);
    assert_eq!(h.rows("outbox").await, 1);
}

/// `get_many` answers every key as `get` does, in the keys' order: across shards and tenants,
/// a key twice, another tenant's id and an unknown id (none), more orders than one statement
/// names (the SQL adapter reads 500 per statement, per shard and tenant: 1,200 orders of one
/// tenant over two shards are more than 500 on each).
pub async fn many_orders_are_read_as_each_alone(h: &impl OrderStoreHarness) {
    use futures_util::StreamExt as _;
    let store = h.store();
    let orders: Vec<Order> = (0..1_300)
        .map(|n| {
            order(
                &tenant(if n % 13 == 0 { "retail" } else { "express" }),
                &format!("buyer-{}", n % 7),
            )
        })
        .collect();
    let created: Vec<Order> = futures_util::stream::iter(orders)
        .map(|order| create(store, order))
        .buffer_unordered(32)
        .collect()
        .await;
    let shards: HashSet<ShardId> = created.iter().map(|o| h.shard_of(o.main.id)).collect();
    assert!(shards.len() > 1, "the orders span the shards");
    let unknown = order(&tenant("express"), "buyer-x").main.id;
    let mut keys: Vec<_> = created
        .iter()
        .map(|o| (o.main.tenant.clone(), o.main.id))
        .collect();
    keys.push(keys[3].clone());
    keys.push((
        tenant("retail"),
        created
            .iter()
            .find(|o| o.main.tenant == tenant("express"))
            .unwrap()
            .main
            .id,
    ));
    keys.push((tenant("express"), unknown));
    let many = store.get_many(&keys).await.unwrap();
    assert_eq!(many.len(), keys.len());
    for ((tenant, id), read) in keys.iter().zip(&many) {
        assert_eq!(
            read,
            &store.get(tenant, *id).await.unwrap(),
            "{tenant}/{id}"
        );
    }
    assert_eq!(many.iter().filter(|o| o.is_none()).count(), 2);
    assert_eq!(
        many[..created.len()],
        created.iter().cloned().map(Some).collect::<Vec<_>>()[..]
    );
    assert!(store.get_many(&[]).await.unwrap().is_empty());
}

/// One `#[tokio::test]` per case in a module `$module`, each on a fresh harness from
/// `$open(label)` (an async fn taking the case's name, resolved beside the macro call);
/// `also: [name, …]` adds the adapter's own cases to the module, each an async fn
/// `name(&harness)` beside the macro call.
#[macro_export]
macro_rules! order_store_conformance {
    ($module:ident, $open:path $(, also: [$($extra:ident),* $(,)?])?) => {
        $crate::order_store_conformance!(@cases $module, $open, [$($($extra),*)?];
            create_then_get_round_trips,
            reads_are_tenant_scoped,
            idempotency_replays_and_conflicts,
            concurrent_identical_creates_make_one_order,
            update_is_compare_and_set,
            reads_never_mix_versions_of_an_order,
            outbox_is_ordered_and_marked,
            buyer_lists_page_newest_first,
            plaintext_pii_is_refused,
            duplicate_external_ref_writes_nothing,
            a_reused_order_id_is_not_blamed_on_the_caller,
            many_orders_are_read_as_each_alone,
        );
    };
    (@cases $module:ident, $open:path, [$($extra:ident),*]; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    use $crate::order_store::OrderStoreHarness as _;
                    let harness = $open(stringify!($case)).await;
                    $crate::order_store::$case(&harness).await;
                    harness.finish().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $extra() {
                    use $crate::order_store::OrderStoreHarness as _;
                    let harness = $open(stringify!($extra)).await;
                    super::$extra(&harness).await;
                    harness.finish().await;
                }
            )*
        }
    };
}
