//! One module per command group. Each exposes a clap `Subcommand` enum and a `run` function
//! returning the process exit code (`anyhow::Error` for failures that are not a verdict).

pub mod config;
pub mod keys;
