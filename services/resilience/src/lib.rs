#![doc = include_str!("../README.md")]

mod breaker;
mod guarded;
mod registry;

pub use breaker::{
    BreakerConfig, BreakerSnapshot, BreakerState, CircuitBreaker, Permit, Rejected, is_failure,
};
pub use guarded::Guarded;
pub use registry::Breakers;
