#![doc = include_str!("../README.md")]

mod open;
mod redis_cache;
mod stats;
mod stock_gate;
mod tiered;

pub use open::{CacheConfig, open};
pub use redis_cache::{RedisCache, RedisCacheConfig};
pub use stats::CacheStats;
pub use stock_gate::{RedisStockGate, RedisStockGateConfig};
pub use tiered::{L1Config, TieredCache};
