//! The command line: one module per command group. Each exposes its clap arguments and a
//! `run` function returning the process exit code (`anyhow::Error` for failures that are not
//! a verdict).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod archive;
pub mod config;
pub mod dead_letters;
pub mod export;
pub mod keys;
pub mod pickup;
pub mod process;
pub mod read_models;
pub mod sandbox_pay;

#[derive(Debug, Parser)]
#[command(
    name = "ordercenter",
    version,
    about = "Order Center: multi-tenant order service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server (the default). Single-node mode needs no services: SQLite shards
    /// under ./data and the example tenants, on 127.0.0.1:8080.
    Serve(process::ServeArgs),
    /// Cluster relay: outbox rows of every shard → Kafka (OC_KAFKA_URL), until SIGTERM.
    Relay(process::WorkerArgs),
    /// Cluster projector: Kafka → search index, cold store, cache (OC_SEARCH_URL, OC_COLD_URL,
    /// OC_REDIS_URL), with positions kept in the shard database, until SIGTERM.
    Project(process::WorkerArgs),
    /// Cluster scheduler: times out orders unpaid past their payment window and releases
    /// reservations whose order was never written, on every shard, until SIGTERM. Several
    /// may run: none double-fires (compare-and-set on the order, conditional updates of the
    /// reservation). Single-node `serve` runs one itself.
    Scheduler(process::WorkerArgs),
    /// Archive: moves terminal orders older than their tenant's `retention.hot_days` from the
    /// shards to the cold store (copy, read back and compare, then delete with an outbox
    /// event), until SIGTERM; `--once` runs one pass and prints its report. Several may run.
    /// Single-node `serve` runs one itself (OC_ARCHIVE_RATE > 0).
    Archive(archive::ArchiveArgs),
    /// Combined return pickup: books one carrier pickup (OC_LOGISTICS_URL) per order for its
    /// approved returns shortly before the earliest pickup time, retrying with backoff and
    /// raising an alert after OC_PICKUP_MAX_ATTEMPTS; `--once` runs one pass and prints its
    /// report. Several may run. Single-node `serve` runs one itself when OC_LOGISTICS_URL is set.
    Pickup(pickup::PickupArgs),
    /// Export a tenant's orders created in [--from, --to) as Parquet or CSV files under --out,
    /// partitioned tenant=<t>/date=<YYYY-MM-DD> (hot orders from the shards, archived ones
    /// from the cold store, each once); progress on stderr, a JSON summary on stdout.
    Export(export::ExportArgs),
    /// Rebuild the read models (search index, cold store, cache) from the shards by
    /// primary-key ranges; resumable with --checkpoint. In single-node mode stop the server
    /// first (the embedded index has one writer).
    Backfill(read_models::BackfillArgs),
    /// Compare the shards with the read models for a tenant and time window (counts and
    /// version checksums); prints a JSON report; exit 3 when they differ. --repair re-applies
    /// what differs and checks again.
    Reconcile(read_models::ReconcileArgs),
    /// Orders a read model refused (recorded by the projector, which moved on): `list` them
    /// as JSON, `replay` them once the cause is fixed (exit 3 when some still fail).
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLettersCommand),
    /// The sandbox payment provider (for demos and tests): signs for the accounts of the
    /// payment secrets file, sends callbacks, and misbehaves on request (PUT /sandbox/faults:
    /// drop, delay, duplicate or reorder callbacks, fail queries).
    SandboxPay(sandbox_pay::SandboxPayArgs),
    /// The sandbox logistics provider (for demos and tests): one waybill per idempotency key,
    /// and misbehaves on request (PUT /sandbox/faults: fail the next N bookings, fail all,
    /// answer late).
    SandboxLogistics(pickup::SandboxLogisticsArgs),
    /// Tenant config tooling: validate, plan, schema.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Data keys: init (before a cluster's first start and after adding a tenant), rotate,
    /// status, reencrypt, retire (see `ordercenter keys --help`).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// Parse the command line, run the command, and turn its outcome into the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Config(command)) => config::run(command),
        Some(Command::Keys(command)) => {
            crate::init_logging();
            keys::run(command)
        }
        Some(Command::Serve(args)) => process::serve(args),
        Some(Command::Relay(args)) => process::worker(args, true),
        Some(Command::Project(args)) => process::worker(args, false),
        Some(Command::Scheduler(args)) => process::scheduler(args),
        Some(Command::Archive(args)) => archive::run(args),
        Some(Command::Export(args)) => export::run(args),
        Some(Command::Backfill(args)) => read_models::backfill(args),
        Some(Command::Reconcile(args)) => read_models::reconcile(args),
        Some(Command::DeadLetters(command)) => dead_letters::run(command),
        Some(Command::SandboxPay(args)) => sandbox_pay::run(args),
        Some(Command::Pickup(args)) => pickup::run(args),
        Some(Command::SandboxLogistics(args)) => pickup::sandbox(args),
        None => process::serve(process::ServeArgs::default()),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
