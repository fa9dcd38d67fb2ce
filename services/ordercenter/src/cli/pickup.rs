//! `ordercenter pickup` (the combined return pickup worker, see
//! [`oc_core::aftersales::pickup`]) and `ordercenter sandbox-logistics` (the sandbox carrier,
//! `oc_logistics_http::Sandbox`, as its own process).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::ServiceConfig;

#[derive(Debug, Args)]
pub struct PickupArgs {
    /// Service config file (YAML); `OC_*` environment variables override it.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// One pass, its report printed as JSON, then exit.
    #[arg(long)]
    once: bool,
}

pub fn run(args: PickupArgs) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    let config = ServiceConfig::load(args.config.as_deref())?;
    crate::runtime()?.block_on(crate::workers::pickup(config, args.once))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct SandboxLogisticsArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub listen: SocketAddr,
    /// The bearer token callers must send (the server's OC_LOGISTICS_TOKEN); none: any.
    #[arg(long)]
    pub token: Option<String>,
}

pub fn sandbox(args: SandboxLogisticsArgs) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    crate::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let (_sandbox, address, task) =
            oc_logistics_http::Sandbox::serve(args.token, listener).await?;
        println!(
            "sandbox logistics provider on http://{address}; PUT /sandbox/faults to make it misbehave, GET /sandbox/pickups for its waybills"
        );
        tokio::select! {
            _ = task => {}
            () = crate::workers::shutdown_signal() => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
