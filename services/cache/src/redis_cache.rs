//! The L2: Redis, one hash per order, written only through version-checking Lua scripts.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use oc_model::ports::Cache;
use oc_model::{DomainError, DomainResult, Order, OrderId, TenantId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

/// `put_if_newer`: writes `{v, o}` only if the stored version (live entry or tombstone) is
/// absent or lower, then sets the TTL. Versions are compared as decimal strings (length, then
/// bytes) so the full `u64` range is exact, unlike Lua's doubles. Returns 1 if it wrote.
const PUT_IF_NEWER_LUA: &str = r#"
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local current = redis.call('HGET', KEYS[1], 'v')
if current and not newer(ARGV[1], current) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'o', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// `invalidate`: replaces the entry with a tombstone `{v, t=1}` whose version is the higher
/// of the stored version and ARGV[1] (empty: the stored version only), so a late put of an
/// older or equal version cannot resurrect the order. Nothing stored and no version given:
/// there is nothing to guard, nothing is written. Returns 1 if it wrote a tombstone.
const INVALIDATE_LUA: &str = r#"
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local current = redis.call('HGET', KEYS[1], 'v')
local floor = ARGV[1]
if current and (floor == '' or newer(current, floor)) then
  floor = current
end
if floor == '' then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', floor, 't', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;

static PUT_IF_NEWER: LazyLock<Script> = LazyLock::new(|| Script::new(PUT_IF_NEWER_LUA));
static INVALIDATE: LazyLock<Script> = LazyLock::new(|| Script::new(INVALIDATE_LUA));

/// Settings of a [`RedisCache`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCacheConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Put in front of every key (`{key_prefix}oc:{tenant}:order:{id}`); empty by default.
    pub key_prefix: String,
    /// Lifetime of a cached order. Default 1 h.
    pub ttl: Duration,
    /// Lifetime of a tombstone. Default 1 h: longer than any redelivery delay of the bus.
    pub tombstone_ttl: Duration,
    /// Budget for opening a TCP connection to Redis. Default 50 ms.
    pub connect_timeout: Duration,
    /// Whole budget of one read, including waiting for a (re)connection. Default 50 ms: a
    /// slow Redis degrades to the shard instead of stalling the request.
    pub read_timeout: Duration,
    /// Whole budget of one write or invalidation (callers are consumers that retry).
    /// Default 250 ms.
    pub write_timeout: Duration,
    /// Connection attempts per reconnect round (with jittered exponential backoff from
    /// 10 ms, at most 1 s apart); a failed round is retried on the next call. Default 3.
    pub reconnect_retries: usize,
}

impl RedisCacheConfig {
    /// Defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisCacheConfig {
            url: url.into(),
            key_prefix: String::new(),
            ttl: Duration::from_secs(3600),
            tombstone_ttl: Duration::from_secs(3600),
            connect_timeout: Duration::from_millis(50),
            read_timeout: Duration::from_millis(50),
            write_timeout: Duration::from_millis(250),
            reconnect_retries: 3,
        }
    }

    /// With `key_prefix` in front of every key.
    pub fn with_key_prefix(mut self, key_prefix: impl Into<String>) -> Self {
        self.key_prefix = key_prefix.into();
        self
    }
}

#[derive(Debug)]
struct Settings {
    key_prefix: String,
    ttl_ms: u64,
    tombstone_ttl_ms: u64,
    read_timeout: Duration,
    write_timeout: Duration,
}

/// The Redis (L2) cache. Cheap to clone: clones share one auto-reconnecting connection.
///
/// Every call is bounded by the configured timeouts; failures and timeouts are
/// [`Unavailable`](oc_model::ErrorCode::Unavailable).
#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    settings: Arc<Settings>,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("key_prefix", &self.settings.key_prefix)
            .field("ttl_ms", &self.settings.ttl_ms)
            .finish_non_exhaustive()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl RedisCache {
    /// A cache on the Redis of `config.url`. Does not wait for Redis: the connection is made
    /// on first use and remade after any failure, so this only fails on a malformed URL.
    /// Must be called inside a Tokio runtime.
    pub async fn connect(config: RedisCacheConfig) -> DomainResult<Self> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| DomainError::invalid("/cache/url", format!("bad redis url: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_number_of_retries(config.reconnect_retries)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| DomainError::unavailable(format!("redis connection manager: {e}")))?;
        Ok(RedisCache {
            connection,
            settings: Arc::new(Settings {
                key_prefix: config.key_prefix,
                ttl_ms: millis(config.ttl),
                tombstone_ttl_ms: millis(config.tombstone_ttl),
                read_timeout: config.read_timeout,
                write_timeout: config.write_timeout,
            }),
        })
    }

    /// The Redis key of an order: `{prefix}oc:{tenant}:order:{id}`. Tenant ids are
    /// `[a-z0-9_-]`, so no tenant can forge another tenant's key.
    pub fn key(&self, tenant: &TenantId, id: OrderId) -> String {
        format!("{}oc:{tenant}:order:{id}", self.settings.key_prefix)
    }

    /// Writes a tombstone at `version` (or the stored version, if higher): afterwards `get`
    /// answers `None` and no put of a version `<= version` is accepted until the tombstone
    /// expires. For consumers that know the version of the delete / archive event.
    pub async fn invalidate_at(
        &self,
        tenant: &TenantId,
        id: OrderId,
        version: u64,
    ) -> DomainResult<()> {
        self.tombstone(tenant, id, Some(version)).await
    }

    /// Whether Redis answers a PING within the read budget (for `/readyz`).
    pub async fn health(&self) -> DomainResult<()> {
        let mut connection = self.connection.clone();
        self.bounded("ping", self.settings.read_timeout, async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .map(|_pong| ())
    }

    async fn tombstone(
        &self,
        tenant: &TenantId,
        id: OrderId,
        version: Option<u64>,
    ) -> DomainResult<()> {
        let key = self.key(tenant, id);
        let floor = version.map(|v| v.to_string()).unwrap_or_default();
        let ttl_ms = self.settings.tombstone_ttl_ms;
        let mut connection = self.connection.clone();
        self.bounded("invalidate", self.settings.write_timeout, async move {
            INVALIDATE
                .key(key)
                .arg(floor)
                .arg(ttl_ms)
                .invoke_async::<i64>(&mut connection)
                .await
        })
        .await
        .map(|_wrote| ())
    }

    async fn bounded<T>(
        &self,
        what: &str,
        budget: Duration,
        call: impl Future<Output = RedisResult<T>>,
    ) -> DomainResult<T> {
        match tokio::time::timeout(budget, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(convert(what, &error)),
            Err(_elapsed) => Err(DomainError::unavailable(format!(
                "cache: redis {what} gave no answer within {} ms",
                budget.as_millis()
            ))),
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<Order>> {
        let key = self.key(tenant, id);
        let mut connection = self.connection.clone();
        let (_version, json): (Option<String>, Option<String>) = self
            .bounded("get", self.settings.read_timeout, async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("v")
                    .arg("o")
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        // No `o`: absent, expired or a tombstone.
        let Some(json) = json else {
            return Ok(None);
        };
        let order: Order = serde_json::from_str(&json).map_err(|e| {
            DomainError::internal(format!("cache: entry for order {id} is not an order: {e}"))
        })?;
        if order.main.tenant != *tenant || order.main.id != id {
            return Err(DomainError::internal(format!(
                "cache: entry for order {id} holds another order"
            )));
        }
        Ok(Some(order))
    }

    async fn put_if_newer(&self, order: &Order) -> DomainResult<bool> {
        let key = self.key(&order.main.tenant, order.main.id);
        let json = serde_json::to_string(order)
            .map_err(|e| DomainError::internal(format!("cache: serialising an order: {e}")))?;
        let version = order.main.version.to_string();
        let ttl_ms = self.settings.ttl_ms;
        let mut connection = self.connection.clone();
        let wrote: i64 = self
            .bounded("put", self.settings.write_timeout, async move {
                PUT_IF_NEWER
                    .key(key)
                    .arg(version)
                    .arg(json)
                    .arg(ttl_ms)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        Ok(wrote == 1)
    }

    /// Tombstones the entry at its stored version (see [`RedisCache::invalidate_at`]).
    async fn invalidate(&self, tenant: &TenantId, id: OrderId) -> DomainResult<()> {
        self.tombstone(tenant, id, None).await
    }
}

/// A Redis failure as a domain error, classified for the projector
/// ([`oc_model::ErrorCode::is_transient`]): `WRONGTYPE` means this one order's key holds
/// something that is not our hash (written by something else): permanent for that order,
/// `InvalidInput`. Everything else (connection, timeout, `LOADING`, `READONLY`, `OOM`,
/// `NOPERM`, a script error) would hit every order: `Unavailable`, transient.
pub(crate) fn convert(what: &str, error: &redis::RedisError) -> DomainError {
    if error.code() == Some("WRONGTYPE") {
        return DomainError::new(
            oc_model::ErrorCode::InvalidInput,
            format!("cache: redis {what}: the order's key holds another type: {error}"),
        );
    }
    DomainError::unavailable(format!("cache: redis {what} failed: {error}"))
}
