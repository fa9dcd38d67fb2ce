//! The real binary in cluster mode with its Redis behind a loopback proxy the test cuts: the
//! circuit breaker `serve` wires opens (`/metrics`, `/readyz`), reads keep answering from the
//! shards, and after the restore the breaker closes again. Thresholds come from `OC_BREAKER_*`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use oc_test_support::TcpProxy;

fn create(port: u16, n: usize) -> serde_json::Value {
    create_retail_order(port, &format!("buyer-b{n}"), &format!("SKU-{n}"))
}

fn metric(port: u16, line_start: &str) -> Option<f64> {
    let (status, text) = http(port, "GET", "/metrics", None).unwrap();
    assert_eq!(status, 200);
    text.lines()
        .find(|line| line.starts_with(line_start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

fn readyz(port: u16) -> (u16, serde_json::Value) {
    let (status, body) = http(port, "GET", "/readyz", None).unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

const CACHE_STATE: &str = "oc_breaker_state{dependency=\"cache\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_opens_the_cache_breaker_when_redis_is_cut_off_and_closes_it_after() {
    let databases = oc_test_support::TestDatabases::create("breakers", 2)
        .await
        .unwrap();
    let redis = oc_test_support::redis_url();
    let proxy = TcpProxy::start(redis.trim_start_matches("redis://").trim_end_matches('/'))
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let read_models = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = command(data.path());
    command
        .env("OC_LISTEN", format!("127.0.0.1:{port}"))
        .env("OC_SHARDS", databases.urls().join(","))
        .env("OC_MASTER_KEY", "42".repeat(32))
        .env("OC_REDIS_URL", format!("redis://{}", proxy.host_port()))
        .env(
            "OC_SEARCH_URL",
            format!("tantivy://{}", read_models.path().join("search").display()),
        )
        .env(
            "OC_COLD_URL",
            format!("redb://{}", read_models.path().join("cold.redb").display()),
        )
        .env("OC_BREAKER_CONSECUTIVE_FAILURES", "2")
        .env("OC_BREAKER_OPEN_MS", "500")
        .env("OC_BREAKER_HALF_OPEN_PROBES", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut init = common::command(data.path());
    init.env("OC_SHARDS", databases.urls().join(","))
        .env("OC_MASTER_KEY", "42".repeat(32));
    keys_init(init);
    let mut server = Server(command.arg("serve").spawn().unwrap());
    let port_copy = port;
    tokio::task::spawn_blocking(move || wait_healthy(port_copy))
        .await
        .unwrap();

    // Redis answers a ping within 50 ms (the cache's read budget); on a loaded machine one
    // probe can miss that, so the starting state is read once every dependency has answered
    // (within 10 s), not from the first probe.
    let all_up = |ready: &serde_json::Value| {
        ["shards", "cache", "search", "cold"]
            .iter()
            .all(|d| ready["dependencies"][d]["status"] == "up")
    };
    let mut probe = readyz(port);
    for _ in 0..40 {
        if all_up(&probe.1) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        probe = readyz(port);
    }
    let (status, ready) = probe;
    assert_eq!(status, 200, "{ready}");
    for dependency in ["shards", "cache", "search", "cold"] {
        assert_eq!(
            ready["dependencies"][dependency]["status"], "up",
            "{dependency}: {ready}"
        );
    }
    assert_eq!(metric(port, CACHE_STATE), Some(0.0));
    assert_eq!(
        metric(port, "oc_breaker_state{dependency=\"search\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(port, "oc_breaker_state{dependency=\"cold\"}"),
        Some(0.0)
    );

    proxy.block();
    let created: Vec<serde_json::Value> = (0..3).map(|n| create(port, n)).collect();
    for order in &created {
        let id = order["id"].as_str().unwrap();
        let (status, body) = http(port, "GET", &format!("/v1/orders/{id}"), None).unwrap();
        assert_eq!(status, 200, "{body}");
        let read: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(&read, order, "the shard answers what was created");
    }
    assert_eq!(metric(port, CACHE_STATE), Some(2.0), "open");
    assert!(
        metric(
            port,
            "oc_breaker_transitions_total{dependency=\"cache\",to=\"open\"}"
        )
        .is_some_and(|opened| opened >= 1.0)
    );
    let (status, ready) = readyz(port);
    assert_eq!(status, 200, "the shards answer: ready, degraded: {ready}");
    assert_eq!(ready["dependencies"]["cache"]["status"], "down", "{ready}");
    assert_eq!(ready["dependencies"]["cache"]["breaker"], "open", "{ready}");
    assert_eq!(ready["dependencies"]["search"]["status"], "up", "{ready}");

    proxy.restore();
    let id = created[0]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(port, CACHE_STATE) != Some(0.0) {
        assert!(Instant::now() < deadline, "the cache breaker closes again");
        let (status, _) = http(port, "GET", &format!("/v1/orders/{id}"), None).unwrap();
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, ready) = readyz(port);
    assert_eq!(ready["dependencies"]["cache"]["status"], "up", "{ready}");

    stop(&mut server);
    databases.cleanup().await.unwrap();
}
