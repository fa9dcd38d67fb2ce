//! `ordercenter keys …`: data-key rotation without downtime.
//!
//! The key ring file (`OC_KEYRING_FILE`, default `<data dir>/keyring.json`) holds every
//! tenant's data keys, wrapped under the key-encryption key derived from the master key. The
//! newest version of a tenant is the active one: new values are sealed under it; older
//! versions stay for reading.
//!
//! `keys init` creates the file and a first key (version 1) for every tenant of the tenant
//! config that has none. A cluster runs it once before its first start and again after a
//! tenant is added (before the reload): cluster processes never create keys (replicas starting
//! together would each create a different one). Single-node `serve` does it by itself. Every
//! command that changes the file does so under its lock, after reading it again
//! (`oc_crypto::KeyRingFile`).
//!
//! The rotation procedure:
//!
//! 1. `keys rotate`: adds a version per tenant to the file (atomic replace);
//! 2. SIGHUP every `serve` process (each also reloads the file by itself, rate-limited, the
//!    first time it meets a ciphertext under a version it does not hold);
//! 3. `keys reencrypt`: re-seals every stored value under an older version, row by row,
//!    compare-and-set on the row version (a concurrent write wins and the row is retried);
//! 4. `keys status`: counts per tenant and version; `keys retire <v>` drops a version from
//!    the file once every running server seals under a newer one (they report it in shard 0,
//!    see `key_reports`) and no stored value uses it.
//!
//! Exit codes: `0` done; `1` error; `2` (retire) refused, the version is active, a server
//! still seals under it or a stored value uses it; `3` (reencrypt) values were left under old versions (see the report).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Serialize;

use oc_core::Sealer;
use oc_core::pace::Pacer;
use oc_core::sealing::{kv_sealing, sealed_key_versions};
use oc_crypto::{KeyRing, KeyRingFile, KeyRingFileLock, MasterKey};
use oc_model::ports::{Cache, OrderStore as _, ShardScan as _};
use oc_model::{OrderId, ShardId, TenantId};
use oc_projector::{BackfillCheckpoint, ShardCheckpoint};
use oc_store_sql::SqlOrderStore;
use oc_tenant_config::ConfigSet;

use crate::config::ServiceConfig;
use crate::keyring::{KEY_RING_LOCK_WAIT, master_key, tenant_names};
use crate::wiring::{load_tenants, open_store};

/// Exit code of `keys retire` when the version is still needed.
pub const EXIT_REFUSED: u8 = 2;
/// Exit code of `keys reencrypt` when values are left under old versions.
pub const EXIT_INCOMPLETE: u8 = 3;

/// Attempts per order when concurrent writes keep moving its version.
const ATTEMPTS_PER_ORDER: u32 = 10;

#[derive(Debug, clap::Args)]
pub struct Common {
    /// Service config file (YAML); `OC_*` environment variables override it. Use the same
    /// config as the servers: the key ring file, master key and shards come from it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the key ring file if there is none and a data key (version 1) for every tenant
    /// of the tenant config that has none; existing keys are kept. Run it before a cluster's
    /// first start and after adding a tenant (before the reload): cluster processes never
    /// create keys. JSON on stdout.
    Init {
        #[command(flatten)]
        common: Common,
    },
    /// Add a new data-key version for each tenant (or the given ones) and make it active for
    /// new writes; older versions stay for reading. Then SIGHUP the servers and run
    /// `keys reencrypt`.
    Rotate {
        #[command(flatten)]
        common: Common,
        /// Only these tenants (repeatable); default every tenant of the key ring.
        #[arg(long)]
        tenant: Vec<String>,
    },
    /// Key versions per tenant (active, held) and how many stored values use each version,
    /// counted over every order of every shard. JSON on stdout.
    Status {
        #[command(flatten)]
        common: Common,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Re-encrypt every stored value under an older version with its tenant's active
    /// version, by primary-key ranges per shard; safe beside live traffic (compare-and-set
    /// on the row version), resumable with --checkpoint, paced with --rate.
    Reencrypt {
        #[command(flatten)]
        common: Common,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Orders per range query (and per checkpoint).
        #[arg(long, default_value_t = 200)]
        batch_size: u32,
        /// At most this many orders per second (default: unpaced).
        #[arg(long)]
        rate: Option<u32>,
        /// Progress file: written after every batch, resumed from when it exists, removed
        /// when the run is complete.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Full walks at most: a write that raced the walk with a copy of an old value is
        /// caught by the next walk.
        #[arg(long, default_value_t = 3)]
        max_passes: u32,
    },
    /// Remove an old key version from the key ring file. Refused for an active version,
    /// while a running server still seals under it (or switched away from it so recently that
    /// a request it began before may still be writing), and while any stored value uses it.
    Retire {
        #[command(flatten)]
        common: Common,
        /// The version to remove.
        version: u32,
        /// Only these tenants (repeatable); default every tenant holding the version.
        #[arg(long)]
        tenant: Vec<String>,
        /// Re-check the servers for up to this many seconds until all of them seal under a
        /// newer version (default: check once).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
}

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        KeysCommand::Init { common } => init(&common),
        KeysCommand::Rotate { common, tenant } => rotate(&common, &tenant),
        KeysCommand::Status { common, tenant } => runtime.block_on(status(&common, tenant)),
        KeysCommand::Reencrypt {
            common,
            tenant,
            batch_size,
            rate,
            checkpoint,
            max_passes,
        } => runtime.block_on(reencrypt(
            &common,
            ReencryptOptions {
                tenant: parse_tenant(tenant)?,
                batch_size: batch_size.max(1),
                rate: rate.filter(|rate| *rate > 0),
                checkpoint,
                max_passes: max_passes.max(1),
            },
        )),
        KeysCommand::Retire {
            common,
            version,
            tenant,
            wait,
        } => runtime.block_on(retire(&common, version, &tenant, Duration::from_secs(wait))),
    }
}

fn parse_tenant(tenant: Option<String>) -> anyhow::Result<Option<TenantId>> {
    tenant
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--tenant: {}", e.message))
}

// ------------------------------------------------------------------ the key ring file

/// The key ring file of the config, its master key and the ring it holds.
struct Keys {
    config: ServiceConfig,
    path: PathBuf,
    master: MasterKey,
    ring: KeyRing,
}

fn open_keys(common: &Common) -> anyhow::Result<Keys> {
    let config = ServiceConfig::load(common.config.as_deref())?;
    let path = config.keyring_file.clone();
    if !path.exists() {
        bail!(
            "no key ring file at {}: set OC_KEYRING_FILE (or keyring_file in the config; default <data dir>/keyring.json) \
             to the file the servers use (`ordercenter keys init` creates it)",
            path.display()
        );
    }
    let master = master_key(&config)?;
    let ring = KeyRingFile::new(&path)
        .read(&KeyRing::new(&master))
        .with_context(|| {
            format!(
                "opening the key ring {} with this master key",
                path.display()
            )
        })?
        .with_context(|| format!("the key ring file {} is gone", path.display()))?;
    Ok(Keys {
        config,
        path,
        master,
        ring,
    })
}

/// The lock of the key ring file, for the commands that rewrite it: two operators (or an
/// operator and a starting single-node server) cannot lose each other's change.
fn lock(path: &Path) -> anyhow::Result<KeyRingFileLock> {
    KeyRingFile::new(path)
        .lock(KEY_RING_LOCK_WAIT)
        .map_err(anyhow::Error::from)
}

/// Write the ring back: temporary file (owner-only), fsync, rename over the old one.
fn save(keys: &Keys, lock: &KeyRingFileLock) -> anyhow::Result<()> {
    KeyRingFile::new(&keys.path)
        .write(&keys.ring, lock)
        .context("writing the key ring")
}

/// `keys init`: a first data key for every tenant of the tenant config that has none.
fn init(common: &Common) -> anyhow::Result<ExitCode> {
    let config = ServiceConfig::load(common.config.as_deref())?;
    let tenants = load_tenants(&config)?;
    let names = tenant_names(&tenants);
    let master = master_key(&config)?;
    let file = KeyRingFile::new(&config.keyring_file);
    let added = file
        .add_missing_tenants(&KeyRing::new(&master), &names, KEY_RING_LOCK_WAIT)
        .with_context(|| format!("initialising the key ring {}", file.path().display()))?;
    let report = serde_json::json!({
        "key_ring": file.path().display().to_string(),
        "created": added.created,
        "keys": key_summary(&added.ring, &names)?,
        "next": if added.created.is_empty() {
            "nothing to do: every tenant has a data key"
        } else {
            "start the processes, or SIGHUP the running ones to reload the tenant config (Kubernetes: put this file into the Secret first)"
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct TenantKeys {
    active: u32,
    versions: Vec<u32>,
}

fn key_summary(ring: &KeyRing, tenants: &[String]) -> anyhow::Result<BTreeMap<String, TenantKeys>> {
    tenants
        .iter()
        .map(|tenant| {
            let keys = ring.tenant(tenant)?;
            Ok((
                tenant.clone(),
                TenantKeys {
                    active: keys.current_version(),
                    versions: keys.versions(),
                },
            ))
        })
        .collect()
}

fn selected_tenants(ring: &KeyRing, requested: &[String]) -> anyhow::Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(ring.tenants());
    }
    for tenant in requested {
        if !ring.has_tenant(tenant) {
            bail!("tenant {tenant:?} has no data keys in the key ring");
        }
    }
    Ok(requested.to_vec())
}

fn rotate(common: &Common, requested: &[String]) -> anyhow::Result<ExitCode> {
    let keys = open_keys(common)?;
    let lock = lock(&keys.path)?;
    // re-read under the lock: the file may have changed since it was opened
    let keys = open_keys(common)?;
    let tenants = selected_tenants(&keys.ring, requested)?;
    if tenants.is_empty() {
        bail!("the key ring holds no tenant");
    }
    for tenant in &tenants {
        keys.ring
            .rotate(tenant)
            .with_context(|| format!("rotating tenant {tenant:?}"))?;
    }
    save(&keys, &lock)?;
    let report = serde_json::json!({
        "key_ring": keys.path.display().to_string(),
        "rotated": key_summary(&keys.ring, &tenants)?,
        "next": "SIGHUP every `ordercenter serve` (they also reload on the first value under a version they lack), then run `ordercenter keys reencrypt`",
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------ walking the shards

async fn connect_store(config: &ServiceConfig) -> anyhow::Result<SqlOrderStore> {
    open_store(config, config.max_connections_per_shard.min(4)).await
}

/// One range of `(tenant, id)` keys of a shard after `after`, ascending (the primary key):
/// the store's key-range walk ([`ShardScan::order_keys`]), which the backfill walks too.
async fn next_keys(
    store: &SqlOrderStore,
    shard: ShardId,
    tenant: Option<&TenantId>,
    after: &ShardCheckpoint,
    limit: u32,
) -> anyhow::Result<Vec<(TenantId, OrderId)>> {
    let after = after.after().map_err(|e| anyhow::anyhow!(e.message))?;
    Ok(store
        .order_keys(shard, tenant, after.as_ref(), limit)
        .await
        .map_err(|e| anyhow::anyhow!("range scan of shard {}: {}", shard.0, e.message))?
        .into_iter()
        .map(|key| (key.tenant, key.id))
        .collect())
}

/// Stored values per tenant and key version, over every shard.
#[derive(Debug, Default, Serialize)]
struct Census {
    orders: u64,
    /// tenant -> version -> values
    values: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Values whose ciphertext cannot even be parsed.
    unreadable: u64,
}

/// The tenant config the servers use: it says which KV identifiers hold sealed values.
fn tenant_config(config: &ServiceConfig) -> anyhow::Result<ConfigSet> {
    load_tenants(config)
}

async fn census(
    store: &SqlOrderStore,
    tenants: &ConfigSet,
    tenant: Option<&TenantId>,
    batch: u32,
) -> anyhow::Result<Census> {
    let mut census = Census::default();
    for shard in store.shards() {
        let mut position = ShardCheckpoint::default();
        loop {
            let keys = next_keys(store, shard, tenant, &position, batch).await?;
            let Some((last_tenant, last_id)) = keys.last() else {
                break;
            };
            position.last_tenant = Some(last_tenant.as_str().to_owned());
            position.last_id = Some(last_id.as_i64());
            for (tenant, id) in &keys {
                let Some(order) = store
                    .get(tenant, *id)
                    .await
                    .map_err(|e| anyhow::anyhow!("reading order {id}: {}", e.message))?
                else {
                    continue;
                };
                census.orders += 1;
                let per_version = census.values.entry(tenant.as_str().to_owned()).or_default();
                let kv = kv_sealing(tenants.tenant(tenant).map(|t| t.as_ref()), &order);
                for version in sealed_key_versions(&order, &kv) {
                    match version {
                        Ok(version) => *per_version.entry(version).or_default() += 1,
                        Err(_) => census.unreadable += 1,
                    }
                }
            }
        }
    }
    Ok(census)
}

async fn status(common: &Common, tenant: Option<String>) -> anyhow::Result<ExitCode> {
    let keys = open_keys(common)?;
    let tenant = parse_tenant(tenant)?;
    let tenants = match &tenant {
        Some(tenant) => selected_tenants(&keys.ring, &[tenant.as_str().to_owned()])?,
        None => keys.ring.tenants(),
    };
    let tenants_config = tenant_config(&keys.config)?;
    let store = connect_store(&keys.config).await?;
    let census = census(&store, &tenants_config, tenant.as_ref(), 500).await?;
    store.close().await;
    // versions some stored value names but the key ring does not hold: unreadable data
    let mut missing: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (tenant, versions) in &census.values {
        let held = keys
            .ring
            .tenant(tenant)
            .map(|ring| ring.versions())
            .unwrap_or_default();
        for version in versions.keys() {
            if !held.contains(version) {
                missing.entry(tenant).or_default().push(*version);
            }
        }
    }
    let report = serde_json::json!({
        "key_ring": keys.path.display().to_string(),
        "keys": key_summary(&keys.ring, &tenants)?,
        "orders": census.orders,
        "ciphertexts": census.values,
        "unreadable": census.unreadable,
        "versions_missing_from_key_ring": missing,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------ re-encryption

struct ReencryptOptions {
    tenant: Option<TenantId>,
    batch_size: u32,
    rate: Option<u32>,
    checkpoint: Option<PathBuf>,
    max_passes: u32,
}

#[derive(Debug, Default, Serialize)]
struct ReencryptReport {
    passes: u32,
    orders_scanned: u64,
    /// Orders written back with at least one value re-encrypted.
    orders_rewritten: u64,
    values_rewritten: u64,
    /// Orders whose values were all under the active version already.
    orders_current: u64,
    /// Write-backs refused because a concurrent write moved the row on (then retried).
    conflicts_retried: u64,
    /// Orders given up after that many conflicts in a row.
    gave_up: u64,
    /// Orders with a value that does not decrypt (logged with tenant and id).
    failed: u64,
    /// Keys found by the range scan but gone when read (archived or deleted meanwhile).
    missing: u64,
    /// After the last pass: values still under a version older than the active one.
    remaining_old: BTreeMap<String, BTreeMap<u32, u64>>,
    seconds: f64,
}

async fn reencrypt(common: &Common, options: ReencryptOptions) -> anyhow::Result<ExitCode> {
    let keys = open_keys(common)?;
    // the file is read again before every pass: a rotation meanwhile is followed
    keys.ring.watch_file(&keys.path, Duration::from_secs(1));
    let ring = Arc::new(keys.ring);
    let sealer = Sealer::from_keys(Arc::clone(&ring), &keys.master);
    let config = keys.config;
    let tenants = tenant_config(&config)?;
    let store = connect_store(&config).await?;
    // the shared (Redis) tier, whose entries of rewritten orders are invalidated
    let cache = match &config.redis_url {
        Some(url) => oc_cache::open(Some(url.expose()))
            .await
            .map_err(|e| anyhow::anyhow!("redis cache: {}", e.message))?
            .l2()
            .cloned(),
        None => None,
    };
    let started = Instant::now();
    let mut report = ReencryptReport::default();
    // the archive's pacer: no burst after a slow stretch
    let mut pacer = Pacer::new(options.rate.unwrap_or(0));
    let tenant_filter = options.tenant.as_ref().map(|t| t.as_str().to_owned());
    while report.passes < options.max_passes {
        report.passes += 1;
        let _ = ring.reload();
        let mut checkpoint = match &options.checkpoint {
            Some(path) if report.passes == 1 => BackfillCheckpoint::load(path)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?
                .unwrap_or_default(),
            _ => BackfillCheckpoint::default(),
        };
        if checkpoint.shards.is_empty() {
            checkpoint.tenant = tenant_filter.clone();
        } else if checkpoint.tenant != tenant_filter {
            bail!(
                "the checkpoint is of a run with tenant filter {:?}, not {:?}: use another checkpoint file",
                checkpoint.tenant,
                tenant_filter
            );
        }
        for shard in store.shards() {
            loop {
                let position = checkpoint.shards.entry(shard.0).or_default().clone();
                if position.done {
                    break;
                }
                let keys = next_keys(
                    &store,
                    shard,
                    options.tenant.as_ref(),
                    &position,
                    options.batch_size,
                )
                .await?;
                let Some((last_tenant, last_id)) = keys.last().cloned() else {
                    checkpoint.shards.entry(shard.0).or_default().done = true;
                    save_checkpoint(&checkpoint, options.checkpoint.as_deref()).await?;
                    break;
                };
                for (tenant, id) in &keys {
                    pacer.wait().await;
                    reencrypt_order(
                        &store,
                        &sealer,
                        &tenants,
                        cache.as_ref(),
                        tenant,
                        *id,
                        &mut report,
                    )
                    .await?;
                }
                let entry = checkpoint.shards.entry(shard.0).or_default();
                entry.last_tenant = Some(last_tenant.as_str().to_owned());
                entry.last_id = Some(last_id.as_i64());
                entry.orders += keys.len() as u64;
                save_checkpoint(&checkpoint, options.checkpoint.as_deref()).await?;
            }
        }
        let _ = ring.reload();
        report.remaining_old = old_values(
            &census(&store, &tenants, options.tenant.as_ref(), 500).await?,
            &ring,
        );
        if report.remaining_old.is_empty() {
            break;
        }
        tracing::info!(pass = report.passes, remaining = ?report.remaining_old, "values left under old key versions (raced with writes); walking again");
    }
    store.close().await;
    report.seconds = started.elapsed().as_secs_f64();
    let complete = report.remaining_old.is_empty() && report.failed == 0 && report.gave_up == 0;
    if complete && let Some(path) = &options.checkpoint {
        let _ = std::fs::remove_file(path);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INCOMPLETE)
    })
}

async fn save_checkpoint(
    checkpoint: &BackfillCheckpoint,
    path: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(path) = path {
        checkpoint
            .save(path)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    Ok(())
}

/// Values of the census under a version older than their tenant's active one.
fn old_values(census: &Census, ring: &KeyRing) -> BTreeMap<String, BTreeMap<u32, u64>> {
    let mut old = BTreeMap::new();
    for (tenant, versions) in &census.values {
        let Ok(active) = ring.current_version(tenant) else {
            continue;
        };
        let stale: BTreeMap<u32, u64> = versions
            .iter()
            .filter(|(version, count)| **version < active && **count > 0)
            .map(|(version, count)| (*version, *count))
            .collect();
        if !stale.is_empty() {
            old.insert(tenant.clone(), stale);
        }
    }
    old
}

/// Re-seal one order and write it back if its row is still at the version read; re-read and
/// try again when a concurrent write got there first.
async fn reencrypt_order(
    store: &SqlOrderStore,
    sealer: &Sealer,
    tenants: &ConfigSet,
    cache: Option<&oc_cache::RedisCache>,
    tenant: &TenantId,
    id: OrderId,
    report: &mut ReencryptReport,
) -> anyhow::Result<()> {
    report.orders_scanned += 1;
    for _ in 0..ATTEMPTS_PER_ORDER {
        let Some(mut order) = store
            .get(tenant, id)
            .await
            .map_err(|e| anyhow::anyhow!("reading order {id}: {}", e.message))?
        else {
            report.missing += 1;
            return Ok(());
        };
        let kv = kv_sealing(tenants.tenant(tenant).map(|t| t.as_ref()), &order);
        let resealed = match sealer.reseal(&mut order, &kv) {
            Ok(resealed) => resealed,
            Err(error) => {
                // never the value itself: only where it is and what failed
                tracing::error!(tenant = %tenant, order = %id, %error, "a sealed value does not decrypt; left as it is");
                report.failed += 1;
                return Ok(());
            }
        };
        if resealed.rewritten == 0 {
            report.orders_current += 1;
            return Ok(());
        }
        if store
            .rewrite_sealed(&order)
            .await
            .map_err(|e| anyhow::anyhow!("writing order {id}: {}", e.message))?
        {
            report.orders_rewritten += 1;
            report.values_rewritten += resealed.rewritten;
            if let Some(cache) = cache {
                // the shared cache holds the old ciphertexts at the same version: drop them
                if let Err(error) = cache.invalidate(tenant, id).await {
                    tracing::warn!(order = %id, error = %error.message, "cache invalidation failed; the entry expires by its TTL");
                }
            }
            return Ok(());
        }
        report.conflicts_retried += 1;
    }
    tracing::warn!(tenant = %tenant, order = %id, "gave up after {ATTEMPTS_PER_ORDER} concurrent writes");
    report.gave_up += 1;
    Ok(())
}

// ------------------------------------------------------------------ retiring

/// Re-check the servers' key reports until none is in the way of retiring `version` of
/// `tenants` or `wait` is over; what is still in the way then.
async fn wait_for_servers(
    store: &SqlOrderStore,
    tenants: &[String],
    version: u32,
    wait: Duration,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + wait;
    loop {
        let reports = store
            .key_ring_reports()
            .await
            .map_err(|e| anyhow::anyhow!("reading the servers' key reports: {}", e.message))?;
        let blockers = crate::key_reports::retire_blockers(
            &reports,
            tenants,
            version,
            crate::key_reports::now_ms(),
        );
        if blockers.is_empty() || Instant::now() >= deadline {
            return Ok(blockers);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn retire(
    common: &Common,
    version: u32,
    requested: &[String],
    wait: Duration,
) -> anyhow::Result<ExitCode> {
    let keys = open_keys(common)?;
    let tenants: Vec<String> = selected_tenants(&keys.ring, requested)?
        .into_iter()
        .filter(|tenant| {
            keys.ring
                .tenant(tenant)
                .is_ok_and(|ring| ring.versions().contains(&version))
        })
        .collect();
    if tenants.is_empty() {
        bail!("no selected tenant holds key version {version}");
    }
    let mut refusals = Vec::new();
    for tenant in &tenants {
        if keys.ring.current_version(tenant)? == version {
            refusals.push(format!(
                "version {version} is the active key of tenant {tenant:?}: rotate first"
            ));
        }
    }
    let tenants_config = tenant_config(&keys.config)?;
    let store = connect_store(&keys.config).await?;
    // first the servers: one still sealing under the version would add values the census
    // below cannot have seen
    let servers = wait_for_servers(
        &store,
        &tenants,
        version,
        if refusals.is_empty() {
            wait
        } else {
            Duration::ZERO
        },
    )
    .await?;
    refusals.extend(servers);
    for tenant in &tenants {
        let tenant_id = TenantId::parse(tenant.clone()).map_err(|e| anyhow::anyhow!(e.message))?;
        let census = census(&store, &tenants_config, Some(&tenant_id), 500).await?;
        let used = census
            .values
            .get(tenant)
            .and_then(|versions| versions.get(&version))
            .copied()
            .unwrap_or(0);
        if used > 0 {
            refusals.push(format!(
                "{used} stored value(s) of tenant {tenant:?} still use version {version}: run `ordercenter keys reencrypt` first"
            ));
        }
        if census.unreadable > 0 {
            refusals.push(format!(
                "{} stored value(s) of tenant {tenant:?} cannot be parsed: their version is unknown",
                census.unreadable
            ));
        }
    }
    store.close().await;
    if !refusals.is_empty() {
        for refusal in &refusals {
            eprintln!("refused: {refusal}");
        }
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    // the change itself under the lock, on the file as it is now
    let lock = lock(&keys.path)?;
    let keys = open_keys(common)?;
    for tenant in &tenants {
        keys.ring.retire(tenant, version)?;
    }
    save(&keys, &lock)?;
    let report = serde_json::json!({
        "key_ring": keys.path.display().to_string(),
        "retired": version,
        "keys": key_summary(&keys.ring, &tenants)?,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}
