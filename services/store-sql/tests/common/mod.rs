//! The store the adapter tests run against, on SQLite files or real MariaDB databases, with
//! what they read behind the ports' backs (row counts) and the order they most often start
//! from. Each test file is its own crate and uses part of this.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use oc_model::lifecycle::TransitionWrite;
use oc_model::ports::{NewOrder, OrderStore};
use oc_model::{
    HistoryEntry, Order, OrderEvent, OrderEventKind, StatusCode, StockEffect, TenantId,
    TransitionEvent, UnixMillis,
};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use sqlx::Row;
use time::OffsetDateTime;

pub const SHARDS: usize = 2;

/// Every case `async fn case(h: &Harness)` as a test on SQLite and one on MariaDB
/// (`sqlite::case`, `mariadb::case`), each on a fresh store it cleans up.
macro_rules! both_dialects {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let h = super::Harness::sqlite(stringify!($case)).await;
                    super::$case(&h).await;
                    h.finish().await;
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let h = super::Harness::mariadb(stringify!($case)).await;
                    super::$case(&h).await;
                    h.finish().await;
                }
            )*
        }
    };
}

pub struct Harness {
    pub store: Arc<SqlOrderStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(std::path::PathBuf),
    MariaDb(oc_test_support::TestDatabases),
}

impl Harness {
    pub async fn sqlite(label: &str) -> Harness {
        let dir = std::env::temp_dir().join(oc_test_support::unique_prefix(label));
        std::fs::create_dir_all(&dir).unwrap();
        let urls: Vec<String> = (0..SHARDS)
            .map(|i| format!("sqlite://{}/shard-{i}.db", dir.display()))
            .collect();
        let store = SqlOrderStore::connect(StoreConfig::new(urls))
            .await
            .unwrap();
        Harness {
            store: Arc::new(store),
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    pub async fn mariadb(label: &str) -> Harness {
        let databases = oc_test_support::TestDatabases::create(label, SHARDS)
            .await
            .unwrap();
        let store = SqlOrderStore::connect(StoreConfig::new(databases.urls().to_vec()))
            .await
            .unwrap();
        Harness {
            store: Arc::new(store),
            cleanup: Cleanup::MariaDb(databases),
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::Sqlite(dir) => std::fs::remove_dir_all(dir).unwrap(),
            Cleanup::MariaDb(databases) => databases.cleanup().await.unwrap(),
        }
    }

    /// Rows of a table across every shard matching `filter` (`"1 = 1"` for all).
    pub async fn count(&self, table: &str, filter: &str) -> i64 {
        let mut total = 0;
        for shard in OrderStore::shards(self.store.as_ref()) {
            total += sqlx::query(&format!("SELECT COUNT(*) FROM {table} WHERE {filter}"))
                .fetch_one(self.store.shard_pool(shard).unwrap())
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap();
        }
        total
    }

    /// A fixture order written as `pending_payment`, with the pay deadline `deadline` (Unix
    /// milliseconds) when given.
    pub async fn insert(&self, tenant: &TenantId, buyer: &str, deadline: Option<i64>) -> Order {
        let mut order = oc_test_support::fixtures::order(tenant, buyer);
        order.main.status = StatusCode::parse("pending_payment").unwrap();
        order.main.pay_deadline = deadline.map(|at| UnixMillis::new(at).to_datetime().unwrap());
        self.insert_order(&order).await;
        order
    }

    /// A delivered order whose line 1 has 5 units paid 1,003 together (shares 201, 201, 201,
    /// 200, 200) and line 2 one unit paid 200.
    pub async fn delivered_order(&self, tenant: &TenantId, buyer: &str) -> Order {
        let mut order = oc_test_support::fixtures::order(tenant, buyer);
        order.main.status = StatusCode::parse("completed").unwrap();
        order.lines[0].quantity = 5;
        order.lines[0].payable = oc_test_support::fixtures::cny(1_003);
        // goods 5 × 300 + 200; the lines pay 1,003 + 200
        order.finance.goods_total = oc_test_support::fixtures::cny(1_700);
        order.finance.discount_total = oc_test_support::fixtures::cny(497);
        order.finance.payable = oc_test_support::fixtures::cny(1_203)
            .checked_add(order.finance.freight)
            .unwrap();
        self.insert_order(&order).await;
        order
    }

    /// `order` written as it is, with its `Created` event.
    pub async fn insert_order(&self, order: &Order) {
        self.store
            .insert(NewOrder {
                order: order.clone(),
                idempotency: None,
                event: OrderEvent::of(order, OrderEventKind::Created),
            })
            .await
            .unwrap();
    }
}

/// The fixed "now" of these tests, in milliseconds.
pub const NOW_MS: i64 = 1_790_000_000_000;

pub fn now() -> OffsetDateTime {
    UnixMillis::new(NOW_MS).to_datetime().unwrap()
}

/// The write of `event` on `order` at its stored version (a pay or a timeout).
pub fn transition(order: &Order, event: &str, to: &str, stock: StockEffect) -> TransitionWrite {
    let mut next = order.clone();
    next.main.version = order.main.version + 1;
    next.main.status = StatusCode::parse(to).unwrap();
    next.main.pay_deadline = None;
    let entry = HistoryEntry {
        tenant: order.main.tenant.clone(),
        order_id: order.main.id,
        version: next.main.version,
        from: order.main.status.clone(),
        to: next.main.status.clone(),
        event: TransitionEvent::parse(event).unwrap(),
        operator: event.into(),
        source_system: "test".into(),
        reason: None,
        data: BTreeMap::new(),
        stock,
        occurred_at: now(),
    };
    let mut outbox = OrderEvent::of(&next, OrderEventKind::StatusChanged);
    outbox.transition = Some(entry.note(to.into(), None));
    TransitionWrite {
        expected_version: order.main.version,
        order: next,
        event: outbox,
        history: Some(entry),
    }
}
