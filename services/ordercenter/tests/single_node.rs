//! The real binary in single-node mode: an order written over HTTP travels through the
//! outbox, the relay and the projector into the search index and the cold store; after a
//! graceful stop, `reconcile` finds every read model in step with the shards.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn an_order_reaches_search_and_cold_store_and_reconciles_clean() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve(command(data.path()), port);
    let order = CreateRequest::new("retail", "buyer-sn")
        .line("MUG", "Ceramic mug", 1, 2500)
        .receiver("Han Meimei", "13700002222", "2 Huaihai Road")
        .extension("member_level", "gold")
        .body();
    let (status, body) = http(port, "POST", "/v1/orders", Some(&order)).unwrap();
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

    let report = reconcile_report(command(data.path()), "retail");
    assert_eq!(report["clean"], true);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["search"]);
    assert_eq!(report["checksum"]["shard"], report["checksum"]["cold"]);
    assert_eq!(report["checksum"]["shard"]["count"], 1);
    // the after-sale lists of the same window are checked too (none here)
    assert_eq!(report["after_sales"]["clean"], true, "{report}");
    assert_eq!(report["after_sales"]["shard_count"], 0, "{report}");

    // a rebuilt read model reconciles clean as well: the search index is thrown away, so
    // what reconcile finds in it is what backfill wrote (without the rebuild it is not clean)
    std::fs::remove_dir_all(data.path().join("search")).unwrap();
    let backfilled = backfill(command(data.path()), "retail");
    assert_eq!(backfilled["orders"], 1, "{backfilled}");
    let rebuilt = reconcile(command(data.path()), "retail");
    let report: serde_json::Value = serde_json::from_slice(&rebuilt.stdout).unwrap();
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(rebuilt.status.code(), Some(0), "{report}");
    assert_eq!(report["checksum"]["shard"], report["checksum"]["search"]);
    assert_eq!(report["checksum"]["search"]["count"], 1);
}

/// Search hits of `query` as the index answers them (never the degraded fallback).
fn searched_ids(port: u16, query: &str) -> Vec<String> {
    let (status, body) = http(port, "GET", query, None).unwrap();
    assert_eq!(status, 200, "{body}");
    let result: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(result["degraded"], false, "{result}");
    result["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue 13 item 6: the relay marks outbox rows published as soon as the in-process bus holds
/// them, so events published but not yet applied died with the process. Here the search sink
/// is unreachable during the first life (the projector retries, the relay keeps publishing),
/// the process is SIGKILLed, and the second life (with a working index) must catch up from the
/// projector's durable position.
#[test]
fn a_sigkilled_single_node_catches_up_its_read_models_at_restart() {
    let data = tempfile::tempdir().unwrap();
    let dead_search = format!("http://127.0.0.1:{}", free_port());
    let port = free_port();
    let mut first = command(data.path());
    first.env("OC_SEARCH_URL", &dead_search);
    let mut first = serve(first, port);
    let ids: Vec<String> = (0..3)
        .map(|n| {
            let order = create_retail_order(port, &format!("buyer-kill-{n}"), "KILN-LAMP");
            order["id"].as_str().unwrap().to_owned()
        })
        .collect();
    // the relay has taken every row out of the outbox (today: marked published)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = http(port, "GET", "/metrics", None).unwrap();
        let published = metrics
            .lines()
            .find(|line| line.starts_with("oc_relay_published_total"))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0);
        if published >= 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "relay never published:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first.0.kill().unwrap(); // SIGKILL: no graceful shutdown, nothing flushed
    first.0.wait().unwrap();

    let port = free_port();
    let mut second = serve(command(data.path()), port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = searched_ids(port, "/v1/orders/search?q=tea");
        if ids.iter().all(|id| found.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "orders created before the SIGKILL never reached the index: found {found:?} of {ids:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(&mut second);
}

/// A counter of `/metrics`, 0 when absent.
fn metric(port: u16, name: &str) -> u64 {
    let (status, metrics) = http(port, "GET", "/metrics", None).unwrap();
    assert_eq!(status, 200);
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Issue #13 item 15: single-node `serve` runs the purge jobs (here with a retention of
/// 1 ms): the outbox row goes once the projector has applied it (the order is searchable
/// and stays so) and the idempotency record goes too, so the same key then makes a new
/// order instead of answering the first.
#[test]
fn single_node_serve_purges_the_outbox_and_idempotency_keys_behind_the_projector() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut purging = command(data.path());
    purging
        .env("OC_OUTBOX_RETENTION_MS", "1")
        .env("OC_IDEMPOTENCY_RETENTION_MS", "1")
        .env("OC_SCHEDULER_POLL_MS", "100");
    let _server = serve(purging, port);
    let order = CreateRequest::new("retail", "buyer-purge")
        .line("KETTLE", "Kettle", 1, 4500)
        .body();
    let key = [("Idempotency-Key", "purge-key-1")];
    let (status, body) = request(port, "POST", "/v1/orders", &key, Some(&order)).unwrap();
    assert_eq!(status, 201, "{body}");
    let first = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(port, "oc_scheduler_purged_total{table=\"outbox\"}") < 1
        || metric(port, "oc_scheduler_purged_total{table=\"idempotency\"}") < 1
    {
        assert!(Instant::now() < deadline, "nothing was purged in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    // the purged outbox row had been applied: the order is in the index
    assert_eq!(
        searched_ids(port, "/v1/orders/search?q=kettle"),
        vec![first.clone()]
    );
    // the key is gone: the same request is a new order
    let (status, body) = request(port, "POST", "/v1/orders", &key, Some(&order)).unwrap();
    assert_eq!(status, 201, "{body}");
    let second = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second, "a purged key no longer replays");
}
