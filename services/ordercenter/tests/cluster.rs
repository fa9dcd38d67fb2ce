//! The real binaries in cluster mode, on real services: `serve` writes to two MariaDB shard
//! databases, `relay` moves the outbox to the Kafka-protocol broker, `project` applies the
//! events to a search index and a cold store and keeps its positions in the shard database.
//! A stopped and restarted projector resumes; `reconcile` finds everything in step.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sqlx::Row;

struct Cluster {
    shards: String,
    kafka: String,
    data: tempfile::TempDir,
    read_models: tempfile::TempDir,
}

impl Cluster {
    fn command(&self, with_read_models: bool) -> Command {
        let mut command = command(self.data.path());
        command
            .env("OC_SHARDS", &self.shards)
            .env("OC_KAFKA_URL", &self.kafka)
            .env("OC_MASTER_KEY", "42".repeat(32))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if with_read_models {
            let dir = self.read_models.path();
            command
                .env(
                    "OC_SEARCH_URL",
                    format!("tantivy://{}", dir.join("search").display()),
                )
                .env(
                    "OC_COLD_URL",
                    format!("redb://{}", dir.join("cold.redb").display()),
                );
        }
        command
    }

    fn spawn(&self, subcommand: &str, with_read_models: bool, extra: &[(&str, String)]) -> Server {
        let mut command = self.command(with_read_models);
        command.arg(subcommand);
        for (name, value) in extra {
            command.env(name, value);
        }
        Server(command.spawn().unwrap())
    }

    fn reconcile(&self) -> serde_json::Value {
        let output = self
            .command(true)
            .stdout(Stdio::piped())
            .args([
                "reconcile",
                "--tenant",
                "retail",
                "--from",
                "2025-01-01T00:00:00Z",
                "--to",
                "2100-01-01T00:00:00Z",
            ])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(0), "{report}");
        report
    }
}

/// Sum of the projector's committed positions: one per applied event.
async fn applied_events(shard_zero: &sqlx::MySqlPool) -> i64 {
    sqlx::query("SELECT CAST(COALESCE(SUM(next_offset), 0) AS SIGNED) FROM consumer_offsets WHERE group_id = 'ordercenter-projector'")
        .fetch_one(shard_zero)
        .await
        .map(|row| row.try_get::<i64, _>(0).unwrap_or(0))
        .unwrap_or(0)
}

async fn wait_applied(pool: &sqlx::MySqlPool, events: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while applied_events(pool).await < events {
        assert!(
            Instant::now() < deadline,
            "projector did not apply {events} events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn create(port: u16, n: usize) -> String {
    let order = format!(
        r#"{{"business_identity":"retail","order_type":"standard","buyer_id":"buyer-c{n}",
        "lines":[{{"sku":"SKU-{n}","product_name":"Tea set","quantity":1,"unit_price_minor":8800}}],
        "receiver":{{"name":"Li Lei","phone":"13900001111","address":"1 Nanjing Road"}}}}"#
    );
    let (status, body) = http(port, "POST", "/v1/orders", Some(&order)).unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_projector_processes_keep_the_read_models_in_step() {
    let databases = oc_test_support::TestDatabases::create("cluster", 2)
        .await
        .unwrap();
    let shard_zero = databases.connect(0).await.unwrap();
    let prefix = oc_test_support::unique_prefix("cluster");
    let brokers = oc_test_support::kafka_brokers().join(",");
    let cluster = Cluster {
        shards: databases.urls().join(","),
        kafka: format!("kafka://{brokers}?prefix={prefix}&partitions=2"),
        data: tempfile::tempdir().unwrap(),
        read_models: tempfile::tempdir().unwrap(),
    };
    let port = free_port();
    let mut api = cluster.spawn(
        "serve",
        false,
        &[("OC_LISTEN", format!("127.0.0.1:{port}"))],
    );
    wait_healthy(port);
    let mut relay = cluster.spawn("relay", false, &[]);
    let mut projector = cluster.spawn("project", true, &[]);

    for n in 0..5 {
        create(port, n);
    }
    wait_applied(&shard_zero, 5).await;
    stop(&mut projector);
    let report = cluster.reconcile();
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["checksum"]["shard"]["count"], 5);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["search"]);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["cold"]);

    // a restarted projector resumes from its stored positions and takes the new order
    let mut projector = cluster.spawn("project", true, &[]);
    create(port, 5);
    wait_applied(&shard_zero, 6).await;
    stop(&mut projector);
    let report = cluster.reconcile();
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["checksum"]["cold"]["count"], 6);

    stop(&mut relay);
    stop(&mut api);
    drop(shard_zero);
    databases.cleanup().await.unwrap();
}
