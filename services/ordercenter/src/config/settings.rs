//! The one table of the service settings: for each, its environment variable, its key in the
//! service config file, its default, who reads it, one line of documentation, and the parser
//! every value goes through, wherever it comes from.
//!
//! [`ServiceConfig::load`](super::ServiceConfig::load) reads nothing that is not here (a test
//! checks that the crate names no other `OC_*` variable); the deployment checks
//! (`tests/deploy.rs`) know the variables from here and check the values of the deployment
//! files with these parsers.

use std::net::SocketAddr;
use std::path::PathBuf;

use oc_store_sql::BucketRange;

use super::secret::{Secret, SecretUrl, redact_urls};

/// What happens when a setting is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// This value, read by the setting's own parser.
    Value(&'static str),
    /// Worked out by the loader (from other settings, the mode or the process); the text
    /// says how.
    Derived(&'static str),
}

/// How a setting's value may be shown (in error messages and the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    Public,
    /// URLs that may carry a password: shown with the password as `***`.
    Urls,
    /// Never shown.
    Secret,
}

/// Everything about a setting but its parser.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// The environment variable; `None` for a file-only setting.
    pub env: Option<&'static str>,
    /// The key in the service config file (`breaker.open_ms` is `open_ms` in the `breaker:`
    /// section); `None` for an environment-only setting.
    pub file: Option<&'static str>,
    pub fallback: Fallback,
    /// Which processes read it: `all`, or some of `API`, `relay`, `projector`.
    pub used_by: &'static str,
    /// One line of documentation (Markdown).
    pub doc: &'static str,
    pub secrecy: Secrecy,
}

impl Meta {
    /// The name in messages: the variable, else the file key.
    pub fn name(&self) -> &'static str {
        self.env.or(self.file).unwrap_or("?")
    }

    /// `value` as it may be shown.
    pub fn shown(&self, value: &str) -> String {
        match self.secrecy {
            Secrecy::Public => format!("{value:?}"),
            Secrecy::Urls => format!("{:?}", redact_urls(value)),
            Secrecy::Secret => "(secret, not shown)".to_owned(),
        }
    }
}

/// A setting whose values are `T`.
#[derive(Debug)]
pub struct Setting<T: 'static> {
    pub meta: Meta,
    /// The one parser of the setting's values (environment, file and [`Fallback::Value`]):
    /// the error says why a value is refused, without repeating it.
    pub parse: fn(&str) -> Result<T, String>,
}

/// A setting of any type, as the table lists it.
pub trait AnySetting: Sync {
    fn meta(&self) -> &Meta;
    /// Whether the binary accepts `value` (the setting's parser, result dropped).
    fn check(&self, value: &str) -> Result<(), String>;
}

impl<T: 'static> AnySetting for Setting<T> {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn check(&self, value: &str) -> Result<(), String> {
        (self.parse)(value).map(drop)
    }
}

// ------------------------------------------------------------------ parsers

fn non_empty(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        Err("empty".into())
    } else {
        Ok(text.to_owned())
    }
}

fn path(text: &str) -> Result<PathBuf, String> {
    non_empty(text).map(PathBuf::from)
}

fn address(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| "not an address (host:port, e.g. 0.0.0.0:8080)".to_owned())
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim().parse().map_err(|_| "not a number".to_owned())
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(text: &str) -> Result<T, String> {
    let value: T = number(text)?;
    if value > T::default() {
        Ok(value)
    } else {
        Err("must be positive".into())
    }
}

fn refund_attempts(text: &str) -> Result<u32, String> {
    match number::<u32>(text)? {
        attempts @ 1..=20 => Ok(attempts),
        _ => Err("not 1..=20".into()),
    }
}

fn purge_batch(text: &str) -> Result<u32, String> {
    match number::<u32>(text)? {
        batch @ 1..=5000 => Ok(batch),
        _ => Err("not 1..=5000".into()),
    }
}

fn node_id(text: &str) -> Result<u8, String> {
    match text.trim().parse::<u8>() {
        Ok(id) if id <= oc_model::ids::MAX_NODE_ID => Ok(id),
        _ => Err(format!("not 0..={}", oc_model::ids::MAX_NODE_ID)),
    }
}

fn shards(text: &str) -> Result<Vec<SecretUrl>, String> {
    let urls: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect();
    oc_store_sql::StoreConfig::parse(&urls).map_err(|e| e.message)?;
    Ok(urls.into_iter().map(SecretUrl::new).collect())
}

fn bucket_map(text: &str) -> Result<Vec<BucketRange>, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("expected a list of {{first, last, shard}} ranges: {e}"))
}

fn master_key(text: &str) -> Result<Secret<String>, String> {
    oc_crypto::MasterKey::from_encoded(text.trim())
        .map_err(|_| "not a 32-byte key in hex or base64".to_owned())?;
    Ok(Secret::new(text.trim().to_owned()))
}

fn cache_url(text: &str) -> Result<SecretUrl, String> {
    oc_cache::CacheConfig::parse(text.trim()).map_err(|e| e.message)?;
    Ok(SecretUrl::new(text.trim()))
}

fn search_url(text: &str) -> Result<SecretUrl, String> {
    oc_search::SearchConfig::parse(text.trim()).map_err(|e| e.message)?;
    Ok(SecretUrl::new(text.trim()))
}

fn cold_url(text: &str) -> Result<SecretUrl, String> {
    oc_cold_store::ColdStoreConfig::parse(text.trim()).map_err(|e| e.message)?;
    Ok(SecretUrl::new(text.trim()))
}

fn bus_url(text: &str) -> Result<SecretUrl, String> {
    oc_bus::BusConfig::parse(text.trim()).map_err(|e| e.message)?;
    Ok(SecretUrl::new(text.trim()))
}

fn member(text: &str) -> Result<oc_bus::Assignment, String> {
    oc_bus::Assignment::parse(text).map_err(|e| e.message)
}

fn on_off(text: &str) -> Result<bool, String> {
    match text.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

fn log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text).map_err(|e| format!("not a log filter: {e}"))?;
    Ok(text.to_owned())
}

/// `true` for JSON lines.
fn log_format(text: &str) -> Result<bool, String> {
    match text.trim() {
        "json" => Ok(true),
        "text" => Ok(false),
        _ => Err("expected json or text".into()),
    }
}

fn failure_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = number(text)?;
    if rate.is_finite() && rate >= 0.0 {
        Ok(rate)
    } else {
        Err("expected a share, e.g. 0.5".into())
    }
}

// ------------------------------------------------------------------ the table

const fn meta(
    env: Option<&'static str>,
    file: Option<&'static str>,
    fallback: Fallback,
    used_by: &'static str,
    doc: &'static str,
) -> Meta {
    Meta {
        env,
        file,
        fallback,
        used_by,
        doc,
        secrecy: Secrecy::Public,
    }
}

const fn with(meta: Meta, secrecy: Secrecy) -> Meta {
    Meta {
        secrecy,
        env: meta.env,
        file: meta.file,
        fallback: meta.fallback,
        used_by: meta.used_by,
        doc: meta.doc,
    }
}

pub const CONFIG: Setting<PathBuf> = Setting {
    meta: meta(
        Some("OC_CONFIG"),
        None,
        Fallback::Derived("none (`--config` gives one too)"),
        "all",
        "YAML service config file (the file keys of this table); the variables override it",
    ),
    parse: path,
};

pub const LISTEN: Setting<SocketAddr> = Setting {
    meta: meta(
        Some("OC_LISTEN"),
        Some("listen"),
        Fallback::Derived("`127.0.0.1:8080` (API), `127.0.0.1:9100` (relay, projector)"),
        "all",
        "listen address: the API for `serve`, `/metrics` and `/healthz` for the workers; containers need `0.0.0.0:…`",
    ),
    parse: address,
};

pub const DATA_DIR: Setting<PathBuf> = Setting {
    meta: meta(
        Some("OC_DATA_DIR"),
        Some("data_dir"),
        Fallback::Value("data"),
        "all",
        "data directory: the single-node files (shards, search index, cold store, master key) and the default key ring location",
    ),
    parse: path,
};

pub const TENANT_CONFIG_DIR: Setting<PathBuf> = Setting {
    meta: meta(
        Some("OC_TENANT_CONFIG_DIR"),
        Some("tenant_config_dir"),
        Fallback::Value("tenant-config/examples"),
        "all",
        "directory of the tenant YAML files (reloaded on SIGHUP)",
    ),
    parse: path,
};

pub const SHARDS: Setting<Vec<SecretUrl>> = Setting {
    meta: with(
        meta(
            Some("OC_SHARDS"),
            Some("shards"),
            Fallback::Derived("two SQLite files under the data dir (single node)"),
            "all",
            "comma-separated `mysql://user:pass@host:3306/db` (a list in the file), one per shard, in shard order; set = cluster mode",
        ),
        Secrecy::Urls,
    ),
    parse: shards,
};

pub const BUCKET_MAP: Setting<Vec<BucketRange>> = Setting {
    meta: meta(
        None,
        Some("bucket_map"),
        Fallback::Derived("buckets spread evenly over the shards"),
        "all",
        "file only: bucket ranges → shard, a list of `{first, last, shard}`",
    ),
    parse: bucket_map,
};

pub const NODE_ID: Setting<u8> = Setting {
    meta: meta(
        Some("OC_NODE_ID"),
        Some("node_id"),
        Fallback::Value("0"),
        "API",
        "0–31, unique per API replica (part of every order id)",
    ),
    parse: node_id,
};

pub const MASTER_KEY: Setting<Secret<String>> = Setting {
    meta: with(
        meta(
            Some("OC_MASTER_KEY"),
            None,
            Fallback::Derived("none"),
            "all",
            "the master key itself (32 bytes, hex or base64); deployment files use `OC_MASTER_KEY_FILE` (a variable sits in plain config)",
        ),
        Secrecy::Secret,
    ),
    parse: master_key,
};

pub const MASTER_KEY_FILE: Setting<PathBuf> = Setting {
    meta: meta(
        Some("OC_MASTER_KEY_FILE"),
        Some("master_key_file"),
        Fallback::Derived(
            "single node: `<data dir>/master.key`, generated once; a cluster needs it or `OC_MASTER_KEY`",
        ),
        "all",
        "file with the master key (compose secret, Kubernetes Secret)",
    ),
    parse: path,
};

pub const KEYRING_FILE: Setting<PathBuf> = Setting {
    meta: meta(
        Some("OC_KEYRING_FILE"),
        Some("keyring_file"),
        Fallback::Derived("`<data dir>/keyring.json`"),
        "all",
        "the tenants' data keys, wrapped by the master key; the same file for every process; reloaded on SIGHUP",
    ),
    parse: path,
};

pub const MAX_CONNECTIONS_PER_SHARD: Setting<u32> = Setting {
    meta: meta(
        Some("OC_MAX_CONNECTIONS_PER_SHARD"),
        Some("max_connections_per_shard"),
        Fallback::Value("16"),
        "all",
        "connection pool size per shard",
    ),
    parse: positive,
};

pub const REDIS_URL: Setting<SecretUrl> = Setting {
    meta: with(
        meta(
            Some("OC_REDIS_URL"),
            Some("redis_url"),
            Fallback::Derived("none: the in-process cache alone"),
            "API, projector",
            "`redis://host:6379`: the shared cache behind the in-process one (cluster), and the stock gate of hot SKUs (`accelerator: redis`)",
        ),
        Secrecy::Urls,
    ),
    parse: cache_url,
};

pub const STOCK_GATE_TIMEOUT_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_STOCK_GATE_TIMEOUT_MS"),
        Some("stock_gate_timeout_ms"),
        Fallback::Value("100"),
        "API",
        "budget of one stock gate call to Redis, reconnection included; a slower answer places the order through SQL alone",
    ),
    parse: positive,
};

pub const SEARCH_URL: Setting<SecretUrl> = Setting {
    meta: with(
        meta(
            Some("OC_SEARCH_URL"),
            Some("search_url"),
            Fallback::Derived("single node: `tantivy://<data dir>/search`; cluster: none"),
            "API, projector",
            "`tantivy://<dir>` (single node; `?commit_ms=N`: commit, so searchable, every N ms, default 500) or `http://host:9200` (Elasticsearch/OpenSearch; query parameters `prefix`, `replicas`, `shards`, `analyzer`, `refresh_ms`: `EsConfig::from_url`; each tenant's index and mapping are created from its live config before its first write)",
        ),
        Secrecy::Urls,
    ),
    parse: search_url,
};

pub const COLD_URL: Setting<SecretUrl> = Setting {
    meta: with(
        meta(
            Some("OC_COLD_URL"),
            Some("cold_url"),
            Fallback::Derived("single node: `redb://<data dir>/cold.redb`; cluster: none"),
            "API, projector",
            "`redb://<file>` (single node) or `hbase://thrift-host:9090[?table=…&salt_buckets=…&framed=…&compact=…]`",
        ),
        Secrecy::Urls,
    ),
    parse: cold_url,
};

pub const KAFKA_URL: Setting<SecretUrl> = Setting {
    meta: with(
        meta(
            Some("OC_KAFKA_URL"),
            Some("kafka_url"),
            Fallback::Derived("none (`relay` and `project` need it)"),
            "relay, projector",
            "`kafka://host:9092[,host…][?prefix=…&partitions=…&replication=…]`",
        ),
        Secrecy::Urls,
    ),
    parse: bus_url,
};

pub const PROJECTOR_MEMBER: Setting<oc_bus::Assignment> = Setting {
    meta: meta(
        Some("OC_PROJECTOR_MEMBER"),
        Some("projector_member"),
        Fallback::Value("0/1"),
        "projector",
        "`i/n`: this member reads the partitions p with p % n = i",
    ),
    parse: member,
};

pub const SCHEDULER_POLL_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_SCHEDULER_POLL_MS"),
        Some("scheduler_poll_ms"),
        Fallback::Value("1000"),
        "scheduler",
        "pause between two passes of the timeout worker and reservation sweeper over every shard",
    ),
    parse: positive,
};

pub const SCHEDULER_ORPHAN_GRACE_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_SCHEDULER_ORPHAN_GRACE_MS"),
        Some("scheduler_orphan_grace_ms"),
        Fallback::Value("60000"),
        "scheduler",
        "age before an expired reservation without an order is released (longer than any create)",
    ),
    parse: positive,
};

pub const ARCHIVE_POLL_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_ARCHIVE_POLL_MS"),
        Some("archive_poll_ms"),
        Fallback::Value("60000"),
        "API, archive",
        "pause between two passes of the archive (terminal orders past the tenant's `retention.hot_days` → cold store); single-node `serve` runs one",
    ),
    parse: positive,
};

pub const ARCHIVE_RATE: Setting<u32> = Setting {
    meta: meta(
        Some("OC_ARCHIVE_RATE"),
        Some("archive_rate"),
        Fallback::Value("50"),
        "API, archive",
        "orders a second one archiver moves at most (0: no archive inside single-node `serve`; `ordercenter archive` then runs unpaced)",
    ),
    parse: number,
};

pub const EXPORT_DIR: Setting<PathBuf> = Setting {
    meta: meta(
        Some("OC_EXPORT_DIR"),
        Some("export_dir"),
        Fallback::Derived(
            "single node: `<data dir>/exports`; cluster: none (`POST /v1/exports` answers 503)",
        ),
        "API",
        "where `POST /v1/exports` jobs write their files and records (`<dir>/<job id>/`); in a cluster, a volume every API instance mounts",
    ),
    parse: path,
};

pub const ARCHIVE_BATCH: Setting<u32> = Setting {
    meta: meta(
        Some("OC_ARCHIVE_BATCH"),
        Some("archive_batch"),
        Fallback::Value("200"),
        "API, archive",
        "candidates the archive reads per page (1..=5000)",
    ),
    parse: purge_batch,
};

/// `url` when it is an `http(s)://` one (an external party's base URL).
fn http_url(url: &str) -> Result<&str, String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(format!("{url:?} is not an http(s) URL"))
    }
}

/// An `http(s)://` base URL of a logistics provider.
fn logistics_url(text: &str) -> Result<SecretUrl, String> {
    http_url(text.trim()).map(SecretUrl::new)
}

fn logistics_token(text: &str) -> Result<Secret<String>, String> {
    Ok(Secret::new(text.trim().to_owned()))
}

pub const LOGISTICS_URL: Setting<SecretUrl> = Setting {
    meta: with(
        meta(
            Some("OC_LOGISTICS_URL"),
            Some("logistics_url"),
            Fallback::Derived("none: no pickup worker (after-sales keep their pickup times)"),
            "API, pickup",
            "base URL of the logistics provider speaking the generic pickup protocol, e.g. `http://127.0.0.1:8091` (`ordercenter sandbox-logistics`); set, single-node `serve` runs the pickup worker",
        ),
        Secrecy::Urls,
    ),
    parse: logistics_url,
};

pub const LOGISTICS_TOKEN: Setting<Secret<String>> = Setting {
    meta: with(
        meta(
            Some("OC_LOGISTICS_TOKEN"),
            Some("logistics_token"),
            Fallback::Derived("none: no Authorization header"),
            "API, pickup",
            "bearer token of the logistics provider",
        ),
        Secrecy::Secret,
    ),
    parse: logistics_token,
};

pub const PICKUP_POLL_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_PICKUP_POLL_MS"),
        Some("pickup_poll_ms"),
        Fallback::Value("5000"),
        "API, pickup",
        "pause between two passes of the combined return pickup worker over every shard",
    ),
    parse: positive,
};

pub const PICKUP_LEAD_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_PICKUP_LEAD_MS"),
        Some("pickup_lead_ms"),
        Fallback::Value("600000"),
        "API, pickup",
        "how long before the earliest pickup time of an order's approved returns their one pickup is booked (seed: 10 minutes)",
    ),
    parse: number,
};

pub const PICKUP_MAX_ATTEMPTS: Setting<u32> = Setting {
    meta: meta(
        Some("OC_PICKUP_MAX_ATTEMPTS"),
        Some("pickup_max_attempts"),
        Fallback::Value("5"),
        "API, pickup",
        "carrier calls of one pickup before it is skipped and raised (`after_sale.pickup_skipped`, `oc_pickup_alerts_total`)",
    ),
    parse: positive,
};

pub const PICKUP_BACKOFF_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_PICKUP_BACKOFF_MS"),
        Some("pickup_backoff_ms"),
        Fallback::Value("30000"),
        "API, pickup",
        "wait after a pickup's first carrier call before the next, doubled after each (at most 20 times this); also the longest one call may take",
    ),
    parse: positive,
};

pub const OUTBOX_RETENTION_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_OUTBOX_RETENTION_MS"),
        Some("outbox_retention_ms"),
        Fallback::Value("604800000"),
        "scheduler",
        "how long an outbox row is kept after it was published before the purge deletes it (default 7 days; single-node: and only once the projector's position is past it)",
    ),
    parse: positive,
};

/// `name=url[,name=url…]`: payment providers speaking the generic protocol.
fn payment_providers(text: &str) -> Result<Vec<(oc_model::ProviderName, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, url) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not name=url"))?;
            let name = oc_model::ProviderName::parse(name.trim()).map_err(|e| e.message)?;
            let url = http_url(url.trim()).map_err(|why| format!("provider {name}: {why}"))?;
            Ok((name, url.to_owned()))
        })
        .collect()
}

pub const PAYMENT_PROVIDERS: Setting<Vec<(oc_model::ProviderName, String)>> = Setting {
    meta: meta(
        Some("OC_PAYMENT_PROVIDERS"),
        Some("payment_providers"),
        Fallback::Derived("none: payments can be listed but not created"),
        "API, scheduler",
        "`name=url[,…]`: payment providers speaking the generic signed-HTTP protocol, e.g. `sandbox=http://127.0.0.1:8090` (`ordercenter sandbox-pay`)",
    ),
    parse: payment_providers,
};

pub const PAYMENT_SECRETS_FILE: Setting<PathBuf> = Setting {
    meta: meta(
        Some("OC_PAYMENT_SECRETS_FILE"),
        Some("payment_secrets_file"),
        Fallback::Derived("none: no tenant has a provider account"),
        "API, scheduler",
        "JSON file of the tenants' provider accounts and shared secrets (never the tenant YAML); `sandbox-pay` reads it too",
    ),
    parse: path,
};

pub const PAYMENT_PUBLIC_URL: Setting<String> = Setting {
    meta: meta(
        Some("OC_PAYMENT_PUBLIC_URL"),
        Some("payment_public_url"),
        Fallback::Derived("`http://<listen address>`"),
        "API, scheduler",
        "the API's URL as providers reach it: callbacks go to `<url>/v1/payments/callbacks/<provider>`",
    ),
    parse: non_empty,
};

pub const PAYMENT_EXPIRY_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_PAYMENT_EXPIRY_MS"),
        Some("payment_expiry_ms"),
        Fallback::Value("1800000"),
        "API",
        "how long a payment can be paid; the active query asks about it until then (seed: 30 minutes)",
    ),
    parse: positive,
};

pub const IDEMPOTENCY_RETENTION_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_IDEMPOTENCY_RETENTION_MS"),
        Some("idempotency_retention_ms"),
        Fallback::Value("604800000"),
        "scheduler",
        "how long an Idempotency-Key answers retries of its create before the purge deletes it (default 7 days; a retry after it makes a new order)",
    ),
    parse: positive,
};

pub const PAYMENT_QUERY_DELAY_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_PAYMENT_QUERY_DELAY_MS"),
        Some("payment_query_delay_ms"),
        Fallback::Value("60000"),
        "API",
        "a payment still pending this long after its creation is queried at its provider (its callback may be lost)",
    ),
    parse: positive,
};

pub const PURGE_BATCH: Setting<u32> = Setting {
    meta: meta(
        Some("OC_PURGE_BATCH"),
        Some("purge_batch"),
        Fallback::Value("500"),
        "scheduler",
        "rows one purge statement deletes at most (1..=5000)",
    ),
    parse: purge_batch,
};

pub const PAYMENT_QUERY_INTERVAL_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_PAYMENT_QUERY_INTERVAL_MS"),
        Some("payment_query_interval_ms"),
        Fallback::Value("60000"),
        "scheduler",
        "pause between two queries of one pending payment (seed: every minute)",
    ),
    parse: positive,
};

pub const PAYMENT_POLL_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_PAYMENT_POLL_MS"),
        Some("payment_poll_ms"),
        Fallback::Value("5000"),
        "scheduler",
        "pause between two passes of the payment query worker over every shard",
    ),
    parse: positive,
};

pub const PAYMENT_CALLBACK_WINDOW_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_PAYMENT_CALLBACK_WINDOW_MS"),
        Some("payment_callback_window_ms"),
        Fallback::Value("300000"),
        "API",
        "a callback signed further than this from now (either way) is refused as a replay",
    ),
    parse: positive,
};

pub const PAYMENT_REFUND_ATTEMPTS: Setting<u32> = Setting {
    meta: meta(
        Some("OC_PAYMENT_REFUND_ATTEMPTS"),
        Some("payment_refund_attempts"),
        Fallback::Value("3"),
        "API, scheduler",
        "attempts of a refund at its provider (each failure reported by the provider retried) before it is released and raised for manual handling (`payment.refund_failed`)",
    ),
    parse: refund_attempts,
};

pub const PROJECTOR_ATTEMPTS_PER_ORDER: Setting<u32> = Setting {
    meta: meta(
        Some("OC_PROJECTOR_ATTEMPTS_PER_ORDER"),
        Some("projector_attempts_per_order"),
        Fallback::Value("5"),
        "projector",
        "attempts of one order on one read model before a transient failure is dead-lettered, when the read model took other orders meanwhile (a read model that is down stalls the projector instead; a permanent refusal is dead-lettered at once)",
    ),
    parse: positive,
};

pub const PROJECTOR_DEAD_LETTER_AFTER_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_PROJECTOR_DEAD_LETTER_AFTER_MS"),
        Some("projector_dead_letter_after_ms"),
        Fallback::Value("30000"),
        "projector",
        "how long a transient failure of one order on one read model must last, besides the attempt count, before it may be dead-lettered (a link cut's few seconds of mixed answers must not dead-letter orders)",
    ),
    parse: positive,
};

pub const REQUEST_TIMEOUT_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_REQUEST_TIMEOUT_MS"),
        Some("request_timeout_ms"),
        Fallback::Value("10000"),
        "API",
        "per-request timeout (503 after it)",
    ),
    parse: positive,
};

pub const MAX_IN_FLIGHT: Setting<usize> = Setting {
    meta: meta(
        Some("OC_MAX_IN_FLIGHT"),
        Some("max_in_flight"),
        Fallback::Value("1024"),
        "API",
        "requests in flight; beyond it requests are shed with 503",
    ),
    parse: positive,
};

pub const EDGE_LAYERS: Setting<bool> = Setting {
    meta: meta(
        Some("OC_EDGE_LAYERS"),
        None,
        Fallback::Value("on"),
        "API",
        "`off` leaves the edge's tower layers out (body limit, shedding, concurrency limit, timeout): only for `loadtest bench`, which prices them; never in production",
    ),
    parse: on_off,
};

pub const LOG: Setting<String> = Setting {
    meta: meta(
        Some("OC_LOG"),
        None,
        Fallback::Value("info,sqlx=warn"),
        "all",
        "log filter (`tracing` `EnvFilter` syntax)",
    ),
    parse: log_filter,
};

pub const LOG_FORMAT: Setting<bool> = Setting {
    meta: meta(
        Some("OC_LOG_FORMAT"),
        None,
        Fallback::Value("text"),
        "all",
        "`json` for JSON lines",
    ),
    parse: log_format,
};

pub const BREAKER_CONSECUTIVE_FAILURES: Setting<u32> = Setting {
    meta: meta(
        Some("OC_BREAKER_CONSECUTIVE_FAILURES"),
        Some("breaker.consecutive_failures"),
        Fallback::Value("5"),
        "all",
        "circuit breakers: open after this many failed calls in a row (0: rate only)",
    ),
    parse: number,
};

pub const BREAKER_FAILURE_RATE: Setting<f64> = Setting {
    meta: meta(
        Some("OC_BREAKER_FAILURE_RATE"),
        Some("breaker.failure_rate"),
        Fallback::Value("0.5"),
        "all",
        "circuit breakers: open when this share of the calls in the window failed…",
    ),
    parse: failure_rate,
};

pub const BREAKER_MINIMUM_CALLS: Setting<u32> = Setting {
    meta: meta(
        Some("OC_BREAKER_MINIMUM_CALLS"),
        Some("breaker.minimum_calls"),
        Fallback::Value("20"),
        "all",
        "circuit breakers: …and at least this many calls finished in the window",
    ),
    parse: number,
};

pub const BREAKER_WINDOW_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_BREAKER_WINDOW_MS"),
        Some("breaker.window_ms"),
        Fallback::Value("10000"),
        "all",
        "circuit breakers: how long outcomes count",
    ),
    parse: positive,
};

pub const BREAKER_OPEN_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_BREAKER_OPEN_MS"),
        Some("breaker.open_ms"),
        Fallback::Value("5000"),
        "all",
        "circuit breakers: how long an open breaker refuses calls before probing",
    ),
    parse: number,
};

pub const BREAKER_HALF_OPEN_PROBES: Setting<u32> = Setting {
    meta: meta(
        Some("OC_BREAKER_HALF_OPEN_PROBES"),
        Some("breaker.half_open_probes"),
        Fallback::Value("3"),
        "all",
        "circuit breakers: calls let through half-open; that many successes close it",
    ),
    parse: number,
};

pub const BREAKER_CALL_TIMEOUT_MS: Setting<u64> = Setting {
    meta: meta(
        Some("OC_BREAKER_CALL_TIMEOUT_MS"),
        Some("breaker.call_timeout_ms"),
        Fallback::Value("10000"),
        "all",
        "circuit breakers: a guarded call with no answer by then is abandoned and counts as a failure (0: none)",
    ),
    parse: number,
};

/// Every setting, in the order of the docs.
pub static SETTINGS: &[&dyn AnySetting] = &[
    &CONFIG,
    &LISTEN,
    &DATA_DIR,
    &TENANT_CONFIG_DIR,
    &SHARDS,
    &BUCKET_MAP,
    &NODE_ID,
    &MASTER_KEY_FILE,
    &MASTER_KEY,
    &KEYRING_FILE,
    &MAX_CONNECTIONS_PER_SHARD,
    &REDIS_URL,
    &STOCK_GATE_TIMEOUT_MS,
    &SEARCH_URL,
    &COLD_URL,
    &KAFKA_URL,
    &PROJECTOR_MEMBER,
    &SCHEDULER_POLL_MS,
    &SCHEDULER_ORPHAN_GRACE_MS,
    &ARCHIVE_POLL_MS,
    &ARCHIVE_RATE,
    &ARCHIVE_BATCH,
    &LOGISTICS_URL,
    &LOGISTICS_TOKEN,
    &PICKUP_POLL_MS,
    &PICKUP_LEAD_MS,
    &PICKUP_MAX_ATTEMPTS,
    &PICKUP_BACKOFF_MS,
    &EXPORT_DIR,
    &OUTBOX_RETENTION_MS,
    &IDEMPOTENCY_RETENTION_MS,
    &PURGE_BATCH,
    &PAYMENT_PROVIDERS,
    &PAYMENT_SECRETS_FILE,
    &PAYMENT_PUBLIC_URL,
    &PAYMENT_EXPIRY_MS,
    &PAYMENT_QUERY_DELAY_MS,
    &PAYMENT_QUERY_INTERVAL_MS,
    &PAYMENT_POLL_MS,
    &PAYMENT_CALLBACK_WINDOW_MS,
    &PAYMENT_REFUND_ATTEMPTS,
    &PROJECTOR_ATTEMPTS_PER_ORDER,
    &PROJECTOR_DEAD_LETTER_AFTER_MS,
    &REQUEST_TIMEOUT_MS,
    &MAX_IN_FLIGHT,
    &EDGE_LAYERS,
    &LOG,
    &LOG_FORMAT,
    &BREAKER_CONSECUTIVE_FAILURES,
    &BREAKER_FAILURE_RATE,
    &BREAKER_MINIMUM_CALLS,
    &BREAKER_WINDOW_MS,
    &BREAKER_OPEN_MS,
    &BREAKER_HALF_OPEN_PROBES,
    &BREAKER_CALL_TIMEOUT_MS,
];

/// The setting of environment variable `name`.
pub fn by_env(name: &str) -> Option<&'static dyn AnySetting> {
    SETTINGS
        .iter()
        .copied()
        .find(|setting| setting.meta().env == Some(name))
}

/// Every environment variable the binary reads.
pub fn env_vars() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().filter_map(|setting| setting.meta().env)
}
