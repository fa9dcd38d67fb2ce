//! The order-store conformance suite: the same cases run against SQLite files and against
//! real MariaDB databases (two shards each). Every test gets fresh shards.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use oc_conformance::fixtures::{order, tenant};
use oc_conformance::order_store::{OrderStoreHarness, create, new_order};
use oc_model::ports::{IdempotencyRecord, InsertOutcome, OrderStore, PageRequest};
use oc_model::{ErrorCode, Order, OrderId, ShardId};
use oc_store_sql::{KeyRingReport, SqlOrderStore, StoreConfig};
use sqlx::Row;

const SHARDS: usize = 2;

struct Harness {
    store: SqlOrderStore,
    /// `store` behind the port, for the suite
    shared: Arc<dyn OrderStore>,
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
            shared: Arc::new(store.clone()),
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
            shared: Arc::new(store.clone()),
            store,
            urls,
            cleanup: Cleanup::MariaDb(databases),
        }
    }
}

impl OrderStoreHarness for Harness {
    fn shared(&self) -> &Arc<dyn OrderStore> {
        &self.shared
    }

    async fn rows(&self, kind: &'static str) -> i64 {
        count(&self.store, kind).await
    }

    fn shard_of(&self, id: OrderId) -> ShardId {
        self.store.bucket_map().shard_of(id.bucket())
    }

    async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::Sqlite(dir) => std::fs::remove_dir_all(dir).unwrap(),
            Cleanup::MariaDb(databases) => databases.cleanup().await.unwrap(),
        }
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

// ---- SQL adapter only: group commit, key-ring reports, shard pools ----

/// Creates sent at once share transactions (group commit), and each still gets the answer it
/// would have had alone. First 60 plain creates at the same time, which must share
/// transactions; then, at the same time, 10 pairs that share an external reference (one of
/// each created, the other refused on `/external_ref`), 10 pairs that share an idempotency key
/// and body (one created, the other replaying it) and 20 more plain creates. (A group holding
/// a conflict is written again one by one, so the second round may share nothing.)
async fn concurrent_creates_share_transactions_and_keep_their_answers(harness: &Harness) {
    let store = &harness.store;
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

async fn key_ring_reports_are_kept_per_process(harness: &Harness) {
    let store = &harness.store;
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

async fn orders_land_on_the_shard_of_their_bucket(harness: &Harness) {
    let store = &harness.store;
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

// ---- the port's suite (`oc_conformance::order_store`) over both engines, with the SQL
// adapter's own cases ----

oc_conformance::order_store_conformance!(sqlite, Harness::sqlite, also: [
    concurrent_creates_share_transactions_and_keep_their_answers,
    key_ring_reports_are_kept_per_process,
    orders_land_on_the_shard_of_their_bucket,
]);
oc_conformance::order_store_conformance!(mariadb, Harness::mariadb, also: [
    concurrent_creates_share_transactions_and_keep_their_answers,
    key_ring_reports_are_kept_per_process,
    orders_land_on_the_shard_of_their_bucket,
]);

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
