//! The soak (issue #19): cluster mode on the live engines, every worker a real OS process
//! killed with SIGKILL at random moments, and the links to Kafka, HBase and OpenSearch cut
//! through loopback proxies, while a writer places, updates, pays, ships and cancels orders
//! of two tenants at a steady rate. At the end, with everything restarted and drained, every
//! read model holds exactly the shard's version of every order, and every effect of a worker
//! happened exactly once.
//!
//! The test command runs it small (2,000 orders, 2 kills of each process, one cut of each
//! link); `deploy/local/soak.sh` runs the full one (50,000 orders, 5 kills, 3 Kafka cuts, 2
//! HBase and 2 OpenSearch cuts) through the same code, sized by these variables:
//!
//! | variable                | default | meaning                                         |
//! |-------------------------|---------|-------------------------------------------------|
//! | `OC_SOAK_ORDERS`        | 2000    | orders placed, half for each of two tenants      |
//! | `OC_SOAK_RATE`          | 80      | orders per second the writer aims at             |
//! | `OC_SOAK_KILLS`         | 2       | SIGKILLs of each worker process                  |
//! | `OC_SOAK_KAFKA_CUTS`    | 1       | cuts of the workers' link to Kafka               |
//! | `OC_SOAK_HBASE_CUTS`    | 1       | cuts of the projectors' link to HBase            |
//! | `OC_SOAK_SEARCH_CUTS`   | 1       | cuts of the projectors' link to OpenSearch       |
//! | `OC_SOAK_SEED`          | time    | the random schedule's seed (printed; replayable) |
//! | `OC_SOAK_REPORT`        | —       | where to write the JSON report too               |
//!
//! The Kafka cut uses the broker's fault-test listener, whose advertised port is fixed, so
//! this test shares a nextest test group with the relay's bus-outage test (`.config/nextest.toml`).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use oc_test_support::TcpProxy;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Row;

/// Every unpaid order is timed out by the scheduler this long after its placement, so
/// timeouts happen all through the fault phase.
const PAYMENT_WINDOW_SECONDS: u64 = 15;
/// The stock-tracked SKU some retail orders buy: its units must add up at the end.
const TRACKED_SKU: &str = "SOAK-STOCK-1";
const TRACKED_STOCK: u64 = 1_000_000;
/// After the last fault, the read models must be in step within this time.
const DRAIN_LIMIT: Duration = Duration::from_secs(240);

#[derive(Debug, Clone)]
struct Sizes {
    orders: usize,
    rate: f64,
    kills: usize,
    kafka_cuts: usize,
    hbase_cuts: usize,
    search_cuts: usize,
    seed: u64,
    report: Option<PathBuf>,
}

impl Sizes {
    fn from_env() -> Sizes {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(value) if !value.is_empty() => value
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={value}: not a number")),
                _ => default,
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Sizes {
            orders: var("OC_SOAK_ORDERS", 2_000),
            rate: var("OC_SOAK_RATE", 80.0),
            kills: var("OC_SOAK_KILLS", 2),
            kafka_cuts: var("OC_SOAK_KAFKA_CUTS", 1),
            hbase_cuts: var("OC_SOAK_HBASE_CUTS", 1),
            search_cuts: var("OC_SOAK_SEARCH_CUTS", 1),
            seed: var("OC_SOAK_SEED", now),
            report: std::env::var_os("OC_SOAK_REPORT").map(PathBuf::from),
        }
    }
}

/// The worker processes the soak kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Worker {
    Relay,
    Member0,
    Member1,
    Scheduler,
}

const WORKERS: [Worker; 4] = [
    Worker::Relay,
    Worker::Member0,
    Worker::Member1,
    Worker::Scheduler,
];

impl Worker {
    fn name(self) -> &'static str {
        match self {
            Worker::Relay => "relay",
            Worker::Member0 => "projector-0",
            Worker::Member1 => "projector-1",
            Worker::Scheduler => "scheduler",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Link {
    Kafka,
    Hbase,
    Search,
}

impl Link {
    fn name(self) -> &'static str {
        match self {
            Link::Kafka => "kafka",
            Link::Hbase => "hbase",
            Link::Search => "opensearch",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Kill(Worker),
    Start(Worker),
    Cut(Link),
    Restore(Link),
}

/// Two events (a fault and its end) from a moment.
type Pair<'a> = dyn Fn(Duration, &mut StdRng) -> [(Duration, Action); 2] + 'a;

/// The random schedule: each worker killed `kills` times and each link cut its number of
/// times, at moments spread over `span` (one random moment per equal slot, so a worker is
/// always running again before its next kill), each restart 0.2–1.5 s after its kill and
/// each cut lasting 1–4 s.
fn schedule(sizes: &Sizes, span: Duration, rng: &mut StdRng) -> Vec<(Duration, Action)> {
    let mut events = Vec::new();
    let start = Duration::from_secs(2);
    let span = span.saturating_sub(start).max(Duration::from_secs(10));
    let mut spread = |count: usize, events: &mut Vec<(Duration, Action)>, make: &Pair<'_>| {
        if count == 0 {
            return;
        }
        let slot = span / count as u32;
        for index in 0..count {
            // the first 70% of a slot, so the restart falls inside it
            let offset = slot.mul_f64(rng.gen_range(0.0..0.7));
            let at = start + slot * index as u32 + offset;
            events.extend(make(at, rng));
        }
    };
    for worker in WORKERS {
        spread(sizes.kills, &mut events, &|at, rng| {
            let restart = Duration::from_millis(rng.gen_range(200..1_500));
            [
                (at, Action::Kill(worker)),
                (at + restart, Action::Start(worker)),
            ]
        });
    }
    for (link, count) in [
        (Link::Kafka, sizes.kafka_cuts),
        (Link::Hbase, sizes.hbase_cuts),
        (Link::Search, sizes.search_cuts),
    ] {
        spread(count, &mut events, &|at, rng| {
            let length = Duration::from_millis(rng.gen_range(1_000..4_000));
            [
                (at, Action::Cut(link)),
                (at + length, Action::Restore(link)),
            ]
        });
    }
    events.sort_by_key(|(at, _)| *at);
    events
}

/// One order as the writer left it, and what its end state must be.
#[derive(Debug, Clone)]
struct Placed {
    id: String,
    tenant: &'static str,
    tracked: bool,
    /// `paid`, `shipped` or `cancelled` (by `cancel` or by the scheduler's `timeout`).
    status: &'static str,
    /// No payment and no cancel: the scheduler must time it out exactly once.
    times_out: bool,
}

#[derive(Debug, Default)]
struct WriterOutcome {
    placed: Vec<Placed>,
    /// Answers the writer did not expect: (request, status, body).
    unexpected: Vec<(String, u16, String)>,
    updates: usize,
    payments: usize,
    shipments: usize,
    cancels: usize,
    /// Payments that lost to the scheduler's timeout (409): the order stays cancelled.
    late_payments: usize,
}

fn key_of(tenant: &str) -> &'static str {
    if tenant == "retail" {
        RETAIL_KEY
    } else {
        OUTLET_KEY
    }
}

/// Places order `n` and moves it as its number says: a third are updated; of the rest of
/// the plan, a quarter paid (half of those shipped), a quarter cancelled, half left to time
/// out.
fn write_one(port: u16, n: usize, outcome: &Mutex<WriterOutcome>) {
    // tenants by threes, so each tenant gets every kind of order below
    let tenant: &'static str = if (n / 3).is_multiple_of(2) {
        "retail"
    } else {
        "outlet"
    };
    let key = key_of(tenant);
    let tracked = tenant == "retail" && n.is_multiple_of(5);
    let sku = if tracked {
        TRACKED_SKU.to_owned()
    } else {
        format!("SOAK-{}", n % 50)
    };
    let unexpected = |what: String, status: u16, body: String| {
        outcome
            .lock()
            .unwrap()
            .unexpected
            .push((what, status, body));
    };
    let order = CreateRequest::retail(&format!("soak-{n}"))
        .sku(&sku)
        .receiver(
            "Li Lei",
            &format!("1390000{:04}", n % 10_000),
            &format!("{n} Nanjing Road"),
        )
        .body();
    let (status, body) = match request_as(key, port, "POST", "/v1/orders", &[], Some(&order)) {
        Ok(answer) => answer,
        Err(error) => return unexpected(format!("create {n}"), 0, error.to_string()),
    };
    if status != 201 {
        return unexpected(format!("create {n}"), status, body);
    }
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = view["id"].as_str().unwrap().to_owned();
    let mut version = view["version"].as_u64().unwrap();
    let mut placed = Placed {
        id: id.clone(),
        tenant,
        tracked,
        status: "cancelled",
        times_out: true,
    };
    let mut counts = WriterOutcome::default();

    let send = |method: &str, path: String, version: u64, body: String| {
        let etag = format!("\"{version}\"");
        request_as(
            key,
            port,
            method,
            &path,
            &[("If-Match", &etag)],
            Some(&body),
        )
    };
    if n.is_multiple_of(3) {
        let body = serde_json::json!({"remark": format!("soak update {n}")}).to_string();
        match send("PATCH", format!("/v1/orders/{id}"), version, body) {
            Ok((200, answer)) => {
                version = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["version"]
                    .as_u64()
                    .unwrap();
                counts.updates += 1;
            }
            Ok((status, answer)) => unexpected(format!("update {n}"), status, answer),
            Err(error) => unexpected(format!("update {n}"), 0, error.to_string()),
        }
    }
    let transition = |event: &str, version: u64, data: Option<serde_json::Value>| {
        let mut body = serde_json::json!({"event": event});
        if let Some(data) = data {
            body["data"] = data;
        }
        send(
            "POST",
            format!("/v1/orders/{id}/transitions"),
            version,
            body.to_string(),
        )
    };
    match n % 4 {
        1 => match transition("pay", version, None) {
            Ok((200, answer)) => {
                version = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["version"]
                    .as_u64()
                    .unwrap();
                counts.payments += 1;
                placed.status = "paid";
                placed.times_out = false;
                if n % 8 == 1 {
                    let data =
                        serde_json::json!({"carrier": "sf", "waybill_no": format!("SF{n:08}")});
                    match transition("ship", version, Some(data)) {
                        Ok((200, _)) => {
                            counts.shipments += 1;
                            placed.status = "shipped";
                        }
                        Ok((status, answer)) => unexpected(format!("ship {n}"), status, answer),
                        Err(error) => unexpected(format!("ship {n}"), 0, error.to_string()),
                    }
                }
            }
            // the payment came after the payment window: the timeout won, the order stays
            // cancelled (the writer fell behind; counted, not a failure)
            Ok((409, answer)) if answer.contains("cancelled") => counts.late_payments += 1,
            Ok((status, answer)) => unexpected(format!("pay {n}"), status, answer),
            Err(error) => unexpected(format!("pay {n}"), 0, error.to_string()),
        },
        2 => match transition("cancel", version, None) {
            Ok((200, _)) => {
                counts.cancels += 1;
                placed.times_out = false;
            }
            Ok((409, answer)) if answer.contains("cancelled") => {}
            Ok((status, answer)) => unexpected(format!("cancel {n}"), status, answer),
            Err(error) => unexpected(format!("cancel {n}"), 0, error.to_string()),
        },
        _ => {}
    }
    let mut outcome = outcome.lock().unwrap();
    outcome.placed.push(placed);
    outcome.updates += counts.updates;
    outcome.payments += counts.payments;
    outcome.shipments += counts.shipments;
    outcome.cancels += counts.cancels;
    outcome.late_payments += counts.late_payments;
}

/// Writers on threads, each placing its share of the orders at `rate / threads` per second.
fn start_writer(
    port: u16,
    sizes: &Sizes,
    outcome: Arc<Mutex<WriterOutcome>>,
    done: Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<()>> {
    // enough threads that the rate holds while each request waits on a busy machine
    const THREADS: usize = 16;
    let interval = Duration::from_secs_f64(THREADS as f64 / sizes.rate);
    let orders = sizes.orders;
    (0..THREADS)
        .map(|thread| {
            let outcome = Arc::clone(&outcome);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let started = Instant::now();
                for (step, n) in (thread..orders).step_by(THREADS).enumerate() {
                    let due = started + interval * step as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    write_one(port, n, &outcome);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect()
}

/// The engines, databases and processes of one soak run.
struct Soak {
    databases: oc_test_support::TestDatabases,
    search: oc_test_support::SearchPrefix,
    table: oc_test_support::HbaseTable,
    data: tempfile::TempDir,
    tenants: tempfile::TempDir,
    topic_prefix: String,
    /// The workers' links: Kafka through the broker's fault-test listener, HBase's Thrift
    /// server and OpenSearch through proxies of their own.
    kafka: TcpProxy,
    hbase: TcpProxy,
    opensearch: TcpProxy,
    ports: BTreeMap<Worker, u16>,
}

impl Soak {
    fn base(&self) -> Command {
        let mut command = command(self.data.path());
        on_shards(&mut command, &self.databases.urls().join(","))
            .env("OC_TENANT_CONFIG_DIR", self.tenants.path())
            .env("OC_REDIS_URL", oc_test_support::redis_url())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    fn search_url(&self, address: &str) -> String {
        format!(
            "http://{address}?prefix={}&replicas=0",
            self.search.prefix()
        )
    }

    fn cold_url(&self, address: &str) -> String {
        format!(
            "hbase://{address}?table={}&salt_buckets=4",
            self.table.name()
        )
    }

    /// `serve`: its links are direct (the soak cuts the workers', not the API's).
    fn serve(&self, port: u16) -> Server {
        let search = self
            .search
            .url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let mut command = self.base();
        command.env("OC_SEARCH_URL", self.search_url(&search)).env(
            "OC_COLD_URL",
            self.cold_url(&oc_test_support::hbase_address()),
        );
        Server(listening(command, "serve", port).spawn().unwrap())
    }

    fn worker(&self, worker: Worker) -> Server {
        let kafka = format!(
            "kafka://{}?prefix={}&partitions=2",
            self.kafka.host_port(),
            self.topic_prefix
        );
        let mut command = self.base();
        command.env("OC_KAFKA_URL", kafka);
        let subcommand = match worker {
            Worker::Relay => "relay",
            Worker::Member0 | Worker::Member1 => {
                let member = if worker == Worker::Member0 { 0 } else { 1 };
                command
                    .env("OC_PROJECTOR_MEMBER", format!("{member}/2"))
                    .env(
                        "OC_SEARCH_URL",
                        self.search_url(&self.opensearch.host_port()),
                    )
                    .env("OC_COLD_URL", self.cold_url(&self.hbase.host_port()));
                "project"
            }
            Worker::Scheduler => {
                command.env("OC_SCHEDULER_POLL_MS", "200");
                "scheduler"
            }
        };
        Server(
            listening(command, subcommand, self.ports[&worker])
                .spawn()
                .unwrap(),
        )
    }

    fn proxy(&self, link: Link) -> &TcpProxy {
        match link {
            Link::Kafka => &self.kafka,
            Link::Hbase => &self.hbase,
            Link::Search => &self.opensearch,
        }
    }

    fn reconcile(&self, tenant: &str) -> serde_json::Value {
        let mut command = self.base();
        command
            .env(
                "OC_SEARCH_URL",
                self.search_url(
                    self.search
                        .url()
                        .trim_start_matches("http://")
                        .trim_end_matches('/'),
                ),
            )
            .env(
                "OC_COLD_URL",
                self.cold_url(&oc_test_support::hbase_address()),
            );
        let output = reconcile(command, tenant);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            serde_json::json!({"clean": false, "error": error.to_string(), "exit": output.status.code()})
        })
    }
}

/// `/metrics` of the process on `port`, if it answers.
fn scrape(port: u16) -> Option<String> {
    match http(port, "GET", "/metrics", None) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// Every sample of the metric `name` (any labels), by its label text.
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = rest.rsplit_once(' ')?;
            if !(labels.is_empty() || labels.starts_with('{')) {
                return None;
            }
            Some((labels.to_owned(), value.trim().parse::<f64>().ok()?))
        })
        .collect()
}

/// What the projector members counted, kept across their deaths: the last scrape of each
/// incarnation is added when it is killed.
#[derive(Debug, Default)]
struct ProjectorCounts {
    settled: BTreeMap<String, f64>,
    live: BTreeMap<Worker, BTreeMap<String, f64>>,
}

impl ProjectorCounts {
    fn observe(&mut self, worker: Worker, text: &str) {
        self.live
            .insert(worker, samples(text, "oc_projector_writes_total"));
    }

    fn settle(&mut self, worker: Worker) {
        for (labels, value) in self.live.remove(&worker).unwrap_or_default() {
            *self.settled.entry(labels).or_default() += value;
        }
    }

    fn total(&self) -> BTreeMap<String, f64> {
        let mut total = self.settled.clone();
        for counts in self.live.values() {
            for (labels, value) in counts {
                *total.entry(labels.clone()).or_default() += value;
            }
        }
        total
    }
}

#[test]
fn soak_with_sigkills_and_link_cuts_ends_with_every_read_model_in_step() {
    let sizes = Sizes::from_env();
    eprintln!("soak: {sizes:?} (replay with OC_SOAK_SEED={})", sizes.seed);
    let began = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(sizes.seed);

    // tenants retail and outlet, their unpaid orders timed out after the short window
    let tenants = copy_of_examples();
    add_outlet_tenant(tenants.path());
    for tenant in ["retail", "outlet"] {
        with_payment_window(tenants.path(), tenant, PAYMENT_WINDOW_SECONDS);
    }
    let soak = runtime.block_on(async {
        let (kafka_listener, kafka_advertised) = oc_test_support::kafka_fault_listener();
        let kafka_port = kafka_advertised
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("{kafka_advertised}: no port"));
        let search = oc_test_support::SearchPrefix::new("soak").await.unwrap();
        let opensearch_target = search
            .url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Soak {
            databases: oc_test_support::TestDatabases::create("soak", 2)
                .await
                .unwrap(),
            table: oc_test_support::HbaseTable::new("soak").await.unwrap(),
            data: tempfile::tempdir().unwrap(),
            tenants,
            topic_prefix: oc_test_support::unique_prefix("soak"),
            kafka: TcpProxy::start_on(kafka_port, kafka_listener)
                .await
                .unwrap_or_else(|error| {
                    panic!("{error:#} (is the bus outage test running? the port is fixed by the broker's config)")
                }),
            hbase: TcpProxy::start(oc_test_support::hbase_address())
                .await
                .unwrap(),
            opensearch: TcpProxy::start(opensearch_target).await.unwrap(),
            search,
            ports: WORKERS.iter().map(|worker| (*worker, free_port())).collect(),
        }
    });
    keys_init(soak.base());
    let api_port = free_port();
    let mut api = soak.serve(api_port);
    wait_healthy(api_port);
    set_stock(api_port, TRACKED_SKU, TRACKED_STOCK);
    let mut workers: BTreeMap<Worker, Server> = WORKERS
        .iter()
        .map(|worker| (*worker, soak.worker(*worker)))
        .collect();
    for worker in WORKERS {
        wait_healthy(soak.ports[&worker]);
    }

    // the fault phase covers the writing and one payment window after it, so the last
    // timeouts fall inside it too
    let writing = Duration::from_secs_f64(sizes.orders as f64 / sizes.rate);
    let span = writing + Duration::from_secs(PAYMENT_WINDOW_SECONDS);
    let plan = schedule(&sizes, span, &mut rng);
    let outcome = Arc::new(Mutex::new(WriterOutcome::default()));
    let written = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let writers = start_writer(api_port, &sizes, Arc::clone(&outcome), Arc::clone(&written));

    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    let mut cuts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unexpected_exits: Vec<String> = Vec::new();
    // A worker started while its link is cut cannot open its read model or the bus and exits
    // (status 1), as it would under a supervisor that restarts it: counted, restarted, allowed
    // while a cut lasts and for a few seconds after it ends.
    let mut startup_failures = 0usize;
    let mut last_restore: Option<Instant> = None;
    // killed on purpose and not yet started again
    let mut down: Vec<Worker> = Vec::new();
    let mut counts = ProjectorCounts::default();
    let mut max_relay_lag_ms = 0.0f64;
    let mut last_fault = Duration::ZERO;
    let mut next = plan.into_iter().peekable();
    let mut last_scrape = Instant::now();
    let mut writing_took: Option<Duration> = None;
    // bounded: the faults end with the span; a writer that falls further behind than a
    // quarter of it (at least 2 minutes) fails the run
    let phase_limit = span + (span / 4).max(Duration::from_secs(120));
    loop {
        let now = started.elapsed();
        while let Some((at, action)) = next.next_if(|(at, _)| *at <= now) {
            match action {
                Action::Kill(worker) => {
                    if matches!(worker, Worker::Member0 | Worker::Member1)
                        && let Some(text) = scrape(soak.ports[&worker])
                    {
                        counts.observe(worker, &text);
                    }
                    let server = workers.get_mut(&worker).unwrap();
                    server.0.kill().unwrap();
                    server.0.wait().unwrap();
                    counts.settle(worker);
                    down.push(worker);
                    *kills.entry(worker.name()).or_default() += 1;
                }
                Action::Start(worker) => {
                    down.retain(|killed| *killed != worker);
                    workers.insert(worker, soak.worker(worker));
                }
                Action::Cut(link) => {
                    soak.proxy(link).block();
                    *cuts.entry(link.name()).or_default() += 1;
                }
                Action::Restore(link) => {
                    soak.proxy(link).restore();
                    last_restore = Some(Instant::now());
                }
            }
            last_fault = at;
        }
        // a worker that ended by itself is a finding: note it and start it again
        for worker in WORKERS.into_iter().filter(|worker| !down.contains(worker)) {
            let server = workers.get_mut(&worker).unwrap();
            if let Some(status) = server.0.try_wait().unwrap() {
                let cut = [Link::Kafka, Link::Hbase, Link::Search]
                    .iter()
                    .any(|link| soak.proxy(*link).is_blocked())
                    || last_restore.is_some_and(|at| at.elapsed() < Duration::from_secs(5));
                if cut && status.code() == Some(1) {
                    startup_failures += 1;
                } else {
                    unexpected_exits.push(format!(
                        "{} exited by itself at {:?}: {status}",
                        worker.name(),
                        started.elapsed()
                    ));
                }
                counts.settle(worker);
                workers.insert(worker, soak.worker(worker));
            }
        }
        if last_scrape.elapsed() >= Duration::from_millis(500) {
            last_scrape = Instant::now();
            for worker in [Worker::Member0, Worker::Member1] {
                if let Some(text) = scrape(soak.ports[&worker]) {
                    counts.observe(worker, &text);
                }
            }
            if let Some(text) = scrape(soak.ports[&Worker::Relay]) {
                for value in samples(&text, "oc_relay_oldest_pending_age_ms").values() {
                    max_relay_lag_ms = max_relay_lag_ms.max(*value);
                }
            }
        }
        let writing_done = writers.iter().all(|writer| writer.is_finished());
        if writing_done && writing_took.is_none() {
            writing_took = Some(started.elapsed());
        }
        if writing_done && next.peek().is_none() {
            break;
        }
        assert!(
            started.elapsed() < phase_limit,
            "the fault phase overran {phase_limit:?}: {} of {} orders written",
            written.load(Ordering::SeqCst),
            sizes.orders
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for writer in writers {
        writer.join().unwrap();
    }
    let wrote_in = started.elapsed();
    let outcome = std::mem::take(&mut *outcome.lock().unwrap());
    assert!(
        outcome.unexpected.is_empty(),
        "{} unexpected answers, first: {:?}",
        outcome.unexpected.len(),
        &outcome.unexpected[..outcome.unexpected.len().min(5)]
    );
    assert_eq!(outcome.placed.len(), sizes.orders);

    // drain: every unpaid order timed out, the outbox published, every read model in step
    let pools: Vec<sqlx::MySqlPool> = runtime.block_on(async {
        let mut pools = Vec::new();
        for index in 0..soak.databases.len() {
            pools.push(soak.databases.connect(index).await.unwrap());
        }
        pools
    });
    let expected_timeouts = outcome
        .placed
        .iter()
        .filter(|order| order.times_out)
        .count();
    let drain_started = Instant::now();
    let mut last_state = String::new();
    let (shard_orders, reports) = loop {
        assert!(
            drain_started.elapsed() < DRAIN_LIMIT,
            "not drained within {DRAIN_LIMIT:?} after the last fault: {last_state}"
        );
        std::thread::sleep(Duration::from_millis(500));
        for worker in [Worker::Member0, Worker::Member1] {
            if let Some(text) = scrape(soak.ports[&worker]) {
                counts.observe(worker, &text);
            }
        }
        let (timeouts, pending, versions) = runtime.block_on(async {
            let timeouts = sum(
                &pools,
                "SELECT COUNT(*) FROM order_history WHERE event = 'timeout'",
            )
            .await;
            let pending = sum(
                &pools,
                "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL",
            )
            .await;
            (timeouts, pending, shard_orders(&pools).await)
        });
        if timeouts < expected_timeouts as i64 || pending > 0 {
            last_state =
                format!("{timeouts} of {expected_timeouts} timeouts, {pending} events unpublished");
            continue;
        }
        let cached = runtime.block_on(cache_versions(&versions));
        let cache_differences = versions
            .iter()
            .filter(|(key, (version, _))| cached.get(*key) != Some(version))
            .count();
        if cache_differences > 0 {
            last_state = format!("{cache_differences} orders not in step in the cache");
            continue;
        }
        let reports: Vec<serde_json::Value> = ["retail", "outlet"]
            .iter()
            .map(|tenant| soak.reconcile(tenant))
            .collect();
        if reports.iter().all(|report| report["clean"] == true) {
            break (versions, reports);
        }
        let letters = runtime.block_on(dead_letter_rows(&pools));
        last_state = format!("reconcile not clean: {reports:?}; dead letters: {letters:#?}");
    };
    let drained_in = drain_started.elapsed();

    // every order is where the writer left it, timed out at most once
    let placed_ids: BTreeMap<(&str, String), &Placed> = outcome
        .placed
        .iter()
        .map(|order| ((order.tenant, order.id.clone()), order))
        .collect();
    assert_eq!(shard_orders.len(), placed_ids.len(), "orders in the shards");
    // read in the drain's last pass, after every timeout: the final statuses
    for ((tenant, id), order) in &placed_ids {
        let (_, status) = shard_orders
            .get(&(tenant.to_string(), id.clone()))
            .unwrap_or_else(|| panic!("order {tenant}/{id} is missing"));
        assert_eq!(status, order.status, "order {tenant}/{id}: {order:?}");
    }
    let (twice_timed_out, timeouts, dead_letters, stock) = runtime.block_on(async {
        (
            sum(&pools, "SELECT COUNT(*) FROM (SELECT order_id FROM order_history WHERE event = 'timeout' GROUP BY tenant, order_id HAVING COUNT(*) > 1) twice").await,
            sum(&pools, "SELECT COUNT(*) FROM order_history WHERE event = 'timeout'").await,
            sum(&pools, "SELECT COUNT(*) FROM projector_dead_letters").await,
            stock_level(&pools).await,
        )
    });
    assert_eq!(twice_timed_out, 0, "orders timed out twice");
    assert_eq!(timeouts, expected_timeouts as i64, "timeouts");
    if dead_letters > 0 {
        let rows = runtime.block_on(dead_letter_rows(&pools));
        panic!("{dead_letters} orders dead-lettered by a transient fault: {rows:#?}");
    }
    let tracked_sold = outcome
        .placed
        .iter()
        .filter(|order| order.tracked && order.status != "cancelled")
        .count() as i64;
    assert_eq!(
        stock,
        (TRACKED_STOCK as i64 - tracked_sold, 0, tracked_sold),
        "(available, reserved, sold) of {TRACKED_SKU}"
    );
    // version checks in every sink: a redelivered event is counted stale, never applied; an
    // order's events are its versions, so no sink can have applied more writes than that
    let events: u64 = shard_orders.values().map(|(version, _)| version).sum();
    let writes = counts.total();
    for sink in ["search", "cold", "cache"] {
        let applied = writes
            .get(&format!("{{sink=\"{sink}\",outcome=\"applied\"}}"))
            .copied()
            .unwrap_or(0.0);
        assert!(
            applied <= events as f64,
            "{sink}: {applied} writes applied for {events} events"
        );
    }
    assert!(
        unexpected_exits.is_empty(),
        "workers that ended by themselves: {unexpected_exits:?}"
    );

    let report = serde_json::json!({
        "seed": sizes.seed,
        "orders": sizes.orders,
        "tenants": ["retail", "outlet"],
        "rate_target_per_s": sizes.rate,
        "rate_achieved_per_s": sizes.orders as f64 / writing_took.unwrap_or(wrote_in).as_secs_f64(),
        "updates": outcome.updates,
        "payments": outcome.payments,
        "late_payments": outcome.late_payments,
        "shipments": outcome.shipments,
        "cancels": outcome.cancels,
        "timeouts": timeouts,
        "events": events,
        "kills": kills,
        "cuts": cuts,
        "projector_writes": writes,
        "fault_phase_s": wrote_in.as_secs_f64(),
        "last_fault_at_s": last_fault.as_secs_f64(),
        "drain_after_last_fault_s": (wrote_in.saturating_sub(last_fault) + drained_in).as_secs_f64(),
        "max_relay_lag_ms": max_relay_lag_ms,
        "startup_failures_during_cuts": startup_failures,
        "reconcile": reports,
        "total_s": began.elapsed().as_secs_f64(),
    });
    let text = serde_json::to_string_pretty(&report).unwrap();
    println!("{text}");
    if let Some(path) = &sizes.report {
        std::fs::write(path, &text).unwrap();
    }
    for worker in WORKERS {
        assert!(kills[worker.name()] >= sizes.kills.min(1), "{report}");
    }

    for (_, mut server) in workers {
        stop(&mut server);
    }
    stop(&mut api);
    drop(pools);
    runtime.block_on(async {
        soak.databases.cleanup().await.unwrap();
        soak.search.cleanup().await.unwrap();
        soak.table.cleanup().await.unwrap();
    });
}

/// The dead letters (sink, error code, attempts, message), for the failure message.
async fn dead_letter_rows(pools: &[sqlx::MySqlPool]) -> Vec<String> {
    let mut rows = Vec::new();
    for pool in pools {
        for row in sqlx::query(
            "SELECT sink, error_code, attempts, error_message FROM projector_dead_letters LIMIT 10",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        {
            rows.push(format!(
                "{} {} after {} attempts: {}",
                text(&row, 0),
                text(&row, 1),
                row.try_get::<i32, _>(2).unwrap(),
                text(&row, 3)
            ));
        }
    }
    rows
}

/// (tenant, order id) → (version, status), over every shard.
async fn shard_orders(pools: &[sqlx::MySqlPool]) -> BTreeMap<(String, String), (u64, String)> {
    let mut orders = BTreeMap::new();
    for pool in pools {
        for row in sqlx::query("SELECT tenant, CAST(id AS CHAR), version, status FROM orders")
            .fetch_all(pool)
            .await
            .unwrap()
        {
            orders.insert(
                (text(&row, 0), text(&row, 1)),
                (row.try_get::<i64, _>(2).unwrap() as u64, text(&row, 3)),
            );
        }
    }
    orders
}

/// MariaDB hands some text columns over as bytes: read either.
fn text(row: &sqlx::mysql::MySqlRow, index: usize) -> String {
    row.try_get::<String, _>(index)
        .unwrap_or_else(|_| String::from_utf8(row.try_get::<Vec<u8>, _>(index).unwrap()).unwrap())
}

/// (available, reserved, sold) of the tracked SKU (retail's).
async fn stock_level(pools: &[sqlx::MySqlPool]) -> (i64, i64, i64) {
    let sql = format!(
        "SELECT available, reserved, sold FROM stock_levels WHERE tenant = 'retail' AND sku = '{TRACKED_SKU}'"
    );
    for pool in pools {
        if let Some(row) = sqlx::query(&sql).fetch_optional(pool).await.unwrap() {
            return (
                row.try_get(0).unwrap(),
                row.try_get(1).unwrap(),
                row.try_get(2).unwrap(),
            );
        }
    }
    panic!("no stock row for {TRACKED_SKU}");
}

/// The version each order's Redis entry holds (the projector's cache sink), read straight
/// from Redis; entries without an order (tombstones) are left out.
async fn cache_versions<V>(
    orders: &BTreeMap<(String, String), V>,
) -> BTreeMap<(String, String), u64> {
    let client = redis::Client::open(oc_test_support::redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<&(String, String)> = orders.keys().collect();
    let mut versions = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for (tenant, id) in chunk {
            pipe.cmd("HMGET")
                .arg(format!("oc:{tenant}:order:{id}"))
                .arg("v")
                .arg("o");
        }
        let answers: Vec<(Option<u64>, Option<String>)> =
            pipe.query_async(&mut connection).await.unwrap();
        for (key, (version, order)) in chunk.iter().zip(answers) {
            if let (Some(version), Some(_)) = (version, order) {
                versions.insert((*key).clone(), version);
            }
        }
    }
    versions
}
