//! What the Kafka adapter writes is readable outside our code: a Python consumer
//! (`kafka-python`, see `read_topic.py`) reads the topic and the test compares every record
//! it prints with what was published.
//!
//! Needs `python3` with `kafka-python` (`deploy/local/test.sh` installs it).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{STEP_TIMEOUT, event, kafka_config, order_id, tenant};
use oc_bus::{KafkaEventBus, partition_for};
use oc_model::OrderEvent;
use oc_model::ports::EventBus;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

/// Runs `read_topic.py` and parses its JSON lines.
async fn read_with_kafka_python(topic: &str, count: usize) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/read_topic.py");
    let brokers = oc_test_support::kafka_brokers().join(",");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("python3")
            .arg(script)
            .arg(&brokers)
            .arg(topic)
            .arg(count.to_string())
            .arg("30")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("read_topic.py finishes within 60 s")
    .expect("python3 runs (install python3 and kafka-python: deploy/local/test.sh does)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "read_topic.py failed ({}): {stderr}\n(is kafka-python installed? `python3 -m pip install kafka-python`)",
        output.status
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn kafka_python_reads_what_we_publish() {
    let bus = KafkaEventBus::connect(kafka_config("bus_python"))
        .await
        .unwrap();
    let acme = tenant("acme");
    let globex = tenant("globex");
    let acme_ids: Vec<_> = (0..4).map(|n| order_id(&acme, n)).collect();
    let globex_id = order_id(&globex, 9);
    let mut published: Vec<OrderEvent> = Vec::new();
    for version in 1..=3 {
        for id in &acme_ids {
            published.push(event(&acme, *id, version));
        }
        published.push(event(&globex, globex_id, version));
    }
    tokio::time::timeout(STEP_TIMEOUT, bus.publish(&published))
        .await
        .unwrap()
        .unwrap();

    let acme_topic = bus.naming().tenant_topic(&acme);
    let records = read_with_kafka_python(&acme_topic, 12).await;
    assert_eq!(records.len(), 12, "exactly the acme events, no globex ones");

    let expected: BTreeMap<String, &OrderEvent> = published
        .iter()
        .filter(|event| event.tenant == acme)
        .map(|event| (event.event_id(), event))
        .collect();
    let mut versions_in_partition_order: BTreeMap<String, Vec<(i64, i64, u64)>> = BTreeMap::new();
    for record in &records {
        assert_eq!(record["topic"], acme_topic.as_str());
        let headers = &record["headers"];
        let sent = expected[headers["ce_id"].as_str().unwrap()];
        // the value is the JSON of the event, and it decodes back to what was sent
        let value: OrderEvent = serde_json::from_value(record["value"].clone()).unwrap();
        assert_eq!(&value, sent);
        assert_eq!(record["key"], sent.order_id.to_string());
        assert_eq!(headers["ce_specversion"], "1.0");
        assert_eq!(headers["ce_source"], "/ordercenter/acme");
        assert_eq!(headers["ce_type"], sent.kind.cloud_event_type());
        assert_eq!(headers["ce_subject"], sent.order_id.to_string());
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            headers["ce_time"],
            sent.occurred_at.format(&Rfc3339).unwrap()
        );
        assert_eq!(
            record["timestamp"],
            (sent.occurred_at.unix_timestamp_nanos() / 1_000_000) as i64
        );
        // our partition choice is the one kafka-python's own murmur2 partitioner makes
        let partition = record["partition"].as_i64().unwrap();
        assert_eq!(partition, record["murmur2_partition"].as_i64().unwrap());
        assert_eq!(partition, i64::from(partition_for(sent.order_id, 6)));
        versions_in_partition_order
            .entry(sent.order_id.to_string())
            .or_default()
            .push((partition, record["offset"].as_i64().unwrap(), sent.version));
    }
    for (order, mut seen) in versions_in_partition_order {
        seen.sort();
        let partitions: Vec<i64> = seen.iter().map(|(partition, _, _)| *partition).collect();
        assert!(
            partitions.windows(2).all(|pair| pair[0] == pair[1]),
            "{order}: one partition"
        );
        let versions: Vec<u64> = seen.iter().map(|(_, _, version)| *version).collect();
        assert_eq!(versions, vec![1, 2, 3], "{order}: in version order");
    }
}
