//! The Redis [`StockGate`]: one counter of available units per hot SKU, taken by a Lua script
//! for every SKU of a buyer at once, in front of the SQL stock (the truth).
//!
//! Keys are `{prefix}oc:stock:{<tenant>}:<sku>`: the tenant in a hash tag, so one buyer's SKUs
//! are in one Redis Cluster slot and the script may touch them all. Every counter expires
//! ([`RedisStockGateConfig::ttl`]) and is rebuilt from SQL's `available`, so units released by
//! a process that did not tell the gate (the scheduler's timeouts and sweeper) are admitted
//! again within the TTL. This Redis keeps nothing on disk: after a restart every counter is
//! missing, the gate answers `Missing`, and the caller seeds it from SQL.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use oc_model::stock::{GateOutcome, Sku, StockGate};
use oc_model::{DomainError, DomainResult, TenantId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

/// `admit`: KEYS are the counters, ARGV their quantities. Missing counters first (`{1, i…}`,
/// 1-based, nothing taken), then the first counter short of units (`{2, i, have}`, nothing
/// taken), else every counter is decremented (`{0}`). One script: no other buyer sees the
/// counters between the check and the decrements. Quantities stay far below 2^53, exact in
/// Lua's numbers.
const ADMIT_LUA: &str = r#"
local missing = {1}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then missing[#missing + 1] = i end
end
if #missing > 1 then return missing end
for i, key in ipairs(KEYS) do
  local have = tonumber(redis.call('GET', key))
  if have < tonumber(ARGV[i]) then return {2, i, have} end
end
for i, key in ipairs(KEYS) do
  redis.call('DECRBY', key, ARGV[i])
end
return {0}
"#;

/// `give_back`: INCRBY only when the counter exists (a missing one is rebuilt from SQL,
/// which already counts the units). Returns the new count or -1.
const GIVE_BACK_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return -1
"#;

static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT_LUA));
static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| Script::new(GIVE_BACK_LUA));

/// Settings of a [`RedisStockGate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStockGateConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Put in front of every key; empty by default.
    pub key_prefix: String,
    /// Lifetime of a counter after it is seeded from SQL. Default 10 s: the longest a unit
    /// released behind the gate's back is refused by it.
    pub ttl: Duration,
    /// Budget of one call, including a reconnection. Default 100 ms: a slow Redis makes the
    /// caller go to SQL alone.
    pub timeout: Duration,
}

impl RedisStockGateConfig {
    pub fn new(url: impl Into<String>) -> Self {
        RedisStockGateConfig {
            url: url.into(),
            key_prefix: String::new(),
            ttl: Duration::from_secs(10),
            timeout: Duration::from_millis(100),
        }
    }

    pub fn with_key_prefix(mut self, key_prefix: impl Into<String>) -> Self {
        self.key_prefix = key_prefix.into();
        self
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The Redis stock gate. Cheap to clone (one auto-reconnecting connection).
#[derive(Clone)]
pub struct RedisStockGate {
    connection: ConnectionManager,
    key_prefix: String,
    ttl_ms: u64,
    timeout: Duration,
}

impl fmt::Debug for RedisStockGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStockGate")
            .field("key_prefix", &self.key_prefix)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl RedisStockGate {
    /// A gate on the Redis of `config.url`; connects on first use (fails only on a
    /// malformed URL). Must be called inside a Tokio runtime.
    pub fn connect(config: RedisStockGateConfig) -> DomainResult<Self> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| DomainError::invalid("/redis/url", format!("bad redis url: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| DomainError::unavailable(format!("redis connection manager: {e}")))?;
        Ok(RedisStockGate {
            connection,
            key_prefix: config.key_prefix,
            ttl_ms: u64::try_from(config.ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            timeout: config.timeout,
        })
    }

    /// The counter of `sku`: `{prefix}oc:stock:{<tenant>}:<sku>`. Tenant ids are
    /// `[a-z0-9_-]` (no braces), so no tenant can reach another tenant's counters.
    pub fn key(&self, tenant: &TenantId, sku: &Sku) -> String {
        format!("{}oc:stock:{{{tenant}}}:{sku}", self.key_prefix)
    }

    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> DomainResult<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(DomainError::unavailable(format!(
                "stock gate: redis {what}: {error}"
            ))),
            Err(_elapsed) => Err(DomainError::unavailable(format!(
                "stock gate: redis {what} gave no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

#[async_trait]
impl StockGate for RedisStockGate {
    async fn admit(&self, tenant: &TenantId, wants: &[(Sku, u64)]) -> DomainResult<GateOutcome> {
        if wants.is_empty() {
            return Ok(GateOutcome::Admitted);
        }
        let mut invocation = ADMIT.prepare_invoke();
        for (sku, quantity) in wants {
            invocation.key(self.key(tenant, sku)).arg(*quantity);
        }
        let mut connection = self.connection.clone();
        let answer: Vec<i64> = self
            .bounded("admit", async move {
                invocation.invoke_async(&mut connection).await
            })
            .await?;
        let sku_at = |index: i64| -> DomainResult<Sku> {
            usize::try_from(index - 1)
                .ok()
                .and_then(|i| wants.get(i))
                .map(|(sku, _)| sku.clone())
                .ok_or_else(|| {
                    DomainError::internal(format!("stock gate: bad admit answer {answer:?}"))
                })
        };
        match answer.first() {
            Some(0) => Ok(GateOutcome::Admitted),
            Some(1) => Ok(GateOutcome::Missing(
                answer[1..]
                    .iter()
                    .map(|&index| sku_at(index))
                    .collect::<DomainResult<_>>()?,
            )),
            Some(2) if answer.len() == 3 => Ok(GateOutcome::Short {
                sku: sku_at(answer[1])?,
                // a counter below zero cannot happen (decrements are checked); read as 0
                available: u64::try_from(answer[2]).unwrap_or(0),
            }),
            _ => Err(DomainError::internal(format!(
                "stock gate: bad admit answer {answer:?}"
            ))),
        }
    }

    async fn seed(&self, tenant: &TenantId, sku: &Sku, available: u64) -> DomainResult<()> {
        let key = self.key(tenant, sku);
        let ttl_ms = self.ttl_ms;
        let mut connection = self.connection.clone();
        self.bounded("seed", async move {
            redis::cmd("SET")
                .arg(key)
                .arg(available)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<Option<String>>(&mut connection)
                .await
        })
        .await
        .map(|_set| ())
    }

    async fn give_back(&self, tenant: &TenantId, sku: &Sku, quantity: u64) -> DomainResult<()> {
        let mut invocation = GIVE_BACK.prepare_invoke();
        invocation.key(self.key(tenant, sku)).arg(quantity);
        let mut connection = self.connection.clone();
        self.bounded("give back", async move {
            invocation.invoke_async::<i64>(&mut connection).await
        })
        .await
        .map(|_count| ())
    }

    async fn forget(&self, tenant: &TenantId, sku: &Sku) -> DomainResult<()> {
        let key = self.key(tenant, sku);
        let mut connection = self.connection.clone();
        self.bounded("forget", async move {
            redis::cmd("DEL")
                .arg(key)
                .query_async::<i64>(&mut connection)
                .await
        })
        .await
        .map(|_deleted| ())
    }
}
