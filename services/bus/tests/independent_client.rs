//! What the Kafka adapter writes is readable outside our code, by two clients that share
//! nothing with rskafka: a Python consumer (`kafka-python`, see `read_topic.py`) and Apache
//! Kafka's own `kafka-console-consumer` (Java, from the broker's jars). Each test compares
//! every record the client prints with what was published, CloudEvents headers included.
//!
//! Needs `python3` with `kafka-python` and the broker's classpath (`deploy/local/test.sh`
//! installs the first, `deploy/local/services.sh up` resolves the second).

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

/// Runs Kafka's `kafka-console-consumer` (through `deploy/local/engines/kafka-tool.sh`) on
/// one partition of `topic` from its start, printing partition, offset, headers, key and
/// value per record, tab separated; headers as `name:value` joined by `|`.
async fn read_with_console_consumer(topic: &str, partition: i32, count: usize) -> Vec<String> {
    let tool = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/local/engines/kafka-tool.sh"
    );
    let brokers = oc_test_support::kafka_brokers().join(",");
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(tool)
            .args(["console-consumer", "--bootstrap-server", &brokers])
            .args(["--topic", topic, "--partition", &partition.to_string()])
            .args(["--offset", "earliest", "--max-messages", &count.to_string()])
            .args(["--timeout-ms", "30000"])
            .args(["--formatter-property", "print.partition=true"])
            .args(["--formatter-property", "print.offset=true"])
            .args(["--formatter-property", "print.headers=true"])
            .args(["--formatter-property", "print.key=true"])
            .args(["--formatter-property", "headers.separator=|"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("kafka-console-consumer finishes within 90 s")
    .expect("kafka-tool.sh runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kafka-console-consumer failed ({}): {stderr}\n(the broker's classpath comes from `deploy/local/services.sh up`)",
        output.status
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn kafka_console_consumer_reads_what_we_publish_with_cloudevents_headers() {
    let bus = KafkaEventBus::connect(kafka_config("bus_console"))
        .await
        .unwrap();
    let acme = tenant("acme");
    let id = order_id(&acme, 1);
    let published: Vec<OrderEvent> = (1..=3).map(|version| event(&acme, id, version)).collect();
    tokio::time::timeout(STEP_TIMEOUT, bus.publish(&published))
        .await
        .unwrap()
        .unwrap();

    let topic = bus.naming().tenant_topic(&acme);
    let partition = partition_for(id, 6);
    let lines = read_with_console_consumer(&topic, partition, 3).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (offset, (line, sent)) in lines.iter().zip(&published).enumerate() {
        // Partition:P  Offset:O  headers  key  value
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        assert_eq!(fields.len(), 5, "{line}");
        assert_eq!(fields[0], format!("Partition:{partition}"));
        assert_eq!(
            fields[1],
            format!("Offset:{offset}"),
            "one order's events in order"
        );
        let headers: BTreeMap<&str, &str> = fields[2]
            .split('|')
            .map(|header| header.split_once(':').unwrap())
            .collect();
        assert_eq!(headers["ce_id"], sent.event_id());
        assert_eq!(headers["ce_specversion"], "1.0");
        assert_eq!(headers["ce_source"], "/ordercenter/acme");
        assert_eq!(headers["ce_type"], sent.kind.cloud_event_type());
        assert_eq!(headers["ce_subject"], id.to_string());
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            headers["ce_time"],
            sent.occurred_at.format(&Rfc3339).unwrap()
        );
        assert_eq!(fields[3], id.to_string());
        let value: OrderEvent = serde_json::from_str(fields[4]).unwrap();
        assert_eq!(&value, sent);
    }
}
