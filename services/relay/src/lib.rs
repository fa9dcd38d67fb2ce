#![doc = include_str!("../README.md")]

mod relay;
mod stats;

/// The relay's retry schedule after a failed round (`oc_model::retry`).
pub use oc_model::retry::BackoffConfig;
pub use relay::{Relay, RelayConfig};
pub use stats::{RelayStats, ShardStats};
