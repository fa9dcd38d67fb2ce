//! `loadtest`: drives a running Order Center over HTTP, or (`loadtest bench`) measures the
//! service against its own raw ceilings on this machine.
//!
//! Open loop (`--rate`): requests are scheduled at a constant arrival rate and each latency is
//! measured from its *scheduled* start, so a stalled server cannot hide its queueing delay
//! (no coordinated omission). Closed loop (`--concurrency`): N workers send back to back, to
//! find the throughput ceiling. Latencies go into HDR histograms per operation (and per
//! tenant in `multi-tenant`); the result is printed and written as JSON (`--out`), the
//! latency-by-percentile curves as SVG (`--svg`).

#[cfg(test)]
mod acceptance_tests;
mod after_sales;
mod bench;
mod engine;
mod http;
mod orders;
mod payments;
mod raw;
mod scenarios;
mod stats;
mod svg;
mod wrk;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::engine::{Load, Plan};
use crate::scenarios::{Scenario, Traffic};

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    about = "Load generator for Order Center",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure the raw MariaDB ceiling for the order transaction, a bare axum endpoint, and
    /// the order center (single node and cluster, spawned from the release binary).
    Bench(bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Tenant of the generated traffic: retail or express (multi-tenant uses both, each
    /// with its own example key).
    #[arg(long, default_value = "retail")]
    profile: String,
    /// Open loop: requests per second.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: workers sending back to back.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up before measuring (same load, not recorded).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Orders created first for get, search, mixed and multi-tenant.
    #[arg(long, default_value_t = 2000)]
    pool: usize,
    /// Open loop: most requests in flight; beyond it a request counts as dropped.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: u64,
    /// Write the JSON result here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the latency-by-percentile plot (SVG) here: one line per operation or tenant.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

fn load_of(
    rate: Option<f64>,
    concurrency: Option<u32>,
    max_in_flight: u64,
) -> anyhow::Result<Load> {
    match (rate, concurrency) {
        (Some(rate), _) if rate > 0.0 => Ok(Load::Open {
            rate,
            max_in_flight,
        }),
        (None, Some(workers)) if workers > 0 => Ok(Load::Closed { workers }),
        _ => bail!("give --rate (open loop, > 0) or --concurrency (closed loop, > 0)"),
    }
}

async fn run_scenario(args: RunArgs) -> anyhow::Result<()> {
    let scenario = args
        .scenario
        .context("give --scenario (or the bench subcommand); see --help")?;
    let load = load_of(args.rate, args.concurrency, args.max_in_flight)?;
    let tenant = orders::tenant(&args.profile)
        .with_context(|| format!("unknown profile {:?}: retail or express", args.profile))?;
    if scenario.retail_only() && tenant.name != "retail" {
        bail!(
            "the {} scenario runs on the retail profile (its state machine and stock)",
            scenario.name()
        );
    }
    let http = http::Http::new(&args.url)?;
    let traffic = Traffic::new(http, scenario, tenant)
        .prepare(args.pool)
        .await?;
    let plan = Plan {
        name: scenario.name().to_owned(),
        load,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        progress: !args.quiet,
    };
    let report = engine::run(Arc::new(traffic), &plan).await;
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(path) = &args.out {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        let mut series: Vec<svg::Series> = report
            .histograms
            .iter()
            // per tenant in multi-tenant (tenant/op lines would crowd the plot)
            .filter(|(name, latencies)| {
                latencies.count() > 0
                    && (scenario != Scenario::MultiTenant
                        || !name.contains('/') && orders::tenant(name).is_some())
            })
            .map(|(name, latencies)| svg::Series::of(name.clone(), latencies))
            .collect();
        if scenario == Scenario::MultiTenant {
            let mut all = stats::Latencies::default();
            for tenant in orders::TENANTS {
                if let Some(latencies) = report.histograms.get(tenant.name) {
                    all.merge(latencies);
                }
            }
            series.push(svg::Series::of("all tenants", &all));
        }
        let title = format!("{} — {}", scenario.name(), report.mode);
        std::fs::write(path, svg::percentile_plot(&title, &series))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Bench(args)) => bench::run(args).await,
        None => run_scenario(cli.run).await,
    }
}
