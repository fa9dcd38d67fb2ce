#![doc = include_str!("../README.md")]

mod redis_cache;
mod stats;
mod tiered;

pub use redis_cache::{RedisCache, RedisCacheConfig};
pub use stats::CacheStats;
pub use tiered::{L1Config, TieredCache};
