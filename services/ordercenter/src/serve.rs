//! `ordercenter serve`: wires concrete adapters from the service config and runs the API.
//!
//! Configuration: an optional YAML file (`--config` or `OC_CONFIG`), then environment
//! overrides (`OC_*`), then defaults for single-node mode (SQLite shards under `./data`, the
//! example tenants, 127.0.0.1:8080). Secrets (the master key) are never printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Deserialize;

use oc_api::metrics::Metrics;
use oc_api::{AppState, router_with};
use oc_bus::{
    KafkaBusConfig, KafkaEventBus, LocalBusConfig, LocalEventBus, SourceConfig, StartOffset,
};
use oc_cache::{L1Config, RedisCache, RedisCacheConfig, TieredCache};
use oc_cold_store::ColdStoreConfig;
use oc_core::{Core, Sealer};
use oc_crypto::{KeyRing, KeyRingFile, MasterKey};
use oc_model::lifecycle::TransitionStore;
use oc_model::ports::{Cache, OrderStore, SearchIndex};
use oc_model::stock::StockStore;
use oc_projector::{
    KafkaStream, LocalStream, Projector, ProjectorConfig, Sinks, SqlOffsetStore, TenantFieldNamer,
};
use oc_relay::{Relay, RelayConfig};
use oc_search::{
    EsConfig, EsSearchIndex, FieldSource, MappedEsIndex, TantivyConfig, TantivySearchIndex,
};
use oc_store_sql::{BucketRange, SqlOrderStore, StoreConfig};
use oc_tenant_config::{ConfigHandle, ConfigSet, ReloadGate};

/// The service config file (all members optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfigFile {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub tenant_config_dir: Option<PathBuf>,
    pub shards: Option<Vec<String>>,
    pub bucket_map: Option<Vec<BucketRange>>,
    pub node_id: Option<u8>,
    pub master_key_file: Option<PathBuf>,
    pub keyring_file: Option<PathBuf>,
    pub max_connections_per_shard: Option<u32>,
    pub request_timeout_ms: Option<u64>,
    pub max_in_flight: Option<usize>,
    pub redis_url: Option<String>,
    pub search_url: Option<String>,
    pub cold_url: Option<String>,
    pub kafka_url: Option<String>,
    pub projector_member: Option<String>,
    /// Circuit breaker thresholds, one set for every dependency (see `oc-resilience`).
    pub breaker: Option<oc_resilience::BreakerConfig>,
}

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
    pub shards: Vec<String>,
    pub bucket_map: Option<Vec<BucketRange>>,
    pub node_id: u8,
    pub master_key_file: Option<PathBuf>,
    pub keyring_file: PathBuf,
    pub max_connections_per_shard: u32,
    /// The event bus in cluster mode: `kafka://host:9092[,host2…][?prefix=…&partitions=…]`.
    pub kafka_url: Option<String>,
    /// The search index: `tantivy://<dir>` or Elasticsearch `http://host:9200` (query
    /// parameters `prefix`, `replicas`, `shards`, `analyzer`: `EsConfig::from_url`);
    /// single-node default `tantivy://<data>/search`.
    pub search_url: Option<String>,
    /// The cold store: `redb://<file>` or `hbase://host:port`; single-node default
    /// `redb://<data>/cold.redb`.
    pub cold_url: Option<String>,
    /// Redis behind the in-process cache (cluster mode); none = in-process cache only.
    pub redis_url: Option<String>,
    /// This projector's share of the topics' partitions, `i/n` (`OC_PROJECTOR_MEMBER`).
    pub projector_member: oc_bus::Assignment,
    /// The edge limits (request timeout, requests in flight before shedding).
    pub edge: oc_api::edge::EdgeConfig,
    /// True when no shard URLs were given: SQLite files under `data_dir`.
    pub single_node: bool,
    /// Circuit breaker thresholds of the cache, search, cold store and bus breakers.
    pub breaker: oc_resilience::BreakerConfig,
}

/// Every environment variable the binary reads (the deployment checks use this list).
pub const ENV_VARS: &[&str] = &[
    "OC_CONFIG",
    "OC_LISTEN",
    "OC_DATA_DIR",
    "OC_TENANT_CONFIG_DIR",
    "OC_SHARDS",
    "OC_NODE_ID",
    "OC_MASTER_KEY",
    "OC_MASTER_KEY_FILE",
    "OC_KEYRING_FILE",
    "OC_MAX_CONNECTIONS_PER_SHARD",
    "OC_REDIS_URL",
    "OC_KAFKA_URL",
    "OC_SEARCH_URL",
    "OC_COLD_URL",
    "OC_REQUEST_TIMEOUT_MS",
    "OC_MAX_IN_FLIGHT",
    "OC_PROJECTOR_MEMBER",
    "OC_EDGE_LAYERS",
    "OC_LOG",
    "OC_LOG_FORMAT",
    "OC_BREAKER_CONSECUTIVE_FAILURES",
    "OC_BREAKER_FAILURE_RATE",
    "OC_BREAKER_MINIMUM_CALLS",
    "OC_BREAKER_WINDOW_MS",
    "OC_BREAKER_OPEN_MS",
    "OC_BREAKER_HALF_OPEN_PROBES",
    "OC_BREAKER_CALL_TIMEOUT_MS",
];

pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Warn about `OC_*` variables the binary does not read: a typo there silently changes nothing.
fn warn_unknown_env() {
    for (name, _) in std::env::vars() {
        if name.starts_with("OC_")
            && !name.starts_with("OC_TEST_")
            && !ENV_VARS.contains(&name.as_str())
        {
            tracing::warn!(variable = %name, known = ?ENV_VARS, "unknown OC_ environment variable ignored");
        }
    }
}

impl ServiceConfig {
    pub fn load(file: Option<&Path>) -> anyhow::Result<ServiceConfig> {
        warn_unknown_env();
        ServiceConfig::load_with(file, &env)
    }

    /// [`ServiceConfig::load`] with the `OC_*` variables looked up by `var` instead of in the
    /// process environment (the circuit-breaker settings are still read from the process):
    /// tests give each case its own environment.
    pub(crate) fn load_with(
        file: Option<&Path>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ServiceConfig> {
        let file_path = file
            .map(Path::to_path_buf)
            .or_else(|| var("OC_CONFIG").map(PathBuf::from));
        let from_file: ServiceConfigFile = match &file_path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_norway::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => ServiceConfigFile::default(),
        };
        let listen = match var("OC_LISTEN") {
            Some(text) => Some(
                text.parse()
                    .with_context(|| format!("OC_LISTEN={text} is not an address"))?,
            ),
            None => from_file.listen,
        };
        let listen_set = listen.is_some();
        let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let projector_member = match var("OC_PROJECTOR_MEMBER").or(from_file.projector_member) {
            Some(text) => oc_bus::Assignment::parse(&text)
                .map_err(|e| anyhow::anyhow!("OC_PROJECTOR_MEMBER: {}", e.message))?,
            None => oc_bus::Assignment::all(),
        };
        let data_dir = var("OC_DATA_DIR")
            .map(PathBuf::from)
            .or(from_file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let tenant_config_dir = var("OC_TENANT_CONFIG_DIR")
            .map(PathBuf::from)
            .or(from_file.tenant_config_dir)
            .unwrap_or_else(|| PathBuf::from("tenant-config/examples"));
        let shards = var("OC_SHARDS")
            .map(|text| {
                text.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
            .or(from_file.shards)
            .unwrap_or_default();
        let single_node = shards.is_empty();
        let shards = if single_node {
            (0..2)
                .map(|i| format!("sqlite://{}/shard-{i}.db", data_dir.display()))
                .collect()
        } else {
            shards
        };
        let node_id = match var("OC_NODE_ID") {
            Some(text) => text
                .parse()
                .with_context(|| format!("OC_NODE_ID={text} is not 0..=31"))?,
            None => from_file.node_id.unwrap_or(0),
        };
        let max_connections_per_shard = match var("OC_MAX_CONNECTIONS_PER_SHARD") {
            Some(text) => text.parse().context("OC_MAX_CONNECTIONS_PER_SHARD")?,
            None => from_file.max_connections_per_shard.unwrap_or(16),
        };
        let defaults = oc_api::edge::EdgeConfig::default();
        let request_timeout_ms = match var("OC_REQUEST_TIMEOUT_MS") {
            Some(text) => text.parse().context("OC_REQUEST_TIMEOUT_MS")?,
            None => from_file
                .request_timeout_ms
                .unwrap_or(defaults.request_timeout.as_millis() as u64),
        };
        let max_in_flight = match var("OC_MAX_IN_FLIGHT") {
            Some(text) => text.parse().context("OC_MAX_IN_FLIGHT")?,
            None => from_file.max_in_flight.unwrap_or(defaults.max_in_flight),
        };
        if request_timeout_ms == 0 || max_in_flight == 0 {
            bail!("request timeout and max in-flight requests must be positive");
        }
        Ok(ServiceConfig {
            breaker: crate::breakers::config(from_file.breaker)?,
            redis_url: var("OC_REDIS_URL").or(from_file.redis_url),
            kafka_url: var("OC_KAFKA_URL").or(from_file.kafka_url),
            search_url: var("OC_SEARCH_URL").or(from_file.search_url).or_else(|| {
                single_node.then(|| format!("tantivy://{}", data_dir.join("search").display()))
            }),
            cold_url: var("OC_COLD_URL").or(from_file.cold_url).or_else(|| {
                single_node.then(|| format!("redb://{}", data_dir.join("cold.redb").display()))
            }),
            edge: oc_api::edge::EdgeConfig {
                request_timeout: std::time::Duration::from_millis(request_timeout_ms),
                max_in_flight,
                // benchmarks only (`loadtest bench` measures the cost of the edge layers)
                layers: var("OC_EDGE_LAYERS").as_deref() != Some("off"),
            },
            listen,
            listen_set,
            projector_member,
            keyring_file: var("OC_KEYRING_FILE")
                .map(PathBuf::from)
                .or(from_file.keyring_file)
                .unwrap_or_else(|| data_dir.join("keyring.json")),
            master_key_file: var("OC_MASTER_KEY_FILE")
                .map(PathBuf::from)
                .or(from_file.master_key_file),
            data_dir,
            tenant_config_dir,
            shards,
            bucket_map: from_file.bucket_map,
            node_id,
            max_connections_per_shard,
            single_node,
        })
    }
}

/// The master key: `OC_MASTER_KEY`, else the key file, else (single-node only) a key
/// generated once into `data/master.key`.
pub(crate) fn master_key(config: &ServiceConfig) -> anyhow::Result<MasterKey> {
    if let Some(value) = env("OC_MASTER_KEY") {
        return MasterKey::from_encoded(&value)
            .context("OC_MASTER_KEY is not a 32-byte key in hex or base64");
    }
    if let Some(path) = &config.master_key_file {
        return MasterKey::from_file(path)
            .with_context(|| format!("reading master key {}", path.display()));
    }
    if !config.single_node {
        bail!("cluster mode needs OC_MASTER_KEY or OC_MASTER_KEY_FILE");
    }
    let path = config.data_dir.join("master.key");
    if path.exists() {
        return MasterKey::from_file(&path).with_context(|| format!("reading {}", path.display()));
    }
    let key = MasterKey::generate().context("generating a master key")?;
    if !write_private_new(&path, key.to_base64().as_bytes())? {
        // another process starting on the same data dir wrote its key first: use that one
        return MasterKey::from_file(&path).with_context(|| format!("reading {}", path.display()));
    }
    tracing::warn!(path = %path.display(), "generated a master key for single-node mode; keep this file safe and out of backups of the data");
    Ok(key)
}

/// Create `path` readable only by its owner, holding `bytes`, unless it exists: `Ok(false)`
/// then, and the file is left as it is. Written to a temporary file of this process first and
/// linked into place, so the file appears whole or not at all and a concurrent creator's file
/// is never replaced.
fn write_private_new(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let temp = path.with_extension(format!("{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let written = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        match std::fs::hard_link(&temp, path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(error),
        }
    })();
    let _ = std::fs::remove_file(&temp);
    written.with_context(|| format!("writing {}", path.display()))
}

/// How long a process waits for another one's change of the key ring file (its lock).
pub(crate) const KEY_RING_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The tenant ids of a tenant config.
fn tenant_names(tenants: &ConfigSet) -> Vec<String> {
    tenants
        .tenants()
        .map(|tenant| tenant.id().as_str().to_owned())
        .collect()
}

/// Tenants of `tenants` without a data key in `ring`.
fn lacking_keys(ring: &KeyRing, tenants: &[String]) -> Vec<String> {
    tenants
        .iter()
        .filter(|tenant| !ring.has_tenant(tenant))
        .cloned()
        .collect()
}

/// Why a cluster process does not start (or reload) without every tenant's key, and the fix.
fn keys_init_remedy(path: &Path, lacking: &[String]) -> String {
    format!(
        "tenant(s) {} have no data key in the key ring {}: run `ordercenter keys init` with this          tenant config (the same OC_KEYRING_FILE and master key) first. Cluster processes never          create data keys: replicas starting together would each create a different one",
        lacking.join(", "),
        path.display()
    )
}

/// The key ring of this process, holding a data key for every configured tenant.
///
/// Single node: tenants without a key get one, created in the key ring file under its lock
/// after reading it again ([`KeyRingFile::add_missing_tenants`]), so processes starting
/// together agree on every key. Cluster: the file must exist and hold them all (`keys init`);
/// a process never creates keys, because the replicas on a shared volume that would race for
/// it are the normal case there, and a Kubernetes Secret mount is read-only anyway.
fn key_ring(
    config: &ServiceConfig,
    master: &MasterKey,
    tenants: &ConfigSet,
) -> anyhow::Result<Arc<KeyRing>> {
    let file = KeyRingFile::new(&config.keyring_file);
    let names = tenant_names(tenants);
    let template = KeyRing::new(master);
    let ring = if config.single_node {
        let added = file
            .add_missing_tenants(&template, &names, KEY_RING_LOCK_WAIT)
            .with_context(|| {
                format!(
                    "creating tenant data keys in {}",
                    config.keyring_file.display()
                )
            })?;
        if !added.created.is_empty() {
            tracing::info!(created = ?added.created, path = %config.keyring_file.display(), "created tenant data keys (wrapped) in the key ring file");
        }
        added.ring
    } else {
        let ring = file
            .read(&template)
            .with_context(|| {
                format!(
                    "opening the key ring {} with this master key",
                    config.keyring_file.display()
                )
            })?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no key ring file at {}: run `ordercenter keys init` with the tenant config                      and master key of this cluster first (cluster processes never create data keys)",
                    config.keyring_file.display()
                )
            })?;
        let lacking = lacking_keys(&ring, &names);
        if !lacking.is_empty() {
            bail!(keys_init_remedy(&config.keyring_file, &lacking));
        }
        ring
    };
    // a value under a version rotated in by `keys rotate` reloads the file (rate-limited)
    ring.watch_file(&config.keyring_file, crate::cli::keys::RELOAD_INTERVAL);
    Ok(Arc::new(ring))
}

/// The check a reloaded tenant config passes before it goes live: every tenant has a data key
/// (else a new tenant would answer 500 to every create with personal data until a restart).
/// Single node: missing keys are created in the key ring file as at start and added to the
/// running ring. Cluster: the file is read again (`keys init` may have added them since); a
/// tenant still without a key refuses the reload, loudly, naming `keys init`.
pub(crate) fn key_gate(config: &ServiceConfig, ring: Arc<KeyRing>) -> ReloadGate {
    let file = KeyRingFile::new(&config.keyring_file);
    let single_node = config.single_node;
    Box::new(move |tenants: &ConfigSet| {
        let names = tenant_names(tenants);
        if lacking_keys(&ring, &names).is_empty() {
            return Ok(());
        }
        if single_node {
            let added = file
                .add_missing_tenants(&ring, &names, KEY_RING_LOCK_WAIT)
                .map_err(|error| format!("creating the new tenants' data keys: {error}"))?;
            ring.merge(&added.ring.export()).map_err(|error| {
                format!("adding the new tenants' data keys to the running key ring: {error}")
            })?;
            tracing::info!(created = ?added.created, path = %file.path().display(), "created data keys of tenants added by a reload");
        } else if let Err(error) = ring.reload() {
            return Err(format!("reloading the key ring file: {error}"));
        }
        let lacking = lacking_keys(&ring, &names);
        if lacking.is_empty() {
            Ok(())
        } else {
            Err(keys_init_remedy(file.path(), &lacking))
        }
    })
}

/// The key ring every sealer of this process uses.
pub(crate) fn key_ring_of(wiring: &Wiring) -> Arc<KeyRing> {
    Arc::clone(&wiring.keyring)
}

/// Install the tenant config's SIGHUP reload, behind the data-key gate.
fn reload_tenant_config_on_sighup(config: &ServiceConfig, wiring: &Wiring) -> anyhow::Result<()> {
    wiring
        .config
        .set_gate(key_gate(config, key_ring_of(wiring)));
    wiring
        .config
        .clone()
        .spawn_sighup_reloader(config.tenant_config_dir.clone())
        .context("installing the SIGHUP handler")?;
    Ok(())
}

/// Everything `build` wires: the API state and what the workers and tools need.
pub struct Wiring {
    pub state: AppState,
    pub config: Arc<ConfigHandle>,
    pub store: Arc<SqlOrderStore>,
    /// The read models the projector feeds (and the API reads).
    pub sinks: Sinks,
    /// The circuit breakers around the cache, search index, cold store and bus.
    pub guards: crate::breakers::Guards,
    /// The tenants' data keys (reloaded on SIGHUP).
    pub keyring: Arc<KeyRing>,
}

/// Open the search index named by `url`: `tantivy://<dir>` (embedded) or
/// `http://host:9200` (Elasticsearch; each tenant's mapping follows its live config).
fn open_search(url: &str, tenants: &Arc<ConfigHandle>) -> anyhow::Result<Arc<dyn SearchIndex>> {
    if url.starts_with("https://") {
        bail!(
            "OC_SEARCH_URL {url:?}: this build has no TLS for Elasticsearch (oc-search's `rustls-tls` feature); use http:// inside the cluster network or a TLS-terminating sidecar"
        );
    }
    if url.starts_with("http://") {
        let es = EsConfig::from_url(url)
            .and_then(EsSearchIndex::connect)
            .map_err(|e| anyhow::anyhow!("elasticsearch {url}: {}", e.message))?;
        let tenants = Arc::clone(tenants);
        let fields: FieldSource = Arc::new(move |tenant| {
            tenants
                .current()
                .tenant(tenant)
                .map(|config| config.search_fields())
                .unwrap_or_default()
        });
        return Ok(Arc::new(MappedEsIndex::new(es, fields)));
    }
    let Some(path) = url.strip_prefix("tantivy://") else {
        bail!(
            "unsupported search index {url:?}: use tantivy://<dir> or http://<elasticsearch host>:9200"
        );
    };
    let index = TantivySearchIndex::open(TantivyConfig::on_disk(path))
        .map_err(|e| anyhow::anyhow!("search index {path}: {}", e.message))?;
    Ok(Arc::new(index))
}

/// Build the application state from config: the one place concrete adapters are named.
pub async fn build(config: &ServiceConfig) -> anyhow::Result<Wiring> {
    let tenants = ConfigSet::load_dir(&config.tenant_config_dir).map_err(|errors| {
        anyhow::anyhow!(
            "tenant config {} is invalid:\n{errors}",
            config.tenant_config_dir.display()
        )
    })?;
    let master = master_key(config)?;
    let ring = key_ring(config, &master, &tenants)?;
    let sealer = Sealer::from_keys(Arc::clone(&ring), &master);
    drop(master);
    if config.single_node {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
    }
    let mut store_config = StoreConfig::new(config.shards.clone());
    store_config.bucket_map = config.bucket_map.clone();
    store_config.max_connections = config.max_connections_per_shard;
    let store = Arc::new(
        SqlOrderStore::connect(store_config)
            .await
            .map_err(|e| anyhow::anyhow!("order store: {}", e.message))?,
    );
    let handle = Arc::new(ConfigHandle::new(tenants));
    let guards = crate::breakers::Guards::new(config.breaker);
    let tiered = Arc::new(match &config.redis_url {
        Some(url) => {
            let l2 = RedisCache::connect(RedisCacheConfig::new(url.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("redis cache: {}", e.message))?;
            TieredCache::with_redis(L1Config::default(), l2)
                .with_l2_breaker(guards.breaker("cache"))
        }
        None => TieredCache::moka_only(L1Config::single_node()),
    });
    let cache: Arc<dyn Cache> = tiered.clone();
    let unguarded_search = config
        .search_url
        .as_deref()
        .map(|url| open_search(url, &handle))
        .transpose()?;
    let search = unguarded_search.clone().map(|index| guards.search(index));
    let cold = match &config.cold_url {
        Some(url) => Some(
            ColdStoreConfig::parse(url)
                .map_err(|e| anyhow::anyhow!("cold store: {}", e.message))?
                .open()
                .await
                .map_err(|e| anyhow::anyhow!("cold store {url}: {}", e.message))?,
        )
        .map(|store| guards.cold(store)),
        None => None,
    };
    let sinks = Sinks {
        search: search.clone(),
        cold: cold.clone(),
        cache: Some(Arc::clone(&cache)),
    };
    let core = Core::builder(
        store.clone() as Arc<dyn OrderStore>,
        Arc::clone(&handle),
        sealer,
    )
    .cache(Some(cache))
    .cold(cold)
    .search(search)
    .transitions(store.clone() as Arc<dyn TransitionStore>)
    .stock(store.clone() as Arc<dyn StockStore>)
    .node_id(config.node_id)
    .build()
    .map_err(|e| anyhow::anyhow!(e.message))?;
    let state = AppState::new(core);
    guards.expose(&state, tiered.l2().cloned(), unguarded_search);
    state.metrics.register(Box::new(move |out: &mut String| {
        let stats = tiered.stats();
        out.push_str("# HELP oc_cache_reads_total Order reads of the cache by outcome.\n");
        out.push_str("# TYPE oc_cache_reads_total counter\n");
        for (outcome, count) in [
            ("l1_hit", stats.l1_hits),
            ("l2_hit", stats.l2_hits),
            ("miss", stats.misses),
        ] {
            out.push_str(&format!(
                "oc_cache_reads_total{{outcome=\"{outcome}\"}} {count}\n"
            ));
        }
        out.push_str("# HELP oc_cache_errors_total Failed or timed-out Redis calls.\n");
        out.push_str("# TYPE oc_cache_errors_total counter\n");
        out.push_str(&format!("oc_cache_errors_total {}\n", stats.errors));
    }));
    Ok(Wiring {
        state,
        config: handle,
        store,
        sinks,
        guards,
        keyring: ring,
    })
}

/// A projector over the wired read models.
pub fn projector(wiring: &Wiring) -> Projector {
    Projector::new(
        wiring.store.clone() as Arc<dyn OrderStore>,
        wiring.sinks.clone(),
        wiring.config.clone() as Arc<dyn TenantFieldNamer>,
        ProjectorConfig::default(),
    )
}

/// Relay counters and lag per shard at `/metrics`.
fn register_relay_metrics(metrics: &Metrics, relay: Relay) {
    metrics.register(Box::new(move |out: &mut String| {
        let stats = relay.stats();
        out.push_str("# HELP oc_relay_published_total Outbox events published to the bus.\n# TYPE oc_relay_published_total counter\n");
        out.push_str(&format!("oc_relay_published_total {}\n", stats.published_total));
        out.push_str("# HELP oc_relay_oldest_pending_age_ms Age of the oldest unpublished outbox event, per shard (relay lag).\n# TYPE oc_relay_oldest_pending_age_ms gauge\n");
        for (shard, shard_stats) in &stats.shards {
            out.push_str(&format!("oc_relay_oldest_pending_age_ms{{shard=\"{}\"}} {}\n", shard.0, shard_stats.oldest_pending_age_ms));
        }
    }));
}

/// Projector counters per read model and its lag behind the stream at `/metrics`.
fn register_projector_metrics(metrics: &Metrics, projector: Projector) {
    metrics.register(Box::new(move |out: &mut String| {
        let stats = projector.stats();
        out.push_str("# HELP oc_projector_events_total Events taken from the stream.\n# TYPE oc_projector_events_total counter\n");
        out.push_str(&format!("oc_projector_events_total {}\n", stats.events));
        out.push_str("# HELP oc_projector_lag_records Records behind the end of the stream, as of the last poll.\n# TYPE oc_projector_lag_records gauge\n");
        if let Some(lag) = stats.lag {
            out.push_str(&format!("oc_projector_lag_records {lag}\n"));
        }
        out.push_str("# HELP oc_projector_writes_total Read-model writes by sink and outcome.\n# TYPE oc_projector_writes_total counter\n");
        for kind in oc_projector::SinkKind::ALL {
            if let Some(sink) = stats.sink(kind) {
                for (outcome, count) in [
                    ("applied", sink.applied),
                    ("stale", sink.skipped_stale),
                    ("failed", sink.failures),
                    ("rejected", sink.rejected),
                ] {
                    out.push_str(&format!(
                        "oc_projector_writes_total{{sink=\"{kind}\",outcome=\"{outcome}\"}} {count}\n"
                    ));
                }
            }
        }
    }));
}

/// The workers' HTTP listener: `/metrics` and `/healthz` on `OC_LISTEN` (default
/// 127.0.0.1:9100), until `stop` resolves.
async fn serve_worker_http(
    config: &ServiceConfig,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::routing::get;
    let address = if config.listen_set {
        config.listen
    } else {
        SocketAddr::from(([127, 0, 0, 1], 9100))
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address} for /metrics (set OC_LISTEN)"))?;
    let router = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "{\"status\":\"ok\"}" }));
    tracing::info!(address = %listener.local_addr()?, "worker metrics listening");
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "worker metrics listener stopped");
        }
    }))
}

/// Single-node workers: the relay moves outbox rows to the in-process bus, the projector
/// applies them to the search index, the cold store and the cache.
fn spawn_single_node_workers(
    wiring: &Wiring,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let bus = Arc::new(LocalEventBus::new(LocalBusConfig::default()));
    let mut stream = LocalStream::new(bus.subscribe());
    let relay = Relay::new(
        wiring.store.clone() as Arc<dyn OrderStore>,
        wiring.guards.bus(bus),
        RelayConfig::default(),
    );
    wiring.guards.expose_late(&wiring.state, "bus");
    let projector = projector(wiring);
    register_relay_metrics(&wiring.state.metrics, relay.clone());
    register_projector_metrics(&wiring.state.metrics, projector.clone());
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let relay_stop = stopped(stop.clone());
    let projector_stop = stopped(stop);
    vec![
        tokio::spawn(async move {
            if let Err(error) = relay.run(relay_stop).await {
                tracing::error!(error = %error.message, "relay stopped");
            }
        }),
        tokio::spawn(async move {
            if let Err(error) = projector.run(&mut stream, projector_stop).await {
                tracing::error!(error = %error.message, "projector stopped");
            }
        }),
    ]
}

/// Run the server until Ctrl-C or SIGTERM.
pub async fn run(config: ServiceConfig) -> anyhow::Result<()> {
    let wiring = build(&config).await?;
    reload_tenant_config_on_sighup(&config, &wiring)?;
    crate::cli::keys::spawn_sighup_reloader(key_ring_of(&wiring))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = if config.single_node {
        spawn_single_node_workers(&wiring, stopped)
    } else {
        Vec::new()
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    // reported before the first request: `keys retire` must see every server that can seal
    let key_report = crate::key_reports::Reporter::new(
        Arc::clone(&wiring.store),
        key_ring_of(&wiring),
        &format!("serve on {address}"),
        config.edge.request_timeout,
    )
    .start({
        let mut stopped = stop.subscribe();
        async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
    })
    .await?;
    tracing::info!(%address, shards = config.shards.len(), single_node = config.single_node, "order center listening");
    println!(
        "order center listening on http://{address} ({} shards{})",
        config.shards.len(),
        if config.single_node {
            ", single-node: SQLite, relay, search index and cold store under the data dir"
        } else {
            ""
        }
    );
    if config.single_node {
        println!(
            "try: curl -s -H 'Authorization: Bearer {key}' 'http://{address}/v1/orders?buyer_id=buyer-1'   (example key of tenant `retail`, see README)",
            key = crate::EXAMPLE_RETAIL_KEY
        );
    }
    axum::serve(listener, router_with(wiring.state.clone(), config.edge))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = key_report.await;
    Ok(())
}

fn kafka_bus(config: &ServiceConfig) -> anyhow::Result<Arc<KafkaEventBus>> {
    let url = config
        .kafka_url
        .as_deref()
        .context("OC_KAFKA_URL (kafka://host:9092) is required")?;
    let bus_config = KafkaBusConfig::from_url(url)
        .map_err(|e| anyhow::anyhow!("OC_KAFKA_URL: {}", e.message))?;
    Ok(Arc::new(
        KafkaEventBus::new(bus_config).map_err(|e| anyhow::anyhow!("kafka: {}", e.message))?,
    ))
}

/// `ordercenter relay`: the cluster relay, outbox of every shard → Kafka, until SIGTERM.
pub async fn run_relay(config: ServiceConfig) -> anyhow::Result<()> {
    let wiring = build(&config).await?;
    // the relay reads no tenant config (topics come from the events), but a SIGHUP sent to
    // every process after a config change must not end it
    reload_tenant_config_on_sighup(&config, &wiring)?;
    let bus = kafka_bus(&config)?;
    let relay = Relay::new(
        wiring.store.clone() as Arc<dyn OrderStore>,
        wiring.guards.bus(bus),
        RelayConfig::default(),
    );
    register_relay_metrics(&wiring.state.metrics, relay.clone());
    let (stop, http_stop) = stop_pair();
    let http = serve_worker_http(&config, Arc::clone(&wiring.state.metrics), http_stop).await?;
    println!(
        "relay running: {} shards → {}",
        config.shards.len(),
        config.kafka_url.as_deref().unwrap_or_default()
    );
    let outcome = relay
        .run(shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("relay: {}", e.message));
    let _ = stop.send(true);
    let _ = http.await;
    outcome
}

/// A stop flag for a worker's HTTP listener: send `true` to stop it.
fn stop_pair() -> (
    tokio::sync::watch::Sender<bool>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    (stop, async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    })
}

/// The topics of every tenant of `tenants`.
fn topics_of(bus: &KafkaEventBus, tenants: &ConfigSet) -> Vec<String> {
    tenants
        .tenants()
        .flat_map(|tenant| {
            bus.naming()
                .topics_of_tenant(tenant.id(), tenant.business_identities().keys())
        })
        .collect()
}

/// `ordercenter project`: the cluster projector, Kafka (every configured tenant's topics) →
/// the configured read models, positions kept in the shard database, until SIGTERM. The
/// tenant config reloads on SIGHUP; the topics of tenants (or business identities) it adds
/// are read from then on.
pub async fn run_projector(config: ServiceConfig) -> anyhow::Result<()> {
    let wiring = build(&config).await?;
    let bus = kafka_bus(&config)?;
    let mut config_changes = wiring.config.subscribe();
    let topics = topics_of(&bus, &wiring.config.current());
    let (follow, followed) = tokio::sync::watch::channel(topics.clone());
    reload_tenant_config_on_sighup(&config, &wiring)?;
    let client = bus
        .client()
        .await
        .map_err(|e| anyhow::anyhow!("kafka: {}", e.message))?;
    let offsets = Arc::new(SqlOffsetStore::new(wiring.store.as_ref().clone()));
    let mut stream = KafkaStream::new(
        client,
        topics.clone(),
        offsets,
        "ordercenter-projector",
        StartOffset::Earliest,
        SourceConfig {
            assignment: config.projector_member,
            ..SourceConfig::default()
        },
    )
    .follow_topics(followed);
    let topic_bus = Arc::clone(&bus);
    tokio::spawn(async move {
        while config_changes.changed().await.is_ok() {
            let tenants = config_changes.borrow_and_update().clone();
            follow.send_replace(topics_of(&topic_bus, &tenants));
        }
    });
    let projector = projector(&wiring);
    register_projector_metrics(&wiring.state.metrics, projector.clone());
    let (stop, http_stop) = stop_pair();
    let http = serve_worker_http(&config, Arc::clone(&wiring.state.metrics), http_stop).await?;
    println!(
        "projector {} running: {} → search {}, cold {}",
        config.projector_member,
        topics.join(","),
        config.search_url.as_deref().unwrap_or("-"),
        config.cold_url.as_deref().unwrap_or("-")
    );
    let outcome = projector
        .run(&mut stream, shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("projector: {}", e.message));
    let _ = stop.send(true);
    let _ = http.await;
    outcome
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_read_is_listed() {
        let source = include_str!("serve.rs");
        for reader in ["env(\"", "var(\""] {
            for chunk in source.split(reader).skip(1) {
                let name: String = chunk.chars().take_while(|c| *c != '"').collect();
                if name.starts_with("OC_") {
                    assert!(
                        ENV_VARS.contains(&name.as_str()),
                        "{name} is read but not listed in ENV_VARS"
                    );
                }
            }
        }
    }

    /// A config loaded from `vars` only (no file, nothing of the process environment).
    fn config_of(vars: &[(&str, String)]) -> ServiceConfig {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        ServiceConfig::load_with(None, &move |name: &str| {
            vars.iter()
                .find(|(known, _)| known == name)
                .map(|(_, value)| value.clone())
        })
        .unwrap()
    }

    #[test]
    fn defaults_are_single_node() {
        let config = config_of(&[]);
        assert!(config.single_node);
        assert_eq!(config.shards.len(), 2);
        assert!(config.shards[0].starts_with("sqlite://"));
        let cluster = config_of(&[("OC_SHARDS", "mysql://a/b, mysql://c/d".into())]);
        assert!(!cluster.single_node);
        assert_eq!(cluster.shards, vec!["mysql://a/b", "mysql://c/d"]);
    }

    fn example_tenants() -> ConfigSet {
        ConfigSet::load_dir(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tenant-config/examples"
        )))
        .unwrap()
    }

    fn file_ring(path: &Path) -> oc_crypto::WrappedKeyRing {
        oc_crypto::WrappedKeyRing::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn servers_starting_together_agree_on_every_data_key() {
        let tenants = example_tenants();
        let master = MasterKey::from_bytes([7; 32]);
        for round in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let config = config_of(&[("OC_DATA_DIR", dir.path().display().to_string())]);
            let starting = std::sync::Barrier::new(8);
            let rings: Vec<anyhow::Result<Arc<KeyRing>>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            starting.wait();
                            key_ring(&config, &master, &tenants)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().unwrap())
                    .collect()
            });
            let on_file = file_ring(&config.keyring_file);
            assert_eq!(on_file.keys.len(), tenants.tenants().count());
            for ring in rings {
                let ring = ring.unwrap_or_else(|error| panic!("round {round}: {error:#}"));
                assert_eq!(
                    ring.export(),
                    on_file,
                    "round {round}: a server holds a data key the file does not"
                );
            }
        }
    }

    #[test]
    fn cluster_processes_never_create_data_keys() {
        let tenants = example_tenants();
        let master = MasterKey::from_bytes([7; 32]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let config = config_of(&[
            ("OC_SHARDS", "mysql://a/b".into()),
            ("OC_KEYRING_FILE", path.display().to_string()),
        ]);
        let missing = format!("{:#}", key_ring(&config, &master, &tenants).unwrap_err());
        assert!(missing.contains("keys init"), "{missing}");
        assert!(!path.exists(), "no key ring was written");

        // a key ring that lacks a configured tenant: refused, naming it, the file unchanged
        let partial = KeyRing::new(&master);
        partial.create_tenant("retail").unwrap();
        std::fs::write(&path, partial.export().to_json().unwrap()).unwrap();
        let lacking = format!("{:#}", key_ring(&config, &master, &tenants).unwrap_err());
        assert!(
            lacking.contains("express") && lacking.contains("keys init"),
            "{lacking}"
        );
        assert_eq!(file_ring(&path), partial.export());
    }
}
