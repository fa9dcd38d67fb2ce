//! The real binaries in cluster mode, on the real engines of `deploy/local/services.sh`:
//! `serve` writes to two MariaDB shard databases (cache in Redis), `relay` moves the outbox
//! to Apache Kafka, `project` applies the events to OpenSearch (the Elasticsearch adapter)
//! and HBase (through its Thrift server) and keeps its positions in the shard database; the
//! API's search reads OpenSearch. A stopped and restarted projector resumes; `reconcile`
//! finds everything in step. Each run has its own databases, topic prefix, index prefix and
//! HBase table.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sqlx::Row;

struct Cluster {
    shards: String,
    kafka: String,
    data: tempfile::TempDir,
    /// `http://…:9200?prefix=…&replicas=0`: OpenSearch, this run's indices only.
    search: String,
    /// `hbase://…:9090?table=…`: this run's table.
    cold: String,
}

impl Cluster {
    fn command(&self, with_read_models: bool) -> Command {
        let mut command = command(self.data.path());
        on_shards(&mut command, &self.shards)
            .env("OC_KAFKA_URL", &self.kafka)
            .env("OC_REDIS_URL", oc_test_support::redis_url())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if with_read_models {
            command
                .env("OC_SEARCH_URL", &self.search)
                .env("OC_COLD_URL", &self.cold);
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
        reconcile_report(self.command(true), "retail")
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
    let search = oc_test_support::SearchPrefix::new("cluster").await.unwrap();
    let table = oc_test_support::HbaseTable::new("cluster").await.unwrap();
    let cluster = Cluster {
        shards: databases.urls().join(","),
        kafka: format!("kafka://{brokers}?prefix={prefix}&partitions=2"),
        data: tempfile::tempdir().unwrap(),
        search: format!("{}?prefix={}&replicas=0", search.url(), search.prefix()),
        cold: format!(
            "hbase://{}?table={}&salt_buckets=4",
            oc_test_support::hbase_address(),
            table.name()
        ),
    };
    keys_init(cluster.command(false));
    let port = free_port();
    let mut api = cluster.spawn("serve", true, &[("OC_LISTEN", format!("127.0.0.1:{port}"))]);
    wait_healthy(port);
    let relay_port = free_port();
    let mut relay = cluster.spawn(
        "relay",
        false,
        &[("OC_LISTEN", format!("127.0.0.1:{relay_port}"))],
    );
    // two projectors split the two partitions of the topic between them, writing to the
    // same OpenSearch and HBase; an event applied by both would count twice below.
    let member_ports = [free_port(), free_port()];
    let mut members: Vec<Server> = (0..2)
        .map(|member| {
            cluster.spawn(
                "project",
                true,
                &[
                    ("OC_PROJECTOR_MEMBER", format!("{member}/2")),
                    ("OC_LISTEN", format!("127.0.0.1:{}", member_ports[member])),
                ],
            )
        })
        .collect();

    // orders go to the partition their id hashes to, so a handful can all land on one
    // partition (6 random ids: 1 in 32); create until both partitions hold events, which
    // is what the two members need to each own some, bounded at 64 orders.
    let mut orders = 0;
    loop {
        create(port, orders);
        orders += 1;
        if orders < 6 {
            continue;
        }
        wait_applied(&shard_zero, orders as i64).await;
        let partitions: Vec<i64> = sqlx::query("SELECT partition_id FROM consumer_offsets WHERE group_id = 'ordercenter-projector' ORDER BY partition_id")
            .fetch_all(&shard_zero)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<i64, _>(0).unwrap())
            .collect();
        if partitions == vec![0, 1] {
            break;
        }
        assert!(
            orders < 64,
            "positions of both partitions after {orders} orders: {partitions:?}"
        );
    }
    let relay_metrics = metrics(relay_port);
    assert_eq!(
        metric_value(&relay_metrics, "oc_relay_published_total"),
        orders as f64
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
    assert_eq!(orders_applied, orders as f64);
    for member in &mut members {
        stop(member);
    }
    // the API's search answers from OpenSearch: every order, not degraded
    let found = search_until(port, orders);
    assert_eq!(found["degraded"], false, "{found}");

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
    wait_applied(&shard_zero, orders as i64).await;
    stop(&mut projector);
    let report = cluster.reconcile();
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["checksum"]["shard"]["count"], orders);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["search"]);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["cold"]);

    // a restarted projector resumes from its stored positions and takes the new order
    let mut projector = cluster.spawn(
        "project",
        true,
        &[("OC_LISTEN", format!("127.0.0.1:{}", free_port()))],
    );
    create(port, orders);
    wait_applied(&shard_zero, orders as i64 + 1).await;
    stop(&mut projector);
    let report = cluster.reconcile();
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["checksum"]["cold"]["count"], orders + 1);

    stop(&mut relay);
    stop(&mut api);
    drop(shard_zero);
    databases.cleanup().await.unwrap();
    search.cleanup().await.unwrap();
    table.cleanup().await.unwrap();
}

/// `GET /v1/orders/search` (the tenant's whole list) until it holds `count` orders;
/// OpenSearch makes writes searchable after its refresh interval (1 s).
fn search_until(port: u16, count: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http(port, "GET", "/v1/orders/search?limit=100", None).unwrap();
        assert_eq!(status, 200, "{body}");
        let result: serde_json::Value = serde_json::from_str(&body).unwrap();
        if result["items"].as_array().map_or(0, Vec::len) == count {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "search did not list {count} orders: {result}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
