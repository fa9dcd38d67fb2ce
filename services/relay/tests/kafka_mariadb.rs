//! The relay between real MariaDB shards (`oc-store-sql`) and the real Kafka-protocol broker
//! (tansu, through `oc-bus`): everything arrives in per-order version order, and a relay
//! killed at random points loses nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{
    RunningRelay, STEP_TIMEOUT, Shards, create_orders, read_topic, tenant, versions_by_order,
};
use oc_bus::{ConsumedEvent, KafkaBusConfig, KafkaEventBus};
use oc_model::ports::EventBus;
use oc_model::{OrderId, TenantId};
use oc_relay::{Relay, RelayConfig};
use rand::Rng as _;

fn kafka_bus(prefix: &str) -> Arc<KafkaEventBus> {
    let config =
        KafkaBusConfig::new(oc_test_support::kafka_brokers()).with_topic_prefix(prefix.to_owned());
    Arc::new(KafkaEventBus::new(config).unwrap())
}

fn relay_config(batch_size: u32) -> RelayConfig {
    RelayConfig {
        batch_size,
        idle_poll: Duration::from_millis(20),
        ..RelayConfig::default()
    }
}

/// Every event of every tenant's topic.
async fn read_all(
    bus: &KafkaEventBus,
    tenants: &[TenantId],
    expected: usize,
) -> BTreeMap<TenantId, Vec<ConsumedEvent>> {
    let client = bus.client().await.unwrap();
    let per_tenant = expected / tenants.len();
    let mut all = BTreeMap::new();
    for tenant_id in tenants {
        let topic = bus.naming().tenant_topic(tenant_id);
        let events = read_topic(&client, &topic, per_tenant).await;
        assert!(
            events
                .iter()
                .all(|consumed| &consumed.event.tenant == tenant_id),
            "{topic} holds only its tenant's events"
        );
        all.insert(tenant_id.clone(), events);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_every_event_in_version_order_from_mariadb_shards_to_kafka() {
    let shards = Shards::mariadb("relay_kafka").await;
    let tenants = [tenant("acme"), tenant("globex")];
    let versions = 3;
    let orders = create_orders(&shards.store, &tenants, 30, versions).await;
    let expected = orders.len() * versions as usize;
    assert_eq!(shards.pending().await, expected);

    let bus = kafka_bus(&oc_test_support::unique_prefix("relay_kafka"));
    let relay = Relay::new(
        shards.store(),
        Arc::clone(&bus) as Arc<dyn EventBus>,
        relay_config(16),
    );
    let running = RunningRelay::spawn(&relay);
    tokio::time::timeout(STEP_TIMEOUT, async {
        while relay.stats().published_total < expected as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the relay moves every event");
    running.stop().await;

    assert_eq!(shards.pending().await, 0, "outbox empty");
    let stats = relay.stats();
    assert_eq!(stats.published_total, expected as u64);
    assert_eq!(stats.shards.len(), 2);
    for (shard, shard_stats) in &stats.shards {
        assert!(shard_stats.published_total > 0, "shard {shard:?} had work");
        assert!(shard_stats.last_batch_at.is_some());
        assert_eq!(shard_stats.oldest_pending_age_ms, 0, "no lag once drained");
        assert_eq!(shard_stats.failures_total, 0);
    }

    let by_tenant = read_all(&bus, &tenants, expected).await;
    let mut seen_orders = BTreeSet::new();
    for events in by_tenant.values() {
        assert_eq!(events.len(), expected / 2, "exactly once without crashes");
        for (order_id, order_versions) in versions_by_order(events) {
            assert_eq!(order_versions, (1..=versions).collect::<Vec<_>>());
            seen_orders.insert(order_id);
        }
    }
    let created: BTreeSet<OrderId> = orders.iter().map(|(_, id)| *id).collect();
    assert_eq!(seen_orders, created);
    shards.finish().await;
}

/// Kills the relay at random points while it works through a few hundred orders, restarts
/// it (a fresh relay and bus, as a new process would), and checks what reached Kafka.
///
/// Each life ends after the relay has published a random number of events (so every kill
/// hits a relay with work left) plus a random sub-millisecond-to-3 ms delay (so kills land
/// anywhere in a round: while claiming, mid-publish, between publish and mark, mid-mark).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_at_random_points_loses_nothing() {
    const BATCH: u32 = 8;
    const RESTARTS: usize = 6;
    const VERSIONS: u64 = 3;
    let shards = Shards::mariadb("relay_crash").await;
    let tenants = [tenant("acme"), tenant("globex")];
    let orders = create_orders(&shards.store, &tenants, 150, VERSIONS).await;
    let expected = orders.len() * VERSIONS as usize;
    let prefix = oc_test_support::unique_prefix("relay_crash");

    let body = async {
        let mut killed_mid_stream = 0;
        for _ in 0..RESTARTS {
            let relay = Relay::new(
                shards.store(),
                kafka_bus(&prefix) as Arc<dyn EventBus>,
                relay_config(BATCH),
            );
            let running = RunningRelay::spawn(&relay);
            let (threshold, extra_micros) = {
                let mut rng = rand::thread_rng();
                (rng.gen_range(1..=3 * BATCH as u64), rng.gen_range(0..3_000))
            };
            while relay.stats().published_total < threshold {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            tokio::time::sleep(Duration::from_micros(extra_micros)).await;
            running.kill().await;
            if shards.pending().await > 0 {
                killed_mid_stream += 1;
            }
        }
        assert_eq!(
            killed_mid_stream, RESTARTS,
            "every kill hit a relay with work left"
        );

        // the last start runs to completion
        let relay = Relay::new(
            shards.store(),
            kafka_bus(&prefix) as Arc<dyn EventBus>,
            relay_config(BATCH),
        );
        relay.drain().await.unwrap();
        assert_eq!(shards.pending().await, 0, "outbox empty");
        killed_mid_stream
    };
    let kills = tokio::time::timeout(Duration::from_secs(30), body)
        .await
        .expect("the crash test stays under 30 s");

    let bus = kafka_bus(&prefix);
    let by_tenant = read_all(&bus, &tenants, expected).await;
    let mut received = 0;
    let mut distinct = BTreeSet::new();
    for events in by_tenant.values() {
        received += events.len();
        for (order_id, versions) in versions_by_order(events) {
            // at-least-once: a republished batch repeats versions, so the raw sequence may
            // step back; what a consumer applies ("newer than what I hold") must see every
            // version, first time in order: a new version is always exactly the next one
            let mut applied = 0;
            for version in &versions {
                if *version > applied {
                    assert_eq!(
                        *version,
                        applied + 1,
                        "order {order_id}: version {version} before {}: {versions:?}",
                        applied + 1
                    );
                    applied = *version;
                }
                distinct.insert((order_id, *version));
            }
            assert_eq!(applied, VERSIONS, "order {order_id}: every version arrived");
        }
    }
    let wanted: BTreeSet<(OrderId, u64)> = orders
        .iter()
        .flat_map(|(_, id)| (1..=VERSIONS).map(|version| (*id, version)))
        .collect();
    assert_eq!(distinct, wanted, "every (order, version), none missing");
    let duplicates = received - expected;
    // each kill can leave one published-but-unmarked batch per shard
    let bound = BATCH as usize * kills * common::SHARDS;
    eprintln!(
        "crash test: {kills} kills mid-stream, {expected} events, {duplicates} duplicates (bound {bound})"
    );
    assert!(duplicates <= bound, "{duplicates} duplicates > {bound}");
    shards.finish().await;
}
