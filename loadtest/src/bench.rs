//! `loadtest bench`: one run on one machine that puts the order center next to its own raw
//! ceilings.
//!
//! - (a) **raw MariaDB**: the order-shaped transaction the store writes (idempotency row,
//!   order row, line rows, KV identifier rows, outbox row, in one transaction), written
//!   directly with sqlx into fresh databases (same server, so the same durability settings;
//!   same schema, copied from a shard the server migrated; same shard count). The rows are
//!   copies of real rows: the bench first creates orders through the cluster server and
//!   reads them back, so sizes, sealed values and JSON bodies are the real ones. Closed
//!   loop over a concurrency sweep; the ceiling is the best throughput.
//! - (b) **bare axum**: an in-process axum server (own runtime) answering `GET
//!   /v1/orders/{id}` with a real order's JSON (serialised per request), loaded by the
//!   same client.
//! - (c) **the order center**, spawned from the release binary: cluster mode (`OC_SHARDS`
//!   on two fresh MariaDB databases, in-process cache) and single-node mode (SQLite, relay,
//!   projector): create capacity (closed loop), full-lifecycle capacity (create → pay →
//!   ship → receive → complete per step, closed loop), reservations on one hot SKU (64
//!   buyers placing one-unit orders of the same SKU), create at half of (a) (open loop,
//!   p99), GET of cached orders; in cluster mode the GET is repeated with `OC_EDGE_LAYERS=off`
//!   to price the tower edge stack, and the hot SKU with retail's inventory accelerated by
//!   the Redis stock gate (`--redis`), then the same SKU sold out: refusals per second
//!   answered by the gate's counter. In single-node mode, payment callbacks applied per
//!   second: signed success callbacks of payments created through the sandbox provider,
//!   each paying its order (see [`crate::payments`]); `--payments-only` runs that step alone.
//!   Then after-sale applications per second with refunds: paid orders each taken through a
//!   refund-only application, its approval and its refund on the captured payment (see
//!   [`crate::after_sales`]); `--after-sales-only` runs that step alone.
//!
//! Where `wrk` is installed (`deploy/local/bench.sh` installs it), the create capacity and
//! the cached GET of both modes and the bare axum GET are measured a second time with it,
//! an independent generator (see [`crate::wrk`]), and the ratios are printed for both, with
//! each generator's CPU per request: our client shares the two cores with the server.
//!
//! The tenant rate limits of the example config (1,000/s for retail) would cap (c), so the
//! servers run on a copy of the example tenants with the limits lifted. Fresh databases are
//! named `ocbench_<pid>_*` and dropped at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::RngCore;
use serde::Serialize;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{Column, Executor, Row, TypeInfo};

use crate::after_sales;
use crate::engine::{self, Load, Plan, Step};
use crate::http::Http;
use crate::orders;
use crate::payments;
use crate::scenarios::{Scenario, Traffic};
use crate::stats::{Outcome, Percentiles, Report};
use crate::svg;
use crate::wrk;

/// Concurrent buyers of the hot-SKU step (the flash-sale figure).
const HOT_SKU_BUYERS: u32 = 64;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The ordercenter release binary.
    #[arg(long, default_value = "target/release/ordercenter")]
    ordercenter: PathBuf,
    /// MariaDB server URL without a database (the user must be able to create databases).
    #[arg(long, default_value = "mysql://oc_test:oc_test@127.0.0.1:3306")]
    mysql: String,
    /// Tenant config the servers run (rate limits are lifted in a copy).
    #[arg(long, default_value = "tenant-config/examples")]
    tenant_config: PathBuf,
    /// Seconds measured per step.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Seconds of warm-up per step.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrency sweep of the raw MariaDB transaction (connections over both shards).
    #[arg(long, value_delimiter = ',', default_value = "4,8,16,32,64")]
    sweep: Vec<u32>,
    /// Redis of the hot-SKU step with the stock gate (cluster mode); empty: no such step.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Closed-loop workers for the server and bare-axum capacity steps.
    #[arg(long, default_value_t = 64)]
    workers: u32,
    /// Connections per shard of the spawned servers.
    #[arg(long, default_value_t = 32)]
    connections_per_shard: u32,
    /// Payments prepared for the payment-callback step (one callback applies each; the step
    /// ends when they are used up).
    #[arg(long, default_value_t = 4_000)]
    callback_payments: u64,
    /// Run only single-node mode's payment-callback step.
    #[arg(long)]
    payments_only: bool,
    /// Paid orders prepared for the after-sales step (one after-sale with its refund each;
    /// the step ends when they are used up).
    #[arg(long, default_value_t = 1_000)]
    after_sale_orders: u64,
    /// Run only single-node mode's after-sales step (applications with refunds).
    #[arg(long)]
    after_sales_only: bool,
    /// Write the JSON result here.
    #[arg(long, default_value = "bench.json")]
    out: PathBuf,
    /// Write the latency-by-percentile plot here.
    #[arg(long, default_value = "bench.svg")]
    svg: PathBuf,
}

/// One measured step, as written to the JSON.
#[derive(Debug, Clone, Serialize)]
struct StepResult {
    what: String,
    mode: String,
    throughput_per_s: f64,
    ok: u64,
    errors: u64,
    dropped: u64,
    latency_ms: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

impl StepResult {
    fn of(what: &str, report: &Report) -> StepResult {
        StepResult {
            what: what.to_owned(),
            mode: report.mode.clone(),
            throughput_per_s: report.throughput_per_s,
            ok: report.ok,
            errors: report.errors + report.throttled,
            dropped: report.dropped,
            latency_ms: report.latency_ms,
            first_error: report.first_error.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct BenchReport {
    machine: String,
    raw_mariadb_sweep: Vec<(u32, StepResult)>,
    raw_mariadb_ceiling_per_s: f64,
    bare_axum: Option<StepResult>,
    cluster: BTreeMap<String, StepResult>,
    single_node: BTreeMap<String, StepResult>,
    ratios: BTreeMap<String, f64>,
    goals: BTreeMap<String, bool>,
    /// The same steps measured by wrk (empty when wrk is not installed), by step key
    /// (`cluster_create_capacity`, `single_node_get_cached`, `bare_axum_get`, …).
    wrk: BTreeMap<String, wrk::WrkResult>,
    /// Our own client's CPU time per request of those steps, in microseconds.
    client_cpu_us_per_request: BTreeMap<String, f64>,
}

// ------------------------------------------------------------------ databases

/// A cell of a captured row.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone)]
struct CapturedRow {
    columns: Vec<String>,
    cells: Vec<Cell>,
}

impl CapturedRow {
    fn of(row: &MySqlRow, skip: &[&str]) -> anyhow::Result<CapturedRow> {
        let mut columns = Vec::new();
        let mut cells = Vec::new();
        for (index, column) in row.columns().iter().enumerate() {
            if skip.contains(&column.name()) {
                continue;
            }
            let kind = column.type_info().name().to_ascii_uppercase();
            let cell = if kind.contains("INT") {
                row.try_get::<Option<i64>, _>(index)?
                    .map_or(Cell::Null, Cell::Int)
            } else if let Ok(text) = row.try_get::<Option<String>, _>(index) {
                text.map_or(Cell::Null, Cell::Text)
            } else {
                row.try_get::<Option<Vec<u8>>, _>(index)?
                    .map_or(Cell::Null, |b| {
                        Cell::Text(String::from_utf8_lossy(&b).into_owned())
                    })
            };
            columns.push(column.name().to_owned());
            cells.push(cell);
        }
        Ok(CapturedRow { columns, cells })
    }

    fn get(&self, column: &str) -> Option<&Cell> {
        self.columns
            .iter()
            .position(|c| c == column)
            .map(|i| &self.cells[i])
    }
}

/// The rows one order create wrote, and the SQL to write them again.
#[derive(Debug, Clone)]
struct TxTemplate {
    statements: Vec<(String, Vec<CapturedRow>)>,
}

fn insert_sql(table: &str, rows: &[CapturedRow]) -> String {
    let columns = rows[0].columns.join(", ");
    let one = format!("({})", vec!["?"; rows[0].columns.len()].join(", "));
    format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        vec![one; rows.len()].join(", ")
    )
}

impl TxTemplate {
    /// Write the template's rows as order `id`, in one transaction, in the store's order.
    async fn write(&self, pool: &MySqlPool, id: i64) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin().await?;
        for (sql, rows) in &self.statements {
            let mut query = sqlx::query(sql);
            for row in rows {
                for (column, cell) in row.columns.iter().zip(&row.cells) {
                    query = match (column.as_str(), cell) {
                        ("id" | "order_id", _) => query.bind(id),
                        ("idem_key" | "external_ref", Cell::Text(text)) => {
                            query.bind(format!("{text}-{id}"))
                        }
                        (_, Cell::Null) => query.bind(None::<String>),
                        (_, Cell::Int(value)) => query.bind(*value),
                        (_, Cell::Text(text)) => query.bind(text.as_str()),
                    };
                }
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await
    }
}

const TABLES: &[&str] = &[
    "idempotency",
    "orders",
    "order_lines",
    "order_identifiers",
    "outbox",
];

/// Read back every order the server wrote into `urls` as transaction templates.
/// A pool for the raw transaction: like the order store's, it does not ping a connection before
/// every transaction (the ceiling is the database's, not sqlx's defaults').
async fn raw_pool(url: &str, connections: u32) -> anyhow::Result<MySqlPool> {
    Ok(MySqlPoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
        .connect(url)
        .await?)
}

async fn capture(urls: &[String]) -> anyhow::Result<Vec<TxTemplate>> {
    let mut templates = Vec::new();
    for url in urls {
        let pool = MySqlPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await?;
        let mut by_table: Vec<BTreeMap<i64, Vec<CapturedRow>>> = Vec::new();
        for table in TABLES {
            let mut rows: BTreeMap<i64, Vec<CapturedRow>> = BTreeMap::new();
            let order = if *table == "order_lines" {
                " ORDER BY order_id, line_no"
            } else {
                ""
            };
            // generated columns (e.g. `orders.merchant_scope`) cannot be inserted
            let generated: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND IS_GENERATED = 'ALWAYS'",
            )
            .bind(*table)
            .fetch_all(&pool)
            .await?;
            let mut skip: Vec<&str> = generated.iter().map(String::as_str).collect();
            skip.push("seq");
            for row in sqlx::query(&format!("SELECT * FROM {table}{order}"))
                .fetch_all(&pool)
                .await?
            {
                let captured = CapturedRow::of(&row, &skip)?;
                let id = match captured.get(if *table == "orders" { "id" } else { "order_id" }) {
                    Some(Cell::Int(id)) => *id,
                    other => bail!("{table}: no order id in a captured row ({other:?})"),
                };
                rows.entry(id).or_default().push(captured);
            }
            by_table.push(rows);
        }
        pool.close().await;
        for id in by_table[1].keys() {
            let statements = TABLES
                .iter()
                .zip(&by_table)
                .filter_map(|(table, rows)| {
                    rows.get(id)
                        .map(|rows| (insert_sql(table, rows), rows.clone()))
                })
                .collect();
            templates.push(TxTemplate { statements });
        }
    }
    Ok(templates)
}

/// The raw transaction as a load step: template and shard by request number.
#[derive(Debug)]
struct RawTx {
    pools: Vec<MySqlPool>,
    templates: Vec<TxTemplate>,
    /// Order ids, shared by every run on the same databases.
    next_id: Arc<std::sync::atomic::AtomicI64>,
}

impl Step for RawTx {
    async fn step(&self, n: u64) -> Outcome {
        let pool = &self.pools[n as usize % self.pools.len()];
        let template = &self.templates[(n as usize / self.pools.len()) % self.templates.len()];
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match template.write(pool, id).await {
            Ok(()) => Outcome::status("tx", 200),
            Err(error) => Outcome::failed("tx", error),
        }
    }
}

/// Databases created for this run; dropped by [`Databases::drop_all`].
struct Databases {
    admin: MySqlPool,
    server: String,
    names: Vec<String>,
}

impl Databases {
    async fn create(server: &str, labels: &[&str]) -> anyhow::Result<Databases> {
        let admin = MySqlPoolOptions::new()
            .max_connections(1)
            .connect(server)
            .await
            .with_context(|| format!("connecting to {server}"))?;
        let mut databases = Databases {
            admin,
            server: server.trim_end_matches('/').to_owned(),
            names: Vec::new(),
        };
        for label in labels {
            let name = format!("ocbench_{}_{label}", std::process::id());
            databases
                .admin
                .execute(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4").as_str())
                .await
                .with_context(|| format!("creating database {name}"))?;
            databases.names.push(name);
        }
        Ok(databases)
    }

    fn url(&self, label: &str) -> String {
        let name = self
            .names
            .iter()
            .find(|n| n.ends_with(&format!("_{label}")))
            .expect("a created database");
        format!("{}/{name}", self.server)
    }

    async fn drop_all(&self) {
        for name in &self.names {
            if let Err(error) = self
                .admin
                .execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                .await
            {
                eprintln!("bench: could not drop {name}: {error}");
            }
        }
    }
}

/// Copy the schema of the server-migrated shard `from` into `to` (same DDL).
async fn copy_schema(from: &str, to: &str) -> anyhow::Result<()> {
    let source = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(from)
        .await?;
    let target = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(to)
        .await?;
    for table in TABLES {
        let row = sqlx::query(&format!("SHOW CREATE TABLE {table}"))
            .fetch_one(&source)
            .await?;
        let ddl: String = row.try_get(1)?;
        target.execute(ddl.as_str()).await?;
    }
    source.close().await;
    target.close().await;
    Ok(())
}

// ------------------------------------------------------------------ servers

/// The example tenant YAML with its `rate_limits` block replaced by limits no bench reaches.
pub fn lift_rate_limits(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    let mut skipping = false;
    for line in yaml.lines() {
        if line.starts_with("rate_limits:") {
            out.push_str("rate_limits:\n  per_second: 10000000\n  burst: 10000000\n");
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with(' ') || line.trim().is_empty()) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A spawned `ordercenter serve`, killed when dropped.
struct Server {
    child: Child,
    http: Http,
    log: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `ordercenter keys init` in `env`: a cluster's data keys, created before its first server
/// starts (cluster processes never create keys).
fn keys_init(binary: &Path, env: &[(&str, String)]) -> anyhow::Result<()> {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars() {
        if name.starts_with("OC_") {
            command.env_remove(name);
        }
    }
    let output = command
        .args(["keys", "init"])
        .env("OC_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} keys init", binary.display()))?;
    if !output.status.success() {
        bail!(
            "keys init failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

impl Server {
    async fn start(binary: &Path, env: &[(&str, String)], log: PathBuf) -> anyhow::Result<Server> {
        let port = free_port()?;
        let mut command = Command::new(binary);
        command.arg("serve");
        for (name, _) in std::env::vars() {
            if name.starts_with("OC_") {
                command.env_remove(name);
            }
        }
        command
            .env("OC_LISTEN", format!("127.0.0.1:{port}"))
            .env("OC_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log)?,
            ));
        let child = command.spawn().with_context(|| {
            format!(
                "starting {} (build it with cargo build --release -p ordercenter)",
                binary.display()
            )
        })?;
        let mut server = Server {
            child,
            http: Http::new(&format!("http://127.0.0.1:{port}"))?,
            log,
        };
        let started = Instant::now();
        loop {
            if let Ok(answer) = server.http.call("GET", "/readyz", "", None, &[]).await
                && answer.status == 200
            {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("server exited with {status}: {}", tail(&server.log));
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("server not ready after 60 s: {}", tail(&server.log));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// An axum server on its own runtime answering every order GET with `body`; the sender
/// stops it.
fn start_bare_axum(
    body: serde_json::Value,
) -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    use axum::routing::get;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let body = Arc::new(body);
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("bare axum: {error}");
                return;
            }
        };
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/orders/{id}",
                get(move || {
                    let body = Arc::clone(&body);
                    async move { axum::Json(serde_json::Value::clone(&body)) }
                }),
            );
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    Ok((format!("http://{address}"), stop))
}

// ------------------------------------------------------------------ the run

struct Bench {
    args: BenchArgs,
    dir: PathBuf,
    report: BenchReport,
    series: Vec<svg::Series>,
}

impl Bench {
    fn plan(&self, name: &str, load: Load, warmup: u64) -> Plan {
        Plan {
            name: name.to_owned(),
            load,
            warmup: Duration::from_secs(warmup),
            duration: Duration::from_secs(self.args.seconds),
            progress: true,
        }
    }

    /// Runs `step` as `plan` with our client, noting its CPU time per request under `key`.
    async fn measured<S: Step + 'static>(
        &mut self,
        key: &str,
        step: Arc<S>,
        plan: &Plan,
    ) -> Report {
        let (before, _) = wrk::cpu_ticks();
        let report = engine::run(step, plan).await;
        let (after, _) = wrk::cpu_ticks();
        let requests = (report.ok + report.errors + report.throttled).max(1);
        self.report.client_cpu_us_per_request.insert(
            key.to_owned(),
            after.saturating_sub(before) as f64 * wrk::TICK_US / requests as f64,
        );
        report
    }

    /// The same load from wrk, noted under `key`; a failure of wrk is reported, not fatal.
    fn with_wrk(&mut self, key: &str, what: &str, base_url: &str, requests: &wrk::Requests<'_>) {
        if !wrk::available() {
            return;
        }
        let result = tokio::task::block_in_place(|| {
            wrk::run(
                &format!("{what} (wrk)"),
                base_url,
                requests,
                self.args.workers,
                Duration::from_secs(self.args.seconds),
                Duration::from_secs(self.args.warmup),
                &self.dir,
            )
        });
        match result {
            Ok(result) => {
                self.report.wrk.insert(key.to_owned(), result);
            }
            Err(error) => eprintln!("bench: wrk {what}: {error:#}"),
        }
    }

    fn closed(&self) -> Load {
        Load::Closed {
            workers: self.args.workers,
        }
    }

    /// Creates (closed loop), full lifecycles (closed loop), reservations on one hot SKU
    /// ([`HOT_SKU_BUYERS`] buyers), creates at `half_rate` (open loop), GETs of created
    /// orders.
    async fn service_steps(
        &mut self,
        mode: &str,
        server: &Server,
        half_rate: f64,
    ) -> anyhow::Result<(BTreeMap<String, StepResult>, Vec<(&'static str, String)>)> {
        let mut results = BTreeMap::new();
        let retail = orders::tenant("retail").context("retail profile")?;
        let creates = Arc::new(
            Traffic::new(server.http.clone(), Scenario::Create, retail)
                .all_tenants()
                .keep_created(3_000),
        );
        let plan = self.plan(
            &format!("{mode} create capacity"),
            self.closed(),
            self.args.warmup,
        );
        let key = mode.replace('-', "_");
        let report = self
            .measured(
                &format!("{key}_create_capacity"),
                Arc::clone(&creates),
                &plan,
            )
            .await;
        results.insert(
            "create_capacity".to_owned(),
            StepResult::of(&plan.name, &report),
        );
        let body = orders::Generator::default().order(retail, 0).0.to_string();
        self.with_wrk(
            &format!("{key}_create_capacity"),
            &plan.name,
            server.http.base(),
            &wrk::Requests::Post {
                path: "/v1/orders",
                body: &body,
                key: retail.key,
            },
        );
        // the forward flow: each step is one order created, paid, shipped, received and
        // completed (five writes), next to the create capacity just measured
        let lifecycle = Arc::new(Traffic::new(
            server.http.clone(),
            Scenario::Lifecycle,
            retail,
        ));
        let plan = self.plan(
            &format!("{mode} full lifecycle capacity"),
            self.closed(),
            self.args.warmup,
        );
        let report = engine::run(lifecycle, &plan).await;
        results.insert(
            "lifecycle_capacity".to_owned(),
            StepResult::of(&plan.name, &report),
        );
        // one hot SKU, 64 buyers: every placement reserves on the same stock row
        let hot = Traffic::new(server.http.clone(), Scenario::HotSku, retail);
        hot.set_hot_stock().await?;
        let plan = self.plan(
            &format!("{mode} reservations on one hot SKU, {HOT_SKU_BUYERS} buyers"),
            Load::Closed {
                workers: HOT_SKU_BUYERS,
            },
            self.args.warmup,
        );
        let report = engine::run(Arc::new(hot), &plan).await;
        results.insert(
            "hot_sku_reservations".to_owned(),
            StepResult::of(&plan.name, &report),
        );
        let load = Load::Open {
            rate: half_rate,
            max_in_flight: 4_096,
        };
        let plan = self.plan(
            &format!("{mode} create at half the raw ceiling"),
            load,
            self.args.warmup,
        );
        // new traffic, new idempotency keys: the step numbers start again at 0, and the
        // capacity step's traffic would replay its own creates instead of making new ones
        let fresh =
            Arc::new(Traffic::new(server.http.clone(), Scenario::Create, retail).all_tenants());
        let half = engine::run(fresh, &plan).await;
        self.series.push(svg::Series::of(
            format!("{mode} create @{half_rate:.0}/s"),
            &half.all_latencies,
        ));
        results.insert(
            "create_at_half_raw".to_owned(),
            StepResult::of(&plan.name, &half),
        );
        let created = creates.created();
        let gets =
            Arc::new(Traffic::new(server.http.clone(), Scenario::Get, retail).with_pool(&created));
        let plan = self.plan(
            &format!("{mode} GET cached"),
            self.closed(),
            self.args.warmup,
        );
        let report = self
            .measured(&format!("{key}_get_cached"), gets, &plan)
            .await;
        results.insert("get_cached".to_owned(), StepResult::of(&plan.name, &report));
        let retail_ids: Vec<String> = created
            .iter()
            .filter(|(tenant, _)| *tenant == retail.name)
            .map(|(_, id)| id.clone())
            .collect();
        self.with_wrk(
            &format!("{key}_get_cached"),
            &plan.name,
            server.http.base(),
            &wrk::Requests::Get {
                path_prefix: "/v1/orders/",
                ids: &retail_ids,
                key: retail.key,
            },
        );
        Ok((results, created))
    }

    /// Payment callbacks applied per second against `server` (wired to `sandbox`).
    async fn payment_callbacks(
        &mut self,
        mode: &str,
        server: &Server,
    ) -> anyhow::Result<StepResult> {
        let retail = orders::tenant("retail").context("retail profile")?;
        let started = Instant::now();
        let prepared =
            payments::prepare(&server.http, retail, self.args.callback_payments, 32).await?;
        eprintln!(
            "bench: {} payments prepared in {:.1} s",
            prepared.len(),
            started.elapsed().as_secs_f64()
        );
        let step = Arc::new(payments::Callbacks::new(server.http.clone(), prepared));
        let plan = self.plan(
            &format!("{mode} payment callbacks applied"),
            self.closed(),
            self.args.warmup,
        );
        let report = engine::run(step, &plan).await;
        Ok(StepResult::of(&plan.name, &report))
    }

    /// After-sale applications approved and refunded per second against `server` (wired to
    /// `sandbox`).
    async fn after_sale_refunds(
        &mut self,
        mode: &str,
        server: &Server,
    ) -> anyhow::Result<StepResult> {
        let retail = orders::tenant("retail").context("retail profile")?;
        let started = Instant::now();
        let prepared =
            payments::prepare_orders(&server.http, retail, self.args.after_sale_orders, 32).await?;
        let paid = after_sales::capture(&server.http, prepared, 32).await?;
        eprintln!(
            "bench: {} paid orders prepared for after-sales in {:.1} s",
            paid.len(),
            started.elapsed().as_secs_f64()
        );
        let step = Arc::new(after_sales::Refunds::new(
            server.http.clone(),
            retail.key,
            paid,
        ));
        let plan = self.plan(
            &format!("{mode} after-sales applied, approved and refunded"),
            self.closed(),
            self.args.warmup,
        );
        let report = engine::run(step, &plan).await;
        Ok(StepResult::of(&plan.name, &report))
    }

    /// `--after-sales-only`: a single-node server wired to the sandbox, the after-sales step.
    async fn run_after_sales_only(&mut self) -> anyhow::Result<()> {
        let tenants = self.lifted_tenants()?;
        let (single, _sandbox) = self.start_single_node(&tenants).await?;
        let result = self.after_sale_refunds("single-node", &single).await;
        single.stop();
        self.report
            .single_node
            .insert("after_sales_refunded".to_owned(), result?);
        Ok(())
    }

    /// A single-node server on `tenants`, wired to a sandbox payment provider (kept alive
    /// as long as the server is used).
    async fn start_single_node(
        &self,
        tenants: &Path,
    ) -> anyhow::Result<(Server, payments::SandboxProvider)> {
        let sandbox = payments::SandboxProvider::start(&self.dir).await?;
        let mut env = vec![
            ("OC_DATA_DIR", self.dir.join("single").display().to_string()),
            ("OC_TENANT_CONFIG_DIR", tenants.display().to_string()),
        ];
        env.extend(sandbox.env.iter().cloned());
        let single =
            Server::start(&self.args.ordercenter, &env, self.dir.join("single.log")).await?;
        Ok((single, sandbox))
    }

    /// `--payments-only`: a single-node server wired to the sandbox, the callback step.
    async fn run_payments_only(&mut self) -> anyhow::Result<()> {
        let tenants = self.lifted_tenants()?;
        let (single, _sandbox) = self.start_single_node(&tenants).await?;
        let result = self.payment_callbacks("single-node", &single).await;
        single.stop();
        self.report
            .single_node
            .insert("payment_callbacks_applied".to_owned(), result?);
        Ok(())
    }

    /// A copy of the tenant config with the rate limits lifted, in the bench's directory.
    fn lifted_tenants(&self) -> anyhow::Result<PathBuf> {
        let tenants = self.dir.join("tenants");
        std::fs::create_dir_all(&tenants)?;
        for entry in std::fs::read_dir(&self.args.tenant_config)
            .with_context(|| format!("reading {}", self.args.tenant_config.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path)?;
                std::fs::write(
                    tenants.join(path.file_name().context("file name")?),
                    lift_rate_limits(&text),
                )?;
            }
        }
        Ok(tenants)
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        if self.args.payments_only {
            return self.run_payments_only().await;
        }
        if self.args.after_sales_only {
            return self.run_after_sales_only().await;
        }
        let databases =
            Databases::create(&self.args.mysql, &["raw_0", "raw_1", "cl_0", "cl_1"]).await?;
        let outcome = self.run_with(&databases).await;
        databases.drop_all().await;
        outcome
    }

    async fn run_with(&mut self, databases: &Databases) -> anyhow::Result<()> {
        // tenant config with the rate limits lifted
        let tenants = self.lifted_tenants()?;
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let master: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let cluster_urls = vec![databases.url("cl_0"), databases.url("cl_1")];
        // `keys init` writes the key ring into the data directory, which must exist
        std::fs::create_dir_all(self.dir.join("cluster"))?;
        let cluster_dir = self.dir.join("cluster").display().to_string();
        let connections = self.args.connections_per_shard.to_string();
        let cluster_env = |edge: &str| {
            vec![
                ("OC_SHARDS", cluster_urls.join(",")),
                ("OC_MASTER_KEY", master.clone()),
                ("OC_DATA_DIR", cluster_dir.clone()),
                ("OC_TENANT_CONFIG_DIR", tenants.display().to_string()),
                ("OC_MAX_CONNECTIONS_PER_SHARD", connections.clone()),
                ("OC_EDGE_LAYERS", edge.to_owned()),
            ]
        };

        // capture real rows: 64 creates through the cluster server
        eprintln!("bench: starting the cluster server, capturing 64 real orders");
        keys_init(&self.args.ordercenter, &cluster_env("on"))?;
        let cluster = Server::start(
            &self.args.ordercenter,
            &cluster_env("on"),
            self.dir.join("cluster.log"),
        )
        .await?;
        let retail = orders::tenant("retail").context("retail profile")?;
        let probe = Arc::new(
            Traffic::new(cluster.http.clone(), Scenario::Create, retail)
                .all_tenants()
                .keep_created(64),
        );
        for n in 0..64 {
            let outcome = probe.step(n).await;
            if outcome.status != 201 {
                bail!("creating a probe order: {outcome:?}");
            }
        }
        let templates = capture(&cluster_urls).await?;
        let (tenant, id) = probe.created().first().cloned().context("a probe order")?;
        let key = orders::tenant(tenant).context("tenant")?.key;
        let sample = cluster
            .http
            .call("GET", &format!("/v1/orders/{id}"), key, None, &[])
            .await?
            .json();

        // (a) raw MariaDB
        let raw_urls = [databases.url("raw_0"), databases.url("raw_1")];
        for url in &raw_urls {
            copy_schema(&cluster_urls[0], url).await?;
        }
        let sweep = self.args.sweep.clone();
        let next_id = Arc::new(std::sync::atomic::AtomicI64::new(1 << 50));
        for concurrency in sweep {
            let mut pools = Vec::new();
            for url in &raw_urls {
                pools.push(raw_pool(url, concurrency.div_ceil(2).max(1)).await?);
            }
            let step = Arc::new(RawTx {
                pools: pools.clone(),
                templates: templates.clone(),
                next_id: Arc::clone(&next_id),
            });
            let plan = self.plan(
                &format!("raw MariaDB tx, {concurrency} connections"),
                Load::Closed {
                    workers: concurrency,
                },
                self.args.warmup,
            );
            let report = engine::run(step, &plan).await;
            for pool in pools {
                pool.close().await;
            }
            let result = StepResult::of(&plan.name, &report);
            if result.throughput_per_s > self.report.raw_mariadb_ceiling_per_s {
                self.report.raw_mariadb_ceiling_per_s = result.throughput_per_s;
            }
            self.report.raw_mariadb_sweep.push((concurrency, result));
        }
        let ceiling = self.report.raw_mariadb_ceiling_per_s;
        if ceiling <= 0.0 {
            bail!(
                "the raw MariaDB transaction never succeeded: {:?}",
                self.report.raw_mariadb_sweep
            );
        }
        let half = (ceiling / 2.0).round();
        // the raw transaction at half its ceiling, open loop: the latency floor for (c)
        {
            let pools = vec![
                raw_pool(&raw_urls[0], 32).await?,
                raw_pool(&raw_urls[1], 32).await?,
            ];
            let step = Arc::new(RawTx {
                pools: pools.clone(),
                templates: templates.clone(),
                next_id: Arc::clone(&next_id),
            });
            let load = Load::Open {
                rate: half,
                max_in_flight: 4_096,
            };
            let plan = self.plan("raw MariaDB tx at half its ceiling", load, self.args.warmup);
            let report = engine::run(step, &plan).await;
            self.series.push(svg::Series::of(
                format!("raw MariaDB tx @{half:.0}/s"),
                &report.all_latencies,
            ));
            self.report
                .raw_mariadb_sweep
                .push((0, StepResult::of(&plan.name, &report)));
            for pool in pools {
                pool.close().await;
            }
        }

        // (c) cluster mode
        let (mut results, created) = self.service_steps("cluster", &cluster, half).await?;
        cluster.stop();
        let bare_edge = Server::start(
            &self.args.ordercenter,
            &cluster_env("off"),
            self.dir.join("cluster-no-edge.log"),
        )
        .await?;
        let gets = Arc::new(
            Traffic::new(bare_edge.http.clone(), Scenario::Get, retail).with_pool(&created),
        );
        let plan = self.plan(
            "cluster GET cached, no edge layers",
            self.closed(),
            self.args.warmup + 1,
        );
        let report = engine::run(gets, &plan).await;
        results.insert(
            "get_cached_without_edge_layers".to_owned(),
            StepResult::of(&plan.name, &report),
        );
        bare_edge.stop();
        // the hot SKU again with retail's inventory accelerated by the Redis stock gate
        if !self.args.redis.is_empty() {
            let gated_tenants = self.dir.join("tenants-gate");
            std::fs::create_dir_all(&gated_tenants)?;
            for entry in std::fs::read_dir(&tenants)? {
                let path = entry?.path();
                let text = std::fs::read_to_string(&path)?;
                std::fs::write(
                    gated_tenants.join(path.file_name().context("file name")?),
                    // the example accelerates one flash-sale SKU: here every SKU
                    text.replace("      hot_skus: [FLASH-KETTLE-1]\n", ""),
                )?;
            }
            let mut env = cluster_env("on");
            env.retain(|(name, _)| *name != "OC_TENANT_CONFIG_DIR");
            env.push(("OC_TENANT_CONFIG_DIR", gated_tenants.display().to_string()));
            env.push(("OC_REDIS_URL", self.args.redis.clone()));
            let gated = Server::start(
                &self.args.ordercenter,
                &env,
                self.dir.join("cluster-gate.log"),
            )
            .await?;
            let hot = Traffic::new(gated.http.clone(), Scenario::HotSku, retail);
            hot.set_hot_stock().await?;
            let plan = self.plan(
                &format!(
                    "cluster reservations on one hot SKU, {HOT_SKU_BUYERS} buyers, Redis gate"
                ),
                Load::Closed {
                    workers: HOT_SKU_BUYERS,
                },
                self.args.warmup,
            );
            let report = engine::run(Arc::new(hot), &plan).await;
            results.insert(
                "hot_sku_reservations_redis_gate".to_owned(),
                StepResult::of(&plan.name, &report),
            );
            // the same SKU sold out: every placement is refused by the gate's counter, the
            // SKU's row is not touched (a refusal is the step's success)
            let sold_out = Traffic::new(gated.http.clone(), Scenario::SoldOut, retail)
                .prepare(0)
                .await?;
            let plan = self.plan(
                &format!(
                    "cluster refusals of a sold-out hot SKU, {HOT_SKU_BUYERS} buyers, Redis gate"
                ),
                Load::Closed {
                    workers: HOT_SKU_BUYERS,
                },
                self.args.warmup,
            );
            let report = engine::run(Arc::new(sold_out), &plan).await;
            results.insert(
                "sold_out_refusals_redis_gate".to_owned(),
                StepResult::of(&plan.name, &report),
            );
            gated.stop();
        }
        self.report.cluster = results;

        // (c) single-node mode
        let (single, sandbox) = self.start_single_node(&tenants).await?;
        let (mut results, _) = self.service_steps("single-node", &single, half).await?;
        results.insert(
            "payment_callbacks_applied".to_owned(),
            self.payment_callbacks("single-node", &single).await?,
        );
        results.insert(
            "after_sales_refunded".to_owned(),
            self.after_sale_refunds("single-node", &single).await?,
        );
        single.stop();
        drop(sandbox);
        self.report.single_node = results;

        // (b) bare axum
        let (url, stop) = start_bare_axum(sample)?;
        let pool: Vec<(&'static str, String)> = (0..1_000)
            .map(|i| ("retail", format!("bare-{i}")))
            .collect();
        let gets = Arc::new(Traffic::new(Http::new(&url)?, Scenario::Get, retail).with_pool(&pool));
        let plan = self.plan("bare axum GET", self.closed(), self.args.warmup);
        // (the bare server runs in this process: its CPU is in our client's figure here)
        let report = self.measured("bare_axum_get", gets, &plan).await;
        self.report.bare_axum = Some(StepResult::of(&plan.name, &report));
        let ids: Vec<String> = pool.iter().map(|(_, id)| id.clone()).collect();
        self.with_wrk(
            "bare_axum_get",
            &plan.name,
            &url,
            &wrk::Requests::Get {
                path_prefix: "/v1/orders/",
                ids: &ids,
                key: retail.key,
            },
        );
        let _ = stop.send(());
        Ok(())
    }

    fn finish(&mut self) {
        let raw = self.report.raw_mariadb_ceiling_per_s;
        let bare = self
            .report
            .bare_axum
            .as_ref()
            .map_or(0.0, |b| b.throughput_per_s);
        let mut ratios = BTreeMap::new();
        let mut goals = BTreeMap::new();
        for (mode, results) in [
            ("cluster", &self.report.cluster),
            ("single_node", &self.report.single_node),
        ] {
            if let Some(create) = results.get("create_capacity") {
                ratios.insert(
                    format!("{mode}_create_vs_raw_mariadb"),
                    create.throughput_per_s / raw.max(1e-9),
                );
                goals.insert(
                    format!("{mode}_create_at_least_0.8x_raw"),
                    create.throughput_per_s >= 0.8 * raw,
                );
            }
            if let (Some(create), Some(lifecycle)) = (
                results.get("create_capacity"),
                results.get("lifecycle_capacity"),
            ) {
                ratios.insert(
                    format!("{mode}_lifecycle_vs_create"),
                    lifecycle.throughput_per_s / create.throughput_per_s.max(1e-9),
                );
            }
            if let Some(half) = results.get("create_at_half_raw") {
                goals.insert(
                    format!("{mode}_create_p99_at_most_10ms_at_half_raw"),
                    half.latency_ms.p99 <= 10.0 && half.dropped == 0 && half.errors == 0,
                );
            }
            if let Some(get) = results.get("get_cached") {
                ratios.insert(
                    format!("{mode}_get_cached_vs_bare_axum"),
                    get.throughput_per_s / bare.max(1e-9),
                );
                goals.insert(
                    format!("{mode}_get_cached_at_least_0.5x_bare_axum"),
                    get.throughput_per_s >= 0.5 * bare,
                );
            }
        }
        if let (Some(gate), Some(sql)) = (
            self.report.cluster.get("hot_sku_reservations_redis_gate"),
            self.report.cluster.get("hot_sku_reservations"),
        ) {
            ratios.insert(
                "cluster_hot_sku_redis_gate_vs_sql_alone".to_owned(),
                gate.throughput_per_s / sql.throughput_per_s.max(1e-9),
            );
        }
        if let (Some(with), Some(without)) = (
            self.report.cluster.get("get_cached"),
            self.report.cluster.get("get_cached_without_edge_layers"),
        ) {
            ratios.insert(
                "cluster_get_with_vs_without_edge_layers".to_owned(),
                with.throughput_per_s / without.throughput_per_s.max(1e-9),
            );
        }
        // the same ratios from wrk's figures, where it ran
        let by_wrk = |key: &str| self.report.wrk.get(key).map(|r| r.throughput_per_s);
        for mode in ["cluster", "single_node"] {
            if let Some(create) = by_wrk(&format!("{mode}_create_capacity")) {
                ratios.insert(
                    format!("wrk_{mode}_create_vs_raw_mariadb"),
                    create / raw.max(1e-9),
                );
            }
            if let (Some(get), Some(bare)) = (
                by_wrk(&format!("{mode}_get_cached")),
                by_wrk("bare_axum_get"),
            ) {
                ratios.insert(
                    format!("wrk_{mode}_get_cached_vs_bare_axum"),
                    get / bare.max(1e-9),
                );
            }
        }
        self.report.ratios = ratios;
        self.report.goals = goals;
    }

    fn print_table(&self) {
        let row = |what: &str, r: &StepResult| {
            println!(
                "| {what:<48} | {:>9.0}/s | {:>8.2} | {:>8.2} | {:>8.2} | {:>6} |",
                r.throughput_per_s,
                r.latency_ms.p50,
                r.latency_ms.p99,
                r.latency_ms.p999,
                r.errors + r.dropped
            );
        };
        println!("\n{}", self.report.machine);
        println!(
            "| {:<48} | {:>11} | {:>8} | {:>8} | {:>8} | {:>6} |",
            "step", "throughput", "p50 ms", "p99 ms", "p99.9 ms", "failed"
        );
        println!("|{}|", "-".repeat(108));
        for (concurrency, result) in &self.report.raw_mariadb_sweep {
            let _ = concurrency;
            row(&format!("(a) {}", result.what), result);
        }
        if let Some(bare) = &self.report.bare_axum {
            row(&format!("(b) {}", bare.what), bare);
        }
        for results in [&self.report.cluster, &self.report.single_node] {
            for result in results.values() {
                row(&format!("(c) {}", result.what), result);
            }
        }
        if !self.report.wrk.is_empty() {
            println!(
                "\n| {:<48} | {:>11} | {:>8} | {:>8} | {:>8} | {:>6} | {:>14} | {:>14} |",
                "the same steps, wrk",
                "throughput",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "failed",
                "wrk CPU µs/req",
                "our CPU µs/req"
            );
            for (key, r) in &self.report.wrk {
                let ours = self
                    .report
                    .client_cpu_us_per_request
                    .get(key)
                    .map_or("-".to_owned(), |us| format!("{us:.1}"));
                println!(
                    "| {:<48} | {:>9.0}/s | {:>8.2} | {:>8.2} | {:>8.2} | {:>6} | {:>14.1} | {:>14} |",
                    r.what,
                    r.throughput_per_s,
                    r.p50_ms,
                    r.p99_ms,
                    r.p999_ms,
                    r.failed,
                    r.generator_cpu_us_per_request,
                    ours
                );
            }
        }
        // (not measured by `--payments-only` and `--after-sales-only`)
        if !self.report.raw_mariadb_sweep.is_empty() {
            println!(
                "\nraw MariaDB ceiling: {:.0} tx/s",
                self.report.raw_mariadb_ceiling_per_s
            );
        }
        for (name, ratio) in &self.report.ratios {
            println!("{name}: {ratio:.2}");
        }
        for (goal, met) in &self.report.goals {
            println!("goal {goal}: {}", if *met { "met" } else { "NOT met" });
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("oc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut bench = Bench {
        dir: dir.clone(),
        report: BenchReport {
            machine: format!(
                "{cores} cores shared by MariaDB, the server and this load generator (and whatever else runs on the machine); {} s measured per step",
                args.seconds
            ),
            ..BenchReport::default()
        },
        args,
        series: Vec::new(),
    };
    let outcome = bench.run().await;
    bench.finish();
    bench.print_table();
    let json = serde_json::to_string_pretty(&bench.report)?;
    std::fs::write(&bench.args.out, json)
        .with_context(|| format!("writing {}", bench.args.out.display()))?;
    std::fs::write(
        &bench.args.svg,
        svg::percentile_plot("bench: latency by percentile", &bench.series),
    )
    .with_context(|| format!("writing {}", bench.args.svg.display()))?;
    if outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("bench: logs kept in {}", dir.display());
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wrk against the bare server (the test command installs wrk): its numbers and its
    /// CPU are read back, and answers outside 2xx (a POST to a GET-only route) count as
    /// failed.
    #[test]
    fn wrk_measures_a_server_counts_failures_and_its_own_cpu() {
        assert!(
            wrk::available(),
            "wrk is not installed (apt-get install wrk)"
        );
        let (url, stop) = start_bare_axum(serde_json::json!({"id": "1"})).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ids = vec!["1".to_owned(), "2".to_owned()];
        let gets = wrk::run(
            "bare GET",
            &url,
            &wrk::Requests::Get {
                path_prefix: "/v1/orders/",
                ids: &ids,
                key: "k",
            },
            4,
            Duration::from_secs(1),
            Duration::ZERO,
            dir.path(),
        )
        .unwrap();
        assert!(gets.requests > 100, "{gets:?}");
        assert_eq!(gets.failed, 0, "{gets:?}");
        assert!(
            gets.throughput_per_s > 100.0 && gets.p50_ms > 0.0,
            "{gets:?}"
        );
        assert!(gets.generator_cpu_us_per_request > 0.0, "{gets:?}");
        let posts = wrk::run(
            "bare POST",
            &url,
            &wrk::Requests::Post {
                path: "/v1/orders/1",
                body: "{}",
                key: "k",
            },
            4,
            Duration::from_secs(1),
            Duration::ZERO,
            dir.path(),
        )
        .unwrap();
        assert!(posts.requests > 0, "{posts:?}");
        assert_eq!(
            posts.failed, posts.requests,
            "405 answers are failures: {posts:?}"
        );
        let _ = stop.send(());
    }

    #[test]
    fn rate_limits_are_lifted_and_nothing_else_changes() {
        let yaml = "version: 1\ntenant: retail\nrate_limits:\n  per_second: 1000\n  burst: 2000\n  per_key:\n    bi-export: { per_second: 10, burst: 20 }\n\nshard_policy: { key: buyer_id }\nroles:\n  a: b\n";
        let lifted = lift_rate_limits(yaml);
        assert_eq!(
            lifted,
            "version: 1\ntenant: retail\nrate_limits:\n  per_second: 10000000\n  burst: 10000000\nshard_policy: { key: buyer_id }\nroles:\n  a: b\n"
        );
    }

    #[test]
    fn the_lifted_example_tenants_still_load() {
        let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tenant-config/examples");
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&examples).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let lifted = lift_rate_limits(&text);
            assert_eq!(lifted.matches("rate_limits:").count(), 1);
            assert!(!lifted.contains("per_key"));
            // every top-level key outside the block is kept
            for line in text
                .lines()
                .filter(|l| !l.starts_with(' ') && !l.is_empty())
            {
                assert!(lifted.lines().any(|l| l == line), "{line} lost");
            }
            std::fs::write(dir.path().join(path.file_name().unwrap()), lifted).unwrap();
        }
        let set = oc_tenant_config::ConfigSet::load_dir(dir.path()).expect("lifted config loads");
        for tenant in set.tenants() {
            assert_eq!(tenant.rate_limits().tenant().per_second, 10_000_000);
        }
    }

    #[test]
    fn insert_statements_cover_every_row() {
        let row = CapturedRow {
            columns: vec!["tenant".into(), "order_id".into(), "line_no".into()],
            cells: vec![Cell::Text("retail".into()), Cell::Int(1), Cell::Int(1)],
        };
        assert_eq!(
            insert_sql("order_lines", &[row.clone(), row]),
            "INSERT INTO order_lines (tenant, order_id, line_no) VALUES (?, ?, ?), (?, ?, ?)"
        );
    }
}
