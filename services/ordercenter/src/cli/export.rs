//! `ordercenter export`: one tenant's orders created in `[--from, --to)` as Parquet or CSV
//! files under `--out`, partitioned `tenant=<t>/date=<YYYY-MM-DD>`, with a progress line on
//! stderr and a record of the export (`_export.json`: who ran it, the PII policy, the
//! files) beside them. Reads the shards and the cold store directly (in single-node mode,
//! stop the server first: the embedded cold store has one process at a time).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use oc_core::caller::{Caller, PiiView};
use oc_core::exports::ExportRequest;
use oc_model::export::JobProgress;
use oc_model::{TenantId, UnixMillis};

use crate::config::ServiceConfig;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    tenant: String,
    /// First day (UTC, YYYY-MM-DD), included.
    #[arg(long)]
    from: String,
    /// Last day (UTC, YYYY-MM-DD), excluded.
    #[arg(long)]
    to: String,
    /// parquet or csv.
    #[arg(long, default_value = "parquet")]
    format: String,
    /// The directory the partitions are written under (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Write personal data in plaintext instead of the tenant's `exports.pii` policy (the
    /// operator holds the keys; the record says so).
    #[arg(long)]
    plaintext: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    let config = ServiceConfig::load(args.config.as_deref())?;
    let request = ExportRequest::parse(&args.from, &args.to, &args.format, args.plaintext)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field.unwrap_or_default(), e.message))?;
    let tenant = TenantId::parse(args.tenant.clone()).map_err(|e| anyhow::anyhow!(e.message))?;
    crate::runtime()?.block_on(async move {
        let wiring = crate::wiring::build(&config).await?;
        // the server's exporter (wired only with a cold store); its job records are unused here
        let exporter = wiring
            .state
            .exports
            .clone()
            .ok_or_else(|| anyhow::anyhow!("exports read the cold store (OC_COLD_URL)"))?;
        let tenant_config = wiring
            .config
            .current()
            .tenant(&tenant)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("unknown tenant {tenant}"))?;
        let who = format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "operator".to_owned())
        );
        let pii = if args.plaintext {
            PiiView::Full
        } else {
            PiiView::None
        };
        let caller = Caller::operator(tenant_config, who, pii);
        let mut record = exporter
            .new_job(format!("cli-{}", UnixMillis::now()), &caller, &request)
            .map_err(|e| anyhow::anyhow!(e.message))?;
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let started = Instant::now();
        let quiet = args.quiet;
        let progress = move |counts: &JobProgress, day: time::Date| {
            if quiet {
                return;
            }
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            let width = 30usize;
            let done = (counts.days_done as usize * width)
                .checked_div(counts.days_total as usize)
                .unwrap_or(width);
            let mut stderr = std::io::stderr().lock();
            let _ = write!(
                stderr,
                "\r[{}{}] day {}/{} {} {} rows {:.0} rows/s ",
                "#".repeat(done),
                ".".repeat(width - done),
                counts.days_done,
                counts.days_total,
                day,
                counts.rows,
                counts.rows as f64 / seconds
            );
            let _ = stderr.flush();
        };
        let outcome = exporter.run(&caller, &request, &args.out, &progress).await;
        if !quiet {
            eprintln!();
        }
        let seconds = started.elapsed().as_secs_f64();
        exporter.finish(&mut record, outcome);
        if let Some(error) = &record.error {
            anyhow::bail!("export failed: {error}");
        }
        std::fs::write(
            args.out.join("_export.json"),
            serde_json::to_vec_pretty(&record)?,
        )?;
        println!(
            "{}",
            serde_json::json!({
                "tenant": tenant.as_str(),
                "rows": record.progress.rows,
                "files": record.files.len(),
                "pii": record.pii,
                "seconds": seconds,
                "rows_per_second": if seconds > 0.0 { record.progress.rows as f64 / seconds } else { 0.0 },
            })
        );
        Ok(ExitCode::SUCCESS)
    })
}
