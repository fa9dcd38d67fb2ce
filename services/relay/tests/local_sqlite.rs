//! Single-node mode: SQLite shards and the in-process bus.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{RunningRelay, STEP_TIMEOUT, Shards, create_orders, tenant};
use oc_bus::{LocalBusConfig, LocalEventBus, LocalSubscription};
use oc_model::ports::{EventBus, OrderStore as _};
use oc_model::{ErrorCode, OrderEvent, OrderId};
use oc_relay::{BackoffConfig, Relay, RelayConfig};

async fn receive(subscription: &mut LocalSubscription, count: usize) -> Vec<OrderEvent> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            events.push(subscription.recv().await.unwrap());
        }
        events
    })
    .await
    .unwrap_or_else(|_| panic!("{count} events did not arrive in time"))
}

fn versions(events: &[OrderEvent]) -> BTreeMap<OrderId, Vec<u64>> {
    let mut by_order: BTreeMap<OrderId, Vec<u64>> = BTreeMap::new();
    for event in events {
        by_order
            .entry(event.order_id)
            .or_default()
            .push(event.version);
    }
    by_order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_sqlite_shards_to_in_process_subscribers() {
    let shards = Shards::sqlite("relay_local").await;
    let acme = tenant("acme");
    let globex = tenant("globex");
    let bus = LocalEventBus::new(LocalBusConfig {
        capacity: 32,
        ..LocalBusConfig::default()
    });
    let mut everything = bus.subscribe();
    let mut acme_only = bus.subscribe_tenant(acme.clone());
    let relay = Relay::new(
        shards.store(),
        Arc::new(bus.clone()),
        RelayConfig {
            batch_size: 10,
            idle_poll: Duration::from_millis(10),
            ..RelayConfig::default()
        },
    );
    let running = RunningRelay::spawn(&relay);

    // orders are written while the relay runs
    let orders = create_orders(&shards.store, &[acme.clone(), globex.clone()], 15, 3).await;
    // both read at once: a subscriber that is not read stalls the bus (backpressure)
    let (all, acme_events) =
        tokio::join!(receive(&mut everything, 90), receive(&mut acme_only, 45));
    running.stop().await;

    assert!(everything.try_recv().is_none(), "nothing twice");
    assert!(acme_only.try_recv().is_none());
    assert!(acme_events.iter().all(|event| event.tenant == acme));
    let all_versions = versions(&all);
    assert_eq!(all_versions.len(), orders.len());
    for order_versions in all_versions.values() {
        assert_eq!(order_versions, &vec![1, 2, 3], "per-order version order");
    }
    for order_versions in versions(&acme_events).values() {
        assert_eq!(order_versions, &vec![1, 2, 3]);
    }
    assert_eq!(shards.pending().await, 0, "outbox empty");
    assert_eq!(relay.stats().published_total, 90);
    shards.finish().await;
}

/// A bus that refuses (a subscriber that stays full) leaves the rows in the outbox; the
/// relay backs off, reports the failures, and delivers everything once the bus takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_bus_leaves_rows_pending_and_the_relay_backs_off() {
    let shards = Shards::sqlite("relay_refuse").await;
    let acme = tenant("acme");
    create_orders(&shards.store, std::slice::from_ref(&acme), 10, 2).await;
    let bus = LocalEventBus::new(LocalBusConfig {
        capacity: 4,
        publish_timeout: Duration::from_millis(50),
    });
    let mut stuck = bus.subscribe();
    let relay = Relay::new(
        shards.store(),
        Arc::new(bus.clone()) as Arc<dyn EventBus>,
        RelayConfig {
            batch_size: 8,
            idle_poll: Duration::from_millis(10),
            backoff: BackoffConfig {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                multiplier: 2.0,
            },
            ..RelayConfig::default()
        },
    );

    // run_once reports the refusal and marks nothing
    let shard_with_rows = {
        let mut found = None;
        for shard in relay.shards() {
            if !shards
                .store
                .pending_outbox(shard, 1)
                .await
                .unwrap()
                .is_empty()
            {
                found = Some(shard);
            }
        }
        found.unwrap()
    };
    let refused = relay.run_once(shard_with_rows).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unavailable);
    assert_eq!(
        shards.pending().await,
        20,
        "nothing marked after a failed publish"
    );
    let stats = relay.stats().shards[&shard_with_rows].clone();
    assert_eq!(stats.consecutive_failures, 1);
    assert!(stats.last_error.is_some());
    assert!(stats.last_claim_size > 0);

    // the loop keeps failing and backing off while the subscriber is stuck…
    let running = RunningRelay::spawn(&relay);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failures = relay.stats().shards[&shard_with_rows].failures_total;
    assert!(failures >= 2, "retried: {failures}");
    assert!(failures < 20, "with backoff, not a busy loop: {failures}");
    assert!(shards.pending().await > 0);

    // …and delivers everything once it reads again: no version missing, repeats allowed
    let received = tokio::time::timeout(STEP_TIMEOUT, async {
        let mut received = Vec::new();
        loop {
            while let Some(event) = stuck.try_recv() {
                received.push(event);
            }
            if shards.pending().await == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                received.extend(std::iter::from_fn(|| stuck.try_recv()));
                return received;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    running.stop().await;
    let by_order = versions(&received);
    assert_eq!(by_order.len(), 10);
    for (order_id, order_versions) in by_order {
        let mut applied = 0;
        for version in order_versions {
            if version > applied {
                assert_eq!(version, applied + 1, "order {order_id}: a gap");
                applied = version;
            }
        }
        assert_eq!(applied, 2);
    }
    let stats = relay.stats().shards[&shard_with_rows].clone();
    assert_eq!(stats.consecutive_failures, 0, "recovered");
    assert!(stats.last_error.is_none());
    shards.finish().await;
}
