//! `ordercenter serve`, `relay`, `project` and `scheduler`: the long-running processes (see
//! [`crate::workers`]).

use std::process::ExitCode;

use crate::config::ServiceConfig;
use crate::workers;

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Service config file (YAML); `OC_*` environment variables override it.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

pub fn worker(args: WorkerArgs, relay: bool) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    let config = ServiceConfig::load(args.config.as_deref())?;
    if config.single_node {
        anyhow::bail!(
            "relay and project are cluster workers (set OC_SHARDS); single-node serve runs both itself"
        );
    }
    crate::runtime()?.block_on(async move {
        if relay {
            workers::relay(config).await
        } else {
            workers::project(config).await
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn scheduler(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    let config = ServiceConfig::load(args.config.as_deref())?;
    if config.single_node {
        anyhow::bail!(
            "scheduler is a cluster worker (set OC_SHARDS); single-node serve runs one itself"
        );
    }
    crate::runtime()?.block_on(workers::scheduler(config))?;
    Ok(ExitCode::SUCCESS)
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    let config = ServiceConfig::load(args.config.as_deref())?;
    crate::runtime()?.block_on(workers::serve(config))?;
    Ok(ExitCode::SUCCESS)
}
