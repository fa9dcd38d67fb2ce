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
//! - (a') **raw SQLite**, single-node mode's ceiling: the same transaction captured from 64
//!   creates of a probe single node and written into fresh SQLite files (one per shard,
//!   schema copied from the probe's) with the store's pragmas (WAL, `synchronous = FULL`),
//!   swept over connections; then at the rate of the single node's half-capacity step, as
//!   that step's latency floor. See [`crate::raw`].
//! - (b) **bare axum**: an in-process axum server (own runtime) answering `GET
//!   /v1/orders/{id}` with a real order's JSON (serialised per request), loaded by the
//!   same client.
//! - (c) **the order center**, spawned from the release binary: cluster mode (`OC_SHARDS`
//!   on two fresh MariaDB databases, in-process cache) and single-node mode (SQLite, relay,
//!   projector): create capacity (closed loop), full-lifecycle capacity (create → pay →
//!   ship → receive → complete per step, closed loop), reservations on one hot SKU (64
//!   buyers placing one-unit orders of the same SKU), create at half a rate (open loop,
//!   p99: cluster mode at half of (a), single-node mode at half its own create capacity),
//!   GET of cached orders; in cluster mode the GET is repeated with `OC_EDGE_LAYERS=off`
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
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::RngCore;
use serde::Serialize;
use sqlx::Executor;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};

use crate::after_sales;
use crate::engine::{self, Load, Plan, Step};
use crate::http::Http;
use crate::orders;
use crate::payments;
use crate::raw::{self, RawPools, RawTx, TxTemplate};
use crate::scenarios::{Scenario, Traffic};
use crate::stats::{Percentiles, Report};
use crate::svg;
use crate::wrk;

/// Concurrent buyers of the hot-SKU step (the flash-sale figure).
const HOT_SKU_BUYERS: u32 = 64;
/// How long [`settle`] waits at most for the read models to catch up.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);
/// How long the projector's event count must stand still (nothing pending in the relay) for
/// the server to count as settled.
const SETTLE_QUIET: Duration = Duration::from_secs(1);

/// Waits (at most [`SETTLE_LIMIT`]) until the server's read models caught up with what the
/// steps before wrote: nothing pending in the relay, and the projector's event count unchanged
/// for [`SETTLE_QUIET`]. Closed-loop steps write faster than a single node's projector applies
/// (tantivy, redb), and an open-loop step begun on that backlog measured the catching up beside
/// its own creates (loadtest/PROFILE.md). Says how long it waited, under `mode`'s name.
async fn settle(mode: &str, http: &Http) {
    let started = Instant::now();
    let mut seen: Option<u64> = None;
    let mut still_since = Instant::now();
    while started.elapsed() < SETTLE_LIMIT {
        if let Ok(answer) = http.call("GET", "/metrics", "", None, &[]).await {
            let text = answer.text();
            let pending = metric_values(&text, "oc_relay_oldest_pending_age_ms").any(|v| v > 0.0);
            let events = metric_values(&text, "oc_projector_events_total").sum::<f64>() as u64;
            if seen != Some(events) {
                seen = Some(events);
                still_since = Instant::now();
            } else if !pending && still_since.elapsed() >= SETTLE_QUIET {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "bench: {mode} read models caught up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The values of metric `name` (every label set) in a Prometheus text exposition.
fn metric_values<'t>(text: &'t str, name: &'t str) -> impl Iterator<Item = f64> + 't {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        line.rsplit(' ').next()?.parse().ok()
    })
}

/// What a mode's "create at half …" step is half of: cluster mode is judged at half the raw
/// MariaDB ceiling, single-node mode at half its own create capacity (its ceiling, raw
/// SQLite's single writer per file, is far below MariaDB's: half of that would measure an
/// overload, not a half load).
#[derive(Debug, Clone, Copy)]
enum Half {
    OfRaw(f64),
    OfCapacity,
}

/// The one single-node step `--payments-only` or `--after-sales-only` runs.
#[derive(Debug, Clone, Copy)]
enum OnlyStep {
    PaymentCallbacks,
    AfterSales,
}

/// The connection count of a sweep's highest throughput (1 for an empty sweep).
fn ceiling_connections(sweep: &[(u32, StepResult)]) -> u32 {
    sweep
        .iter()
        .max_by(|(_, a), (_, b)| a.throughput_per_s.total_cmp(&b.throughput_per_s))
        .map_or(1, |(connections, _)| *connections)
}

/// Half of a measured throughput, as an offered rate.
fn half_of(throughput_per_s: f64) -> f64 {
    (throughput_per_s / 2.0).round().max(1.0)
}

/// 64 creates through `server` (every tenant's): the rows a raw ceiling's transaction copies.
/// The orders created, by tenant.
async fn probe_orders(server: &Server) -> anyhow::Result<Vec<(&'static str, String)>> {
    let retail = orders::tenant("retail").context("retail profile")?;
    let probe = Traffic::new(server.http.clone(), Scenario::Create, retail)
        .all_tenants()
        .keep_created(64);
    for n in 0..64 {
        let outcome = probe.step(n).await;
        if outcome.status != 201 {
            bail!("creating a probe order: {outcome:?}");
        }
    }
    Ok(probe.created())
}

/// A single node's SQLite shard files in its data directory, in shard order.
fn shard_files(data_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".db"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no shard-*.db in {}", data_dir.display());
    }
    Ok(files)
}

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
    /// Concurrency sweep of the raw SQLite transaction (connections over the single node's
    /// shard files; the store opens at most 8 per file).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    sqlite_sweep: Vec<u32>,
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
    /// The same transaction on SQLite files (single-node mode's ceiling); the last entry,
    /// at concurrency 0, is the open-loop run at half the single node's create capacity.
    raw_sqlite_sweep: Vec<(u32, StepResult)>,
    raw_sqlite_ceiling_per_s: f64,
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
    /// A closed-loop sweep of a raw transaction over `connections` (the pools for each
    /// count from `pools_of`): every step's result and the best throughput, the ceiling.
    async fn raw_sweep(
        &self,
        what: &str,
        connections: &[u32],
        templates: &[TxTemplate],
        next_id: &Arc<AtomicI64>,
        pools_of: impl AsyncFn(u32) -> anyhow::Result<RawPools>,
    ) -> anyhow::Result<(Vec<(u32, StepResult)>, f64)> {
        let mut sweep = Vec::new();
        let mut ceiling = 0.0_f64;
        for &concurrency in connections {
            let pools = pools_of(concurrency).await?;
            let step = Arc::new(RawTx {
                pools: pools.clone(),
                templates: templates.to_vec(),
                next_id: Arc::clone(next_id),
            });
            let plan = self.plan(
                &format!("{what}, {concurrency} connections"),
                Load::Closed {
                    workers: concurrency,
                },
                self.args.warmup,
            );
            let report = engine::run(step, &plan).await;
            pools.close().await;
            let result = StepResult::of(&plan.name, &report);
            ceiling = ceiling.max(result.throughput_per_s);
            sweep.push((concurrency, result));
        }
        if ceiling <= 0.0 {
            bail!("the {what} never succeeded: {sweep:?}");
        }
        Ok((sweep, ceiling))
    }

    /// The raw transaction at `rate`, open loop: the latency floor of a server's step at
    /// the same rate.
    async fn raw_at(
        &mut self,
        what: &str,
        rate: f64,
        pools: RawPools,
        templates: &[TxTemplate],
        next_id: &Arc<AtomicI64>,
    ) -> StepResult {
        let step = Arc::new(RawTx {
            pools: pools.clone(),
            templates: templates.to_vec(),
            next_id: Arc::clone(next_id),
        });
        let load = Load::Open {
            rate,
            max_in_flight: 4_096,
        };
        let plan = self.plan(&format!("{what} at {rate:.0}/s"), load, self.args.warmup);
        let report = engine::run(step, &plan).await;
        pools.close().await;
        self.series.push(svg::Series::of(
            format!("{what} @{rate:.0}/s"),
            &report.all_latencies,
        ));
        StepResult::of(&plan.name, &report)
    }

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
    /// ([`HOT_SKU_BUYERS`] buyers), creates at half a rate (open loop: `half` says of what),
    /// GETs of created orders.
    async fn service_steps(
        &mut self,
        mode: &str,
        server: &Server,
        half: Half,
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
        let (half_rate, half_of_what, half_key) = match half {
            Half::OfRaw(rate) => (rate, "the raw ceiling", "create_at_half_raw"),
            Half::OfCapacity => (
                half_of(report.throughput_per_s),
                "its capacity",
                "create_at_half_capacity",
            ),
        };
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
        settle(mode, &server.http).await;
        let load = Load::Open {
            rate: half_rate,
            max_in_flight: 4_096,
        };
        let plan = self.plan(
            &format!("{mode} create at half {half_of_what}"),
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
        results.insert(half_key.to_owned(), StepResult::of(&plan.name, &half));
        settle(mode, &server.http).await;
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
        let step = payments::Callbacks::new(server.http.clone(), prepared);
        Ok(self
            .closed_step(format!("{mode} payment callbacks applied"), step)
            .await)
    }

    /// A closed-loop step named `what` over `step`: its result.
    async fn closed_step<S: Step>(&self, what: String, step: S) -> StepResult {
        let plan = self.plan(&what, self.closed(), self.args.warmup);
        let report = engine::run(Arc::new(step), &plan).await;
        StepResult::of(&plan.name, &report)
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
        let step = after_sales::Refunds::new(server.http.clone(), retail.key, paid);
        Ok(self
            .closed_step(
                format!("{mode} after-sales applied, approved and refunded"),
                step,
            )
            .await)
    }

    /// `--payments-only` / `--after-sales-only`: a single-node server wired to the sandbox,
    /// that one step.
    async fn run_single_node_step(&mut self, only: OnlyStep) -> anyhow::Result<()> {
        let tenants = self.lifted_tenants()?;
        let (single, _sandbox) = self
            .start_single_node(&tenants, &self.dir.join("single"))
            .await?;
        let (key, result) = match only {
            OnlyStep::PaymentCallbacks => (
                "payment_callbacks_applied",
                self.payment_callbacks("single-node", &single).await,
            ),
            OnlyStep::AfterSales => (
                "after_sales_refunded",
                self.after_sale_refunds("single-node", &single).await,
            ),
        };
        single.stop();
        self.report.single_node.insert(key.to_owned(), result?);
        Ok(())
    }

    /// A single-node server on `tenants`, wired to a sandbox payment provider (kept alive
    /// as long as the server is used).
    async fn start_single_node(
        &self,
        tenants: &Path,
        data_dir: &Path,
    ) -> anyhow::Result<(Server, payments::SandboxProvider)> {
        let sandbox = payments::SandboxProvider::start(&self.dir).await?;
        let mut env = vec![
            ("OC_DATA_DIR", data_dir.display().to_string()),
            ("OC_TENANT_CONFIG_DIR", tenants.display().to_string()),
        ];
        env.extend(sandbox.env.iter().cloned());
        let single =
            Server::start(&self.args.ordercenter, &env, data_dir.with_extension("log")).await?;
        Ok((single, sandbox))
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
            return self.run_single_node_step(OnlyStep::PaymentCallbacks).await;
        }
        if self.args.after_sales_only {
            return self.run_single_node_step(OnlyStep::AfterSales).await;
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
        let probe = probe_orders(&cluster).await?;
        let templates = raw::capture_mysql(&cluster_urls).await?;
        let (tenant, id) = probe.first().cloned().context("a probe order")?;
        let key = orders::tenant(tenant).context("tenant")?.key;
        let sample = cluster
            .http
            .call("GET", &format!("/v1/orders/{id}"), key, None, &[])
            .await?
            .json();

        // (a) raw MariaDB
        let raw_urls = [databases.url("raw_0"), databases.url("raw_1")];
        for url in &raw_urls {
            raw::copy_mysql_schema(&cluster_urls[0], url).await?;
        }
        let next_id = Arc::new(AtomicI64::new(1 << 50));
        let (sweep, ceiling) = self
            .raw_sweep(
                "raw MariaDB tx",
                &self.args.sweep.clone(),
                &templates,
                &next_id,
                async |connections| {
                    let mut pools = Vec::new();
                    for url in &raw_urls {
                        pools.push(raw::mysql_pool(url, connections.div_ceil(2).max(1)).await?);
                    }
                    Ok(RawPools::MySql(pools))
                },
            )
            .await?;
        self.report.raw_mariadb_sweep = sweep;
        self.report.raw_mariadb_ceiling_per_s = ceiling;
        let half = (ceiling / 2.0).round();
        // the raw transaction at half its ceiling, open loop: the latency floor for (c)
        let pools = RawPools::MySql(vec![
            raw::mysql_pool(&raw_urls[0], 32).await?,
            raw::mysql_pool(&raw_urls[1], 32).await?,
        ]);
        let floor = self
            .raw_at("raw MariaDB tx", half, pools, &templates, &next_id)
            .await;
        self.report.raw_mariadb_sweep.push((0, floor));

        // (c) cluster mode
        let (mut results, created) = self
            .service_steps("cluster", &cluster, Half::OfRaw(half))
            .await?;
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

        // (a') raw SQLite: the single node's own transaction, captured from 64 creates of a
        // probe single node (stopped before the sweep), written into fresh files
        eprintln!("bench: starting a probe single node, capturing 64 real orders");
        let probe_dir = self.dir.join("single-probe");
        let (probe, probe_sandbox) = self.start_single_node(&tenants, &probe_dir).await?;
        probe_orders(&probe).await?;
        probe.stop();
        drop(probe_sandbox);
        let shard_files = shard_files(&probe_dir)?;
        let sqlite_templates = raw::capture_sqlite(&shard_files).await?;
        let raw_dir = self.dir.join("raw-sqlite");
        std::fs::create_dir_all(&raw_dir)?;
        let mut raw_files = Vec::new();
        for from in &shard_files {
            let to = raw_dir.join(from.file_name().context("a shard file name")?);
            raw::copy_sqlite_schema(from, &to).await?;
            raw_files.push(to);
        }
        let shards = raw_files.len() as u32;
        let pools_of = async |connections: u32| {
            let mut pools = Vec::new();
            for file in &raw_files {
                pools.push(raw::sqlite_pool(file, connections.div_ceil(shards).max(1)).await?);
            }
            Ok(RawPools::Sqlite(pools))
        };
        let (sweep, sqlite_ceiling) = self
            .raw_sweep(
                "raw SQLite tx",
                &self.args.sqlite_sweep.clone(),
                &sqlite_templates,
                &next_id,
                &pools_of,
            )
            .await?;
        self.report.raw_sqlite_sweep = sweep;
        self.report.raw_sqlite_ceiling_per_s = sqlite_ceiling;

        // (c) single-node mode
        let (single, sandbox) = self
            .start_single_node(&tenants, &self.dir.join("single"))
            .await?;
        let (mut results, _) = self
            .service_steps("single-node", &single, Half::OfCapacity)
            .await?;
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
        // the raw SQLite transaction at the rate of the single node's half-capacity step:
        // the latency floor of that step. It runs with the connections of the sweep's
        // ceiling: with more, SQLite's writers wait on the file lock in its busy handler's
        // sleeps (130 ms p99 at 16 connections, where the ceiling's count had a tenth of it),
        // a cost of the floor's set-up, not of the transaction; the store queues its writers
        // per file instead (store-sql's WriteTurn)
        if let Some(capacity) = results.get("create_capacity") {
            let rate = half_of(capacity.throughput_per_s);
            let pools = pools_of(ceiling_connections(&self.report.raw_sqlite_sweep)).await?;
            let floor = self
                .raw_at("raw SQLite tx", rate, pools, &sqlite_templates, &next_id)
                .await;
            self.report.raw_sqlite_sweep.push((0, floor));
        }
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
        let bare = self
            .report
            .bare_axum
            .as_ref()
            .map_or(0.0, |b| b.throughput_per_s);
        let mut ratios = BTreeMap::new();
        let mut goals = BTreeMap::new();
        // each mode against the raw ceiling of its own engine
        for (mode, results, engine, raw) in [
            (
                "cluster",
                &self.report.cluster,
                "raw_mariadb",
                self.report.raw_mariadb_ceiling_per_s,
            ),
            (
                "single_node",
                &self.report.single_node,
                "raw_sqlite",
                self.report.raw_sqlite_ceiling_per_s,
            ),
        ] {
            if let Some(create) = results.get("create_capacity")
                && raw > 0.0
            {
                ratios.insert(
                    format!("{mode}_create_vs_{engine}"),
                    create.throughput_per_s / raw,
                );
                goals.insert(
                    format!("{mode}_create_at_least_0.8x_{engine}"),
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
            if let Some(half) = results.get("create_at_half_capacity") {
                goals.insert(
                    format!("{mode}_create_p99_at_most_20ms_at_half_capacity"),
                    half.latency_ms.p99 <= 20.0 && half.dropped == 0 && half.errors == 0,
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
        for (mode, engine, raw) in [
            (
                "cluster",
                "raw_mariadb",
                self.report.raw_mariadb_ceiling_per_s,
            ),
            (
                "single_node",
                "raw_sqlite",
                self.report.raw_sqlite_ceiling_per_s,
            ),
        ] {
            if let Some(create) = by_wrk(&format!("{mode}_create_capacity"))
                && raw > 0.0
            {
                ratios.insert(format!("wrk_{mode}_create_vs_{engine}"), create / raw);
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
        for (_, result) in self
            .report
            .raw_mariadb_sweep
            .iter()
            .chain(&self.report.raw_sqlite_sweep)
        {
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
        if !self.report.raw_sqlite_sweep.is_empty() {
            println!(
                "raw SQLite ceiling: {:.0} tx/s",
                self.report.raw_sqlite_ceiling_per_s
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

    #[test]
    fn metric_values_are_read_by_name_over_every_label_set() {
        let text = "# TYPE oc_relay_oldest_pending_age_ms gauge\n\
                    oc_relay_oldest_pending_age_ms{shard=\"0\"} 0\n\
                    oc_relay_oldest_pending_age_ms{shard=\"1\"} 250\n\
                    oc_relay_oldest_pending_age_ms_other 7\n\
                    oc_projector_events_total 11696\n";
        let pending: Vec<f64> = metric_values(text, "oc_relay_oldest_pending_age_ms").collect();
        assert_eq!(pending, vec![0.0, 250.0]);
        let events: Vec<f64> = metric_values(text, "oc_projector_events_total").collect();
        assert_eq!(events, vec![11_696.0]);
        assert_eq!(metric_values(text, "oc_missing").count(), 0);
    }

    #[test]
    fn the_raw_floor_runs_with_the_connections_of_the_sweeps_ceiling() {
        let at = |throughput_per_s| StepResult {
            what: String::new(),
            mode: String::new(),
            throughput_per_s,
            ok: 1,
            errors: 0,
            dropped: 0,
            latency_ms: Percentiles::default(),
            first_error: None,
        };
        let sweep = vec![
            (1, at(1_401.0)),
            (2, at(2_115.0)),
            (4, at(1_983.0)),
            (16, at(1_716.0)),
        ];
        assert_eq!(ceiling_connections(&sweep), 2);
        assert_eq!(ceiling_connections(&[]), 1);
    }

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
}
