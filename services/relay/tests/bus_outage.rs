//! Bus down: creates still commit, the outbox grows, and once the broker is back the relay
//! drains it; every event reaches the topic exactly once.
//!
//! The broker is the shared Apache Kafka, reached only through a [`TcpProxy`] on its
//! fault-test listener: that listener advertises the proxy's fixed address
//! (`deploy/local/engines/engines.sh`), so every connection the Kafka client makes
//! (bootstrap and partition leaders) goes through the proxy the test cuts. The broker itself
//! and the other tests on its main listener are never touched.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{RunningRelay, STEP_TIMEOUT, Shards, create_orders, read_topic, tenant};
use oc_bus::{KafkaBusConfig, KafkaEventBus};
use oc_model::ports::{EventBus, OrderStore};
use oc_model::{OrderId, ShardId};
use oc_relay::{BackoffConfig, Relay, RelayConfig};
use oc_resilience::{BreakerConfig, BreakerState, CircuitBreaker, Guarded};
use oc_test_support::{TcpProxy, kafka_fault_listener};

/// A proxy on the address the broker's fault-test listener advertises, forwarding to it.
async fn proxy_to_the_fault_listener() -> TcpProxy {
    let (listener, advertised) = kafka_fault_listener();
    let port = advertised
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{advertised}: no port"));
    TcpProxy::start_on(port, listener).await.unwrap_or_else(|error| {
        panic!("{error:#} (is another bus outage test running? the port is fixed by the broker's config)")
    })
}

async fn pending_by_shard(shards: &Shards) -> BTreeMap<ShardId, usize> {
    let mut pending = BTreeMap::new();
    for shard in shards.store.shards() {
        let rows = shards.store.pending_outbox(shard, 1_000_000).await.unwrap();
        pending.insert(shard, rows.len());
    }
    pending
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    tokio::time::timeout(STEP_TIMEOUT, async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within {STEP_TIMEOUT:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_down_the_outbox_grows_and_drains_exactly_once_after_restore() {
    let proxy = proxy_to_the_fault_listener().await;

    let shards = Shards::mariadb("relay_outage").await;
    let tenants = [tenant("acme")];
    let mut kafka_config = KafkaBusConfig::new(vec![proxy.host_port()])
        .with_topic_prefix(oc_test_support::unique_prefix("outage"))
        .with_partitions(2);
    // a cut-off broker surfaces as an error within a second (the relay retries)
    kafka_config.operation_deadline = Duration::from_secs(1);
    let kafka = Arc::new(KafkaEventBus::new(kafka_config).unwrap());
    let breaker = CircuitBreaker::new(
        "bus",
        BreakerConfig {
            consecutive_failures: 2,
            failure_rate: 1.0,
            minimum_calls: 100,
            window_ms: 10_000,
            open_ms: 500,
            half_open_probes: 1,
            call_timeout_ms: 2_000,
        },
    );
    let bus: Arc<dyn EventBus> = Arc::new(Guarded::new(
        Arc::clone(&kafka) as Arc<dyn EventBus>,
        breaker.clone(),
    ));
    let relay = Relay::new(
        shards.store(),
        bus,
        RelayConfig {
            batch_size: 16,
            idle_poll: Duration::from_millis(20),
            backoff: BackoffConfig {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(500),
                multiplier: 2.0,
            },
            step_timeout: Duration::from_secs(10),
        },
    );
    let running = RunningRelay::spawn(&relay);

    // up: the first orders go through
    let before = create_orders(&shards.store, &tenants, 10, 1).await;
    wait_until("the first events are published", async || {
        shards.pending().await == 0
    })
    .await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    let opened_before = breaker.snapshot().transitions[BreakerState::Open as usize];

    // down: writes still commit, the outbox grows, nothing is marked published
    proxy.block();
    let during = create_orders(&shards.store, &tenants, 20, 2).await;
    let expected_pending = during.len() * 2;
    assert_eq!(shards.pending().await, expected_pending);
    wait_until("the bus breaker opens", async || {
        breaker.snapshot().transitions[BreakerState::Open as usize] > opened_before
    })
    .await;
    // a while later the outbox still holds every event of the outage
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pending = pending_by_shard(&shards).await;
    let pending_total: usize = pending.values().sum();
    eprintln!(
        "bus down: {pending_total} outbox rows pending ({pending:?}), breaker {}, {} calls refused, relay failures {:?}",
        breaker.state(),
        breaker.snapshot().rejected,
        relay
            .stats()
            .shards
            .values()
            .map(|s| s.failures_total)
            .collect::<Vec<_>>()
    );
    assert_eq!(pending_total, expected_pending, "no event lost or sent");
    assert!(
        breaker.snapshot().rejected > 0,
        "the open breaker refused publishes without calling the broker"
    );

    // back: the relay drains the outbox
    proxy.restore();
    wait_until("the outbox drains after the bus is back", async || {
        shards.pending().await == 0
    })
    .await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    running.stop().await;

    // every event on the topic exactly once, by (order, version)
    let client = kafka.client().await.unwrap();
    let topic = kafka.naming().tenant_topic(&tenants[0]);
    let total = before.len() + expected_pending;
    let events = read_topic(&client, &topic, total).await;
    let mut seen: BTreeMap<(OrderId, u64), usize> = BTreeMap::new();
    for consumed in &events {
        *seen
            .entry((consumed.event.order_id, consumed.event.version))
            .or_default() += 1;
    }
    let mut expected = Vec::new();
    for (_, id) in &before {
        expected.push(((*id), 1));
    }
    for (_, id) in &during {
        expected.push(((*id), 1));
        expected.push(((*id), 2));
    }
    expected.sort();
    assert_eq!(events.len(), total, "no duplicates");
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), expected);
    assert!(seen.values().all(|count| *count == 1));
    shards.finish().await;
}
