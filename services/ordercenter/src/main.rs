//! `ordercenter`: one binary for the server, the workers and the operator tooling.
//!
//! Subcommands live in one module per group under `cli/`. Error policy: `anyhow` here (CLI and
//! start-up only); the request path uses `oc_model::DomainError`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

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
    /// Tenant config tooling: validate, plan, schema.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Config(command)) => cli::config::run(command),
        // `serve` becomes the default once it exists; until then, show what there is
        None => {
            use clap::CommandFactory;
            let mut help = Cli::command();
            let _ = help.print_help();
            println!();
            Ok(ExitCode::SUCCESS)
        }
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
