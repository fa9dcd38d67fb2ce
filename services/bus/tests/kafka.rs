//! The Kafka adapter against the real local broker (tansu): topics, keys, headers, order,
//! tenant isolation, topic creation races, and the event source with committed offsets.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{
    STEP_TIMEOUT, event, event_in, kafka_config, order_id, read_events, tenant, versions_by_order,
};
use oc_bus::{
    Assignment, InMemoryOffsetStore, KafkaBusConfig, KafkaEventBus, KafkaEventSource, OffsetStore,
    SourceConfig, StartOffset, TopicPolicy, TopicRouting, partition_for,
};
use oc_model::ports::EventBus;
use oc_model::{ErrorCode, OrderEvent, OrderId, TenantId};
use rskafka::client::partition::UnknownTopicHandling;

const VERSIONS: u64 = 4;

/// `orders` orders of `tenant`, every version, as two batches (versions 1–2, then 3–4) in
/// which the orders interleave.
fn two_batches(tenant: &TenantId, orders: usize) -> (Vec<OrderId>, Vec<Vec<OrderEvent>>) {
    let ids: Vec<OrderId> = (0..orders).map(|n| order_id(tenant, n)).collect();
    let batch = |versions: std::ops::RangeInclusive<u64>| {
        versions
            .flat_map(|version| ids.iter().map(move |id| event(tenant, *id, version)))
            .collect::<Vec<_>>()
    };
    (ids.clone(), vec![batch(1..=2), batch(3..=VERSIONS)])
}

/// Publishes `events`, which must succeed within the step timeout.
async fn publish(bus: &KafkaEventBus, events: &[OrderEvent]) {
    tokio::time::timeout(STEP_TIMEOUT, bus.publish(events))
        .await
        .unwrap()
        .unwrap();
}

/// `count` orders of `owner` and the event of each one's first version.
fn first_versions(owner: &TenantId, count: usize) -> (Vec<OrderId>, Vec<OrderEvent>) {
    let ids: Vec<OrderId> = (0..count).map(|n| order_id(owner, n)).collect();
    let events = ids.iter().map(|id| event(owner, *id, 1)).collect();
    (ids, events)
}

#[tokio::test]
async fn publishes_cloudevents_keyed_by_order_to_a_topic_per_tenant() {
    let config = kafka_config("bus_tenants");
    let bus = KafkaEventBus::connect(config.clone()).await.unwrap();
    let acme = tenant("acme");
    let globex = tenant("globex");
    let (acme_ids, acme_batches) = two_batches(&acme, 5);
    let (globex_ids, globex_batches) = two_batches(&globex, 3);
    for (acme_batch, globex_batch) in acme_batches.iter().zip(&globex_batches) {
        // one publish carries both tenants: the adapter splits it by topic
        let mixed: Vec<OrderEvent> = acme_batch.iter().chain(globex_batch).cloned().collect();
        publish(&bus, &mixed).await;
    }

    let client = bus.client().await.unwrap();
    let acme_topic = bus.naming().tenant_topic(&acme);
    let globex_topic = bus.naming().tenant_topic(&globex);
    assert_eq!(
        acme_topic,
        format!("{}.oc.acme.orders", config.topic_prefix)
    );
    let topics = client.list_topics().await.unwrap();
    for name in [&acme_topic, &globex_topic] {
        let topic = topics.iter().find(|topic| &topic.name == name).unwrap();
        assert_eq!(topic.partitions.len(), 6, "created with the default count");
    }

    for (topic, owner, ids) in [
        (&acme_topic, &acme, &acme_ids),
        (&globex_topic, &globex, &globex_ids),
    ] {
        let expected = ids.len() * VERSIONS as usize;
        let events = read_events(&client, topic, expected).await;
        assert_eq!(events.len(), expected, "nothing more, nothing less");
        assert!(
            events
                .iter()
                .all(|consumed| &consumed.event.tenant == owner),
            "a tenant's topic holds only that tenant's events"
        );
        for consumed in &events {
            assert_eq!(
                consumed.partition,
                partition_for(consumed.event.order_id, 6),
                "partition = hash(order id)"
            );
        }
        let by_order = versions_by_order(&events);
        assert_eq!(by_order.keys().copied().collect::<Vec<_>>(), {
            let mut sorted = ids.clone();
            sorted.sort();
            sorted
        });
        for versions in by_order.values() {
            assert_eq!(versions, &(1..=VERSIONS).collect::<Vec<_>>(), "in order");
        }
    }

    // the raw records: key, CloudEvents headers, JSON value
    let mut raw_seen = 0;
    for partition in 0..6 {
        let partition_client = client
            .partition_client(acme_topic.clone(), partition, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let (records, _high_watermark) = partition_client
            .fetch_records(0, 1..1_000_000, 100)
            .await
            .unwrap();
        for record_and_offset in records {
            let record = record_and_offset.record;
            let value: OrderEvent = serde_json::from_slice(record.value.as_ref().unwrap()).unwrap();
            let header = |name: &str| String::from_utf8(record.headers[name].clone()).unwrap();
            assert_eq!(
                record.key.clone().unwrap(),
                value.order_id.to_string().into_bytes()
            );
            assert_eq!(header("ce_specversion"), "1.0");
            assert_eq!(
                header("ce_id"),
                format!("{}-{}", value.order_id, value.version)
            );
            assert_eq!(header("ce_source"), "/ordercenter/acme");
            assert_eq!(header("ce_type"), value.kind.cloud_event_type());
            assert_eq!(header("ce_subject"), value.order_id.to_string());
            assert_eq!(header("content-type"), "application/json");
            let time = time::OffsetDateTime::parse(
                &header("ce_time"),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            assert_eq!(time, value.occurred_at);
            assert_eq!(
                record.timestamp.timestamp(),
                value.occurred_at.unix_timestamp()
            );
            raw_seen += 1;
        }
    }
    assert_eq!(raw_seen, acme_ids.len() * VERSIONS as usize);
}

#[tokio::test]
async fn a_tenant_can_have_a_topic_per_business_identity() {
    let split = tenant("initech");
    let plain = tenant("hooli");
    let routing = TopicRouting::new(TopicPolicy::PerTenant)
        .with_tenant(split.clone(), TopicPolicy::PerBusinessIdentity);
    let bus = KafkaEventBus::new(kafka_config("bus_identity").with_routing(routing)).unwrap();
    let cold = order_id(&split, 1);
    let express = order_id(&split, 2);
    let other = order_id(&plain, 3);
    let events = vec![
        event_in(&split, "cold-chain", cold, 1),
        event_in(&split, "express", express, 1),
        event_in(&plain, "cold-chain", other, 1),
        event_in(&split, "cold-chain", cold, 2),
    ];
    publish(&bus, &events).await;

    let naming = bus.naming();
    let client = bus.client().await.unwrap();
    let identity = |name: &str| oc_model::BusinessIdentity::parse(name).unwrap();
    let cold_topic = naming.business_identity_topic(&split, &identity("cold-chain"));
    assert!(cold_topic.ends_with(".oc.initech.cold-chain.orders"));
    let cold_events = read_events(&client, &cold_topic, 2).await;
    assert_eq!(versions_by_order(&cold_events)[&cold], vec![1, 2]);
    assert_eq!(cold_events.len(), 2);
    let express_topic = naming.business_identity_topic(&split, &identity("express"));
    let express_events = read_events(&client, &express_topic, 1).await;
    assert_eq!(express_events.len(), 1);
    assert_eq!(express_events[0].event.order_id, express);
    let plain_events = read_events(&client, &naming.tenant_topic(&plain), 1).await;
    assert_eq!(plain_events.len(), 1);
    assert_eq!(plain_events[0].event.order_id, other);
    let names: BTreeSet<String> = client
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|topic| topic.name)
        .filter(|name| name.starts_with(naming.prefix()))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[tokio::test]
async fn concurrent_first_use_creates_the_topic_once() {
    let config = kafka_config("bus_race");
    let buses: Vec<Arc<KafkaEventBus>> = (0..4)
        .map(|_| Arc::new(KafkaEventBus::new(config.clone()).unwrap()))
        .collect();
    let racer = tenant("racer");
    let ids: Vec<OrderId> = (0..4).map(|n| order_id(&racer, n)).collect();
    let publishes = buses.iter().zip(&ids).map(|(bus, id)| {
        let bus = Arc::clone(bus);
        let batch = vec![event(&racer, *id, 1), event(&racer, *id, 2)];
        tokio::spawn(async move { bus.publish(&batch).await })
    });
    for publish in futures_util::future::join_all(publishes).await {
        tokio::time::timeout(STEP_TIMEOUT, async { publish.unwrap() })
            .await
            .unwrap()
            .unwrap();
    }
    let client = buses[0].client().await.unwrap();
    let topic = buses[0].naming().tenant_topic(&racer);
    let events = read_events(&client, &topic, 8).await;
    assert_eq!(events.len(), 8);
    for versions in versions_by_order(&events).values() {
        assert_eq!(versions, &vec![1, 2]);
    }
}

#[tokio::test]
async fn an_existing_topic_keeps_its_partition_count() {
    let config = kafka_config("bus_existing");
    let bus = KafkaEventBus::new(config).unwrap();
    let owner = tenant("acme");
    let topic = bus.naming().tenant_topic(&owner);
    let client = bus.client().await.unwrap();
    client
        .controller_client()
        .unwrap()
        .create_topic(topic.clone(), 3, 1, 10_000)
        .await
        .unwrap();
    let (_, batch) = first_versions(&owner, 12);
    publish(&bus, &batch).await;
    let events = read_events(&client, &topic, 12).await;
    assert_eq!(events.len(), 12);
    for consumed in events {
        assert_eq!(
            consumed.partition,
            partition_for(consumed.event.order_id, 3)
        );
    }
}

#[tokio::test]
async fn the_source_resumes_from_committed_offsets() {
    let bus = KafkaEventBus::new(kafka_config("bus_offsets")).unwrap();
    let owner = tenant("acme");
    let (ids, first) = first_versions(&owner, 10);
    publish(&bus, &first).await;

    let client = bus.client().await.unwrap();
    let topic = bus.naming().tenant_topic(&owner);
    let store = InMemoryOffsetStore::new();
    let config = SourceConfig {
        max_wait: Duration::from_millis(50),
        ..SourceConfig::default()
    };
    let mut source = KafkaEventSource::open_committed(
        &client,
        &topic,
        &store,
        "indexer",
        StartOffset::Earliest,
        config,
    )
    .await
    .unwrap();
    assert_eq!(source.partition_count(), 6);
    let mut seen = Vec::new();
    tokio::time::timeout(STEP_TIMEOUT, async {
        while seen.len() < 10 {
            seen.extend(source.poll().await.unwrap().events);
        }
    })
    .await
    .unwrap();
    assert!(source.lag().values().all(|lag| *lag == Some(0)));
    source.commit(&store, "indexer").await.unwrap();
    let committed = store.load("indexer", &topic).await.unwrap();
    assert_eq!(
        committed.values().sum::<i64>(),
        10,
        "next offsets sum to the count"
    );

    let second: Vec<OrderEvent> = ids[..5].iter().map(|id| event(&owner, *id, 2)).collect();
    publish(&bus, &second).await;
    let mut resumed = KafkaEventSource::open_committed(
        &client,
        &topic,
        &store,
        "indexer",
        StartOffset::Earliest,
        config,
    )
    .await
    .unwrap();
    let mut after_restart = Vec::new();
    tokio::time::timeout(STEP_TIMEOUT, async {
        while after_restart.len() < 5 {
            after_restart.extend(resumed.poll().await.unwrap().events);
        }
        after_restart.extend(resumed.poll().await.unwrap().events);
    })
    .await
    .unwrap();
    assert_eq!(after_restart.len(), 5, "only what came after the commit");
    assert!(
        after_restart
            .iter()
            .all(|consumed| consumed.event.version == 2)
    );

    // a group that never committed starts where it is told
    let latest = KafkaEventSource::open_committed(
        &client,
        &topic,
        &store,
        "new-group",
        StartOffset::Latest,
        config,
    )
    .await
    .unwrap();
    assert_eq!(latest.positions().values().sum::<i64>(), 15);

    // a topic that does not exist is NotFound for a consumer (consumers never create)
    let missing = KafkaEventSource::open(
        &client,
        &format!("{topic}.missing"),
        &BTreeMap::new(),
        StartOffset::Earliest,
        config,
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn an_unreachable_broker_is_unavailable_not_a_hang() {
    // nothing listens on port 1 of loopback
    let mut config = KafkaBusConfig::new(vec!["127.0.0.1:1".to_owned()]);
    config.operation_deadline = Duration::from_millis(500);
    let bus = KafkaEventBus::new(config).unwrap();
    let owner = tenant("acme");
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        bus.publish(&[event(&owner, order_id(&owner, 1), 1)]),
    )
    .await
    .expect("bounded by the operation deadline")
    .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unavailable);
}

#[tokio::test]
async fn a_group_of_three_splits_the_partitions_and_commits_only_its_own() {
    let bus = KafkaEventBus::new(kafka_config("bus_group")).unwrap();
    let owner = tenant("acme");
    let (ids, batch) = first_versions(&owner, 30);
    publish(&bus, &batch).await;
    let client = bus.client().await.unwrap();
    let topic = bus.naming().tenant_topic(&owner);
    let store = InMemoryOffsetStore::new();

    let mut seen_partitions = BTreeSet::new();
    let mut seen_orders = BTreeMap::new();
    for member in 0..3 {
        let assignment = Assignment::new(member, 3).unwrap();
        let config = SourceConfig {
            max_wait: Duration::from_millis(50),
            assignment,
            ..SourceConfig::default()
        };
        let mut source = KafkaEventSource::open_committed(
            &client,
            &topic,
            &store,
            "indexer",
            StartOffset::Earliest,
            config,
        )
        .await
        .unwrap();
        let partitions = source.partitions();
        assert_eq!(partitions.len(), 2, "6 partitions over 3 members");
        for partition in &partitions {
            assert!(assignment.owns(*partition));
            assert!(
                seen_partitions.insert(*partition),
                "partition {partition} read twice"
            );
        }
        let expected = ids
            .iter()
            .filter(|id| partitions.contains(&partition_for(**id, 6)))
            .count();
        let mut events = Vec::new();
        tokio::time::timeout(STEP_TIMEOUT, async {
            while events.len() < expected {
                events.extend(source.poll().await.unwrap().events);
            }
            events.extend(source.poll().await.unwrap().events);
        })
        .await
        .unwrap();
        assert_eq!(
            events.len(),
            expected,
            "member {member} reads its share only"
        );
        for consumed in events {
            assert!(partitions.contains(&consumed.partition));
            assert!(
                seen_orders
                    .insert(consumed.event.order_id, member)
                    .is_none()
            );
        }
        source.commit(&store, "indexer").await.unwrap();
        let committed = store.load("indexer", &topic).await.unwrap();
        assert_eq!(
            committed.len(),
            2 * (member as usize + 1),
            "each member adds its own partitions' positions and leaves the others'"
        );
    }
    assert_eq!(seen_partitions.len(), 6);
    assert_eq!(
        seen_orders.len(),
        ids.len(),
        "every order read by exactly one member"
    );

    assert!(Assignment::parse("3/3").is_err());
    assert!(Assignment::parse("1/0").is_err());
    assert!(Assignment::parse("x").is_err());
    assert_eq!(Assignment::parse(" 2/5 ").unwrap().to_string(), "2/5");
}
