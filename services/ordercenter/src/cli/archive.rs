//! `ordercenter archive`: the archive worker (terminal orders past their tenant's
//! `retention.hot_days` → the cold store, after a verified copy). Until SIGTERM with a
//! `/metrics` listener, or one bounded pass with `--once`.

use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use oc_core::archive::ArchiveStep;
use oc_model::{OrderId, TenantId};

use crate::config::ServiceConfig;
use crate::workers;

#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// One pass, then print its report as JSON and exit (no listener).
    #[arg(long)]
    once: bool,
    /// Stop a pass after this many orders archived.
    #[arg(long)]
    max: Option<u64>,
    /// Orders a second at most (overrides OC_ARCHIVE_RATE; 0: unpaced).
    #[arg(long)]
    rate: Option<u32>,
    /// Fault-injection tests only: after STEP of the N-th order reaching it (`STEP:N`),
    /// print `paused after STEP of TENANT/ID` and hang until killed.
    #[arg(long, hide = true)]
    pause_after: Option<String>,
}

static PAUSE: OnceLock<(ArchiveStep, u64)> = OnceLock::new();
static REACHED: AtomicU64 = AtomicU64::new(0);

fn pause_hook(step: ArchiveStep, tenant: &TenantId, id: OrderId) {
    let Some((target, nth)) = PAUSE.get() else {
        return;
    };
    if step == *target && REACHED.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        use std::io::Write as _;
        println!("paused after {} of {tenant}/{id}", step.as_str());
        let _ = std::io::stdout().flush();
        loop {
            std::thread::park();
        }
    }
}

fn parse_pause(text: &str) -> anyhow::Result<(ArchiveStep, u64)> {
    let (step, nth) = text.split_once(':').unwrap_or((text, "1"));
    let step = ArchiveStep::parse(step)
        .ok_or_else(|| anyhow::anyhow!("--pause-after: unknown step {step:?}"))?;
    let nth = nth
        .parse()
        .map_err(|_| anyhow::anyhow!("--pause-after: {nth:?} is not a number"))?;
    Ok((step, nth))
}

pub fn run(args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    let mut config = ServiceConfig::load(args.config.as_deref())?;
    if let Some(rate) = args.rate {
        config.archive.rate_per_sec = rate;
    }
    config.archive.max_per_pass = args.max;
    if let Some(pause) = &args.pause_after {
        let _ = PAUSE.set(parse_pause(pause)?);
        config.archive.step_hook = Some(pause_hook);
    }
    crate::runtime()?.block_on(async move {
        if !args.once {
            workers::archive(config).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let wiring = crate::wiring::build(&config).await?;
        let archiver = workers::archiver_of(&wiring, &config)
            .ok_or_else(|| anyhow::anyhow!("the archive needs a cold store (OC_COLD_URL)"))?;
        let started = Instant::now();
        let report = archiver.pass().await;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "moved": report.moved,
                "skipped": report.skipped,
                "bytes": report.bytes,
                "errors": report.errors,
                "seconds": seconds,
                "orders_per_second": if seconds > 0.0 { report.moved as f64 / seconds } else { 0.0 },
            })
        );
        Ok(if report.errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    })
}
