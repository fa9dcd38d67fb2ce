//! The purge port (`RetentionStore`) and oc-core's purge jobs over it, on SQLite and real
//! MariaDB (issue #13 item 15): outbox rows go only once published and past their
//! retention (single-node: and below the projector's stored position), idempotency records
//! only past theirs, at most a batch per statement; a purge killed mid-way has deleted
//! whole batches of due rows only, and the next pass finishes the rest.

use std::collections::BTreeMap;
use std::sync::Arc;

use oc_core::scheduler::{OutboxReader, PurgeSettings, Purger};
use oc_model::ports::{IdempotencyRecord, NewOrder, OffsetStore, OrderStore};
use oc_model::retention::RetentionStore;
use oc_model::{OrderEvent, OrderEventKind, OrderId, TenantId, UnixMillis};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use sqlx::Row;

/// The "now" of these tests, and the ages the rows are given.
const NOW: i64 = 1_790_000_000_000;
const OLD: i64 = NOW - 3_600_000;
const RECENT: i64 = NOW - 1_000;
/// Retention one minute: OLD rows are due, RECENT ones are not.
const RETENTION_MS: i64 = 60_000;
const CUTOFF: UnixMillis = UnixMillis::new(NOW - RETENTION_MS);

const ORDERS: usize = 40;
/// Orders 0..PUBLISHED_OLD were published long ago, up to PUBLISHED_RECENT a second ago, the
/// rest not yet; idempotency keys of orders 0..KEYS_OLD are old.
const PUBLISHED_OLD: usize = 24;
const PUBLISHED_RECENT: usize = 32;
const KEYS_OLD: usize = 15;

struct Rows {
    store: Arc<SqlOrderStore>,
    ids: Vec<OrderId>,
}

impl Rows {
    async fn new(urls: Vec<String>) -> Rows {
        let store = Arc::new(
            SqlOrderStore::connect(StoreConfig::new(urls))
                .await
                .unwrap(),
        );
        let tenant = TenantId::parse("retail").unwrap();
        let mut ids = Vec::new();
        for i in 0..ORDERS {
            let order = oc_test_support::fixtures::order(&tenant, &format!("buyer-{i}"));
            ids.push(order.main.id);
            store
                .insert(NewOrder {
                    event: OrderEvent::of(&order, OrderEventKind::Created),
                    idempotency: Some(IdempotencyRecord {
                        key: format!("key-{i}"),
                        request_hash: "0".repeat(64),
                    }),
                    order,
                })
                .await
                .unwrap();
        }
        let rows = Rows { store, ids };
        for (i, id) in rows.ids.iter().enumerate() {
            let published = match i {
                i if i < PUBLISHED_OLD => Some(OLD),
                i if i < PUBLISHED_RECENT => Some(RECENT),
                _ => None,
            };
            let created = if i < KEYS_OLD { OLD } else { RECENT };
            for pool in rows.pools() {
                sqlx::query("UPDATE outbox SET published_at_ms = ? WHERE order_id = ?")
                    .bind(published)
                    .bind(id.as_i64())
                    .execute(pool)
                    .await
                    .unwrap();
                sqlx::query("UPDATE idempotency SET created_at_ms = ? WHERE order_id = ?")
                    .bind(created)
                    .bind(id.as_i64())
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
        rows
    }

    fn pools(&self) -> Vec<&sqlx::AnyPool> {
        OrderStore::shards(self.store.as_ref())
            .into_iter()
            .map(|shard| self.store.shard_pool(shard).unwrap())
            .collect()
    }

    /// The indexes (into `ids`) of the orders whose row is still in `table`.
    async fn left(&self, table: &str) -> Vec<usize> {
        let mut left = Vec::new();
        for pool in self.pools() {
            for row in sqlx::query(&format!("SELECT order_id FROM {table}"))
                .fetch_all(pool)
                .await
                .unwrap()
            {
                let id: i64 = row.try_get(0).unwrap();
                left.push(self.ids.iter().position(|o| o.as_i64() == id).unwrap());
            }
        }
        left.sort_unstable();
        left
    }

    /// The outbox sequences of each shard, ascending.
    async fn sequences(&self) -> BTreeMap<oc_model::ShardId, Vec<(i64, i64)>> {
        let mut out = BTreeMap::new();
        for shard in OrderStore::shards(self.store.as_ref()) {
            let rows = sqlx::query("SELECT seq, order_id FROM outbox ORDER BY seq")
                .fetch_all(self.store.shard_pool(shard).unwrap())
                .await
                .unwrap();
            out.insert(
                shard,
                rows.iter()
                    .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
                    .collect(),
            );
        }
        out
    }

    fn index_of(&self, order_id: i64) -> usize {
        self.ids
            .iter()
            .position(|o| o.as_i64() == order_id)
            .unwrap()
    }
}

fn range(from: usize, to: usize) -> Vec<usize> {
    (from..to).collect()
}

fn settings(batch_size: u32) -> PurgeSettings {
    PurgeSettings {
        outbox_retention: time::Duration::milliseconds(RETENTION_MS),
        idempotency_retention: time::Duration::milliseconds(RETENTION_MS),
        batch_size,
        max_batches_per_pass: 1000,
    }
}

/// The port: due rows only, at most `limit` per call, below the bound when one is given.
async fn the_port_deletes_due_rows_in_bounded_batches(urls: Vec<String>) {
    let rows = Rows::new(urls).await;
    let store = rows.store.as_ref();
    // a bound below every due row, and a bound of 0, delete nothing
    for shard in RetentionStore::shards(store) {
        assert_eq!(
            store
                .purge_outbox(shard, CUTOFF, Some(0), 100)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .purge_outbox(shard, CUTOFF, Some(1), 100)
                .await
                .unwrap(),
            0
        );
    }
    // a bound in the middle of a shard's due rows: only those below it
    let sequences = rows.sequences().await;
    let (&shard, seqs) = sequences.iter().max_by_key(|(_, seqs)| seqs.len()).unwrap();
    let due: Vec<i64> = seqs
        .iter()
        .filter(|(_, order)| rows.index_of(*order) < PUBLISHED_OLD)
        .map(|(seq, _)| *seq)
        .collect();
    assert!(
        due.len() >= 4,
        "enough due rows on the fuller shard: {due:?}"
    );
    let bound = due[2] as u64;
    assert_eq!(
        store
            .purge_outbox(shard, CUTOFF, Some(bound), 100)
            .await
            .unwrap(),
        2
    );
    // batches of 3: never more per call, and a short batch only at the end
    let mut outbox_calls = Vec::new();
    for shard in RetentionStore::shards(store) {
        loop {
            let deleted = store.purge_outbox(shard, CUTOFF, None, 3).await.unwrap();
            assert!(deleted <= 3);
            outbox_calls.push(deleted);
            if deleted < 3 {
                break;
            }
        }
    }
    assert_eq!(outbox_calls.iter().sum::<u64>() + 2, PUBLISHED_OLD as u64);
    // kept: published a second ago, and not published at all
    assert_eq!(rows.left("outbox").await, range(PUBLISHED_OLD, ORDERS));
    let mut keys = 0;
    for shard in RetentionStore::shards(store) {
        loop {
            let deleted = store.purge_idempotency(shard, CUTOFF, 4).await.unwrap();
            assert!(deleted <= 4);
            keys += deleted;
            if deleted < 4 {
                break;
            }
        }
    }
    assert_eq!(keys, KEYS_OLD as u64);
    assert_eq!(rows.left("idempotency").await, range(KEYS_OLD, ORDERS));
    rows.store.close().await;
}

/// Single node: the outbox purge waits for the projector's stored position; a shard it has
/// no position for keeps every row.
async fn single_node_purges_wait_for_the_projectors_position(urls: Vec<String>) {
    let rows = Rows::new(urls).await;
    let reader = OutboxReader {
        offsets: rows.store.clone() as Arc<dyn OffsetStore>,
        group: "single-node-projector".into(),
        topic: "outbox".into(),
    };
    let purger = Purger::new(
        rows.store.clone() as Arc<dyn RetentionStore>,
        settings(5),
        Some(reader.clone()),
    );
    let purged = purger.pass(UnixMillis::new(NOW)).await.unwrap();
    assert_eq!(
        purged.outbox, 0,
        "no position stored: the projector read nothing yet"
    );
    assert_eq!(purged.idempotency, KEYS_OLD as u64);
    assert_eq!(rows.left("outbox").await, range(0, ORDERS));
    // the projector has read up to (not including) the 6th order of each shard's outbox
    let sequences = rows.sequences().await;
    let mut next = BTreeMap::new();
    let mut expected_left: Vec<usize> = Vec::new();
    for (shard, seqs) in &sequences {
        let position = seqs.get(5).map_or(i64::MAX, |(seq, _)| *seq);
        next.insert(i32::from(shard.0), position);
        for (seq, order) in seqs {
            let index = rows.index_of(*order);
            if *seq >= position || index >= PUBLISHED_OLD {
                expected_left.push(index);
            }
        }
    }
    reader
        .offsets
        .commit(&reader.group, &reader.topic, &next)
        .await
        .unwrap();
    purger.pass(UnixMillis::new(NOW)).await.unwrap();
    expected_left.sort_unstable();
    assert_eq!(rows.left("outbox").await, expected_left);
    assert!(
        expected_left.len() > ORDERS - PUBLISHED_OLD,
        "the position held some due rows back"
    );
    // without a projector (cluster), published and old is enough
    let cluster = Purger::new(
        rows.store.clone() as Arc<dyn RetentionStore>,
        settings(5),
        None,
    );
    cluster.pass(UnixMillis::new(NOW)).await.unwrap();
    assert_eq!(rows.left("outbox").await, range(PUBLISHED_OLD, ORDERS));
    rows.store.close().await;
}

/// A purge aborted mid-way (its task dropped between or inside statements) has deleted due
/// rows only, and the next pass deletes exactly the rest.
async fn a_purge_killed_mid_way_leaves_only_due_rows_deleted(urls: Vec<String>) {
    let rows = Rows::new(urls).await;
    let purger = Purger::new(
        rows.store.clone() as Arc<dyn RetentionStore>,
        settings(1),
        None,
    );
    let running = tokio::spawn({
        let purger = purger.clone();
        async move {
            loop {
                purger.pass(UnixMillis::new(NOW)).await.unwrap();
            }
        }
    });
    // abort once some but not all due rows are gone (bounded: 30 s at most)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left = rows.left("outbox").await.len();
        if left < ORDERS {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the purge never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    running.abort();
    let _ = running.await;
    // A dropped future does not stop a statement already handed to the database (sqlx's
    // SQLite worker thread finishes it): wait until the row counts stop moving, or that
    // late delete races the next pass, which then takes a batch it finds gone for the end.
    let mut last = rows.left("outbox").await.len() + rows.left("idempotency").await.len();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = rows.left("outbox").await.len() + rows.left("idempotency").await.len();
        if now == last {
            break;
        }
        last = now;
    }
    let outbox = rows.left("outbox").await;
    assert!(
        range(PUBLISHED_OLD, ORDERS)
            .iter()
            .all(|i| outbox.contains(i)),
        "only due rows were deleted: {outbox:?}"
    );
    let keys = rows.left("idempotency").await;
    assert!(
        range(KEYS_OLD, ORDERS).iter().all(|i| keys.contains(i)),
        "{keys:?}"
    );
    purger.pass(UnixMillis::new(NOW)).await.unwrap();
    assert_eq!(rows.left("outbox").await, range(PUBLISHED_OLD, ORDERS));
    assert_eq!(rows.left("idempotency").await, range(KEYS_OLD, ORDERS));
    rows.store.close().await;
}

macro_rules! retention_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let urls = (0..2)
                        .map(|i| format!("sqlite://{}/shard-{i}.db", dir.path().display()))
                        .collect();
                    super::$case(urls).await;
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let databases = oc_test_support::TestDatabases::create(stringify!($case), 2)
                        .await
                        .unwrap();
                    super::$case(databases.urls().to_vec()).await;
                    databases.cleanup().await.unwrap();
                }
            )*
        }
    };
}

retention_tests!(
    the_port_deletes_due_rows_in_bounded_batches,
    single_node_purges_wait_for_the_projectors_position,
    a_purge_killed_mid_way_leaves_only_due_rows_deleted,
);
