//! The keys of a process: the master key (from the config, or generated once for a single
//! node), the key ring of the tenants' data keys (created under the key ring file's lock on a
//! single node, required to exist in a cluster), the gate a reloaded tenant config passes
//! (every tenant has a data key), and the SIGHUP reload of the key ring file.
//!
//! `serve`, the workers and `ordercenter keys` all open their keys here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use oc_crypto::{KeyRing, KeyRingFile, MasterKey};
use oc_tenant_config::{ConfigSet, ReloadGate};

use crate::config::ServiceConfig;

/// The master key: `OC_MASTER_KEY`, else the key file, else (single-node only) a key
/// generated once into `data/master.key`.
pub fn master_key(config: &ServiceConfig) -> anyhow::Result<MasterKey> {
    if let Some(value) = &config.master_key {
        return MasterKey::from_encoded(value.expose())
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
pub const KEY_RING_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The tenant ids of a tenant config.
pub fn tenant_names(tenants: &ConfigSet) -> Vec<String> {
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
pub fn key_ring(
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
    ring.watch_file(&config.keyring_file, RELOAD_INTERVAL);
    Ok(Arc::new(ring))
}

/// The check a reloaded tenant config passes before it goes live: every tenant has a data key
/// (else a new tenant would answer 500 to every create with personal data until a restart).
/// Single node: missing keys are created in the key ring file as at start and added to the
/// running ring. Cluster: the file is read again (`keys init` may have added them since); a
/// tenant still without a key refuses the reload, loudly, naming `keys init`.
pub fn key_gate(config: &ServiceConfig, ring: Arc<KeyRing>) -> ReloadGate {
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

/// How often a server reloads its key ring file at most when reads meet a key version it
/// does not hold (an explicit SIGHUP always reloads).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// `serve`: reload the key ring file on every SIGHUP (added versions become readable, the
/// newest becomes active for new writes). A file that cannot be merged is logged and the
/// keys in memory stay as they are.
pub fn spawn_sighup_reloader(ring: Arc<KeyRing>) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let ring = Arc::clone(&ring);
                match tokio::task::spawn_blocking(move || ring.reload()).await {
                    Ok(Ok(added)) => tracing::info!(added, "key ring reloaded"),
                    Ok(Err(error)) => {
                        tracing::error!(%error, "key ring reload failed; keeping the keys in memory")
                    }
                    Err(error) => tracing::error!(%error, "key ring reload task failed"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = ring;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config_of;

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
