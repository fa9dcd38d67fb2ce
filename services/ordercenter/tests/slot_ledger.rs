//! A restart does not bypass `plan` (#13 item 7): the store keeps a ledger of the slots that
//! hold data (which field, type and encryption wrote them), and every process checks its
//! tenant config against it at start, with the refusal `config plan` gives. A slot that was
//! never written may be re-mapped freely; one that holds data keeps its meaning.
//!
//! Real processes on real shards: SQLite files (single node) and MariaDB (cluster).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const EXPRESS_KEY: &str = "oc_test_express_bl_0001_7c1f4e9a2b6d8035e1a4";

/// A deployment: its data dir, its own copy of the example tenants, and its shards.
struct Deployment {
    data: tempfile::TempDir,
    tenants: tempfile::TempDir,
    /// `OC_SHARDS` (MariaDB, cluster mode); `None`: SQLite files under the data dir.
    shards: Option<String>,
    databases: Option<oc_test_support::TestDatabases>,
}

impl Deployment {
    fn single_node() -> Deployment {
        Deployment {
            data: tempfile::tempdir().unwrap(),
            tenants: copy_of_examples(),
            shards: None,
            databases: None,
        }
    }

    async fn cluster(name: &str) -> Deployment {
        let databases = oc_test_support::TestDatabases::create(name, 2)
            .await
            .unwrap();
        let deployment = Deployment {
            data: tempfile::tempdir().unwrap(),
            tenants: copy_of_examples(),
            shards: Some(databases.urls().join(",")),
            databases: Some(databases),
        };
        keys_init(deployment.environment());
        deployment
    }

    fn environment(&self) -> Command {
        let mut command = command(self.data.path());
        command.env("OC_TENANT_CONFIG_DIR", self.tenants.path());
        if let Some(shards) = &self.shards {
            on_shards(&mut command, shards);
        }
        command
    }

    /// `serve`, which must start.
    fn serve(&self, port: u16) -> Server {
        serve(self.environment(), port)
    }

    /// `serve`, which must refuse to start: its stderr. Should it start instead, what it
    /// serves for `orders` (key, id) is the failure message.
    fn refused_start(&self, orders: &[(&str, &str)]) -> String {
        let port = free_port();
        let mut child = listening(self.environment(), "serve", port)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                assert!(!status.success(), "exit {status:?}: {stderr}");
                assert!(
                    http(port, "GET", "/healthz", None).is_err(),
                    "nothing listens after a refused start"
                );
                return stderr;
            }
            if http(port, "GET", "/healthz", None).is_ok() {
                let served: Vec<String> = orders
                    .iter()
                    .map(|(key, id)| {
                        let (status, body) =
                            request_as(key, port, "GET", &format!("/v1/orders/{id}"), &[], None)
                                .unwrap();
                        format!("GET {id} -> {status} {}", extension_of(&body))
                    })
                    .collect();
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server started with a config that re-maps slots holding data, and serves:\n  {}",
                    served.join("\n  ")
                );
            }
            assert!(
                Instant::now() < deadline,
                "the server neither started nor refused"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        edit(&self.tenants.path().join(file), from, to);
    }

    async fn cleanup(self) {
        if let Some(databases) = self.databases {
            databases.cleanup().await.unwrap();
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "test setup: {from:?} not in {path:?}");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// The `extension` member of an order's JSON (or the whole body when it has none).
fn extension_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|order| order.get("extension").map(|e| e.to_string()))
        .unwrap_or_else(|| body.to_owned())
}

fn create(port: u16, key: &str, order: serde_json::Value) -> String {
    let (status, body) = request_as(
        key,
        port,
        "POST",
        "/v1/orders",
        &[],
        Some(&order.to_string()),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn get(port: u16, key: &str, id: &str) -> serde_json::Value {
    let (status, body) =
        request_as(key, port, "GET", &format!("/v1/orders/{id}"), &[], None).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn cold_chain_order(buyer: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut order = CreateRequest::new("cold-chain", buyer)
        .line("VAC-1", "Vaccine", 1, 12000)
        .line_extension("storage_band", "chilled")
        .extension("temperature_min", "2.0")
        .extension("temperature_max", "8.0")
        .extension("cargo_category", "vaccine");
    for (name, value) in extra.as_object().unwrap() {
        order = order.extension(name, value.clone());
    }
    order.json()
}

fn retail_order(buyer: &str) -> serde_json::Value {
    CreateRequest::retail(buyer)
        .extension("invoice_title", "ACME Ltd")
        .json()
}

/// Renaming a written slot's field and moving a written field are refused at start with
/// plan's refusal; re-mapping a slot no order ever wrote starts, and the stored values are
/// still served under their own names.
fn renamed_and_moved_fields_are_refused_at_start(deployment: &Deployment) {
    let port = free_port();
    let mut server = deployment.serve(port);
    let cold = create(
        port,
        EXPRESS_KEY,
        cold_chain_order("buyer-c1", serde_json::json!({})),
    );
    let retail = create(port, RETAIL_KEY, retail_order("buyer-r1"));
    stop(&mut server);
    let orders = [(EXPRESS_KEY, cold.as_str()), (RETAIL_KEY, retail.as_str())];

    // temperature_max renamed on its slot
    deployment.edit("express.yaml", "name: temperature_max", "name: box_count");
    let refused = deployment.refused_start(&orders);
    assert!(
        refused.contains(
            "slot order.ext_02 of express/cold-chain/standard holds field `temperature_max`; \
             the new config maps it to `box_count`"
        ),
        "{refused}"
    );
    deployment.edit("express.yaml", "name: box_count", "name: temperature_max");

    // invoice_title moved to another slot
    let at_02 = "name: invoice_title\n            type: string\n            slot: order.ext_02";
    let at_05 = "name: invoice_title\n            type: string\n            slot: order.ext_05";
    deployment.edit("retail.yaml", at_02, at_05);
    let refused = deployment.refused_start(&orders);
    assert!(
        refused.contains(
            "field `invoice_title` of retail/retail/standard moves from slot order.ext_02 to \
             order.ext_05; its stored values stay in order.ext_02"
        ),
        "{refused}"
    );
    deployment.edit("retail.yaml", at_05, at_02);

    // member_level (order.ext_03) was never written: its slot may take another field
    deployment.edit("retail.yaml", "name: member_level", "name: loyalty_tier");
    let mut server = deployment.serve(port);
    assert_eq!(
        get(port, RETAIL_KEY, &retail)["extension"]["invoice_title"],
        "ACME Ltd"
    );
    assert_eq!(
        get(port, EXPRESS_KEY, &cold)["extension"]["temperature_max"],
        "8.0"
    );
    stop(&mut server);
}

const RETIRED: &str = "        # order.ext_06 held `ice_pack_count` in an earlier config: retired, reserved forever\n        retired_slots: [order.ext_06]\n";

fn field_on_ext_06(name: &str) -> String {
    format!(
        "          - name: {name}\n            type: string\n            slot: order.ext_06\n            encrypted: true\n"
    )
}

/// A field retired from a slot that holds data cannot come back under another name, nor can
/// the slot be released: not with a restart either.
fn a_retired_slot_holding_data_is_not_reused_at_start(deployment: &Deployment) {
    // the first config has an encrypted field on order.ext_06
    deployment.edit("express.yaml", RETIRED, &field_on_ext_06("courier_note"));
    let port = free_port();
    let mut server = deployment.serve(port);
    let cold = create(
        port,
        EXPRESS_KEY,
        cold_chain_order(
            "buyer-c2",
            serde_json::json!({"courier_note": "gate code 4711"}),
        ),
    );
    stop(&mut server);
    let orders = [(EXPRESS_KEY, cold.as_str())];

    // the field is removed and its slot retired: safe
    deployment.edit("express.yaml", &field_on_ext_06("courier_note"), RETIRED);
    let mut server = deployment.serve(port);
    assert!(
        get(port, EXPRESS_KEY, &cold)["extension"]
            .get("courier_note")
            .is_none()
    );
    stop(&mut server);

    // the retired slot reused by another field
    deployment.edit("express.yaml", RETIRED, &field_on_ext_06("seal_code"));
    let refused = deployment.refused_start(&orders);
    assert!(
        refused.contains(
            "slot order.ext_06 of express/cold-chain/standard holds field `courier_note`; \
             the new config maps it to `seal_code`"
        ),
        "{refused}"
    );

    // the retired slot released without a field
    deployment.edit("express.yaml", &field_on_ext_06("seal_code"), "");
    let refused = deployment.refused_start(&orders);
    assert!(
        refused.contains(
            "field `courier_note` is removed from express/cold-chain/standard but still owns \
             slot order.ext_06"
        ),
        "{refused}"
    );
}

#[test]
fn single_node_restart_refuses_renamed_and_moved_fields() {
    renamed_and_moved_fields_are_refused_at_start(&Deployment::single_node());
}

#[test]
fn single_node_restart_refuses_reusing_a_retired_slot() {
    a_retired_slot_holding_data_is_not_reused_at_start(&Deployment::single_node());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_restart_refuses_renamed_and_moved_fields() {
    let deployment = Deployment::cluster("ledger_moved").await;
    renamed_and_moved_fields_are_refused_at_start(&deployment);
    deployment.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_restart_refuses_reusing_a_retired_slot() {
    let deployment = Deployment::cluster("ledger_retired").await;
    a_retired_slot_holding_data_is_not_reused_at_start(&deployment);
    deployment.cleanup().await;
}

/// Two replicas whose configs differ for a moment (a rollout): one fills a slot that the
/// other's config leaves free. The other's reload then maps a new field onto that slot: a
/// plan against its own live config sees a free slot, the ledger sees the data, and the
/// reload is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_reload_refuses_a_slot_another_replica_filled() {
    let deployment = Deployment::cluster("ledger_reload").await;
    let first_port = free_port();
    let mut first = deployment.serve(first_port);

    // the second replica's config has invoice_title on order.ext_05: ext_02 is free there
    let second_tenants = copy_of_examples();
    let at_02 = "name: invoice_title\n            type: string\n            slot: order.ext_02";
    let at_05 = "name: invoice_title\n            type: string\n            slot: order.ext_05";
    edit(&second_tenants.path().join("retail.yaml"), at_02, at_05);
    let second_port = free_port();
    let log = deployment.data.path().join("second.log");
    let mut second = Server(
        listening(deployment.environment(), "serve", second_port)
            .env("OC_TENANT_CONFIG_DIR", second_tenants.path())
            .env("OC_NODE_ID", "1")
            // an accepted reload is logged at info
            .env("OC_LOG", "info,sqlx=warn")
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap(),
    );
    wait_healthy(second_port);

    // the first replica writes invoice_title into order.ext_02
    create(first_port, RETAIL_KEY, retail_order("buyer-r3"));

    // the second replica's reload puts a new field on order.ext_02
    edit(
        &second_tenants.path().join("retail.yaml"),
        "          - name: member_level",
        "          - name: po_number\n            type: string\n            slot: order.ext_02\n          - name: member_level",
    );
    signal(&second, "HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    let outcome = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("tenant config reload refused") || text.contains("tenant config reloaded")
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no reload outcome logged:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        outcome.contains("tenant config reload refused")
            && outcome.contains(
                "slot order.ext_02 of retail/retail/standard holds field `invoice_title`; \
                 the new config maps it to `po_number`"
            ),
        "{outcome}"
    );
    // and the old config stays live: po_number is not a field
    let mut order = retail_order("buyer-r4");
    order["extension"] = serde_json::json!({"po_number": "PO-1"});
    let (status, body) = request_as(
        RETAIL_KEY,
        second_port,
        "POST",
        "/v1/orders",
        &[],
        Some(&order.to_string()),
    )
    .unwrap();
    assert_eq!(status, 422, "{body}");
    stop(&mut second);
    stop(&mut first);
    deployment.cleanup().await;
}
