//! `ordercenter dead-letters list|replay`: the orders a read model refused. The projector
//! records them (`projector_dead_letters`, shard 0) and moves on so other orders keep
//! flowing; an operator lists them, fixes the cause (a mapping, the order's data, the read
//! model's config) and replays them: each order's *current* version is re-read from its
//! shard and written to the read model that refused it, the record removed on success and
//! kept (one more attempt, the new error) on failure. Same config as `serve`.

use std::process::ExitCode;

use oc_model::{OrderId, TenantId};
use oc_projector::{ReplayOptions, replay_dead_letters};

use crate::config::ServiceConfig;
use crate::wiring::build;

#[derive(Debug, clap::Subcommand)]
pub enum DeadLettersCommand {
    /// Print the open dead letters as a JSON array, oldest first failure first.
    List(ListArgs),
    /// Re-apply the recorded orders' current versions to the read models that refused them;
    /// prints a JSON report; exit 3 when some still fail.
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Only this tenant's.
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, default_value_t = 1000)]
    limit: u32,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Only this tenant's.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this order's (its id as the API prints it).
    #[arg(long)]
    id: Option<String>,
    #[arg(long, default_value_t = 1000)]
    limit: u32,
}

fn tenant(text: Option<String>) -> anyhow::Result<Option<TenantId>> {
    text.map(TenantId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--tenant: {}", e.message))
}

pub fn run(command: DeadLettersCommand) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    match command {
        DeadLettersCommand::List(args) => list(args),
        DeadLettersCommand::Replay(args) => replay(args),
    }
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let config = ServiceConfig::load(args.config.as_deref())?;
    let tenant = tenant(args.tenant)?;
    crate::runtime()?.block_on(async move {
        let wiring = build(&config).await?;
        let letters = wiring
            .dead_letters()
            .list(tenant.as_ref(), args.limit.max(1))
            .await
            .map_err(|e| anyhow::anyhow!("listing dead letters: {}", e.message))?;
        println!("{}", serde_json::to_string_pretty(&letters)?);
        Ok(ExitCode::SUCCESS)
    })
}

fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = ServiceConfig::load(args.config.as_deref())?;
    let options = ReplayOptions {
        tenant: tenant(args.tenant)?,
        order_id: args
            .id
            .map(|id| id.parse::<OrderId>())
            .transpose()
            .map_err(|_| anyhow::anyhow!("--id: not an order id"))?,
        limit: args.limit,
    };
    crate::runtime()?.block_on(async move {
        let wiring = build(&config).await?;
        let dead_letters = wiring.dead_letters();
        let report = replay_dead_letters(&wiring.projector(), dead_letters.as_ref(), &options)
            .await
            .map_err(|e| anyhow::anyhow!("replaying dead letters: {}", e.message))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(if report.still_failing.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    })
}
