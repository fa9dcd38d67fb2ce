//! `ordercenter backfill` and `reconcile`: rebuilding and checking the read models against
//! the shards (operator tools, same config as `serve`). Reconcile checks the orders' read
//! models and, where a search index is wired, the after-sale lists of the same window (the
//! report's `after_sales`); backfill re-indexes after-sales with their orders.

use std::process::ExitCode;

use crate::config::ServiceConfig;
use crate::wiring::build;

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
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
pub struct ReconcileArgs {
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

pub fn backfill(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    let config = ServiceConfig::load(args.config.as_deref())?;
    crate::runtime()?.block_on(async move {
        let wiring = build(&config).await?;
        let options = oc_projector::BackfillOptions {
            batch_size: args.batch_size,
            tenant: args
                .tenant
                .map(oc_model::TenantId::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e.message))?,
            checkpoint: args.checkpoint,
        };
        let report = oc_projector::backfill(wiring.store.as_ref(), &wiring.projector(), &options)
            .await
            .map_err(|e| anyhow::anyhow!("backfill: {}", e.message))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn reconcile(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    use time::format_description::well_known::Rfc3339;
    crate::init_logging();
    let config = ServiceConfig::load(args.config.as_deref())?;
    let tenant = oc_model::TenantId::parse(args.tenant)
        .map_err(|e| anyhow::anyhow!("--tenant: {}", e.message))?;
    let from = time::OffsetDateTime::parse(&args.from, &Rfc3339)
        .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to = time::OffsetDateTime::parse(&args.to, &Rfc3339)
        .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    crate::runtime()?.block_on(async move {
        let wiring = build(&config).await?;
        let options = oc_projector::ReconcileOptions::new(tenant, from, to);
        let projector = wiring.projector();
        let (mut report, clean) = if args.repair {
            let report = oc_projector::repair(wiring.store.as_ref(), &projector, &options)
                .await
                .map_err(|e| anyhow::anyhow!("repair: {}", e.message))?;
            (serde_json::to_value(&report)?, report.after.clean)
        } else {
            let report = oc_projector::reconcile(wiring.store.as_ref(), &wiring.sinks, &options)
                .await
                .map_err(|e| anyhow::anyhow!("reconcile: {}", e.message))?;
            (serde_json::to_value(&report)?, report.clean)
        };
        // the after-sales of the same window, where a search index holds their lists
        let mut after_sales_clean = true;
        if let Some(index) = &wiring.sinks.search {
            let after_sales = if args.repair {
                let repaired =
                    oc_projector::repair_after_sales(wiring.store.as_ref(), &projector, &options)
                        .await
                        .map_err(|e| anyhow::anyhow!("repair after-sales: {}", e.message))?;
                after_sales_clean = repaired.after.clean;
                serde_json::to_value(&repaired)?
            } else {
                let checked = oc_projector::reconcile_after_sales(
                    wiring.store.as_ref(),
                    index.as_ref(),
                    wiring.sinks.cold.as_deref(),
                    &options,
                )
                .await
                .map_err(|e| anyhow::anyhow!("reconcile after-sales: {}", e.message))?;
                after_sales_clean = checked.clean;
                serde_json::to_value(&checked)?
            };
            report["after_sales"] = after_sales;
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(if clean && after_sales_clean {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    })
}
