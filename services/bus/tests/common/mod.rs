//! Fixtures shared by the bus tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use oc_bus::{ConsumedEvent, KafkaBusConfig, KafkaEventSource, SourceConfig, StartOffset};
use oc_model::{
    Bucket, BusinessIdentity, OrderEvent, OrderEventKind, OrderId, OrderIdGenerator, OrderType,
    PartyId, StatusCode, TenantId,
};
use rskafka::client::Client;
use time::OffsetDateTime;

/// Upper bound of any one test step that waits on the broker.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

static IDS: LazyLock<OrderIdGenerator> = LazyLock::new(|| OrderIdGenerator::new(3).unwrap());

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// A fresh order id in the bucket of `(tenant, buyer-{n})`.
pub fn order_id(tenant: &TenantId, n: usize) -> OrderId {
    let buyer = PartyId::parse(format!("buyer-{n}")).unwrap();
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
    IDS.next(Bucket::of(tenant, &buyer), now_ms)
}

pub fn event(tenant: &TenantId, order_id: OrderId, version: u64) -> OrderEvent {
    event_in(tenant, "retail", order_id, version)
}

pub fn event_in(
    tenant: &TenantId,
    business_identity: &str,
    order_id: OrderId,
    version: u64,
) -> OrderEvent {
    let kind = if version == 1 {
        OrderEventKind::Created
    } else {
        OrderEventKind::Updated
    };
    OrderEvent {
        tenant: tenant.clone(),
        order_id,
        version,
        kind,
        status: StatusCode::parse(if version == 1 { "created" } else { "paid" }).unwrap(),
        business_identity: BusinessIdentity::parse(business_identity).unwrap(),
        order_type: OrderType::parse("standard").unwrap(),
        occurred_at: OffsetDateTime::from_unix_timestamp(1_790_000_000 + version as i64).unwrap(),
        transition: None,
        payment: None,
        after_sale: None,
    }
}

/// A bus config on the test broker with a fresh topic prefix.
pub fn kafka_config(label: &str) -> KafkaBusConfig {
    KafkaBusConfig::new(oc_test_support::kafka_brokers())
        .with_topic_prefix(oc_test_support::unique_prefix(label))
}

/// Reads `topic` from the start until `expected` events arrived (or fails after
/// [`STEP_TIMEOUT`]), then polls once more to catch anything unexpected beyond them.
pub async fn read_events(client: &Client, topic: &str, expected: usize) -> Vec<ConsumedEvent> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        let mut source = KafkaEventSource::open(
            client,
            topic,
            &BTreeMap::new(),
            StartOffset::Earliest,
            SourceConfig {
                max_wait: Duration::from_millis(50),
                ..SourceConfig::default()
            },
        )
        .await
        .unwrap();
        let mut events = Vec::new();
        while events.len() < expected {
            let polled = source.poll().await.unwrap();
            assert!(polled.undecodable.is_empty(), "{:?}", polled.undecodable);
            events.extend(polled.events);
        }
        let extra = source.poll().await.unwrap();
        events.extend(extra.events);
        events
    })
    .await
    .unwrap_or_else(|_| panic!("{expected} events did not arrive on {topic} in time"))
}

/// Per order, the versions in the order they were read (offset order within a partition).
pub fn versions_by_order(events: &[ConsumedEvent]) -> BTreeMap<OrderId, Vec<u64>> {
    let mut sorted: Vec<&ConsumedEvent> = events.iter().collect();
    sorted.sort_by_key(|consumed| (consumed.partition, consumed.offset));
    let mut by_order: BTreeMap<OrderId, Vec<u64>> = BTreeMap::new();
    for consumed in sorted {
        by_order
            .entry(consumed.event.order_id)
            .or_default()
            .push(consumed.event.version);
    }
    by_order
}
