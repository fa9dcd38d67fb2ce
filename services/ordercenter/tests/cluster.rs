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

/// `/metrics` of a process on `port`.
fn metrics(port: u16) -> String {
    let (status, body) = http(port, "GET", "/metrics", None).unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample named exactly `name` (with its labels), 0 when absent.
fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.trim().parse::<f64>().unwrap())
        .sum()
}

fn create(port: u16, n: usize) -> String {
    create_retail_order(port, &format!("buyer-c{n}"), &format!("SKU-{n}"))["id"]
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
    keys_init(cluster.command(false));
    let port = free_port();
    let mut api = cluster.spawn(
        "serve",
        false,
        &[("OC_LISTEN", format!("127.0.0.1:{port}"))],
    );
    wait_healthy(port);
    let relay_port = free_port();
    let mut relay = cluster.spawn(
        "relay",
        false,
        &[("OC_LISTEN", format!("127.0.0.1:{relay_port}"))],
    );
    // two projectors split the two partitions of the topic between them. Embedded read
    // models have one writer each, so every member gets its own (in a real cluster they
    // share Elasticsearch and HBase); an event applied by both would count twice below.
    let member_ports = [free_port(), free_port()];
    let member_dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut members: Vec<Server> = (0..2)
        .map(|member| {
            let dir = member_dirs[member].path();
            cluster.spawn(
                "project",
                true,
                &[
                    ("OC_PROJECTOR_MEMBER", format!("{member}/2")),
                    ("OC_LISTEN", format!("127.0.0.1:{}", member_ports[member])),
                    (
                        "OC_SEARCH_URL",
                        format!("tantivy://{}", dir.join("search").display()),
                    ),
                    (
                        "OC_COLD_URL",
                        format!("redb://{}", dir.join("cold.redb").display()),
                    ),
                ],
            )
        })
        .collect();

    const ORDERS: usize = 6;
    for n in 0..ORDERS {
        create(port, n);
    }
    wait_applied(&shard_zero, ORDERS as i64).await;
    let partitions: Vec<i64> = sqlx::query("SELECT partition_id FROM consumer_offsets WHERE group_id = 'ordercenter-projector' ORDER BY partition_id")
        .fetch_all(&shard_zero)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<i64, _>(0).unwrap())
        .collect();
    assert_eq!(partitions, vec![0, 1], "positions of both partitions");
    let relay_metrics = metrics(relay_port);
    assert_eq!(
        metric_value(&relay_metrics, "oc_relay_published_total"),
        ORDERS as f64
    );
    assert!(relay_metrics.contains("oc_relay_oldest_pending_age_ms{shard=\"0\"}"));
    // every order was applied by exactly one member: their counts add up to the orders
    let mut orders_applied = 0.0;
    for port in member_ports {
        let text = metrics(port);
        orders_applied += metric_value(
            &text,
            "oc_projector_writes_total{sink=\"search\",outcome=\"applied\"}",
        );
        assert!(text.contains("oc_projector_lag_records"), "{text}");
    }
    assert_eq!(orders_applied, ORDERS as f64);
    for member in &mut members {
        stop(member);
    }

    // replay from the start (positions dropped) into the shared read models with one
    // projector that owns every partition: a rebuild, then everything reconciles
    sqlx::query("DELETE FROM consumer_offsets WHERE group_id = 'ordercenter-projector'")
        .execute(&shard_zero)
        .await
        .unwrap();
    let mut projector = cluster.spawn(
        "project",
        true,
        &[("OC_LISTEN", format!("127.0.0.1:{}", free_port()))],
    );
    wait_applied(&shard_zero, ORDERS as i64).await;
    stop(&mut projector);
    let report = cluster.reconcile();
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["checksum"]["shard"]["count"], ORDERS);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["search"]);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["cold"]);

    // a restarted projector resumes from its stored positions and takes the new order
    let mut projector = cluster.spawn(
        "project",
        true,
        &[("OC_LISTEN", format!("127.0.0.1:{}", free_port()))],
    );
    create(port, ORDERS);
    wait_applied(&shard_zero, ORDERS as i64 + 1).await;
    stop(&mut projector);
    let report = cluster.reconcile();
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["checksum"]["cold"]["count"], ORDERS + 1);

    stop(&mut relay);
    stop(&mut api);
    drop(shard_zero);
    databases.cleanup().await.unwrap();
}
