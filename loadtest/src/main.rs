//! `loadtest`: drives a running Order Center over HTTP.
//!
//! Open loop (`--rate`): requests are scheduled at a constant arrival rate and each latency is
//! measured from its *scheduled* start, so a stalled server cannot hide its queueing delay
//! (no coordinated omission). Closed loop (`--concurrency`): N workers send back to back, to
//! find the throughput ceiling. Latencies go into an HDR histogram; the result is printed and
//! written as JSON.

mod orders;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Scenario {
    /// POST /v1/orders with generated orders.
    Create,
    /// GET /v1/orders/{id} over a pool of orders created first.
    Get,
    /// Create an order (unique buyer), then poll the search endpoint until the order is
    /// found: the latency recorded is commit → visible in search.
    Visibility,
}

#[derive(Debug, Parser)]
#[command(name = "loadtest", about = "Load generator for Order Center")]
struct Args {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key (Bearer).
    #[arg(long, default_value = orders::RETAIL_KEY)]
    key: String,
    /// Tenant profile of the generated orders: retail or express.
    #[arg(long, default_value = "retail")]
    profile: String,
    /// Open loop: requests per second.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<u32>,
    /// Closed loop: workers sending back to back.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up before measuring (same load, not recorded).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Orders created for the GET pool.
    #[arg(long, default_value_t = 2000)]
    pool: usize,
    /// Open loop: most requests in flight; beyond it a request counts as dropped.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: u64,
    /// Write the JSON result here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: Scenario,
    mode: String,
    duration_s: f64,
    sent: u64,
    ok: u64,
    errors: u64,
    dropped: u64,
    throughput_per_s: f64,
    latency_ms: Percentiles,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// What one scenario step gave: its status and, when the step measures something other
/// than its own duration (visibility), that latency.
struct Sent {
    status: u16,
    latency: Option<Duration>,
}

struct Target {
    client: HttpClient,
    url: String,
    key: String,
    profile: String,
    pool: Vec<String>,
    counter: AtomicU64,
}

impl Target {
    async fn send(&self, scenario: Scenario) -> anyhow::Result<Sent> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let request = match scenario {
            Scenario::Create => hyper::Request::post(format!("{}/v1/orders", self.url))
                .header("authorization", format!("Bearer {}", self.key))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(
                    orders::generate(&self.profile, n).to_string(),
                )))?,
            Scenario::Visibility => {
                let order = orders::generate(&self.profile, n);
                let buyer = format!("vis-{n}-{}", std::process::id());
                let mut order = order;
                order["buyer_id"] = serde_json::Value::String(buyer.clone());
                let create = hyper::Request::post(format!("{}/v1/orders", self.url))
                    .header("authorization", format!("Bearer {}", self.key))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(order.to_string())))?;
                let response = self.client.request(create).await?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await?.to_bytes();
                if status != 201 {
                    return Ok(Sent {
                        status,
                        latency: None,
                    });
                }
                let id = serde_json::from_slice::<serde_json::Value>(&body)?["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let committed = Instant::now();
                loop {
                    let search = hyper::Request::get(format!(
                        "{}/v1/orders/search?buyer_id={buyer}",
                        self.url
                    ))
                    .header("authorization", format!("Bearer {}", self.key))
                    .body(Full::new(Bytes::new()))?;
                    let response = self.client.request(search).await?;
                    let body = response.into_body().collect().await?.to_bytes();
                    if String::from_utf8_lossy(&body).contains(&id) {
                        break;
                    }
                    if committed.elapsed() > Duration::from_secs(30) {
                        return Ok(Sent {
                            status: 504,
                            latency: None,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                return Ok(Sent {
                    status: 200,
                    latency: Some(committed.elapsed()),
                });
            }
            Scenario::Get => {
                let id = &self.pool[(n as usize).wrapping_mul(7919) % self.pool.len()];
                hyper::Request::get(format!("{}/v1/orders/{id}", self.url))
                    .header("authorization", format!("Bearer {}", self.key))
                    .body(Full::new(Bytes::new()))?
            }
        };
        let response = self.client.request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(Sent {
            status,
            latency: None,
        })
    }
}

fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
    let ms = |micros: u64| micros as f64 / 1000.0;
    Percentiles {
        p50: ms(histogram.value_at_quantile(0.50)),
        p90: ms(histogram.value_at_quantile(0.90)),
        p99: ms(histogram.value_at_quantile(0.99)),
        p999: ms(histogram.value_at_quantile(0.999)),
        max: ms(histogram.max()),
        mean: histogram.mean() / 1000.0,
    }
}

struct Tally {
    histogram: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        Ok(Tally {
            histogram: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        })
    }

    async fn record(&self, started: Instant, outcome: anyhow::Result<Sent>, measuring: bool) {
        if !measuring {
            return;
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(Sent { status, latency }) if (200..300).contains(&status) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let micros = latency
                    .unwrap_or_else(|| started.elapsed())
                    .as_micros()
                    .clamp(1, 60_000_000) as u64;
                let _ = self.histogram.lock().await.record(micros);
            }
            _ => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn check_loopback(url: &str) -> anyhow::Result<()> {
    let host = url
        .trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost" | "[" | "::1") && !host.starts_with("127.") {
        bail!("refusing to load {host}: only loopback targets are allowed");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    check_loopback(&args.url)?;
    if args.rate.is_none() && args.concurrency.is_none() {
        bail!("give --rate (open loop) or --concurrency (closed loop)");
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector);
    let mut target = Target {
        client,
        url: args.url.trim_end_matches('/').to_owned(),
        key: args.key.clone(),
        profile: args.profile.clone(),
        pool: Vec::new(),
        counter: AtomicU64::new(0),
    };
    if matches!(args.scenario, Scenario::Get) {
        eprintln!("creating {} orders for the GET pool", args.pool);
        for n in 0..args.pool {
            let request = hyper::Request::post(format!("{}/v1/orders", target.url))
                .header("authorization", format!("Bearer {}", target.key))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(
                    orders::generate(&target.profile, 1_000_000 + n as u64).to_string(),
                )))?;
            let response = target
                .client
                .request(request)
                .await
                .context("creating the GET pool")?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                bail!(
                    "creating the GET pool: {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let json: serde_json::Value = serde_json::from_slice(&body)?;
            target
                .pool
                .push(json["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let target = Arc::new(target);
    let tally = Arc::new(Tally::new()?);
    let total = Duration::from_secs(args.warmup + args.duration);
    let warmup = Duration::from_secs(args.warmup);
    let started = Instant::now();
    let mode;
    if let Some(rate) = args.rate {
        mode = format!("open loop at {rate}/s");
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let in_flight = Arc::new(AtomicU64::new(0));
        let mut n: u64 = 0;
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let scheduled = started + interval.mul_f64(n as f64);
            if scheduled.duration_since(started) >= total {
                break;
            }
            tokio::time::sleep_until(scheduled.into()).await;
            let measuring = scheduled.duration_since(started) >= warmup;
            n += 1;
            if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
                if measuring {
                    tally.dropped.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (target, tally, in_flight, scenario) = (
                Arc::clone(&target),
                Arc::clone(&tally),
                Arc::clone(&in_flight),
                args.scenario,
            );
            tasks.spawn(async move {
                let outcome = target.send(scenario).await;
                tally.record(scheduled, outcome, measuring).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    } else {
        let workers = args.concurrency.unwrap_or(1);
        mode = format!("closed loop with {workers} workers");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (target, tally, scenario) =
                (Arc::clone(&target), Arc::clone(&tally), args.scenario);
            tasks.spawn(async move {
                while started.elapsed() < total {
                    let sent_at = Instant::now();
                    let measuring = sent_at.duration_since(started) >= warmup;
                    let outcome = target.send(scenario).await;
                    tally.record(sent_at, outcome, measuring).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
    let measured = (started.elapsed() - warmup).as_secs_f64();
    let histogram = tally.histogram.lock().await;
    let ok = tally.ok.load(Ordering::Relaxed);
    let report = Report {
        scenario: args.scenario,
        mode,
        duration_s: measured,
        sent: tally.sent.load(Ordering::Relaxed),
        ok,
        errors: tally.errors.load(Ordering::Relaxed),
        dropped: tally.dropped.load(Ordering::Relaxed),
        throughput_per_s: ok as f64 / measured,
        latency_ms: percentiles(&histogram),
    };
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(path) = args.out {
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
