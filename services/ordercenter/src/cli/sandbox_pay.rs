//! `ordercenter sandbox-pay`: the sandbox payment provider (`oc_pay_http::Sandbox`) as its
//! own process, for demos and manual tests: it signs for the accounts of the payment secrets
//! file the server reads, so the two trust each other as a real provider and merchant would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use oc_model::ProviderName;
use oc_pay_http::{FileSecrets, Sandbox};

#[derive(Debug, Args)]
pub struct SandboxPayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The payment secrets file (the server's OC_PAYMENT_SECRETS_FILE).
    #[arg(long)]
    pub secrets: PathBuf,
    /// The provider name the accounts are listed under in the secrets file.
    #[arg(long, default_value = "sandbox")]
    pub provider: String,
}

pub fn run(args: SandboxPayArgs) -> anyhow::Result<ExitCode> {
    crate::init_logging();
    let provider =
        ProviderName::parse(args.provider.as_str()).map_err(|e| anyhow::anyhow!(e.message))?;
    let secrets = FileSecrets::load(&args.secrets).map_err(|e| anyhow::anyhow!(e.message))?;
    let accounts = secrets.accounts_of(&provider);
    if accounts.is_empty() {
        anyhow::bail!(
            "{} lists no account with provider {provider}",
            args.secrets.display()
        );
    }
    crate::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let count = accounts.len();
        let (_sandbox, address, task) = Sandbox::serve(accounts, listener).await?;
        println!("sandbox payment provider on http://{address} for {count} account(s); PUT /sandbox/faults to make it misbehave");
        tokio::select! {
            _ = task => {}
            () = crate::workers::shutdown_signal() => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
