//! `ordercenter config …`: tenant config tooling for tenant admins and CI.
//!
//! Exit codes (stable, for pipelines):
//! - `0`: valid (validate) / safe to apply (plan)
//! - `1`: a config is invalid or cannot be read; each problem on stderr as `file:path: message`
//! - `2`: (plan) both configs are valid, but the change is refused; the plan names each refusal

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use oc_tenant_config::{ConfigErrors, ConfigSet, json_schema, plan};

/// Exit code of `config plan` when the change is refused.
pub const EXIT_REFUSED: u8 = 2;
/// Exit code when a config is invalid.
pub const EXIT_INVALID: u8 = 1;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check every tenant file (*.yaml) in a directory.
    Validate {
        /// Directory with one YAML file per tenant.
        dir: PathBuf,
    },
    /// List what changes from the live config to a new one, and refuse unsafe changes.
    Plan {
        /// The directory of the config that is live now.
        old_dir: PathBuf,
        /// The directory of the new config.
        new_dir: PathBuf,
    },
    /// Print the JSON Schema of the tenant config file format.
    Schema,
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Validate { dir } => match ConfigSet::load_dir(&dir) {
            Ok(set) => {
                let (tenants, order_types, fields) = set.counts();
                println!("ok: {tenants} tenants, {order_types} order types, {fields} fields");
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => Ok(report_invalid(&errors)),
        },
        ConfigCommand::Plan { old_dir, new_dir } => {
            let old = ConfigSet::load_dir(&old_dir);
            let new = ConfigSet::load_dir(&new_dir);
            let (old, new) = match (old, new) {
                (Ok(old), Ok(new)) => (old, new),
                (old, new) => {
                    for errors in [old.err(), new.err()].into_iter().flatten() {
                        report_invalid(&errors);
                    }
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            let plan = plan(&old, &new);
            println!("{plan}");
            if plan.is_safe() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "refused: {} unsafe change(s); the live config must stay as it is",
                    plan.refusals.len()
                );
                for refusal in &plan.refusals {
                    eprintln!("refused: {}: {}", refusal.scope, refusal.message);
                }
                Ok(ExitCode::from(EXIT_REFUSED))
            }
        }
        ConfigCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&json_schema())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report_invalid(errors: &ConfigErrors) -> ExitCode {
    for error in errors {
        eprintln!("{error}");
    }
    eprintln!("invalid: {} error(s)", errors.len());
    ExitCode::from(EXIT_INVALID)
}
