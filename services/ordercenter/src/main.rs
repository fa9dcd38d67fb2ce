//! `ordercenter`: one binary for the server, the workers and the operator tooling.
//!
//! Subcommands live in one module per group under `cli/`. Error policy: `anyhow` here (CLI and
//! start-up only); the request path uses `oc_model::DomainError`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod serve;

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
    /// Tenant config tooling: validate, plan, schema.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
}

#[derive(Debug, Default, clap::Args)]
struct ServeArgs {
    /// Service config file (YAML); `OC_*` environment variables override it.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
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
        Some(Command::Serve(args)) => serve(args),
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
