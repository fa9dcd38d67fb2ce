#![doc = include_str!("../README.md")]

mod backoff;
mod relay;
mod stats;

pub use backoff::BackoffConfig;
pub use relay::{Relay, RelayConfig};
pub use stats::{RelayStats, ShardStats};
