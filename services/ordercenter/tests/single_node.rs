//! The real binary in single-node mode: an order written over HTTP travels through the
//! outbox, the relay and the projector into the search index and the cold store; after a
//! graceful stop, `reconcile` finds every read model in step with the shards.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn an_order_reaches_search_and_cold_store_and_reconciles_clean() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Server(
        command(data.path())
            .arg("serve")
            .env("OC_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port);
    let order = r#"{"business_identity":"retail","order_type":"standard","buyer_id":"buyer-sn",
        "lines":[{"sku":"MUG","product_name":"Ceramic mug","quantity":1,"unit_price_minor":2500}],
        "receiver":{"name":"Han Meimei","phone":"13700002222","address":"2 Huaihai Road"},
        "extension":{"member_level":"gold"}}"#;
    let (status, body) = http(port, "POST", "/v1/orders", Some(order)).unwrap();
    assert_eq!(status, 201, "{body}");
    let created = Instant::now();
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // a search only the index can answer (product text + blind-indexed phone)
    let query = "/v1/orders/search?q=mug&receiver_phone=137-0000-2222";
    let visible_after = loop {
        let (status, body) = http(port, "GET", query, None).unwrap();
        assert_eq!(status, 200, "{body}");
        let result: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(result["degraded"], false);
        if result["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == id.as_str())
        {
            break created.elapsed();
        }
        assert!(
            created.elapsed() < Duration::from_secs(20),
            "order never became searchable"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("commit -> visible in search: {visible_after:?}");
    let (status, metrics) = http(port, "GET", "/metrics", None).unwrap();
    assert_eq!(status, 200);
    for name in [
        "oc_http_requests_total{tenant=\"retail\"",
        "oc_relay_published_total",
        "oc_relay_oldest_pending_age_ms{shard=\"0\"}",
        "oc_cache_reads_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }

    // graceful stop (SIGTERM) so the workers finish and release the embedded stores
    stop(&mut server);

    let reconcile = command(data.path())
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
    let report: serde_json::Value = serde_json::from_slice(&reconcile.stdout).unwrap();
    assert_eq!(reconcile.status.code(), Some(0), "{report}");
    assert_eq!(report["clean"], true);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["search"]);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["cold"]);
    assert_eq!(report["checksum"]["shard"]["count"], 1);

    // a rebuilt read model reconciles clean as well
    let backfill = command(data.path())
        .args(["backfill", "--tenant", "retail"])
        .output()
        .unwrap();
    assert_eq!(
        backfill.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&backfill.stderr)
    );
}
