//! Opening the cache from the service config's Redis URL: the one way the binary gets its
//! [`TieredCache`], so no other crate matches these schemes.

use oc_model::{DomainError, DomainResult};

use crate::redis_cache::{RedisCache, RedisCacheConfig};
use crate::tiered::{L1Config, TieredCache};

/// Which cache to build:
///
/// - no URL ([`CacheConfig::InProcess`]): moka alone, with the single-node lifetimes (every
///   write goes through this process, so its copy is never stale);
/// - `redis://[user:password@]host:port[/db]`: moka for 3 s in front of Redis, shared by
///   every process of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheConfig {
    InProcess,
    Redis(RedisCacheConfig),
}

impl CacheConfig {
    /// Parse a Redis URL (no I/O).
    pub fn parse(url: &str) -> DomainResult<CacheConfig> {
        if !url.starts_with("redis://") {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(DomainError::invalid(
                "/cache/url",
                format!("unsupported cache scheme {scheme:?}: use redis://host:port"),
            ));
        }
        redis::Client::open(url)
            .map_err(|e| DomainError::invalid("/cache/url", format!("bad redis url: {e}")))?;
        Ok(CacheConfig::Redis(RedisCacheConfig::new(url)))
    }

    /// The cache; a Redis one connects on first use (see [`RedisCache::connect`]). Put the
    /// Redis tier behind a breaker with [`TieredCache::with_l2_breaker`].
    pub async fn open(self) -> DomainResult<TieredCache> {
        Ok(match self {
            CacheConfig::InProcess => TieredCache::moka_only(L1Config::single_node()),
            CacheConfig::Redis(config) => {
                TieredCache::with_redis(L1Config::default(), RedisCache::connect(config).await?)
            }
        })
    }
}

/// [`CacheConfig::parse`] (no URL: in-process only) then [`CacheConfig::open`].
pub async fn open(url: Option<&str>) -> DomainResult<TieredCache> {
    match url {
        Some(url) => CacheConfig::parse(url)?.open().await,
        None => CacheConfig::InProcess.open().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_tiers() {
        assert_eq!(
            CacheConfig::parse("redis://127.0.0.1:6379/2").unwrap(),
            CacheConfig::Redis(RedisCacheConfig::new("redis://127.0.0.1:6379/2"))
        );
        for bad in ["memcached://h:11211", "127.0.0.1:6379", "redis://:x:y@h:z"] {
            let error = CacheConfig::parse(bad).unwrap_err();
            assert_eq!(error.code, oc_model::ErrorCode::InvalidInput, "{bad}");
        }
    }

    #[tokio::test]
    async fn no_url_is_the_in_process_cache_alone() {
        let cache = open(None).await.unwrap();
        assert!(cache.l2().is_none());
        let cache = open(Some("redis://127.0.0.1:1")).await.unwrap();
        assert!(cache.l2().is_some(), "a Redis tier, connected on first use");
    }
}
