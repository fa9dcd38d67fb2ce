//! The real binary in single-node mode: an order written over HTTP travels through the
//! outbox, the relay and the projector into the search index and the cold store; after a
//! graceful stop, `reconcile` finds every read model in step with the shards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RETAIL_KEY: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tenant-config/examples")
}

fn command(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ordercenter"));
    command
        .env("OC_DATA_DIR", data)
        .env("OC_TENANT_CONFIG_DIR", examples_dir())
        .env("OC_LOG", "warn");
    command
}

/// One HTTP/1.1 request on its own connection: (status, body).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {RETAIL_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(port, "GET", "/healthz", None).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
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

    // graceful stop (SIGTERM) so the workers finish and release the embedded stores
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = server.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

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
