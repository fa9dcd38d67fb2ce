//! The composition root: the one place that names concrete adapters. Each adapter crate opens
//! itself from its URL (`oc_store_sql::open`, `oc_cache::open`, `oc_search::open`,
//! `oc_cold_store::open`, `oc_bus::open`); this module only hands each URL of the service
//! config to its crate, puts the breakers around what it gets back, and builds the core.

use std::sync::Arc;

use anyhow::Context;

use oc_api::AppState;
use oc_core::payments::PaymentProviders;
use oc_core::{Core, Sealer};
use oc_crypto::KeyRing;
use oc_model::aftersale::AfterSaleStore;
use oc_model::aftersale::listing::AfterSaleListing;
use oc_model::export::ExportJobs;
use oc_model::lifecycle::TransitionStore;
use oc_model::payment::{PaymentSecrets, PaymentStore};
use oc_model::ports::{Cache, DeadLetters, OrderStore, SearchFields, ShardScan};
use oc_model::stock::StockStore;
use oc_pay_http::{FileSecrets, HttpProvider};
use oc_projector::{Projector, ProjectorConfig, Sinks};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use oc_tenant_config::{ConfigHandle, ConfigSet};

use crate::breakers::Guards;
use crate::config::ServiceConfig;
use crate::keyring::{key_gate, key_ring, master_key};
use crate::ledger::LedgeredStore;

/// Everything `build` wires: the API state and what the workers and tools need.
pub struct Wiring {
    pub state: AppState,
    pub config: Arc<ConfigHandle>,
    pub store: Arc<SqlOrderStore>,
    /// The read models the projector feeds (and the API reads).
    pub sinks: Sinks,
    /// The circuit breakers around the cache, search index, cold store and bus.
    pub guards: Guards,
    /// The tenants' data keys (reloaded on SIGHUP).
    pub keyring: Arc<KeyRing>,
    /// How the projector retries and when it dead-letters (`OC_PROJECTOR_*`).
    pub projector_config: ProjectorConfig,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the state, store and key ring print their own secrets-free summaries elsewhere;
        // here only what was wired
        f.debug_struct("Wiring")
            .field("sinks", &self.sinks)
            .field("guards", &self.guards)
            .finish_non_exhaustive()
    }
}

impl Wiring {
    /// The key ring every sealer of this process uses.
    pub fn key_ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.keyring)
    }

    /// Install the tenant config's SIGHUP reload, behind the slot-ledger and data-key gates.
    pub fn reload_tenant_config_on_sighup(&self, config: &ServiceConfig) -> anyhow::Result<()> {
        // both must pass, the ledger first (the key gate may write the key ring): no slot
        // holding data changes its meaning (the live config was planned against already;
        // the ledger also knows what earlier configs wrote), and new tenants have data keys
        let keys = key_gate(config, self.key_ring());
        let slots = crate::ledger::gate(
            Arc::clone(&self.store),
            tokio::runtime::Handle::try_current()
                .context("the tenant config reload needs the runtime")?,
        );
        self.config.set_gate(Box::new(move |new: &ConfigSet| {
            slots(new).and_then(|()| keys(new))
        }));
        self.config
            .clone()
            .spawn_sighup_reloader(config.tenant_config_dir.clone())
            .context("installing the SIGHUP handler")?;
        Ok(())
    }

    /// A projector over the wired read models, recording the orders they refuse as dead
    /// letters in the store (shard 0) so one bad order cannot stop every tenant, and
    /// indexing after-sales from the same store.
    pub fn projector(&self) -> Projector {
        Projector::new(
            self.store.clone() as Arc<dyn OrderStore>,
            self.sinks.clone(),
            self.config.clone() as Arc<dyn SearchFields>,
            self.projector_config.clone(),
        )
        .with_dead_letters(self.dead_letters())
        .with_after_sales(self.store.clone() as Arc<dyn AfterSaleStore>)
    }

    /// The dead-letter record of the read models.
    pub fn dead_letters(&self) -> Arc<dyn DeadLetters> {
        self.store.clone() as Arc<dyn DeadLetters>
    }
}

/// The tenant config of `config`, or why it is invalid.
pub fn load_tenants(config: &ServiceConfig) -> anyhow::Result<ConfigSet> {
    ConfigSet::load_dir(&config.tenant_config_dir).map_err(|errors| {
        anyhow::anyhow!(
            "tenant config {} is invalid:\n{errors}",
            config.tenant_config_dir.display()
        )
    })
}

/// The order store of `config` with at most `max_connections` per shard.
pub async fn open_store(
    config: &ServiceConfig,
    max_connections: u32,
) -> anyhow::Result<SqlOrderStore> {
    let mut store_config =
        StoreConfig::parse(&config.shard_urls()).map_err(|e| anyhow::anyhow!(e.message))?;
    store_config.bucket_map = config.bucket_map.clone();
    store_config.max_connections = max_connections;
    store_config
        .open()
        .await
        .map_err(|e| anyhow::anyhow!("order store: {}", e.message))
}

/// Build the application state from config: the one place concrete adapters are named.
pub async fn build(config: &ServiceConfig) -> anyhow::Result<Wiring> {
    let tenants = load_tenants(config)?;
    let master = master_key(config)?;
    let ring = key_ring(config, &master, &tenants)?;
    let sealer = Sealer::from_keys(Arc::clone(&ring), &master);
    drop(master);
    if config.single_node {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
    }
    let store = Arc::new(open_store(config, config.max_connections_per_shard).await?);
    crate::ledger::check(&store, &tenants, &config.tenant_config_dir).await?;
    let handle = Arc::new(ConfigHandle::new(tenants));
    let guards = Guards::new(config.breaker);
    let mut tiered = oc_cache::open(config.redis_url.as_ref().map(|url| url.expose()))
        .await
        .map_err(|e| anyhow::anyhow!("cache: {}", e.message))?;
    if tiered.l2().is_some() {
        tiered = tiered.with_l2_breaker(guards.breaker("cache"));
    }
    let tiered = Arc::new(tiered);
    let cache: Arc<dyn Cache> = tiered.clone();
    let unguarded_search = match &config.search_url {
        Some(url) => {
            // Elasticsearch keeps each tenant's mapping in step with its live config
            let fields = Arc::clone(&handle) as Arc<dyn SearchFields>;
            Some(
                oc_search::open(url.expose(), fields)
                    .await
                    .map_err(|e| anyhow::anyhow!("search index {url}: {}", e.message))?,
            )
        }
        None => None,
    };
    let search = unguarded_search.clone().map(|index| guards.search(index));
    let cold = match &config.cold_url {
        Some(url) => Some(
            guards.cold(
                oc_cold_store::open(url.expose())
                    .await
                    .map_err(|e| anyhow::anyhow!("cold store {url}: {}", e.message))?,
            ),
        ),
        None => None,
    };
    let sinks = Sinks {
        search: search.clone(),
        cold: cold.clone(),
        cache: Some(Arc::clone(&cache)),
    };
    // hot SKUs of identities with `accelerator: redis` are admitted by Redis counters in
    // front of SQL, when the service has a Redis (the cache's); SQL alone otherwise. Behind
    // its own breaker: while Redis fails, placements skip the gate instead of paying its
    // call limit each
    let stock_gate = match &config.redis_url {
        Some(url) => Some(
            guards.stock_gate(Arc::new(
                oc_cache::RedisStockGate::connect(
                    oc_cache::RedisStockGateConfig::new(url.expose())
                        .with_timeout(config.stock_gate_timeout),
                )
                .map_err(|e| anyhow::anyhow!("stock gate: {}", e.message))?,
            )),
        ),
        None => None,
    };
    let ledgered = LedgeredStore::new(Arc::clone(&store), Arc::clone(&handle));
    let core = Core::builder(
        Arc::new(ledgered) as Arc<dyn OrderStore>,
        Arc::clone(&handle),
        sealer,
    )
    .cache(Some(cache))
    .cold(cold.clone())
    .search(search)
    .transitions(store.clone() as Arc<dyn TransitionStore>)
    .stock(store.clone() as Arc<dyn StockStore>)
    .payments(
        store.clone() as Arc<dyn PaymentStore>,
        payment_providers(config)?,
        config.payments.clone(),
    )
    .after_sales(store.clone() as Arc<dyn AfterSaleStore>)
    .after_sale_lists(store.clone() as Arc<dyn AfterSaleListing>)
    .stock_gate(stock_gate)
    .node_id(config.node_id)
    .build()
    .map_err(|e| anyhow::anyhow!(e.message))?;
    let mut state = AppState::new(core);
    if let Some(cold) = &cold {
        let jobs = match &config.export_dir {
            Some(dir) => Some(Arc::new(
                oc_export_files::DirJobs::new(dir)
                    .map_err(|e| anyhow::anyhow!("export dir: {}", e.message))?,
            ) as Arc<dyn ExportJobs>),
            None => None,
        };
        let exporter = state.core.exporter(
            store.clone() as Arc<dyn ShardScan>,
            Arc::clone(cold),
            Arc::new(oc_export_files::ArrowFiles),
            jobs,
        );
        state = state.with_exports(exporter);
    }
    guards.expose(&state, tiered.l2().cloned(), unguarded_search);
    state
        .metrics
        .register(Box::new(move |out: &mut String| tiered.stats().render(out)));
    if let Some(payments) = &state.core.payments {
        let stats = payments.stats();
        state
            .metrics
            .register(Box::new(move |out: &mut String| stats.render(out)));
    }
    Ok(Wiring {
        state,
        config: handle,
        store,
        sinks,
        guards,
        keyring: ring,
        projector_config: ProjectorConfig {
            attempts_per_order: config.projector_attempts_per_order,
            dead_letter_after: config.projector_dead_letter_after,
            ..ProjectorConfig::default()
        },
    })
}

/// The payment providers of `OC_PAYMENT_PROVIDERS` (each speaking the generic signed-HTTP
/// protocol) and the tenants' accounts with them from `OC_PAYMENT_SECRETS_FILE`.
pub fn payment_providers(config: &ServiceConfig) -> anyhow::Result<PaymentProviders> {
    let secrets = match &config.payment_secrets_file {
        Some(path) => FileSecrets::load(path).map_err(|e| {
            anyhow::anyhow!("payment secrets file {}: {}", path.display(), e.message)
        })?,
        None => FileSecrets::default(),
    };
    let mut providers = PaymentProviders::new(Arc::new(secrets) as Arc<dyn PaymentSecrets>);
    for (name, url) in &config.payment_providers {
        providers = providers.with(Arc::new(HttpProvider::new(
            name.clone(),
            url.clone(),
            PROVIDER_CALL_TIMEOUT,
        )));
    }
    Ok(providers)
}

/// The time budget of one call to a payment provider (a create inside a request, a query
/// of the worker).
const PROVIDER_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The combined return pickup worker over the store's shards, booking with the provider of
/// `OC_LOGISTICS_URL` (the generic pickup protocol); `None` without one or without
/// after-sales.
pub fn pickup_worker(
    wiring: &Wiring,
    config: &ServiceConfig,
) -> Option<oc_core::aftersales::PickupWorker> {
    let url = config.logistics_url.as_ref()?;
    let after_sales = wiring.state.core.after_sales.as_ref()?;
    // a claimed call is not made again before the first backoff: the call fits inside it
    let timeout = config.pickup.backoff_initial.min(PROVIDER_CALL_TIMEOUT);
    let provider = oc_logistics_http::HttpLogistics::new(
        url.expose(),
        config
            .logistics_token
            .as_ref()
            .map(|token| token.expose().clone()),
        timeout,
    );
    Some(after_sales.pickup_worker(
        wiring.store.clone() as Arc<dyn oc_model::logistics::PickupStore>,
        Arc::new(provider),
        config.pickup.clone(),
    ))
}

/// The Kafka bus of `config` (`relay`, `project`).
pub async fn kafka_bus(config: &ServiceConfig) -> anyhow::Result<Arc<oc_bus::KafkaEventBus>> {
    let url = config
        .kafka_url
        .as_ref()
        .context("OC_KAFKA_URL (kafka://host:9092) is required")?;
    Ok(Arc::new(oc_bus::open(url.expose()).await.map_err(|e| {
        anyhow::anyhow!("OC_KAFKA_URL: {}", e.message)
    })?))
}
