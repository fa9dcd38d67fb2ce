//! `ordercenter`: one binary for the server, the workers and the operator tooling.
//!
//! Subcommands live in one module per group under `cli/`. Error policy: `anyhow` here (CLI and
//! start-up only); the request path uses `oc_model::DomainError`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod breakers;
mod cli;
mod key_reports;
mod serve;

/// mimalloc instead of glibc's malloc: a create allocates a few hundred small objects (JSON,
/// SQL arguments, rows) across two worker threads, and glibc's arena locking and free-list
/// consolidation took about a fifth of the server's CPU (loadtest/PROFILE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The example business-line key of tenant `retail`: a public test credential from
/// `tenant-config/examples/retail.yaml`, printed as a first-request hint in single-node mode.
pub const EXAMPLE_RETAIL_KEY: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";

#[derive(Debug, Parser)]
#[command(
    name = "ordercenter",
    version,
    about = "Order Center: multi-tenant order service"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API server (the default). Single-node mode needs no services: SQLite shards
    /// under ./data and the example tenants, on 127.0.0.1:8080.
    Serve(ServeArgs),
    /// Cluster relay: outbox rows of every shard → Kafka (OC_KAFKA_URL), until SIGTERM.
    Relay(WorkerArgs),
    /// Cluster projector: Kafka → search index, cold store, cache (OC_SEARCH_URL, OC_COLD_URL,
    /// OC_REDIS_URL), with positions kept in the shard database, until SIGTERM.
    Project(WorkerArgs),
    /// Rebuild the read models (search index, cold store, cache) from the shards by
    /// primary-key ranges; resumable with --checkpoint. In single-node mode stop the server
    /// first (the embedded index has one writer).
    Backfill(BackfillArgs),
    /// Compare the shards with the read models for a tenant and time window (counts and
    /// version checksums); prints a JSON report; exit 3 when they differ. --repair re-applies
    /// what differs and checks again.
    Reconcile(ReconcileArgs),
    /// Tenant config tooling: validate, plan, schema.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
    /// Data keys: init (before a cluster's first start and after adding a tenant), rotate,
    /// status, reencrypt, retire (see `ordercenter keys --help`).
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
}

#[derive(Debug, Default, clap::Args)]
struct ServeArgs {
    /// Service config file (YAML); `OC_*` environment variables override it.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
struct WorkerArgs {
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

fn worker(args: WorkerArgs, relay: bool) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = serve::ServiceConfig::load(args.config.as_deref())?;
    if config.single_node {
        anyhow::bail!(
            "relay and project are cluster workers (set OC_SHARDS); single-node serve runs both itself"
        );
    }
    runtime()?.block_on(async move {
        if relay {
            serve::run_relay(config).await
        } else {
            serve::run_projector(config).await
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
struct BackfillArgs {
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Only this tenant's orders.
    #[arg(long)]
    tenant: Option<String>,
    /// Progress file: written after every batch, resumed from when it exists.
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 500)]
    batch_size: u32,
}

#[derive(Debug, clap::Args)]
struct ReconcileArgs {
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[arg(long)]
    tenant: String,
    /// Window start (RFC 3339), inclusive.
    #[arg(long)]
    from: String,
    /// Window end (RFC 3339), exclusive.
    #[arg(long)]
    to: String,
    /// Re-apply what differs, then report again.
    #[arg(long)]
    repair: bool,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn backfill(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = serve::ServiceConfig::load(args.config.as_deref())?;
    runtime()?.block_on(async move {
        let wiring = serve::build(&config).await?;
        let options = oc_projector::BackfillOptions {
            batch_size: args.batch_size,
            tenant: args
                .tenant
                .map(oc_model::TenantId::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e.message))?,
            checkpoint: args.checkpoint,
        };
        let report =
            oc_projector::backfill(wiring.store.as_ref(), &serve::projector(&wiring), &options)
                .await
                .map_err(|e| anyhow::anyhow!("backfill: {}", e.message))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(ExitCode::SUCCESS)
    })
}

fn reconcile(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    use time::format_description::well_known::Rfc3339;
    init_logging();
    let config = serve::ServiceConfig::load(args.config.as_deref())?;
    let tenant = oc_model::TenantId::parse(args.tenant)
        .map_err(|e| anyhow::anyhow!("--tenant: {}", e.message))?;
    let from = time::OffsetDateTime::parse(&args.from, &Rfc3339)
        .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to = time::OffsetDateTime::parse(&args.to, &Rfc3339)
        .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    runtime()?.block_on(async move {
        let wiring = serve::build(&config).await?;
        let options = oc_projector::ReconcileOptions::new(tenant, from, to);
        let clean = if args.repair {
            let report =
                oc_projector::repair(wiring.store.as_ref(), &serve::projector(&wiring), &options)
                    .await
                    .map_err(|e| anyhow::anyhow!("repair: {}", e.message))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            report.after.clean
        } else {
            let report = oc_projector::reconcile(wiring.store.as_ref(), &wiring.sinks, &options)
                .await
                .map_err(|e| anyhow::anyhow!("reconcile: {}", e.message))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            report.clean
        };
        Ok(if clean {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    })
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("OC_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("OC_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let config = serve::ServiceConfig::load(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve::run(config))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Config(command)) => cli::config::run(command),
        Some(Command::Keys(command)) => {
            init_logging();
            cli::keys::run(command)
        }
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Relay(args)) => worker(args, true),
        Some(Command::Project(args)) => worker(args, false),
        Some(Command::Backfill(args)) => backfill(args),
        Some(Command::Reconcile(args)) => reconcile(args),
        None => serve(ServeArgs::default()),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
