//! A tenant added to the tenant config of running processes (SIGHUP) is whole at once: it
//! has a data key, so its orders with personal data are created, and the cluster projector
//! reads its topics. In cluster mode the processes never create keys: until `keys init` has
//! added the tenant's key to the key ring, the reload is refused and the tenant stays out.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use sqlx::Row;

/// An `outlet` order for `buyer`, with a receiver (personal data, sealed under the tenant's
/// data key).
fn create_outlet_order(port: u16, buyer: &str) -> (u16, String) {
    let order = CreateRequest::new("retail", buyer)
        .line("OUT-1", "Kettle", 1, 5900)
        .receiver("Wang Fang", "13800003333", "3 Xizang Road")
        .body();
    request_as(OUTLET_KEY, port, "POST", "/v1/orders", &[], Some(&order)).unwrap()
}

fn read_outlet_order(port: u16, id: &str) -> serde_json::Value {
    let (status, body) = request_as(
        OUTLET_KEY,
        port,
        "GET",
        &format!("/v1/orders/{id}"),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn single_node_serve(data: &Path, tenants: &Path, port: u16) -> Server {
    let mut command = command(data);
    command.env("OC_TENANT_CONFIG_DIR", tenants);
    serve(command, port)
}

use std::path::Path;

#[test]
fn single_node_a_tenant_added_by_reload_gets_its_data_key() {
    let data = tempfile::tempdir().unwrap();
    let tenants = copy_of_examples();
    let port = free_port();
    let mut server = single_node_serve(data.path(), tenants.path(), port);

    add_outlet_tenant(tenants.path());
    signal(&server, "HUP");
    wait_key_accepted(port, OUTLET_KEY);
    let (status, body) = create_outlet_order(port, "buyer-o1");
    assert_eq!(status, 201, "a create with a receiver: {body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        read_outlet_order(port, &id)["parties"]["receiver"]["name"],
        "Wang Fang"
    );

    // the key was written to the key ring file: after a restart the order still opens
    stop(&mut server);
    let ring = std::fs::read_to_string(data.path().join("keyring.json")).unwrap();
    assert!(ring.contains("\"tenant\": \"outlet\""), "{ring}");
    let mut server = single_node_serve(data.path(), tenants.path(), port);
    assert_eq!(
        read_outlet_order(port, &id)["parties"]["receiver"]["name"],
        "Wang Fang"
    );
    stop(&mut server);
}

/// Committed projector positions of the topics whose name contains `tenant`.
async fn applied_of(pool: &sqlx::MySqlPool, tenant: &str) -> i64 {
    sqlx::query("SELECT CAST(COALESCE(SUM(next_offset), 0) AS SIGNED) FROM consumer_offsets WHERE group_id = 'ordercenter-projector' AND topic LIKE ?")
        .bind(format!("%{tenant}%"))
        .fetch_one(pool)
        .await
        .map(|row| row.try_get::<i64, _>(0).unwrap_or(0))
        .unwrap_or(0)
}

async fn wait_applied_of(pool: &sqlx::MySqlPool, tenant: &str, events: i64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while applied_of(pool, tenant).await < events {
        assert!(
            Instant::now() < deadline,
            "the projector did not apply {events} event(s) of tenant {tenant}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_tenant_added_by_reload_is_served_and_projected() {
    let databases = oc_test_support::TestDatabases::create("reload", 2)
        .await
        .unwrap();
    let shard_zero = databases.connect(0).await.unwrap();
    let prefix = oc_test_support::unique_prefix("reload");
    let brokers = oc_test_support::kafka_brokers().join(",");
    let data = tempfile::tempdir().unwrap();
    let read_models = tempfile::tempdir().unwrap();
    let tenants = copy_of_examples();
    let shards = databases.urls().join(",");
    let kafka = format!("kafka://{brokers}?prefix={prefix}&partitions=2");
    let environment = || -> Command {
        let mut command = command(data.path());
        command
            .env("OC_TENANT_CONFIG_DIR", tenants.path())
            .env("OC_KAFKA_URL", &kafka);
        on_shards(&mut command, &shards);
        command
    };
    let process = |subcommand: &str, port: u16| listening(environment(), subcommand, port);
    let init_keys = || keys_init(environment());
    let initialised = init_keys();
    assert_eq!(
        initialised["created"],
        serde_json::json!(["express", "retail"]),
        "{initialised}"
    );

    let port = free_port();
    let mut api = start(environment(), "serve", port);
    let mut relay = Server(process("relay", free_port()).spawn().unwrap());
    let projector_port = free_port();
    let mut projector = Server(
        process("project", projector_port)
            .env(
                "OC_SEARCH_URL",
                format!("tantivy://{}", read_models.path().join("search").display()),
            )
            .env(
                "OC_COLD_URL",
                format!("redb://{}", read_models.path().join("cold.redb").display()),
            )
            .spawn()
            .unwrap(),
    );
    wait_healthy(projector_port);
    create_retail_order(port, "buyer-r1", "SKU-R1");
    wait_applied_of(&shard_zero, "retail", 1).await;

    // the new tenant has no data key yet: the reload is refused, the tenant stays out
    add_outlet_tenant(tenants.path());
    signal(&api, "HUP");
    std::thread::sleep(Duration::from_secs(2));
    let (status, body) = create_outlet_order(port, "buyer-o0");
    assert_eq!(
        status, 401,
        "a tenant without a data key must not go live: {body}"
    );

    // `keys init` adds its key; the next reload takes it, in the API and in the projector
    let initialised = init_keys();
    assert_eq!(
        initialised["created"],
        serde_json::json!(["outlet"]),
        "{initialised}"
    );
    signal(&api, "HUP");
    signal(&projector, "HUP");
    wait_key_accepted(port, OUTLET_KEY);
    let (status, body) = create_outlet_order(port, "buyer-o1");
    assert_eq!(status, 201, "{body}");
    wait_applied_of(&shard_zero, "outlet", 1).await;
    let (status, body) = http(projector_port, "GET", "/healthz", None).unwrap();
    assert_eq!(status, 200, "the projector is still running: {body}");

    stop(&mut projector);
    stop(&mut relay);
    stop(&mut api);
    drop(shard_zero);
    databases.cleanup().await.unwrap();
}
