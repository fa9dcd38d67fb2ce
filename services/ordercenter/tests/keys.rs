//! Data-key rotation under live traffic, with the real binary in cluster mode on two MariaDB
//! shard databases.
//!
//! Two `serve` processes share the shards and the key ring file. While writers, an updater
//! and a reader keep going through both, `keys rotate` adds version 2; server A gets SIGHUP,
//! server B is never signalled and must pick the new key up on the first value it cannot
//! open. `keys reencrypt` runs (killed once and resumed from its checkpoint) beside the
//! traffic. Then: no 5xx, no wrong plaintext, `keys status` counts nothing under version 1,
//! `keys retire 1` (refused before the re-encryption) succeeds, a fresh server that never
//! had version 1 reads every order, and equality search on encrypted fields (blind index,
//! computed before the rotation for the early orders) still finds them.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sqlx::Row;

/// Everything a test order was created with, to check what reads give back.
#[derive(Debug, Clone)]
struct Expected {
    id: String,
    name: String,
    phone: String,
    address: String,
    tail: String,
    gift: String,
}

struct Keys {
    shards: String,
    data: tempfile::TempDir,
}

impl Keys {
    fn command(&self) -> Command {
        let mut command = command(self.data.path());
        on_shards(&mut command, &self.shards).env("OC_MAX_CONNECTIONS_PER_SHARD", "8");
        command
    }

    /// A server; `node` must differ between servers running at once (order ids embed it).
    fn serve(&self, port: u16, node: u8, extra: &[(&str, String)]) -> Server {
        let mut command = self.command();
        command.env("OC_NODE_ID", node.to_string());
        for (name, value) in extra {
            command.env(name, value);
        }
        serve(command, port)
    }

    /// Runs `ordercenter <args>` to completion (bounded by the caller's data size).
    fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    }

    fn run_json(&self, args: &[&str]) -> serde_json::Value {
        let mut command = self.command();
        command.args(args);
        json_report(command)
    }
}

/// What the traffic threads saw that they should not have.
#[derive(Default)]
struct Tally {
    creates: AtomicU64,
    reads: AtomicU64,
    updates: AtomicU64,
    server_errors: AtomicU64,
    wrong: AtomicU64,
    first_problems: Mutex<Vec<String>>,
}

impl Tally {
    fn problem(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut problems = self.first_problems.lock().unwrap();
        if problems.len() < 10 {
            problems.push(what);
        }
    }
}

fn create(port: u16, n: u64) -> Result<Expected, String> {
    let phone = format!("139{n:08}");
    let expected = Expected {
        id: String::new(),
        name: format!("Buyer {n}"),
        tail: phone[phone.len() - 4..].to_owned(),
        phone,
        address: format!("{n} Nanjing Road"),
        gift: format!("happy birthday #{n}"),
    };
    let order = CreateRequest::retail(&format!("buyer-k{}", n % 7))
        .sku("SKU-1")
        .receiver(&expected.name, &expected.phone, &expected.address)
        .extension("gift_message", expected.gift.as_str())
        .extension("buyer_phone_tail", expected.tail.as_str())
        .body();
    let (status, body) = request(port, "POST", "/v1/orders", &[], Some(&order))
        .map_err(|e| format!("create: {e}"))?;
    if status != 201 {
        return Err(format!("create answered {status}: {body}"));
    }
    let created: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    check(&expected, &created)?;
    Ok(Expected {
        id: created["id"].as_str().unwrap_or_default().to_owned(),
        ..expected
    })
}

/// The order as answered matches what it was created with.
fn check(expected: &Expected, order: &serde_json::Value) -> Result<(), String> {
    let receiver = &order["parties"]["receiver"];
    let got = (
        receiver["name"].as_str(),
        receiver["phone"].as_str(),
        receiver["address"].as_str(),
        order["extension"]["gift_message"].as_str(),
        order["extension"]["buyer_phone_tail"].as_str(),
    );
    let want = (
        Some(expected.name.as_str()),
        Some(expected.phone.as_str()),
        Some(expected.address.as_str()),
        Some(expected.gift.as_str()),
        Some(expected.tail.as_str()),
    );
    if got == want {
        Ok(())
    } else {
        Err(format!("order {}: got {got:?}, want {want:?}", expected.id))
    }
}

fn read(port: u16, expected: &Expected) -> Result<serde_json::Value, (u16, String)> {
    let (status, body) = request(
        port,
        "GET",
        &format!("/v1/orders/{}", expected.id),
        &[],
        None,
    )
    .map_err(|e| (0, e.to_string()))?;
    if status != 200 {
        return Err((status, body));
    }
    serde_json::from_str(&body).map_err(|e| (status, e.to_string()))
}

/// Updates that carry the sealed values over (remark) or seal them again (receiver).
fn update(port: u16, expected: &Expected, n: u64) -> Result<(), (u16, String)> {
    let current = read(port, expected)?;
    let version = current["version"].as_u64().unwrap_or(0);
    let body = if n.is_multiple_of(2) {
        serde_json::json!({"remark": format!("remark {n}")})
    } else {
        serde_json::json!({"receiver": {"name": expected.name, "phone": expected.phone, "address": expected.address}})
    };
    let etag = format!("\"{version}\"");
    let (status, answer) = request(
        port,
        "PATCH",
        &format!("/v1/orders/{}", expected.id),
        &[("If-Match", &etag)],
        Some(&body.to_string()),
    )
    .map_err(|e| (0, e.to_string()))?;
    if status != 200 {
        return Err((status, answer));
    }
    let updated: serde_json::Value =
        serde_json::from_str(&answer).map_err(|e| (0, e.to_string()))?;
    check(expected, &updated).map_err(|e| (200, e))
}

/// The key version of the receiver phone's ciphertext and the blind indexes of an order
/// row, read straight from the shards.
async fn stored(pools: &[sqlx::MySqlPool], id: &str) -> Option<(u32, String, String)> {
    for pool in pools {
        let row = sqlx::query("SELECT body, ext_04 FROM orders WHERE tenant = 'retail' AND id = ?")
            .bind(id.parse::<i64>().unwrap())
            .fetch_optional(pool)
            .await
            .unwrap();
        if let Some(row) = row {
            let text = |column: &str| -> String {
                row.try_get::<String, _>(column).unwrap_or_else(|_| {
                    String::from_utf8(row.try_get::<Vec<u8>, _>(column).unwrap()).unwrap()
                })
            };
            let body: serde_json::Value = serde_json::from_str(&text("body")).unwrap();
            let ext: serde_json::Value = serde_json::from_str(&text("ext_04")).unwrap();
            let phone = &body["parties"]["receiver"]["phone"]["sealed"];
            let version = oc_crypto::parse_header_str(phone["c"].as_str().unwrap())
                .unwrap()
                .key_version;
            return Some((
                version,
                phone["b"].as_str().unwrap().to_owned(),
                ext["sealed"]["b"].as_str().unwrap().to_owned(),
            ));
        }
    }
    None
}

/// Two fresh MariaDB shard databases, a connection to each, and a key ring (`keys init`) for
/// the example tenants in a fresh data directory.
async fn fresh_cluster(
    label: &str,
) -> (oc_test_support::TestDatabases, Vec<sqlx::MySqlPool>, Keys) {
    let databases = oc_test_support::TestDatabases::create(label, 2)
        .await
        .unwrap();
    let pools = vec![
        databases.connect(0).await.unwrap(),
        databases.connect(1).await.unwrap(),
    ];
    let keys = Keys {
        shards: databases.urls().join(","),
        data: tempfile::tempdir().unwrap(),
    };
    keys.run_json(&["keys", "init"]);
    (databases, pools, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reencryption_and_retirement_under_live_traffic() {
    let (databases, pools, keys) = fresh_cluster("keys").await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut server_a = keys.serve(port_a, 1, &[]);
    let mut server_b = keys.serve(port_b, 2, &[]);

    // without the key ring file the servers use, the tools refuse with a clear message
    let missing = keys.data.path().join("nowhere.json");
    let output = keys
        .command()
        .env("OC_KEYRING_FILE", &missing)
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no key ring file"), "{stderr}");
    assert!(!missing.exists());

    // orders sealed under version 1, through both servers
    let mut orders = Vec::new();
    for n in 0..20u64 {
        let port = if n % 2 == 0 { port_a } else { port_b };
        orders.push(create(port, n).unwrap());
    }
    assert_eq!(stored(&pools, &orders[0].id).await.unwrap().0, 1);
    let status = keys.run_json(&["keys", "status"]);
    assert_eq!(status["keys"]["retail"]["active"], 1, "{status}");
    assert_eq!(status["ciphertexts"]["retail"]["1"], 20 * 5, "{status}");
    // the active version is never retired
    let output = keys.run(&["keys", "retire", "1", "--tenant", "retail"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("active key"));

    // live traffic: two writers, an updater and a reader over both servers, bounded in
    // time and count
    let expected = Arc::new(Mutex::new(orders.clone()));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut threads = Vec::new();
    for writer in 0..2u64 {
        let (expected, tally, stop) = (expected.clone(), tally.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            for k in 0..400u64 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let n = 1_000 + writer * 1_000 + k;
                let port = if k % 2 == 0 { port_a } else { port_b };
                match create(port, n) {
                    Ok(order) => {
                        tally.creates.fetch_add(1, Ordering::Relaxed);
                        expected.lock().unwrap().push(order);
                    }
                    Err(problem)
                        if problem.contains("answered 5") || problem.contains("create:") =>
                    {
                        tally.problem(&tally.server_errors, problem)
                    }
                    Err(problem) => tally.problem(&tally.wrong, problem),
                }
                std::thread::sleep(Duration::from_millis(15));
            }
        }));
    }
    {
        let (expected, tally, stop) = (expected.clone(), tally.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            for k in 0..3_000u64 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let order = {
                    let all = expected.lock().unwrap();
                    all[(k as usize * 7919) % all.len()].clone()
                };
                let port = if k % 2 == 0 { port_a } else { port_b };
                match read(port, &order) {
                    Ok(answer) => match check(&order, &answer) {
                        Ok(()) => {
                            tally.reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(problem) => tally.problem(&tally.wrong, problem),
                    },
                    Err((status, body)) => tally.problem(
                        if status >= 500 || status == 0 {
                            &tally.server_errors
                        } else {
                            &tally.wrong
                        },
                        format!("read {}: {status} {body}", order.id),
                    ),
                }
                std::thread::sleep(Duration::from_millis(3));
            }
        }));
    }
    {
        let (expected, tally, stop) = (expected.clone(), tally.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            for k in 0..600u64 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                // the early orders: the ones under version 1 that re-encryption must move
                let order = expected.lock().unwrap()[(k as usize) % 20].clone();
                // one server per order: another replica's in-process cache may serve an older
                // version for a few seconds (by design), and its ETag would then be stale
                let port = if k % 2 == 0 { port_a } else { port_b };
                match update(port, &order, k) {
                    Ok(()) => {
                        tally.updates.fetch_add(1, Ordering::Relaxed);
                    }
                    Err((status, body)) => tally.problem(
                        if status >= 500 || status == 0 {
                            &tally.server_errors
                        } else {
                            &tally.wrong
                        },
                        format!("update {}: {status} {body}", order.id),
                    ),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    // rotate: the file gets version 2; server A hears SIGHUP, server B nothing
    let rotated = keys.run_json(&["keys", "rotate"]);
    assert_eq!(rotated["rotated"]["retail"]["active"], 2, "{rotated}");
    assert_eq!(
        rotated["rotated"]["retail"]["versions"],
        serde_json::json!([1, 2])
    );
    signal(&server_a, "HUP");
    let reload_deadline = Instant::now() + Duration::from_secs(15);
    let mut attempt = 0;
    let sealed_by_a = loop {
        attempt += 1;
        let order = create(port_a, 90_000 + attempt).unwrap();
        expected.lock().unwrap().push(order.clone());
        if stored(&pools, &order.id).await.unwrap().0 == 2 {
            break order;
        }
        assert!(
            Instant::now() < reload_deadline,
            "server A did not reload its key ring on SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // B meets a version 2 value, reloads the file by itself, and writes version 2 from then on
    let answer = read(port_b, &sealed_by_a).unwrap();
    check(&sealed_by_a, &answer).unwrap();
    let sealed_by_b = create(port_b, 80_000).unwrap();
    assert_eq!(stored(&pools, &sealed_by_b.id).await.unwrap().0, 2);
    expected.lock().unwrap().push(sealed_by_b);

    // version 1 is still used by stored values: retire refuses and changes nothing
    let output = keys.run(&["keys", "retire", "1"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("still use version 1"), "{stderr}");

    let mut blind_before = BTreeMap::new();
    let snapshot = expected.lock().unwrap().clone();
    for order in &snapshot {
        let (_, phone, tail) = stored(&pools, &order.id).await.unwrap();
        blind_before.insert(order.id.clone(), (phone, tail));
    }

    // re-encryption, paced, killed part-way, resumed from its checkpoint
    let checkpoint = keys.data.path().join("reencrypt.json");
    let checkpoint_arg = checkpoint.display().to_string();
    let mut paced = keys
        .command()
        .args([
            "keys",
            "reencrypt",
            "--rate",
            "15",
            "--batch-size",
            "4",
            "--checkpoint",
            &checkpoint_arg,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint_deadline = Instant::now() + Duration::from_secs(20);
    while !checkpoint.exists() {
        assert!(
            Instant::now() < checkpoint_deadline,
            "no checkpoint was written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    paced.kill().unwrap();
    paced.wait().unwrap();
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert!(!saved["shards"].as_object().unwrap().is_empty(), "{saved}");
    let report = keys.run_json(&[
        "keys",
        "reencrypt",
        "--batch-size",
        "8",
        "--checkpoint",
        &checkpoint_arg,
    ]);
    assert!(report["orders_rewritten"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["gave_up"], 0, "{report}");
    assert_eq!(report["remaining_old"], serde_json::json!({}), "{report}");
    assert!(
        !checkpoint.exists(),
        "a complete run removes its checkpoint"
    );

    // a little more traffic on the re-encrypted data, then stop it
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    let problems = tally.first_problems.lock().unwrap().clone();
    assert_eq!(
        tally.server_errors.load(Ordering::Relaxed),
        0,
        "{problems:#?}"
    );
    assert_eq!(tally.wrong.load(Ordering::Relaxed), 0, "{problems:#?}");
    let (creates, reads, updates) = (
        tally.creates.load(Ordering::Relaxed),
        tally.reads.load(Ordering::Relaxed),
        tally.updates.load(Ordering::Relaxed),
    );
    assert!(
        creates > 20 && reads > 100 && updates > 20,
        "{creates} {reads} {updates}"
    );
    eprintln!(
        "traffic during rotation: {creates} creates, {reads} reads, {updates} updates, 0 errors"
    );

    // the blind indexes did not move: they are not keyed by the data key
    for (id, before) in &blind_before {
        let (version, phone, tail) = stored(&pools, id).await.unwrap();
        assert_eq!(version, 2, "order {id}");
        assert_eq!(&(phone, tail), before, "order {id}");
    }

    // nothing left under version 1; retiring it now succeeds
    let status = keys.run_json(&["keys", "status"]);
    let counted = status["ciphertexts"]["retail"].as_object().unwrap();
    assert!(!counted.contains_key("1"), "{status}");
    let all = expected.lock().unwrap().clone();
    assert_eq!(status["orders"], all.len() as u64, "{status}");
    assert_eq!(counted["2"], all.len() as u64 * 5, "{status}");
    assert_eq!(status["unreadable"], 0);
    // issue #13 item 5: a clear KV value whose text looks sealed is a clear value; it is not
    // counted as an unreadable ciphertext, so it does not keep a version from retiring
    let look_alike = r#"{"sealed":{"c":"AQIDBA"}}"#;
    let order = CreateRequest::retail("buyer-look-alike")
        .sku("SKU-1")
        .extension("campaign_id", look_alike)
        .body();
    let (status, created) = request(port_a, "POST", "/v1/orders", &[], Some(&order)).unwrap();
    assert_eq!(status, 201, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let look_alike_id = created["id"].as_str().unwrap().to_owned();
    // --wait: the servers moved to version 2 moments ago, as far as their request timeout
    let retired = keys.run_json(&["keys", "retire", "1", "--wait", "60"]);
    assert_eq!(
        retired["keys"]["retail"]["versions"],
        serde_json::json!([2]),
        "{retired}"
    );
    let ring = std::fs::read_to_string(keys.data.path().join("keyring.json")).unwrap();
    let ring: serde_json::Value = serde_json::from_str(&ring).unwrap();
    assert!(
        ring["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|key| key["tenant"] != "retail" || key["version"] == 2),
        "{ring}"
    );
    // and every later change of that order works
    let (status, updated) = request(
        port_a,
        "PATCH",
        &format!("/v1/orders/{look_alike_id}"),
        &[("if-match", "\"1\"")],
        Some(r#"{"remark": "gift wrap"}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{updated}");
    let updated: serde_json::Value = serde_json::from_str(&updated).unwrap();
    assert_eq!(updated["extension"]["campaign_id"], look_alike);

    // a server started now never had version 1: it reads every order, and equality search
    // on encrypted fields finds orders indexed before the rotation
    stop_server(&mut server_a);
    stop_server(&mut server_b);
    let search_dir = tempfile::tempdir().unwrap();
    let search_url = format!("tantivy://{}", search_dir.path().display());
    let output = keys
        .command()
        .env("OC_SEARCH_URL", &search_url)
        .args(["backfill"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let port_c = free_port();
    let mut server_c = keys.serve(port_c, 3, &[("OC_SEARCH_URL", search_url)]);
    for order in &all {
        let answer = read(port_c, order).unwrap();
        check(order, &answer).unwrap();
    }
    for order in all.iter().take(5).chain(all.iter().rev().take(5)) {
        for query in [
            format!("ext.buyer_phone_tail={}", order.tail),
            format!("receiver_phone={}", order.phone),
        ] {
            let (status, body) = request(
                port_c,
                "GET",
                &format!("/v1/orders/search?{query}"),
                &[],
                None,
            )
            .unwrap();
            assert_eq!(status, 200, "{query}: {body}");
            let found: serde_json::Value = serde_json::from_str(&body).unwrap();
            let ids: Vec<&str> = found["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|item| item["id"].as_str())
                .collect();
            assert!(ids.contains(&order.id.as_str()), "{query}: {body}");
        }
    }
    stop_server(&mut server_c);
    drop(pools);
    databases.cleanup().await.unwrap();
}

/// `keys rotate`, SIGHUP to the server on `port` (a new order it writes is sealed under
/// version 2 once it reloaded: retire waits for that too), then `keys reencrypt`, which
/// must leave nothing under the old version.
async fn rotate_and_reencrypt(keys: &Keys, pools: &[sqlx::MySqlPool], server: &Server, port: u16) {
    keys.run_json(&["keys", "rotate"]);
    signal(server, "HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 100;
    loop {
        n += 1;
        let order = create(port, n).unwrap();
        if stored(pools, &order.id).await.unwrap().0 == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "server A did not reload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = keys.run_json(&["keys", "reencrypt"]);
    assert_eq!(report["remaining_old"], serde_json::json!({}), "{report}");
}

/// A server that loaded the key ring before a rotation and never heard of it (no SIGHUP, no
/// value under the new version read) still seals under the old version: retiring that
/// version would make what it writes next unreadable. `keys retire` refuses until every
/// running server reports the new version, and `--wait` re-checks until they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_waits_until_every_server_seals_under_the_new_version() {
    let (databases, pools, keys) = fresh_cluster("retire").await;
    // a short request timeout: a server's switch to a new version counts once every request
    // begun before it has ended
    let timeout = [("OC_REQUEST_TIMEOUT_MS", "2000".to_owned())];
    let (port_a, port_b) = (free_port(), free_port());
    let mut server_a = keys.serve(port_a, 1, &timeout);
    let mut server_b = keys.serve(port_b, 2, &timeout);
    for n in 0..4u64 {
        let order = create(if n % 2 == 0 { port_a } else { port_b }, n).unwrap();
        assert_eq!(stored(&pools, &order.id).await.unwrap().0, 1);
    }

    rotate_and_reencrypt(&keys, &pools, &server_a, port_a).await;

    // server B still seals under version 1: retiring it is refused, the file keeps it
    let output = keys.run(&["keys", "retire", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("still seals under version 1"), "{stderr}");
    let ring = std::fs::read_to_string(keys.data.path().join("keyring.json")).unwrap();
    assert!(ring.contains("\"version\": 1"), "{ring}");

    // B hears SIGHUP; retire waits until B reports version 2 and its older requests are over
    signal(&server_b, "HUP");
    let retired = keys.run_json(&["keys", "retire", "1", "--wait", "60"]);
    assert_eq!(
        retired["keys"]["retail"]["versions"],
        serde_json::json!([2]),
        "{retired}"
    );
    let sealed_by_b = create(port_b, 200).unwrap();
    assert_eq!(stored(&pools, &sealed_by_b.id).await.unwrap().0, 2);

    // a server started now never had version 1 and reads everything B wrote
    stop_server(&mut server_a);
    stop_server(&mut server_b);
    let port_c = free_port();
    let mut server_c = keys.serve(port_c, 3, &[]);
    check(&sealed_by_b, &read(port_c, &sealed_by_b).unwrap()).unwrap();
    stop_server(&mut server_c);
    drop(pools);
    databases.cleanup().await.unwrap();
}

/// Issue #13 item 16: a remark the tenant config marks encrypted (retail's `presale`) is one
/// more sealed site of its order: `keys reencrypt` moves it to the new data key, `keys
/// retire` of the old one then succeeds, and a server that never had the old key opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_remark_survives_reencryption_and_retirement_of_its_key() {
    const REMARK: &str = "call 13912345678 before delivery";
    let (databases, pools, keys) = fresh_cluster("remark_keys").await;
    // the remark's key version, read straight from the order row
    let remark_version = async |id: &str| -> u32 {
        for pool in &pools {
            let row = sqlx::query("SELECT body FROM orders WHERE tenant = 'retail' AND id = ?")
                .bind(id.parse::<i64>().unwrap())
                .fetch_optional(pool)
                .await
                .unwrap();
            if let Some(row) = row {
                let text = row.try_get::<String, _>("body").unwrap_or_else(|_| {
                    String::from_utf8(row.try_get::<Vec<u8>, _>("body").unwrap()).unwrap()
                });
                assert!(!text.contains("13912345678"), "plaintext remark in the row");
                let body: serde_json::Value = serde_json::from_str(&text).unwrap();
                let sealed = body["operation"]["remark"]["sealed"]["c"].as_str().unwrap();
                return oc_crypto::parse_header_str(sealed).unwrap().key_version;
            }
        }
        panic!("order {id} has no row");
    };
    let timeout = [("OC_REQUEST_TIMEOUT_MS", "2000".to_owned())];
    let port_a = free_port();
    let mut server_a = keys.serve(port_a, 1, &timeout);
    let order = serde_json::json!({
        "business_identity": "retail",
        "order_type": "presale",
        "buyer_id": "buyer-remark",
        "lines": [{"sku": "PS-1", "product_name": "Pre-sale tea", "quantity": 1, "unit_price_minor": 5000}],
        "extension": {"deposit_amount": "10.00", "final_payment_due": "2030-01-31"},
        "receiver": {"name": "Li Lei", "phone": "13900001111", "address": "1 Nanjing Road"},
        "remark": REMARK,
    })
    .to_string();
    let (status, body) = request(port_a, "POST", "/v1/orders", &[], Some(&order)).unwrap();
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["operation"]["remark"], REMARK);
    assert_eq!(remark_version(&id).await, 1);

    rotate_and_reencrypt(&keys, &pools, &server_a, port_a).await;
    assert_eq!(
        remark_version(&id).await,
        2,
        "re-encrypted under the new key"
    );
    let retired = keys.run_json(&["keys", "retire", "1", "--wait", "60"]);
    assert_eq!(
        retired["keys"]["retail"]["versions"],
        serde_json::json!([2]),
        "{retired}"
    );

    // a server started now never had version 1 and opens the remark
    stop_server(&mut server_a);
    let port_c = free_port();
    let mut server_c = keys.serve(port_c, 3, &[]);
    let (status, body) = request(port_c, "GET", &format!("/v1/orders/{id}"), &[], None).unwrap();
    assert_eq!(status, 200, "{body}");
    let read: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(read["operation"]["remark"], REMARK);
    stop_server(&mut server_c);
    drop(pools);
    databases.cleanup().await.unwrap();
}

fn stop_server(server: &mut Server) {
    stop(server);
}
