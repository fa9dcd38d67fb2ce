//! The service config: an optional YAML file (`--config` or `OC_CONFIG`), then environment
//! overrides (`OC_*`), then defaults for single-node mode (SQLite shards under `./data`, the
//! example tenants, 127.0.0.1:8080). What can be set, how each value is read and what it
//! defaults to is one table, [`settings`]; secrets are wrapped ([`secret`]) so that printing a
//! config never shows them.

pub mod secret;
pub mod settings;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};

use oc_resilience::BreakerConfig;
use oc_store_sql::BucketRange;

pub use secret::{Secret, SecretUrl};
use settings::{Fallback, Setting};

/// The resolved service config.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The HTTP listener: the API for `serve`; `/metrics` and `/healthz` for the workers.
    pub listen: SocketAddr,
    /// Whether `listen` was configured (the workers default to 127.0.0.1:9100 otherwise, so
    /// they do not collide with a server on the same host).
    pub listen_set: bool,
    pub data_dir: PathBuf,
    pub tenant_config_dir: PathBuf,
    /// One URL per shard, in shard order (SQLite files under `data_dir` in single-node mode).
    pub shards: Vec<SecretUrl>,
    pub bucket_map: Option<Vec<BucketRange>>,
    pub node_id: u8,
    /// The master key itself (`OC_MASTER_KEY`), if given.
    pub master_key: Option<Secret<String>>,
    pub master_key_file: Option<PathBuf>,
    pub keyring_file: PathBuf,
    pub max_connections_per_shard: u32,
    /// The event bus in cluster mode: `kafka://host:9092[,host2…][?prefix=…&partitions=…]`.
    pub kafka_url: Option<SecretUrl>,
    /// The search index: `tantivy://<dir>` or Elasticsearch `http://host:9200`;
    /// single-node default `tantivy://<data>/search`.
    pub search_url: Option<SecretUrl>,
    /// The cold store: `redb://<file>` or `hbase://host:port`; single-node default
    /// `redb://<data>/cold.redb`.
    pub cold_url: Option<SecretUrl>,
    /// Where export jobs write (`OC_EXPORT_DIR`); `None`: no `POST /v1/exports`.
    pub export_dir: Option<PathBuf>,
    /// Redis behind the in-process cache (cluster mode); none = in-process cache only.
    pub redis_url: Option<SecretUrl>,
    /// The stock gate's budget per Redis call (`OC_STOCK_GATE_TIMEOUT_MS`).
    pub stock_gate_timeout: std::time::Duration,
    /// This projector's share of the topics' partitions, `i/n` (`OC_PROJECTOR_MEMBER`).
    pub projector_member: oc_bus::Assignment,
    /// The timeout worker's and reservation sweeper's pace (`OC_SCHEDULER_*`).
    pub scheduler: oc_core::scheduler::SchedulerSettings,
    /// The purge jobs' retentions and batch (`OC_OUTBOX_RETENTION_MS`,
    /// `OC_IDEMPOTENCY_RETENTION_MS`, `OC_PURGE_BATCH`), run by the scheduler.
    pub purge: oc_core::scheduler::PurgeSettings,
    /// The archive's pace (`OC_ARCHIVE_*`); `rate_per_sec` 0: none inside `serve`.
    pub archive: oc_core::archive::ArchiveSettings,
    /// The logistics provider of combined return pickups (`OC_LOGISTICS_URL`, `_TOKEN`).
    pub logistics_url: Option<SecretUrl>,
    pub logistics_token: Option<Secret<String>>,
    /// The pickup worker's pace and limits (`OC_PICKUP_*`).
    pub pickup: oc_core::aftersales::PickupSettings,
    /// Payment providers by name and base URL (`OC_PAYMENT_PROVIDERS`).
    pub payment_providers: Vec<(oc_model::ProviderName, String)>,
    /// The tenants' provider accounts and secrets (`OC_PAYMENT_SECRETS_FILE`).
    pub payment_secrets_file: Option<PathBuf>,
    /// Expiry, active query and callback window of payments (`OC_PAYMENT_*`).
    pub payments: oc_core::payments::PaymentSettings,
    /// Attempts of one order on one read model before a transient failure may be
    /// dead-lettered (`OC_PROJECTOR_ATTEMPTS_PER_ORDER`, `ProjectorConfig::attempts_per_order`).
    pub projector_attempts_per_order: u32,
    /// How long a transient failure must last before it may be dead-lettered
    /// (`OC_PROJECTOR_DEAD_LETTER_AFTER_MS`, `ProjectorConfig::dead_letter_after`).
    pub projector_dead_letter_after: std::time::Duration,
    /// The edge limits (request timeout, requests in flight before shedding).
    pub edge: oc_api::edge::EdgeConfig,
    /// True when no shard URLs were given: SQLite files under `data_dir`.
    pub single_node: bool,
    /// Circuit breaker thresholds of the cache, search, cold store and bus breakers.
    pub breaker: BreakerConfig,
}

/// A non-empty variable of the process environment (an empty one counts as unset).
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Warn about `OC_*` variables the binary does not read: a typo there silently changes nothing.
fn warn_unknown_env() {
    for (name, _) in std::env::vars() {
        if name.starts_with("OC_")
            && !name.starts_with("OC_TEST_")
            && settings::by_env(&name).is_none()
        {
            let known: Vec<&str> = settings::env_vars().collect();
            tracing::warn!(variable = %name, ?known, "unknown OC_ environment variable ignored");
        }
    }
}

/// Where the settings' values come from: the environment first, then the file.
struct Source<'a> {
    var: &'a dyn Fn(&str) -> Option<String>,
    file: Option<PathBuf>,
    /// The file's values by key (`breaker.open_ms`), in the environment's text form.
    file_values: BTreeMap<String, String>,
}

/// A file value in the text form its variable would have: a scalar as is, a list of scalars
/// comma-separated, anything else as JSON (the `bucket_map` ranges).
fn text_form(value: &serde_norway::Value) -> anyhow::Result<String> {
    use serde_norway::Value;
    let scalar = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    };
    if let Some(text) = scalar(value) {
        return Ok(text);
    }
    if let Value::Sequence(items) = value
        && let Some(texts) = items.iter().map(scalar).collect::<Option<Vec<_>>>()
    {
        return Ok(texts.join(","));
    }
    Ok(serde_json::to_string(value)?)
}

impl<'a> Source<'a> {
    fn new(
        file: Option<PathBuf>,
        var: &'a dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Source<'a>> {
        let mut file_values = BTreeMap::new();
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let document: serde_norway::Value = serde_norway::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            let known: Vec<&str> = settings::SETTINGS
                .iter()
                .filter_map(|setting| setting.meta().file)
                .collect();
            let mut pending: Vec<(String, serde_norway::Value)> = match document {
                serde_norway::Value::Mapping(map) => map
                    .into_iter()
                    .map(|(key, value)| Ok((text_form(&key)?, value)))
                    .collect::<anyhow::Result<_>>()?,
                serde_norway::Value::Null => Vec::new(),
                _ => bail!("{}: expected a mapping of settings", path.display()),
            };
            while let Some((key, value)) = pending.pop() {
                if known.contains(&key.as_str()) {
                    if !value.is_null() {
                        file_values.insert(key, text_form(&value)?);
                    }
                    continue;
                }
                // a section (`breaker:`) holds the keys `section.key`
                let is_section = known
                    .iter()
                    .any(|known| known.starts_with(&format!("{key}.")));
                match value {
                    serde_norway::Value::Mapping(section) if is_section => {
                        for (inner, value) in section {
                            pending.push((format!("{key}.{}", text_form(&inner)?), value));
                        }
                    }
                    _ => bail!(
                        "{}: unknown key `{key}` (known: {})",
                        path.display(),
                        known.join(", ")
                    ),
                }
            }
        }
        Ok(Source {
            var,
            file,
            file_values,
        })
    }

    /// The setting's value, if the environment or the file gives one.
    fn get<T>(&self, setting: &Setting<T>) -> anyhow::Result<Option<T>> {
        let meta = &setting.meta;
        let (origin, text) = if let Some(text) = meta.env.and_then(|name| (self.var)(name)) {
            (meta.env.unwrap_or_default().to_owned(), text)
        } else if let Some(text) = meta.file.and_then(|key| self.file_values.get(key)) {
            let file = self.file.as_deref().unwrap_or(Path::new("?"));
            (
                format!("`{}` in {}", meta.file.unwrap_or_default(), file.display()),
                text.clone(),
            )
        } else {
            return Ok(None);
        };
        (setting.parse)(&text)
            .map(Some)
            .map_err(|why| anyhow!("{origin}={}: {why}", meta.shown(&text)))
    }

    /// A `_MS` setting's value (or its default) as a duration.
    fn millis(&self, setting: &Setting<u64>) -> anyhow::Result<std::time::Duration> {
        self.value(setting).map(std::time::Duration::from_millis)
    }

    /// The setting's value, or its [`Fallback::Value`].
    fn value<T>(&self, setting: &Setting<T>) -> anyhow::Result<T> {
        match self.get(setting)? {
            Some(value) => Ok(value),
            None => match setting.meta.fallback {
                Fallback::Value(text) => (setting.parse)(text).map_err(|why| {
                    anyhow!(
                        "the default of {} does not parse: {why}",
                        setting.meta.name()
                    )
                }),
                Fallback::Derived(_) => {
                    bail!("{} has no default value", setting.meta.name())
                }
            },
        }
    }
}

/// A duration of `ms` milliseconds (beyond `i64`, as long as `i64` holds).
fn millis(ms: u64) -> time::Duration {
    time::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// One setting from the process environment alone (no file), or its default: for what is
/// read before the config (logging).
pub fn from_process<T>(setting: &Setting<T>) -> anyhow::Result<T> {
    Source::new(None, &env)?.value(setting)
}

/// The [`Fallback::Value`] of a setting that has one (every default parses: a test checks).
pub fn default_of<T>(setting: &Setting<T>) -> T {
    match setting.meta.fallback {
        Fallback::Value(text) => (setting.parse)(text).unwrap_or_else(|why| {
            panic!(
                "the default of {} does not parse: {why}",
                setting.meta.name()
            )
        }),
        Fallback::Derived(how) => panic!("{} has no default value ({how})", setting.meta.name()),
    }
}

impl ServiceConfig {
    /// The config of this process: `file` (or `OC_CONFIG`), then the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<ServiceConfig> {
        warn_unknown_env();
        ServiceConfig::load_with(file, &env)
    }

    /// [`ServiceConfig::load`] with the `OC_*` variables looked up by `var` instead of in the
    /// process environment: tests give each case its own environment.
    pub fn load_with(
        file: Option<&Path>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ServiceConfig> {
        use settings::*;
        let file = match file {
            Some(path) => Some(path.to_path_buf()),
            None => Source::new(None, var)?.get(&CONFIG)?,
        };
        let source = Source::new(file, var)?;
        let listen = source.get(&LISTEN)?;
        let listen_set = listen.is_some();
        let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = source.value(&DATA_DIR)?;
        let shards = source.get(&SHARDS)?.unwrap_or_default();
        let single_node = shards.is_empty();
        let shards = if single_node {
            (0..2)
                .map(|i| SecretUrl::new(format!("sqlite://{}/shard-{i}.db", data_dir.display())))
                .collect()
        } else {
            shards
        };
        let breaker = BreakerConfig {
            consecutive_failures: source.value(&BREAKER_CONSECUTIVE_FAILURES)?,
            failure_rate: source.value(&BREAKER_FAILURE_RATE)?,
            minimum_calls: source.value(&BREAKER_MINIMUM_CALLS)?,
            window_ms: source.value(&BREAKER_WINDOW_MS)?,
            open_ms: source.value(&BREAKER_OPEN_MS)?,
            half_open_probes: source.value(&BREAKER_HALF_OPEN_PROBES)?,
            call_timeout_ms: source.value(&BREAKER_CALL_TIMEOUT_MS)?,
        };
        if let Err(message) = breaker.validate() {
            bail!("circuit breaker settings: {message}");
        }
        let search_url = source.get(&SEARCH_URL)?.or_else(|| {
            single_node
                .then(|| SecretUrl::new(format!("tantivy://{}", data_dir.join("search").display())))
        });
        let cold_url = source.get(&COLD_URL)?.or_else(|| {
            single_node
                .then(|| SecretUrl::new(format!("redb://{}", data_dir.join("cold.redb").display())))
        });
        let export_dir = source
            .get(&EXPORT_DIR)?
            .or_else(|| single_node.then(|| data_dir.join("exports")));
        Ok(ServiceConfig {
            export_dir,
            listen,
            listen_set,
            tenant_config_dir: source.value(&TENANT_CONFIG_DIR)?,
            shards,
            bucket_map: source.get(&BUCKET_MAP)?,
            node_id: source.value(&NODE_ID)?,
            master_key: source.get(&MASTER_KEY)?,
            master_key_file: source.get(&MASTER_KEY_FILE)?,
            keyring_file: source
                .get(&KEYRING_FILE)?
                .unwrap_or_else(|| data_dir.join("keyring.json")),
            max_connections_per_shard: source.value(&MAX_CONNECTIONS_PER_SHARD)?,
            kafka_url: source.get(&KAFKA_URL)?,
            search_url,
            cold_url,
            redis_url: source.get(&REDIS_URL)?,
            stock_gate_timeout: source.millis(&STOCK_GATE_TIMEOUT_MS)?,
            projector_member: source.value(&PROJECTOR_MEMBER)?,
            scheduler: oc_core::scheduler::SchedulerSettings {
                poll_interval: source.millis(&SCHEDULER_POLL_MS)?,
                orphan_grace: millis(source.value(&SCHEDULER_ORPHAN_GRACE_MS)?),
                ..oc_core::scheduler::SchedulerSettings::default()
            },
            purge: oc_core::scheduler::PurgeSettings {
                outbox_retention: millis(source.value(&OUTBOX_RETENTION_MS)?),
                idempotency_retention: millis(source.value(&IDEMPOTENCY_RETENTION_MS)?),
                batch_size: source.value(&PURGE_BATCH)?,
                ..oc_core::scheduler::PurgeSettings::default()
            },
            archive: oc_core::archive::ArchiveSettings {
                poll_interval: source.millis(&ARCHIVE_POLL_MS)?,
                rate_per_sec: source.value(&ARCHIVE_RATE)?,
                batch_size: source.value(&ARCHIVE_BATCH)?,
                ..oc_core::archive::ArchiveSettings::default()
            },
            logistics_url: source.get(&LOGISTICS_URL)?,
            logistics_token: source.get(&LOGISTICS_TOKEN)?,
            pickup: {
                let backoff = source.millis(&PICKUP_BACKOFF_MS)?;
                oc_core::aftersales::PickupSettings {
                    poll_interval: source.millis(&PICKUP_POLL_MS)?,
                    lead: source.millis(&PICKUP_LEAD_MS)?,
                    max_attempts: source.value(&PICKUP_MAX_ATTEMPTS)?,
                    backoff_initial: backoff,
                    backoff_max: backoff.saturating_mul(20),
                    ..oc_core::aftersales::PickupSettings::default()
                }
            },
            payment_providers: source.get(&PAYMENT_PROVIDERS)?.unwrap_or_default(),
            payment_secrets_file: source.get(&PAYMENT_SECRETS_FILE)?,
            payments: oc_core::payments::PaymentSettings {
                expiry: millis(source.value(&PAYMENT_EXPIRY_MS)?),
                query_delay: millis(source.value(&PAYMENT_QUERY_DELAY_MS)?),
                query_interval: millis(source.value(&PAYMENT_QUERY_INTERVAL_MS)?),
                callback_window: millis(source.value(&PAYMENT_CALLBACK_WINDOW_MS)?),
                refund_attempts: source.value(&PAYMENT_REFUND_ATTEMPTS)?,
                public_url: source
                    .get(&PAYMENT_PUBLIC_URL)?
                    .unwrap_or_else(|| format!("http://{listen}")),
                poll_interval: source.millis(&PAYMENT_POLL_MS)?,
                ..oc_core::payments::PaymentSettings::default()
            },
            projector_attempts_per_order: source.value(&PROJECTOR_ATTEMPTS_PER_ORDER)?,
            projector_dead_letter_after: source.millis(&PROJECTOR_DEAD_LETTER_AFTER_MS)?,
            edge: oc_api::edge::EdgeConfig {
                request_timeout: source.millis(&REQUEST_TIMEOUT_MS)?,
                max_in_flight: source.value(&MAX_IN_FLIGHT)?,
                // benchmarks only (`loadtest bench` measures the cost of the edge layers)
                layers: source.value(&EDGE_LAYERS)?,
            },
            single_node,
            breaker,
            data_dir,
        })
    }

    /// The shard URLs, for the store to connect with.
    pub fn shard_urls(&self) -> Vec<&str> {
        self.shards.iter().map(SecretUrl::expose).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A config loaded from `vars` only (no file, nothing of the process environment).
    pub(crate) fn config_of(vars: &[(&str, String)]) -> ServiceConfig {
        loaded(None, vars).unwrap()
    }

    fn loaded(file: Option<&str>, vars: &[(&str, String)]) -> anyhow::Result<ServiceConfig> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = file.map(|text| {
            let path = dir.path().join("service.yaml");
            std::fs::write(&path, text).unwrap();
            path
        });
        ServiceConfig::load_with(path.as_deref(), &move |name: &str| {
            vars.iter()
                .find(|(known, _)| known == name)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn defaults_are_single_node() {
        let config = config_of(&[]);
        assert!(config.single_node);
        assert_eq!(config.shards.len(), 2);
        assert!(config.shard_urls()[0].starts_with("sqlite://"));
        let cluster = config_of(&[("OC_SHARDS", "mysql://a/b, mysql://c/d".into())]);
        assert!(!cluster.single_node);
        assert_eq!(cluster.shard_urls(), vec!["mysql://a/b", "mysql://c/d"]);
    }

    #[test]
    fn the_defaults_are_the_components_defaults() {
        let config = config_of(&[]);
        assert_eq!(config.breaker, BreakerConfig::default());
        let edge = oc_api::edge::EdgeConfig::default();
        assert_eq!(
            (
                config.edge.request_timeout,
                config.edge.max_in_flight,
                config.edge.layers
            ),
            (edge.request_timeout, edge.max_in_flight, edge.layers)
        );
        assert_eq!(config.projector_member, oc_bus::Assignment::all());
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(!config.listen_set);
        assert_eq!(config.keyring_file, Path::new("data").join("keyring.json"));
    }

    #[test]
    fn the_file_section_sets_the_thresholds() {
        let config = loaded(
            Some("breaker:\n  open_ms: 2000\n  half_open_probes: 2\n"),
            &[],
        )
        .unwrap();
        let from_file = config.breaker;
        assert_eq!(from_file.open_ms, 2000);
        assert_eq!(from_file.half_open_probes, 2);
        assert_eq!(
            from_file.consecutive_failures,
            BreakerConfig::default().consecutive_failures
        );
        assert_eq!(config.breaker.open_ms, 2000);
        let unknown = loaded(Some("breaker:\n  open_after: 3\n"), &[]);
        assert!(unknown.is_err(), "unknown keys are refused");
        let never_probes = loaded(Some("breaker:\n  half_open_probes: 0\n"), &[]);
        assert!(never_probes.is_err());
    }

    #[test]
    fn the_environment_overrides_the_file_and_both_go_through_the_parsers() {
        let file = "listen: 0.0.0.0:9000\nshards: [\"mysql://oc:pw@db-0/oc\", \"mysql://oc:pw@db-1/oc\"]\nnode_id: 3\nbucket_map:\n  - {first: 0, last: 511, shard: 0}\n  - {first: 512, last: 1023, shard: 1}\n";
        let config = loaded(Some(file), &[("OC_NODE_ID", "7".into())]).unwrap();
        assert_eq!(config.listen, SocketAddr::from(([0, 0, 0, 0], 9000)));
        assert!(config.listen_set);
        assert_eq!(
            config.shard_urls(),
            vec!["mysql://oc:pw@db-0/oc", "mysql://oc:pw@db-1/oc"]
        );
        assert_eq!(config.node_id, 7, "the variable wins");
        assert_eq!(config.bucket_map.as_ref().map(Vec::len), Some(2));
        let error = format!("{:#}", loaded(Some("node_id: 40\n"), &[]).unwrap_err());
        assert!(
            error.contains("`node_id`") && error.contains("not 0..=31"),
            "{error}"
        );
        let error = format!(
            "{:#}",
            loaded(None, &[("OC_REDIS_URL", "memcached://h:1".into())]).unwrap_err()
        );
        assert!(error.contains("OC_REDIS_URL"), "{error}");
        let unknown = loaded(Some("listen_on: 0.0.0.0:1\n"), &[]);
        assert!(unknown.is_err(), "unknown keys are refused");
    }

    #[test]
    fn secrets_never_print() {
        let key = "ab".repeat(32);
        let config = config_of(&[
            ("OC_MASTER_KEY", key.clone()),
            ("OC_SHARDS", "mysql://oc:hunter2@db-0/oc".into()),
            ("OC_REDIS_URL", "redis://:hunter3@redis:6379".into()),
        ]);
        assert_eq!(
            config.master_key.as_ref().map(|k| k.expose().as_str()),
            Some(key.as_str())
        );
        let shown = format!("{config:?}");
        for secret in [key.as_str(), "hunter2", "hunter3"] {
            assert!(!shown.contains(secret), "{secret} printed: {shown}");
        }
        // a refused secret is not repeated in the error either
        let error = format!(
            "{:#}",
            loaded(None, &[("OC_MASTER_KEY", "not-a-key-hunter4".into())]).unwrap_err()
        );
        assert!(
            error.contains("OC_MASTER_KEY") && !error.contains("hunter4"),
            "{error}"
        );
        let error = format!(
            "{:#}",
            loaded(None, &[("OC_SHARDS", "postgres://oc:hunter5@db/oc".into())]).unwrap_err()
        );
        assert!(
            error.contains("OC_SHARDS") && !error.contains("hunter5"),
            "{error}"
        );
    }

    #[test]
    fn every_default_value_parses() {
        for setting in settings::SETTINGS {
            if let Fallback::Value(text) = setting.meta().fallback {
                setting
                    .check(text)
                    .unwrap_or_else(|why| panic!("{}: {why}", setting.meta().name()));
            }
        }
    }

    #[test]
    fn every_variable_read_is_listed() {
        // every `"OC_…"` literal in this crate's source is a variable of the table: the
        // settings are read only through it
        fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 5, "{files:?}");
        let mut seen = 0;
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            for chunk in source.split("\"OC_").skip(1) {
                let name: String = "OC_"
                    .chars()
                    .chain(
                        chunk
                            .chars()
                            .take_while(|c| c.is_ascii_uppercase() || *c == '_'),
                    )
                    .collect();
                // `"OC_"` alone is the prefix (this test, the unknown-variable warning)
                if name == "OC_"
                    || name.starts_with("OC_TEST_")
                    || !chunk[name.len() - 3..].starts_with('"')
                {
                    continue;
                }
                seen += 1;
                assert!(
                    settings::by_env(&name).is_some(),
                    "{name} is read in {} but not listed in the settings table",
                    file.display()
                );
            }
        }
        assert!(seen >= settings::env_vars().count(), "{seen} names seen");
    }
}
