//! Helpers shared by the binary-level tests: run the real `ordercenter`, talk HTTP to it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const RETAIL_KEY: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";

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
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let body = body.unwrap_or("");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {RETAIL_KEY}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    let order = format!(
        r#"{{"business_identity":"retail","order_type":"standard","buyer_id":"{buyer}",
        "lines":[{{"sku":"{sku}","product_name":"Tea set","quantity":1,"unit_price_minor":8800}}],
        "receiver":{{"name":"Li Lei","phone":"13900001111","address":"1 Nanjing Road"}}}}"#
    );
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
