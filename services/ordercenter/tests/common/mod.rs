//! Helpers shared by the binary-level tests: run the real `ordercenter`, talk HTTP to it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use oc_test_support::fixtures::CreateRequest;

pub const RETAIL_KEY: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";
/// The tenant admin key of `retail` (role endpoint `admin.stock`).
pub const ADMIN_KEY: &str = "oc_test_retail_admin_0001_a7c3e91f04b25d6e8f3a";

pub fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tenant-config/examples")
}

pub fn command(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ordercenter"));
    command
        .env("OC_DATA_DIR", data)
        .env("OC_TENANT_CONFIG_DIR", examples_dir())
        .env("OC_LOG", "warn");
    command
}

/// `command` in cluster mode: the comma-separated shard URLs `shards` and the tests' master
/// key.
pub fn on_shards<'a>(command: &'a mut Command, shards: &str) -> &'a mut Command {
    command
        .env("OC_SHARDS", shards)
        .env("OC_MASTER_KEY", "42".repeat(32))
}

/// `command` made `ordercenter <subcommand>` listening on `port`, its output discarded.
pub fn listening(mut command: Command, subcommand: &str, port: u16) -> Command {
    command
        .arg(subcommand)
        .env("OC_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// [`listening`] spawned; it must answer `/healthz`.
pub fn start(command: Command, subcommand: &str, port: u16) -> Server {
    let server = Server(listening(command, subcommand, port).spawn().unwrap());
    wait_healthy(port);
    server
}

/// `ordercenter serve` in `command`'s environment on `port`, once it answers `/healthz`.
pub fn serve(command: Command, port: u16) -> Server {
    start(command, "serve", port)
}

/// `ordercenter reconcile` of `tenant` over every order (2025 to 2100) in `command`'s
/// environment, run to its end.
pub fn reconcile(mut command: Command, tenant: &str) -> Output {
    command
        .stdout(Stdio::piped())
        .args([
            "reconcile",
            "--tenant",
            tenant,
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ])
        .output()
        .unwrap()
}

/// [`reconcile`], which must exit 0: its JSON report.
pub fn reconcile_report(command: Command, tenant: &str) -> serde_json::Value {
    let output = reconcile(command, tenant);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{report}");
    report
}

/// Runs `command` (an `ordercenter` subcommand that prints a JSON report), which must exit
/// 0: its report.
pub fn json_report(mut command: Command) -> serde_json::Value {
    let output = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{:?}: {}",
        command.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `ordercenter backfill` of `tenant` in `command`'s environment, which must exit 0: its
/// JSON report.
pub fn backfill(mut command: Command, tenant: &str) -> serde_json::Value {
    command.args(["backfill", "--tenant", tenant]);
    json_report(command)
}

/// Gives `tenant`'s `standard` orders in the config directory `dir` (a copy of the examples)
/// a payment window of `seconds` instead of the example's 1800.
pub fn with_payment_window(dir: &Path, tenant: &str, seconds: u64) {
    let path = dir.join(format!("{tenant}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("payment_window_seconds: 1800"), "{tenant}");
    let short = text.replace(
        "payment_window_seconds: 1800",
        &format!("payment_window_seconds: {seconds}"),
    );
    std::fs::write(&path, short).unwrap();
}

/// One HTTP/1.1 request on its own connection: (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    request(port, method, path, &[], body)
}

/// One HTTP/1.1 request with extra headers on its own connection: (status, body).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    request_as(RETAIL_KEY, port, method, path, headers, body)
}

/// [`request`] with the API key `key` instead of the example retail key.
pub fn request_as(
    key: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let body = body.unwrap_or("");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port.
/// Creates a one-line retail order for `buyer` as the example business-line key; it must be
/// created (201). Returns the order as answered.
pub fn create_retail_order(port: u16, buyer: &str, sku: &str) -> serde_json::Value {
    let order = CreateRequest::retail(buyer).sku(sku).li_lei().body();
    let (status, body) = http(port, "POST", "/v1/orders", Some(&order)).unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until the server on `port` answers `/healthz`.
pub fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(port, "GET", "/healthz", None).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM and wait: the graceful path.
pub fn stop(server: &mut Server) {
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
}

/// The business-line key of tenant `outlet` (see [`add_outlet_tenant`]).
pub const OUTLET_KEY: &str = "oc_test_outlet_bl_0001_9d2e6b1c04f7a385e1b2";

/// A tenant config directory holding copies of the example tenants (`retail`, `express`).
pub fn copy_of_examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// Adds tenant `outlet` to the config directory `dir`: retail's config under another tenant
/// id, with keys of its own (its business-line key is [`OUTLET_KEY`]).
pub fn add_outlet_tenant(dir: &Path) {
    let retail = std::fs::read_to_string(examples_dir().join("retail.yaml")).unwrap();
    let mut outlet = retail.replace("\ntenant: retail\n", "\ntenant: outlet\n");
    assert_ne!(outlet, retail);
    let mut replaced = 0;
    outlet = outlet
        .lines()
        .map(|line| match line.split_once("sha256: \"") {
            Some((indent, _)) => {
                replaced += 1;
                let key = if replaced == 1 {
                    OUTLET_KEY.to_owned()
                } else {
                    format!("oc_test_outlet_other_{replaced}")
                };
                format!(
                    "{indent}sha256: \"{}\"",
                    oc_tenant_config::hash_api_key(&key)
                )
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(replaced > 1);
    std::fs::write(dir.join("outlet.yaml"), outlet + "\n").unwrap();
}

/// Sends `signal` (`HUP`, `TERM`, …) to a process.
pub fn signal(server: &Server, signal: &str) {
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// Waits until `key` is accepted by the server on `port` (a reload made its tenant live).
pub fn wait_key_accepted(port: u16, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = request_as(
            key,
            port,
            "GET",
            "/v1/orders?buyer_id=buyer-probe",
            &[],
            None,
        )
        .unwrap();
        if status != 401 {
            assert_eq!(status, 200, "{body}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never accepted the key: its tenant did not become live"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `ordercenter keys init` in `command`'s environment (cluster processes never create
/// data keys: this is the step before their first start). Returns its JSON report.
pub fn keys_init(mut command: Command) -> serde_json::Value {
    let output = command
        .args(["keys", "init"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "keys init: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Put `available` units of `sku` on sale for tenant `retail` through the stock API.
pub fn set_stock(port: u16, sku: &str, available: u64) {
    let (status, body) = request_as(
        ADMIN_KEY,
        port,
        "PUT",
        &format!("/v1/stock/{sku}"),
        &[],
        Some(&format!(r#"{{"available":{available}}}"#)),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
}

/// `(available, reserved, sold)` of `sku` as the stock API shows it to `retail`'s admin.
pub fn stock(port: u16, sku: &str) -> (u64, u64, u64) {
    let (status, body) = request_as(
        ADMIN_KEY,
        port,
        "GET",
        &format!("/v1/stock/{sku}"),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let level: serde_json::Value = serde_json::from_str(&body).unwrap();
    let count = |name: &str| {
        level[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {body}"))
    };
    (count("available"), count("reserved"), count("sold"))
}

/// `SELECT <one integer>` summed over every shard.
pub async fn sum(pools: &[sqlx::MySqlPool], sql: &str) -> i64 {
    use sqlx::Row;
    let mut total = 0;
    for pool in pools {
        total += sqlx::query(sql)
            .fetch_one(pool)
            .await
            .unwrap()
            .try_get::<Option<i64>, _>(0)
            .unwrap()
            .unwrap_or(0);
    }
    total
}
