//! Cold store down: the projector keeps retrying (with backoff, through the cold-store circuit
//! breaker) and after the store is back every order is in it at its latest version. An
//! outage is not a bad order: though every order ran out of its attempts, none is
//! dead-lettered (#13 item 1).
//!
//! The cold store is the HBase adapter on the live HBase of `deploy/local/services.sh` (its
//! Thrift1 server, a table of this test's own), reached through a [`TcpProxy`] the test cuts
//! and restores; HBase itself is never stopped. Shards are real MariaDB databases.

#[path = "projector_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Shards, create_orders, event_of, fields, tenant};
use hbase_thrift::hbase::THbaseSyncClient;
use oc_cold_store::{HbaseColdStore, HbaseConfig};
use oc_model::ports::{ColdStore, DeadLetters};
use oc_model::{Order, OrderEventKind};
use oc_projector::{Projector, ProjectorConfig, RetryPolicy, Sinks};
use oc_resilience::{BreakerConfig, BreakerState, CircuitBreaker, Guarded};
use oc_test_support::{HbaseTable, TcpProxy, hbase_address, with_hbase_client};

const STEP: Duration = Duration::from_secs(30);

fn latest(orders: &[Vec<Order>]) -> Vec<Order> {
    orders
        .iter()
        .map(|versions| versions.last().unwrap().clone())
        .collect()
}

/// How many rows the table holds, counted by a scan straight on the server.
async fn row_count(table: &HbaseTable) -> usize {
    let name = table.name().as_bytes().to_vec();
    with_hbase_client("counting rows", move |client| {
        let scanner = client.scanner_open(name, Vec::new(), Vec::new(), BTreeMap::new())?;
        let mut rows = 0;
        loop {
            let batch = client.scanner_get_list(scanner, 1_000)?;
            if batch.is_empty() {
                break;
            }
            rows += batch.len();
        }
        client.scanner_close(scanner)?;
        Ok(rows)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_store_down_the_projector_retries_and_nothing_is_lost() {
    let table = HbaseTable::new("cold_outage").await.unwrap();
    let proxy = TcpProxy::start(hbase_address()).await.unwrap();
    let config = HbaseConfig {
        table: table.name().to_owned(),
        max_connections: 4,
        connect_timeout: Duration::from_millis(500),
        io_timeout: Duration::from_secs(2),
        acquire_timeout: Duration::from_secs(2),
        ..HbaseConfig::new(proxy.host_port())
    };
    let cold = Arc::new(HbaseColdStore::connect(config).await.unwrap());
    let breaker = CircuitBreaker::new(
        "cold",
        BreakerConfig {
            consecutive_failures: 3,
            failure_rate: 1.0,
            minimum_calls: 100,
            window_ms: 10_000,
            open_ms: 300,
            half_open_probes: 1,
            call_timeout_ms: 2_000,
        },
    );
    let guarded: Arc<dyn ColdStore> = Arc::new(Guarded::new(
        cold.clone() as Arc<dyn ColdStore>,
        breaker.clone(),
    ));

    let shards = Shards::mariadb("cold_outage").await;
    let projector = Projector::new(
        shards.store(),
        Sinks::none().with_cold(guarded),
        fields(),
        ProjectorConfig {
            concurrency: 8,
            retry: RetryPolicy {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                max_attempts: None,
            },
            // every order of the outage runs out of these long before the store is back
            attempts_per_order: 2,
            // no time floor: this proves the "others went through" rule alone keeps an
            // outage from dead-lettering anything
            dead_letter_after: Duration::ZERO,
        },
    )
    .with_dead_letters(Arc::new(shards.store.clone()));
    let acme = tenant("acme");

    // up: the first orders reach the cold store
    let before = create_orders(&shards.store, &acme, 0, 5, 2).await;
    let events: Vec<_> = before
        .iter()
        .flatten()
        .map(|o| event_of(o, OrderEventKind::Created))
        .collect();
    tokio::time::timeout(STEP, projector.apply_events(&events))
        .await
        .unwrap()
        .unwrap();

    // down: the projector cannot finish the batch; it keeps retrying
    proxy.block();
    let during = create_orders(&shards.store, &acme, 100, 20, 3).await;
    let events: Vec<_> = during
        .iter()
        .flatten()
        .map(|o| event_of(o, OrderEventKind::StatusChanged))
        .collect();
    let rows_at_block = row_count(&table).await;
    let applying = tokio::spawn({
        let projector = projector.clone();
        async move { projector.apply_events(&events).await }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        !applying.is_finished(),
        "the batch waits for the cold store"
    );
    let snapshot = breaker.snapshot();
    assert!(
        snapshot.transitions[BreakerState::Open as usize] >= 1,
        "{snapshot:?}"
    );
    assert!(snapshot.rejected > 0, "{snapshot:?}");
    assert_eq!(
        row_count(&table).await,
        rows_at_block,
        "nothing of the outage got through"
    );
    eprintln!(
        "cold store down: breaker {}, opened {} times, {} calls refused",
        snapshot.state,
        snapshot.transitions[BreakerState::Open as usize],
        snapshot.rejected
    );

    // back: the batch completes and every order is stored at its latest version
    proxy.restore();
    let outcome = tokio::time::timeout(STEP, applying)
        .await
        .expect("the projector finishes once the cold store is back")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.orders, during.len());
    assert_eq!(breaker.state(), BreakerState::Closed);
    let stats = projector.stats();
    assert_eq!(stats.cold.as_ref().unwrap().dead_lettered, 0, "{stats:?}");
    assert!(
        shards.store.list(None, 100).await.unwrap().is_empty(),
        "an outage dead-letters nothing"
    );
    for order in latest(&before).into_iter().chain(latest(&during)) {
        let stored = cold
            .get(&order.main.tenant, order.main.id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("order {} is in the cold store", order.main.id));
        assert_eq!(stored.main.version, order.main.version);
    }
    shards.finish().await;
    drop(cold);
    table.cleanup().await.unwrap();
}
