#!/usr/bin/env python3
"""Reads a topic with kafka-python, an independent Kafka client, and prints one JSON line per
record: topic, partition, offset, key, headers, value (parsed JSON), timestamp, and the
partition kafka-python's own murmur2 partitioner assigns to the key.

    read_topic.py <brokers> <topic> <count> [timeout_seconds]

Exits 0 after printing exactly the records read once `count` arrived (plus whatever else a
last short poll finds); exits 2 when fewer than `count` arrive within the timeout.
"""
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2


def main():
    brokers, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 20.0
    deadline = time.monotonic() + timeout
    # No group: partitions are assigned by hand and nothing is committed. The API version is
    # negotiated (ApiVersions) with the broker, so no api_version pin is needed.
    consumer = KafkaConsumer(
        bootstrap_servers=brokers.split(","),
        group_id=None,
        enable_auto_commit=False,
        client_id="oc-bus-test-reader",
    )
    partitions = None
    while partitions is None and time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            time.sleep(0.1)
    if partitions is None:
        print(f"topic {topic} not found", file=sys.stderr)
        return 2
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)

    records = []
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    if len(records) < count:
        print(f"only {len(records)} of {count} records arrived", file=sys.stderr)
        return 2
    for batch in consumer.poll(timeout_ms=300).values():
        records.extend(batch)

    for record in records:
        key = record.key or b""
        print(json.dumps({
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": key.decode("utf-8"),
            "headers": {name: value.decode("utf-8") for name, value in record.headers},
            "value": json.loads(record.value),
            "timestamp": record.timestamp,
            "murmur2_partition": (murmur2(key) & 0x7FFFFFFF) % len(partitions),
        }))
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
