//! The in-process bus: fan-out, order, tenant filter, and backpressure instead of loss.

mod common;

use std::time::Duration;

use common::{event, order_id, tenant};
use futures_util::StreamExt as _;
use oc_bus::{LocalBusConfig, LocalEventBus};
use oc_model::ports::EventBus;
use oc_model::{ErrorCode, OrderEvent};

const STEP: Duration = Duration::from_secs(10);

fn batch(orders: usize, versions: u64) -> Vec<OrderEvent> {
    let owner = tenant("acme");
    let ids: Vec<_> = (0..orders).map(|n| order_id(&owner, n)).collect();
    (1..=versions)
        .flat_map(|version| ids.iter().map(move |id| (*id, version)))
        .map(|(id, version)| event(&owner, id, version))
        .collect()
}

#[tokio::test]
async fn every_subscriber_gets_every_event_in_order() {
    let bus = LocalEventBus::new(LocalBusConfig {
        capacity: 8,
        publish_timeout: Duration::from_secs(5),
    });
    let mut first = bus.subscribe();
    let second = bus.subscribe();
    let events = batch(5, 4);
    assert_eq!(events.len(), 20, "more than one queue's worth");

    let publisher = {
        let bus = bus.clone();
        let events = events.clone();
        tokio::spawn(async move {
            for chunk in events.chunks(6) {
                bus.publish(chunk).await.unwrap();
            }
        })
    };
    // the first is read with recv, the second as a Stream, both concurrently
    let read_first = async {
        let mut got = Vec::new();
        while got.len() < 20 {
            got.push(first.recv().await.unwrap());
        }
        got
    };
    let read_second = second.take(20).collect::<Vec<_>>();
    let (got_first, got_second) =
        tokio::time::timeout(STEP, async { tokio::join!(read_first, read_second) })
            .await
            .unwrap();
    tokio::time::timeout(STEP, publisher)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got_first, events, "same events, same order");
    assert_eq!(got_second, events);
    assert_eq!(bus.stats().published_total, 20);
}

#[tokio::test]
async fn a_tenant_subscription_sees_only_its_tenant() {
    let bus = LocalEventBus::default();
    let acme = tenant("acme");
    let globex = tenant("globex");
    let mut acme_only = bus.subscribe_tenant(acme.clone());
    let mut everything = bus.subscribe();
    let events = vec![
        event(&acme, order_id(&acme, 1), 1),
        event(&globex, order_id(&globex, 2), 1),
        event(&acme, order_id(&acme, 1), 1),
    ];
    bus.publish(&events).await.unwrap();
    assert_eq!(acme_only.queued(), 2);
    assert_eq!(everything.queued(), 3);
    while let Some(received) = acme_only.try_recv() {
        assert_eq!(received.tenant, acme);
    }
    assert_eq!(everything.try_recv().unwrap(), events[0]);
}

#[tokio::test]
async fn a_lagging_subscriber_gets_backpressure_not_loss() {
    let bus = LocalEventBus::new(LocalBusConfig {
        capacity: 4,
        publish_timeout: Duration::from_millis(200),
    });
    let mut slow = bus.subscribe();
    let fast = bus.subscribe();
    // the fast subscriber reads all the time; the slow one reads nothing for now
    let fast_reader = tokio::spawn(fast.take(12).collect::<Vec<_>>());
    let events = batch(3, 2);

    // 4 events fit in the slow queue, then publish waits, gives up and says so
    let refused = tokio::time::timeout(STEP, bus.publish(&events))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unavailable);
    assert_eq!(bus.stats().publish_timeouts, 1);
    assert_eq!(bus.stats().published_total, 0);
    assert_eq!(
        slow.queued(),
        4,
        "what fitted is queued, nothing is dropped"
    );

    // the publisher (the relay) retries the whole batch while the slow one drains
    let retry = {
        let bus = bus.clone();
        let events = events.clone();
        tokio::spawn(async move { bus.publish(&events).await })
    };
    let slow_got: Vec<OrderEvent> = tokio::time::timeout(STEP, async {
        let mut got = Vec::new();
        while got.len() < 10 {
            got.push(slow.recv().await.unwrap());
        }
        got
    })
    .await
    .unwrap();
    tokio::time::timeout(STEP, retry)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let fast_got = tokio::time::timeout(STEP, fast_reader)
        .await
        .unwrap()
        .unwrap();

    // the slow one: the first 4 events, then the whole batch again; never a gap
    assert_eq!(slow_got[..4], events[..4]);
    assert_eq!(slow_got[4..], events[..]);
    assert!(slow.try_recv().is_none());
    // the fast one had room the first time: the batch twice (repeats are dropped by version)
    assert_eq!(fast_got[..6], events[..]);
    assert_eq!(fast_got[6..], events[..]);
    assert_eq!(bus.stats().published_total, 6);
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let bus = LocalEventBus::new(LocalBusConfig {
        capacity: 1,
        publish_timeout: Duration::from_millis(100),
    });
    let gone = bus.subscribe();
    let mut kept = bus.subscribe();
    drop(gone);
    let events = batch(1, 1);
    bus.publish(&events).await.unwrap();
    assert_eq!(bus.stats().subscribers, 1);
    assert_eq!(kept.recv().await.unwrap(), events[0]);
}
