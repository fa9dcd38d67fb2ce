//! `ordercenter`: the server, the workers and the operator tooling of Order Center, as a
//! library with a thin binary (`main.rs`) over it.
//!
//! - [`config`]: the service config, from file and `OC_*` environment through one table of
//!   settings ([`config::settings`]), secrets wrapped;
//! - [`keyring`]: the master key and the tenants' data keys of a process;
//! - [`ledger`]: the slot ledger, recorded on every write and checked at start and reload;
//! - [`wiring`]: the composition root, the one place that names concrete adapters;
//! - [`breakers`]: the circuit breakers around the adapters, on `/metrics` and `/readyz`;
//! - [`workers`]: `serve`, `relay` and `project`, the long-running processes;
//! - [`key_reports`]: the key versions each server seals under, for `keys retire`;
//! - [`cli`]: the command line, one module per command group.
//!
//! Error policy: `anyhow` here (CLI and start-up only); the request path uses
//! `oc_model::DomainError`.

pub mod breakers;
pub mod cli;
pub mod config;
pub mod key_reports;
pub mod keyring;
pub mod ledger;
pub mod wiring;
pub mod workers;

/// The example business-line key of tenant `retail`: a public test credential from
/// `tenant-config/examples/retail.yaml`, printed as a first-request hint in single-node mode.
pub const EXAMPLE_RETAIL_KEY: &str = "oc_test_retail_bl_0001_e4b1279c5a3f0d86b7e9";

/// Logging to stderr, filtered by `OC_LOG`, as JSON lines with `OC_LOG_FORMAT=json` (both
/// read through the settings table; a value it refuses is reported and the default used).
pub fn init_logging() {
    use config::settings::{LOG, LOG_FORMAT};
    let mut refused = Vec::new();
    let filter = match config::from_process(&LOG) {
        Ok(filter) => filter,
        Err(error) => {
            refused.push(format!("{error:#}"));
            config::default_of(&LOG)
        }
    };
    let json = match config::from_process(&LOG_FORMAT) {
        Ok(json) => json,
        Err(error) => {
            refused.push(format!("{error:#}"));
            config::default_of(&LOG_FORMAT)
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    for problem in refused {
        tracing::warn!(%problem, "logging setting refused; its default is used");
    }
}

/// The multi-threaded runtime every command runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
