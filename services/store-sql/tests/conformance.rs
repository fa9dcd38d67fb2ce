//! The order-store conformance suite: the same cases run against SQLite files and against
//! real MariaDB databases (two shards each). Every test gets fresh shards.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use oc_model::ports::{IdempotencyRecord, InsertOutcome, NewOrder, OrderStore, PageRequest};
use oc_model::{
    BusinessDomain, ColumnIndex, ErrorCode, ExtValue, KvIdentifier, KvValue, Order, OrderEvent,
    OrderEventKind, PartyId, Protected, ShardId, TenantId,
};
use oc_store_sql::{KeyRingReport, SqlOrderStore, StoreConfig};
use sqlx::Row;

const SHARDS: usize = 2;

struct Harness {
    store: SqlOrderStore,
    /// The shard URLs, to connect a second time.
    urls: Vec<String>,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(std::path::PathBuf),
    MariaDb(oc_test_support::TestDatabases),
}

impl Harness {
    async fn sqlite(label: &str) -> Harness {
        let dir = std::env::temp_dir().join(oc_test_support::unique_prefix(label));
        std::fs::create_dir_all(&dir).unwrap();
        let urls: Vec<String> = (0..SHARDS)
            .map(|i| format!("sqlite://{}/shard-{i}.db", dir.display()))
            .collect();
        let store = SqlOrderStore::connect(StoreConfig::new(urls.clone()))
            .await
            .unwrap();
        Harness {
            store,
            urls,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    async fn mariadb(label: &str) -> Harness {
        let databases = oc_test_support::TestDatabases::create(label, SHARDS)
            .await
            .unwrap();
        let urls = databases.urls().to_vec();
        let store = SqlOrderStore::connect(StoreConfig::new(urls.clone()))
            .await
            .unwrap();
        Harness {
            store,
            urls,
            cleanup: Cleanup::MariaDb(databases),
        }
    }

    async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::Sqlite(dir) => std::fs::remove_dir_all(dir).unwrap(),
            Cleanup::MariaDb(databases) => databases.cleanup().await.unwrap(),
        }
    }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

use oc_test_support::fixtures::order;

fn event(order: &Order, kind: OrderEventKind) -> OrderEvent {
    OrderEvent::of(order, kind)
}

fn new_order(order: Order, idempotency: Option<IdempotencyRecord>) -> NewOrder {
    let event = event(&order, OrderEventKind::Created);
    NewOrder {
        order,
        idempotency,
        event,
    }
}

async fn create(store: &SqlOrderStore, order: Order) -> Order {
    match store.insert(new_order(order, None)).await.unwrap() {
        InsertOutcome::Created(order) => order,
        InsertOutcome::Replayed(_) => panic!("unexpected replay"),
    }
}

async fn count(store: &SqlOrderStore, table: &str) -> i64 {
    let mut total = 0;
    for shard in store.shards() {
        let pool = store.shard_pool(shard).unwrap();
        let row = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        total += row.try_get::<i64, _>(0).unwrap();
    }
    total
}

// ---- the cases ----

async fn create_then_get_round_trips(store: &SqlOrderStore) {
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
    assert_eq!(count(store, "outbox").await, 1);
    assert_eq!(count(store, "order_lines").await, 2);
    assert_eq!(count(store, "order_identifiers").await, 3);
}

async fn reads_are_tenant_scoped(store: &SqlOrderStore) {
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

async fn idempotency_replays_and_conflicts(store: &SqlOrderStore) {
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
    assert_eq!(count(store, "orders").await, 1);
    assert_eq!(count(store, "outbox").await, 1);
}

async fn concurrent_identical_creates_make_one_order(store: &SqlOrderStore) {
    let store = Arc::new(store.clone());
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
    assert_eq!(count(&store, "orders").await, 1);
    assert_eq!(count(&store, "outbox").await, 1);
}

/// Creates sent at once share transactions (group commit), and each still gets the answer it
/// would have had alone. First 60 plain creates at the same time, which must share
/// transactions; then, at the same time, 10 pairs that share an external reference (one of
/// each created, the other refused on `/external_ref`), 10 pairs that share an idempotency key
/// and body (one created, the other replaying it) and 20 more plain creates. (A group holding
/// a conflict is written again one by one, so the second round may share nothing.)
async fn concurrent_creates_share_transactions_and_keep_their_answers(store: &SqlOrderStore) {
    enum Kind {
        Plain,
        SharedRef(usize),
        SharedKey(usize),
    }
    let plain_round: Vec<_> = (0..60)
        .map(|n| {
            (
                Kind::Plain,
                order(&tenant("express"), &format!("group-{n}")),
                None,
            )
        })
        .collect();
    let mut mixed_round: Vec<_> = (60..80)
        .map(|n| {
            (
                Kind::Plain,
                order(&tenant("express"), &format!("group-{n}")),
                None,
            )
        })
        .collect();
    for pair in 0..10 {
        for _ in 0..2 {
            let mut shared = order(&tenant("express"), &format!("group-ref-{pair}"));
            shared.main.external_ref = Some(format!("ERP-G{pair}"));
            mixed_round.push((Kind::SharedRef(pair), shared, None));
            let record = IdempotencyRecord {
                key: format!("group-key-{pair}"),
                request_hash: "d".repeat(64),
            };
            let keyed = order(&tenant("express"), &format!("group-key-{pair}"));
            mixed_round.push((Kind::SharedKey(pair), keyed, Some(record)));
        }
    }
    let store = Arc::new(store.clone());
    let submit_at_once = |round: Vec<(Kind, Order, Option<IdempotencyRecord>)>| {
        round
            .into_iter()
            .map(|(kind, order, record)| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    loop {
                        match store.insert(new_order(order.clone(), record.clone())).await {
                            // SQLite may answer busy under a burst; the API retries these
                            Err(e) if e.code == ErrorCode::Retryable => {
                                tokio::task::yield_now().await
                            }
                            outcome => return (kind, order, outcome),
                        }
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let mut tasks = submit_at_once(plain_round);
    for task in &mut tasks {
        let (_, submitted, outcome) = task.await.unwrap();
        assert_eq!(outcome.unwrap(), InsertOutcome::Created(submitted));
    }
    let (transactions, orders) = store.group_commit_stats().expect("group commit is on");
    assert_eq!(orders, 60, "every created order counted once");
    assert!(
        transactions < orders,
        "60 simultaneous creates shared no transaction ({transactions} for {orders})"
    );
    let tasks = submit_at_once(mixed_round);
    let mut plain = 60;
    let mut by_ref: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut by_key: HashMap<usize, HashSet<oc_model::OrderId>> = HashMap::new();
    let mut created_by_key = 0;
    for task in tasks {
        let (kind, submitted, outcome) = task.await.unwrap();
        match (kind, outcome) {
            (Kind::Plain, Ok(InsertOutcome::Created(order))) => {
                assert_eq!(order, submitted);
                plain += 1;
            }
            (Kind::SharedRef(pair), Ok(InsertOutcome::Created(order))) => {
                assert_eq!(order, submitted);
                by_ref.entry(pair).or_default().0 += 1;
            }
            (Kind::SharedRef(pair), Err(e)) => {
                assert_eq!(e.code, ErrorCode::AlreadyExists, "{e:?}");
                assert_eq!(e.field.as_deref(), Some("/external_ref"));
                by_ref.entry(pair).or_default().1 += 1;
            }
            (Kind::SharedKey(pair), Ok(InsertOutcome::Created(order))) => {
                created_by_key += 1;
                by_key.entry(pair).or_default().insert(order.main.id);
            }
            (Kind::SharedKey(pair), Ok(InsertOutcome::Replayed(order))) => {
                by_key.entry(pair).or_default().insert(order.main.id);
            }
            (_, outcome) => panic!("unexpected outcome {outcome:?}"),
        }
    }
    assert_eq!(plain, 80);
    assert_eq!(by_ref.len(), 10);
    assert!(by_ref.values().all(|pair| *pair == (1, 1)), "{by_ref:?}");
    assert_eq!(created_by_key, 10, "one create per idempotency key");
    assert!(
        by_key.values().all(|ids| ids.len() == 1),
        "both submissions of a key answer the same order"
    );
    assert_eq!(count(&store, "orders").await, 100);
    assert_eq!(count(&store, "idempotency").await, 10);
    assert_eq!(count(&store, "outbox").await, 100);
    assert_eq!(count(&store, "order_lines").await, 200);
    let (_, orders) = store.group_commit_stats().expect("group commit is on");
    assert_eq!(orders, 100, "every created order counted once");
}

async fn update_is_compare_and_set(store: &SqlOrderStore) {
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
        count(store, "outbox").await,
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

async fn reads_never_mix_versions_of_an_order(store: &SqlOrderStore) {
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
        let (store, express, buyer) = (store.clone(), express.clone(), buyer.clone());
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

async fn key_ring_reports_are_kept_per_process(store: &SqlOrderStore) {
    assert!(store.key_ring_reports().await.unwrap().is_empty());
    let first = KeyRingReport {
        process_id: "host-a:41:1790000000000".into(),
        description: "serve on 127.0.0.1:8080 (host host-a, pid 41)".into(),
        active_versions: [("acme".to_owned(), 2), ("globex".to_owned(), 1)].into(),
        active_since_ms: 1_790_000_000_000,
        settle_ms: 12_000,
        reported_at_ms: 1_790_000_001_000,
    };
    store.put_key_ring_report(&first).await.unwrap();
    assert_eq!(store.key_ring_reports().await.unwrap(), vec![first.clone()]);
    // a later report of the same process replaces its earlier one
    let first = KeyRingReport {
        active_versions: [("acme".to_owned(), 3), ("globex".to_owned(), 1)].into(),
        active_since_ms: 1_790_000_002_000,
        reported_at_ms: 1_790_000_002_000,
        ..first
    };
    store.put_key_ring_report(&first).await.unwrap();
    let second = KeyRingReport {
        process_id: "host-b:7:1790000000500".into(),
        description: "serve on 127.0.0.1:8081 (host host-b, pid 7)".into(),
        active_versions: BTreeMap::new(),
        ..first.clone()
    };
    store.put_key_ring_report(&second).await.unwrap();
    assert_eq!(
        store.key_ring_reports().await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    store
        .remove_key_ring_report(&first.process_id)
        .await
        .unwrap();
    assert_eq!(store.key_ring_reports().await.unwrap(), vec![second]);
}

async fn outbox_is_ordered_and_marked(store: &SqlOrderStore) {
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
            assert_eq!(
                store.bucket_map().shard_of(entry.event.order_id.bucket()),
                shard
            );
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

async fn buyer_lists_page_newest_first(store: &SqlOrderStore) {
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

async fn plaintext_pii_is_refused(store: &SqlOrderStore) {
    let mut leaky = order(&tenant("express"), "buyer-4");
    if let Some(receiver) = leaky.parties.receiver.as_mut() {
        receiver.phone = Protected::Plain("13812345678".into());
    }
    let refused = store.insert(new_order(leaky, None)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Internal);
    assert_eq!(count(store, "orders").await, 0);
}

async fn orders_land_on_the_shard_of_their_bucket(store: &SqlOrderStore) {
    let mut per_shard = vec![0i64; SHARDS];
    for n in 0..40 {
        let created = create(store, order(&tenant("retail"), &format!("buyer-s{n}"))).await;
        per_shard[usize::from(store.bucket_map().shard_of(created.main.id.bucket()).0)] += 1;
    }
    for (shard, expected) in per_shard.iter().enumerate() {
        let pool = store.shard_pool(ShardId(shard as u16)).unwrap();
        let row = sqlx::query("SELECT COUNT(*) FROM orders")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(row.try_get::<i64, _>(0).unwrap(), *expected);
    }
    assert!(
        per_shard.iter().all(|c| *c > 0),
        "40 buyers spread over both shards: {per_shard:?}"
    );
}

async fn duplicate_external_ref_writes_nothing(store: &SqlOrderStore) {
    let mut first = order(&tenant("express"), "buyer-5");
    first.main.external_ref = Some("ERP-1".into());
    create(store, first).await;
    let mut second = order(&tenant("express"), "buyer-5");
    second.main.external_ref = Some("ERP-1".into());
    let refused = store.insert(new_order(second, None)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::AlreadyExists);
    assert_eq!(refused.field.as_deref(), Some("/external_ref"));
    assert_eq!(count(store, "orders").await, 1);
    assert_eq!(count(store, "order_lines").await, 2);
    assert_eq!(count(store, "outbox").await, 1);
}

/// An order id generated twice (two nodes with one node id) is a server fault, not the
/// caller's duplicate external reference, and writes nothing.
async fn a_reused_order_id_is_not_blamed_on_the_caller(store: &SqlOrderStore) {
    let first = create(store, order(&tenant("express"), "buyer-7")).await;
    let mut second = order(&tenant("express"), "buyer-7");
    second.main.id = first.main.id;
    second.main.external_ref = Some("ERP-2".into());
    let refused = store.insert(new_order(second, None)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Internal, "{refused:?}");
    assert_eq!(refused.field, None);
    assert_eq!(count(store, "orders").await, 1);
    assert_eq!(count(store, "order_lines").await, 2);
    assert_eq!(count(store, "outbox").await, 1);
}

/// Connecting again to the same shards applies no migration and keeps the data.
async fn reconnecting_applies_nothing_and_keeps_the_data(harness: &Harness) {
    let created = create(&harness.store, order(&tenant("express"), "buyer-6")).await;
    let again = SqlOrderStore::connect(StoreConfig::new(harness.urls.clone()))
        .await
        .unwrap();
    for store in [&harness.store, &again] {
        for shard in store.shards() {
            let pool = store.shard_pool(shard).unwrap();
            let row = sqlx::query("SELECT COUNT(*) FROM schema_migrations")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(
                row.try_get::<i64, _>(0).unwrap(),
                oc_store_sql::migration_count() as i64,
                "every migration (init, consumer offsets, key ring reports, external_ref per merchant, slot ledger, lifecycle, …), once"
            );
        }
    }
    assert_eq!(count(&again, "orders").await, 1);
    assert_eq!(
        again
            .get(&tenant("express"), created.main.id)
            .await
            .unwrap(),
        Some(created)
    );
    again.close().await;
}

#[tokio::test]
async fn sqlite_reconnecting_applies_nothing_and_keeps_the_data() {
    let harness = Harness::sqlite("reconnect").await;
    reconnecting_applies_nothing_and_keeps_the_data(&harness).await;
    harness.finish().await;
}

#[tokio::test]
async fn mariadb_reconnecting_applies_nothing_and_keeps_the_data() {
    let harness = Harness::mariadb("reconnect").await;
    reconnecting_applies_nothing_and_keeps_the_data(&harness).await;
    harness.finish().await;
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let harness = super::Harness::sqlite(stringify!($case)).await;
                    super::$case(&harness.store).await;
                    harness.finish().await;
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let harness = super::Harness::mariadb(stringify!($case)).await;
                    super::$case(&harness.store).await;
                    harness.finish().await;
                }
            )*
        }
    };
}

conformance!(
    create_then_get_round_trips,
    reads_are_tenant_scoped,
    idempotency_replays_and_conflicts,
    concurrent_identical_creates_make_one_order,
    concurrent_creates_share_transactions_and_keep_their_answers,
    update_is_compare_and_set,
    reads_never_mix_versions_of_an_order,
    key_ring_reports_are_kept_per_process,
    outbox_is_ordered_and_marked,
    buyer_lists_page_newest_first,
    plaintext_pii_is_refused,
    orders_land_on_the_shard_of_their_bucket,
    duplicate_external_ref_writes_nothing,
    a_reused_order_id_is_not_blamed_on_the_caller,
);

// ---- connections the server dropped while they sat in the pool (MariaDB) ----

/// A store whose pools never ping (`ping_idle_after` longer than any test) or always do.
async fn store_pinging_after(urls: &[String], ping_idle_after: Duration) -> SqlOrderStore {
    let mut config = StoreConfig::new(urls.to_vec());
    config.max_connections = 4;
    config.ping_idle_after = ping_idle_after;
    SqlOrderStore::connect(config).await.unwrap()
}

/// Fills every shard's pool with open, idle connections, then has the server kill them all
/// (as a restart, a failover or `wait_timeout` would): returns how many were killed.
async fn kill_pooled_connections(store: &SqlOrderStore, urls: &[String]) -> usize {
    for shard in store.shards() {
        let pool = store.shard_pool(shard).unwrap();
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.acquire().await.unwrap());
        }
        drop(held);
    }
    // let sqlx's release check put them back in the pool
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut killed = 0;
    for url in urls {
        let mut admin = <sqlx::MySqlConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        for id in ids {
            sqlx::query(&format!("KILL CONNECTION {id}"))
                .execute(&mut admin)
                .await
                .unwrap();
            killed += 1;
        }
    }
    killed
}

/// Reads of `known` orders first (on every shard), then writes, each of which must succeed.
async fn every_operation_succeeds(
    store: &SqlOrderStore,
    round: &str,
    known: &[Order],
) -> Vec<Order> {
    for order in known {
        let read = store.get(&tenant("express"), order.main.id).await;
        assert_eq!(read.unwrap().as_ref(), Some(order), "{round}: get");
        let page = store
            .list_by_buyer(
                &tenant("express"),
                &order.main.buyer_id,
                PageRequest {
                    limit: 10,
                    cursor: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(page.items.first(), Some(order), "{round}: list");
    }
    let mut created = Vec::new();
    for n in 0..8 {
        created.push(create(store, order(&tenant("express"), &format!("{round}-{n}"))).await);
    }
    created
}

/// Connections are handed out without a ping when they were used a moment ago (the saved round
/// trip of every transaction); when the server dropped them in between, the store takes
/// another connection for the first statement of a write or a read, and the caller sees
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_connections_killed_in_the_pool_are_replaced_unseen() {
    let databases = oc_test_support::TestDatabases::create("killed", SHARDS)
        .await
        .unwrap();
    let urls = databases.urls().to_vec();
    for (label, ping_idle_after) in [
        ("never-pinged", Duration::from_secs(3_600)),
        ("always-pinged", Duration::ZERO),
    ] {
        let store = store_pinging_after(&urls, ping_idle_after).await;
        let mut known = every_operation_succeeds(&store, &format!("{label}-warm"), &[]).await;
        let buckets: HashSet<u16> = known.iter().map(|o| o.main.id.bucket().get()).collect();
        assert!(buckets.len() > 1, "the orders span several buckets");
        for round in 0..3 {
            let killed = kill_pooled_connections(&store, &urls).await;
            assert!(killed >= 2 * 4, "{label}: killed only {killed} connections");
            known = every_operation_succeeds(&store, &format!("{label}-{round}"), &known).await;
        }
        store.close().await;
    }
    databases.cleanup().await.unwrap();
}
