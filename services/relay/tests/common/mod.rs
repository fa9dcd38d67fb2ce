//! Fixtures shared by the relay tests: valid orders written through the real store, shards
//! on MariaDB or SQLite, and a reader of the Kafka topics.
#![allow(dead_code)]

use oc_test_support::fixtures::{OrderBuilder, retrying};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use oc_bus::{ConsumedEvent, KafkaEventSource, SourceConfig, StartOffset};
use oc_model::ports::{InsertOutcome, NewOrder, OrderStore};
use oc_model::{Order, OrderEvent, OrderEventKind, OrderId, StatusCode, TenantId};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use rskafka::client::Client;
use time::OffsetDateTime;

pub const SHARDS: usize = 2;
/// Upper bound of one waiting step of a test.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A relay running on its own task until [`RunningRelay::stop`].
pub struct RunningRelay {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<oc_model::DomainResult<()>>,
}

impl RunningRelay {
    pub fn spawn(relay: &oc_relay::Relay) -> RunningRelay {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let relay = relay.clone();
        let task = tokio::spawn(async move {
            relay
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        RunningRelay { stop, task }
    }

    /// Asks the relay to stop; it must, cleanly, within [`STEP_TIMEOUT`].
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(STEP_TIMEOUT, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    /// Kills the relay's task where it stands (a crash).
    pub async fn kill(self) {
        self.task.abort();
        assert!(self.task.await.unwrap_err().is_cancelled());
    }
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// The shards of one test, and how to tidy them up.
pub struct Shards {
    pub store: SqlOrderStore,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(std::path::PathBuf),
    MariaDb(oc_test_support::TestDatabases),
}

impl Shards {
    pub async fn mariadb(label: &str) -> Shards {
        let databases = oc_test_support::TestDatabases::create(label, SHARDS)
            .await
            .unwrap();
        let store = SqlOrderStore::connect(StoreConfig::new(databases.urls().to_vec()))
            .await
            .unwrap();
        Shards {
            store,
            cleanup: Cleanup::MariaDb(databases),
        }
    }

    pub async fn sqlite(label: &str) -> Shards {
        let dir = std::env::temp_dir().join(oc_test_support::unique_prefix(label));
        std::fs::create_dir_all(&dir).unwrap();
        let urls = (0..SHARDS)
            .map(|shard| format!("sqlite://{}/shard-{shard}.db", dir.display()))
            .collect();
        let store = SqlOrderStore::connect(StoreConfig::new(urls))
            .await
            .unwrap();
        Shards {
            store,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    pub fn store(&self) -> Arc<dyn OrderStore> {
        Arc::new(self.store.clone())
    }

    /// Unpublished outbox rows over all shards.
    pub async fn pending(&self) -> usize {
        let mut pending = 0;
        for shard in self.store.shards() {
            pending += self
                .store
                .pending_outbox(shard, 1_000_000)
                .await
                .unwrap()
                .len();
        }
        pending
    }

    pub async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::Sqlite(dir) => std::fs::remove_dir_all(dir).unwrap(),
            Cleanup::MariaDb(databases) => databases.cleanup().await.unwrap(),
        }
    }
}

/// A minimal valid order of `buyer-{n}`, version 1, created now.
pub fn order(tenant_id: &TenantId, n: usize) -> Order {
    OrderBuilder::minimal(tenant_id, &format!("buyer-{n}")).build()
}

pub fn event_of(order: &Order, kind: OrderEventKind) -> OrderEvent {
    OrderEvent::of(order, kind)
}

/// Creates an order and updates it until it has `versions` versions; returns its id.
pub async fn create_with_versions(
    store: &SqlOrderStore,
    tenant_id: &TenantId,
    n: usize,
    versions: u64,
) -> (TenantId, OrderId) {
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
    for version in 2..=versions {
        current.main.version = version;
        current.main.status = StatusCode::parse(format!("step_{version}")).unwrap();
        current.main.updated_at = OffsetDateTime::now_utc();
        let event = event_of(&current, OrderEventKind::StatusChanged);
        retrying(|| store.update(version - 1, current.clone(), event.clone())).await;
    }
    (tenant_id.clone(), current.main.id)
}

/// `per_tenant` orders for each tenant, each with `versions` versions, written 8 at a time.
pub async fn create_orders(
    store: &SqlOrderStore,
    tenants: &[TenantId],
    per_tenant: usize,
    versions: u64,
) -> Vec<(TenantId, OrderId)> {
    let jobs: Vec<(TenantId, usize)> = tenants
        .iter()
        .flat_map(|tenant_id| (0..per_tenant).map(move |n| (tenant_id.clone(), n)))
        .collect();
    tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::stream::iter(jobs)
            .map(|(tenant_id, n)| async move {
                create_with_versions(store, &tenant_id, n, versions).await
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("orders written in time")
}

/// Every record of `topic` until `at_least` events arrived and one more poll found nothing.
pub async fn read_topic(client: &Client, topic: &str, at_least: usize) -> Vec<ConsumedEvent> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        let mut source = KafkaEventSource::open(
            client,
            topic,
            &BTreeMap::new(),
            StartOffset::Earliest,
            SourceConfig {
                max_wait: Duration::from_millis(100),
                ..SourceConfig::default()
            },
        )
        .await
        .unwrap();
        let mut events = Vec::new();
        loop {
            let polled = source.poll().await.unwrap();
            assert!(polled.undecodable.is_empty(), "{:?}", polled.undecodable);
            let empty = polled.events.is_empty();
            events.extend(polled.events);
            if empty && events.len() >= at_least {
                return events;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{at_least} events did not arrive on {topic} in time"))
}

/// Per order, the versions in partition order (offset order; one order is in one partition).
pub fn versions_by_order(events: &[ConsumedEvent]) -> BTreeMap<OrderId, Vec<u64>> {
    let mut sorted: Vec<&ConsumedEvent> = events.iter().collect();
    sorted.sort_by_key(|consumed| (consumed.partition, consumed.offset));
    let mut partitions: BTreeMap<OrderId, BTreeSet<i32>> = BTreeMap::new();
    let mut by_order: BTreeMap<OrderId, Vec<u64>> = BTreeMap::new();
    for consumed in sorted {
        partitions
            .entry(consumed.event.order_id)
            .or_default()
            .insert(consumed.partition);
        by_order
            .entry(consumed.event.order_id)
            .or_default()
            .push(consumed.event.version);
    }
    for (order_id, seen_in) in partitions {
        assert_eq!(seen_in.len(), 1, "order {order_id} is in one partition");
    }
    by_order
}
