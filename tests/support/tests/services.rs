//! Smoke tests against the real local services. They prove that the services the test
//! command started answer, and that the helpers create and clean up what they promise.
//! They fail (never skip) when a service is down.

use std::collections::BTreeMap;

use oc_test_support::{
    KafkaTopic, RedisPrefix, STALE_DATABASE_AGE, TestDatabases, kafka_client, mysql_url,
    sweep_stale_databases,
};
use redis::AsyncCommands as _;
use rskafka::chrono::DateTime;
use rskafka::client::partition::Compression;
use rskafka::record::Record;
use sqlx::mysql::MySqlPoolOptions;

#[tokio::test]
async fn mariadb_databases_are_created_isolated_and_dropped() -> anyhow::Result<()> {
    let databases = TestDatabases::create("smoke_db", 2).await?;
    assert_eq!(databases.len(), 2);

    for index in 0..databases.len() {
        let pool = databases.connect(index).await?;
        sqlx::raw_sql(
            "CREATE TABLE shard_marker (id BIGINT PRIMARY KEY, shard VARCHAR(64) NOT NULL)",
        )
        .execute(&pool)
        .await?;
        sqlx::query("INSERT INTO shard_marker (id, shard) VALUES (?, ?)")
            .bind(1_i64)
            .bind(&databases.names()[index])
            .execute(&pool)
            .await?;
        pool.close().await;
    }

    // Each database holds only its own row: the DSNs really point at different databases.
    for index in 0..databases.len() {
        let pool = databases.connect(index).await?;
        let shards: Vec<String> = sqlx::query_scalar("SELECT shard FROM shard_marker")
            .fetch_all(&pool)
            .await?;
        assert_eq!(shards, vec![databases.names()[index].clone()]);
        pool.close().await;
    }

    let names = databases.names().to_vec();
    databases.cleanup().await?;

    let server = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&mysql_url())
        .await?;
    for name in names {
        let remaining: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(&name)
        .fetch_one(&server)
        .await?;
        assert_eq!(remaining, 0, "database {name} still exists after cleanup");
    }
    server.close().await;
    Ok(())
}

#[tokio::test]
async fn dropping_without_cleanup_still_removes_databases() -> anyhow::Result<()> {
    let databases = TestDatabases::create("smoke_drop", 1).await?;
    let name = databases.names()[0].clone();
    drop(databases);

    let server = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&mysql_url())
        .await?;
    let remaining: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(&name)
    .fetch_one(&server)
    .await?;
    assert_eq!(remaining, 0, "database {name} survived drop");
    server.close().await;
    Ok(())
}

#[tokio::test]
async fn sweep_drops_only_stale_test_databases() -> anyhow::Result<()> {
    let fresh = TestDatabases::create("smoke_sweep", 1).await?;
    // A database as a test killed in 2001 would have left it (timestamp 1_000_000_000).
    let stale_name = format!("oct_t1000000000_{}_0_000000_stale_0", std::process::id());
    let server = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&mysql_url())
        .await?;
    sqlx::raw_sql(&format!("CREATE DATABASE IF NOT EXISTS `{stale_name}`"))
        .execute(&server)
        .await?;

    // Another test process may sweep it first: what matters is that it is gone after.
    sweep_stale_databases(STALE_DATABASE_AGE).await?;

    for (name, expected) in [(stale_name.as_str(), 0_i64), (fresh.names()[0].as_str(), 1)] {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(name)
        .fetch_one(&server)
        .await?;
        assert_eq!(count, expected, "database {name}");
    }
    server.close().await;
    fresh.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn redis_keys_live_under_the_prefix_and_are_cleaned_up() -> anyhow::Result<()> {
    let prefix = RedisPrefix::new("smoke_redis")?;
    let mut connection = prefix.connection().await?;

    for index in 0..3 {
        let () = connection
            .set(
                prefix.key(&format!("order:{index}")),
                format!("value-{index}"),
            )
            .await?;
    }
    let value: Option<String> = connection.get(prefix.key("order:1")).await?;
    assert_eq!(value.as_deref(), Some("value-1"));

    // A neighbour's key must survive our cleanup.
    let neighbour = RedisPrefix::new("smoke_redis")?;
    let () = connection.set(neighbour.key("keep"), "kept").await?;

    assert_eq!(prefix.cleanup().await?, 3);
    let value: Option<String> = connection.get(prefix.key("order:1")).await?;
    assert_eq!(value, None);
    let kept: Option<String> = connection.get(neighbour.key("keep")).await?;
    assert_eq!(kept.as_deref(), Some("kept"));

    assert_eq!(neighbour.cleanup().await?, 1);
    Ok(())
}

#[tokio::test]
async fn kafka_topic_round_trips_records() -> anyhow::Result<()> {
    let topic = KafkaTopic::new("smoke_kafka");
    topic.create(2).await?;

    let client = kafka_client().await?;
    let partition = topic.partition_client(&client, 1).await?;
    let records: Vec<Record> = (0..3_i64)
        .map(|index| Record {
            key: Some(format!("key-{index}").into_bytes()),
            value: Some(format!("order-{index}").into_bytes()),
            headers: BTreeMap::from([("tenant".to_owned(), b"t1".to_vec())]),
            timestamp: DateTime::from_timestamp_millis(1_700_000_000_000 + index)
                .expect("valid timestamp"),
        })
        .collect();
    let offsets = partition
        .produce(records.clone(), Compression::NoCompression)
        .await?;
    assert_eq!(offsets.len(), 3);

    let (fetched, high_watermark) = partition.fetch_records(0, 1..1_000_000, 1_000).await?;
    assert_eq!(high_watermark, 3);
    let fetched_offsets: Vec<i64> = fetched.iter().map(|record| record.offset).collect();
    assert_eq!(fetched_offsets, offsets);
    let fetched_records: Vec<Record> = fetched.into_iter().map(|record| record.record).collect();
    assert_eq!(fetched_records, records);

    // The other partition stayed empty.
    let other = topic.partition_client(&client, 0).await?;
    let (other_records, other_high_watermark) = other.fetch_records(0, 1..1_000_000, 100).await?;
    assert!(other_records.is_empty());
    assert_eq!(other_high_watermark, 0);

    topic.cleanup().await?;
    Ok(())
}
