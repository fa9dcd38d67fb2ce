//! Per-tenant, versioned data keys (DEKs), wrapped by the key-encryption key derived from the
//! master key.
//!
//! A [`KeyRing`] holds the unwrapped keys of many tenants in memory (as ready AES key
//! schedules, zeroized on drop) and can export/import the *wrapped* form as JSON
//! ([`WrappedKeyRing`]) for persistence. Plaintext data keys are never serialized.
//!
//! All methods take `&self` (an internal `RwLock` guards the tenant map; readers clone an
//! `Arc<TenantKeyRing>` snapshot and release the lock at once), so one `Arc<KeyRing>` can be
//! shared by every request handler while an admin task rotates keys.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::kdf;
use crate::master::MasterKey;

/// Length of a data key in bytes (AES-256).
pub const DATA_KEY_LEN: usize = 32;
/// Version of the [`WrappedKeyRing`] JSON layout.
pub const WRAPPED_KEY_RING_FORMAT: u32 = 1;

const WRAP_NONCE_LEN: usize = 12;
const WRAP_TAG_LEN: usize = 16;
const WRAPPED_LEN: usize = WRAP_NONCE_LEN + DATA_KEY_LEN + WRAP_TAG_LEN;

/// One wrapped data key, as persisted: `wrapped_b64` is base64url (no padding) of
/// `nonce (12) || AES-256-GCM(KEK, dek) (32) || tag (16)` with
/// AAD `"oc-dek|v1|{tenant}|{version}"`, so a wrapped key cannot be relabelled to another tenant
/// or version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedDataKey {
    /// Tenant the key belongs to.
    pub tenant: String,
    /// Key version, starting at 1, increasing by one per rotation.
    pub version: u32,
    /// Creation time (seconds since the Unix epoch), for rotation policies.
    pub created_at_unix: u64,
    /// The wrapped key material (see the type docs).
    pub wrapped_b64: String,
}

/// The exportable form of a [`KeyRing`]: safe to store in a file or a database column (it holds
/// only wrapped keys and the master key's public fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKeyRing {
    /// Layout version, [`WRAPPED_KEY_RING_FORMAT`].
    pub format: u32,
    /// [`MasterKey::fingerprint`] of the master key the keys are wrapped under.
    pub master_key_id: String,
    /// All data keys, sorted by tenant then version.
    pub keys: Vec<WrappedDataKey>,
}

impl WrappedKeyRing {
    /// Serializes to pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|error| CryptoError::InvalidKeyRing(error.to_string()))
    }

    /// Parses JSON produced by [`WrappedKeyRing::to_json`].
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|error| CryptoError::InvalidKeyRing(error.to_string()))
    }
}

/// One unwrapped data key: its AES-256-GCM instance plus the wrapped form for re-export.
pub(crate) struct DataKey {
    wrapped: WrappedDataKey,
    cipher: Aes256Gcm,
}

impl DataKey {
    pub(crate) fn version(&self) -> u32 {
        self.wrapped.version
    }

    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DataKey")
            .field("tenant", &self.wrapped.tenant)
            .field("version", &self.wrapped.version)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The data keys of one tenant (never empty). An immutable snapshot: rotation builds a new one.
#[derive(Debug, Clone)]
pub struct TenantKeyRing {
    tenant: String,
    keys: BTreeMap<u32, Arc<DataKey>>,
    current: Arc<DataKey>,
}

impl TenantKeyRing {
    fn with_first_key(tenant: &str, key: DataKey) -> Self {
        let key = Arc::new(key);
        Self {
            tenant: tenant.to_owned(),
            keys: BTreeMap::from([(key.version(), Arc::clone(&key))]),
            current: key,
        }
    }

    fn with_key(&self, key: DataKey) -> Self {
        let key = Arc::new(key);
        let mut keys = self.keys.clone();
        keys.insert(key.version(), Arc::clone(&key));
        let current = if key.version() > self.current.version() {
            key
        } else {
            Arc::clone(&self.current)
        };
        Self {
            tenant: self.tenant.clone(),
            keys,
            current,
        }
    }

    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The newest version; new encryptions use it.
    pub fn current_version(&self) -> u32 {
        self.current.version()
    }

    /// All versions still held (ascending).
    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// The wrapped form of all keys of this tenant (ascending version).
    pub fn wrapped_keys(&self) -> Vec<WrappedDataKey> {
        self.keys.values().map(|key| key.wrapped.clone()).collect()
    }

    pub(crate) fn current_key(&self) -> &DataKey {
        &self.current
    }

    pub(crate) fn key(&self, version: u32) -> Option<&DataKey> {
        self.keys.get(&version).map(|key| key.as_ref())
    }
}

/// Data keys of many tenants, wrapped under one master key. See the module docs.
pub struct KeyRing {
    master_key_id: String,
    kek: Aes256Gcm,
    tenants: RwLock<BTreeMap<String, Arc<TenantKeyRing>>>,
    /// Where [`KeyRing::refresh_for`] reloads from when a ciphertext names a key this ring
    /// does not hold (another process rotated), and how often it may try.
    source: Mutex<Option<FileSource>>,
}

/// The key ring file a running process reloads from (see [`KeyRing::watch_file`]).
#[derive(Debug)]
struct FileSource {
    path: PathBuf,
    min_interval: Duration,
    last_attempt: Option<Instant>,
}

/// What [`KeyRing::refresh_for`] did, for the caller's logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The key is held now (already, after another caller's reload, or after this one).
    Found,
    /// The file was reloaded (or the last reload was too recent) and the key is still unknown.
    Missing,
    /// No file to reload from.
    NoSource,
    /// Reloading failed (unreadable file, wrong master key, conflicting key material).
    Failed(CryptoError),
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("KeyRing")
            .field("master_key_id", &self.master_key_id)
            .field("tenants", &self.read().len())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// An empty key ring. The master key is only used to derive the key-encryption key; it is
    /// not retained.
    pub fn new(master: &MasterKey) -> Self {
        let kek = master.derive_kek();
        Self {
            master_key_id: master.fingerprint(),
            kek: Aes256Gcm::new(&(*kek).into()),
            tenants: RwLock::new(BTreeMap::new()),
            source: Mutex::new(None),
        }
    }

    /// An empty ring that wraps under the same key-encryption key as this one (same master
    /// key): to open a key ring file without the master key at hand.
    pub fn empty_like(&self) -> Self {
        Self {
            master_key_id: self.master_key_id.clone(),
            kek: self.kek.clone(),
            tenants: RwLock::new(BTreeMap::new()),
            source: Mutex::new(None),
        }
    }

    /// Reads a key ring file written by [`WrappedKeyRing::to_json`] and [`KeyRing::merge`]s it:
    /// keys this ring does not hold yet are added, the newest version of each tenant becomes
    /// current. Keys missing from the file (retired) stay in memory until the process restarts:
    /// dropping a key under a running reader could only turn reads into errors. Returns how
    /// many keys were added.
    pub fn merge_file(&self, path: &Path) -> Result<usize> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            CryptoError::InvalidKeyRing(format!("key ring file {}: {error}", path.display()))
        })?;
        self.merge(&WrappedKeyRing::from_json(&text)?)
    }

    /// Remembers the key ring file this process loaded, so that [`KeyRing::refresh_for`] (and
    /// through it [`crate::FieldCipher::decrypt`]) can reload it when a ciphertext names a key
    /// version written by a process that rotated. Reloads are at most one per `min_interval`.
    pub fn watch_file(&self, path: impl Into<PathBuf>, min_interval: Duration) {
        *self.source_lock() = Some(FileSource {
            path: path.into(),
            min_interval,
            last_attempt: None,
        });
    }

    /// Reloads the watched file now (e.g. on SIGHUP), regardless of the rate limit. Returns
    /// how many keys were added; an error when no file is watched or it cannot be merged (the
    /// ring is then unchanged).
    pub fn reload(&self) -> Result<usize> {
        let mut source = self.source_lock();
        let Some(source) = source.as_mut() else {
            return Err(CryptoError::InvalidKeyRing(
                "no key ring file to reload from".into(),
            ));
        };
        source.last_attempt = Some(Instant::now());
        self.merge_file(&source.path)
    }

    /// Makes sure the ring holds `(tenant, version)` (`version: None`: any key of the tenant),
    /// reloading the watched file once if it does not, at most once per the watch interval
    /// across all callers. Concurrent callers wait for one reload instead of each reading
    /// the file.
    pub fn refresh_for(&self, tenant: &str, version: Option<u32>) -> Refresh {
        let holds = || {
            self.read().get(tenant).is_some_and(|ring| match version {
                Some(version) => ring.keys.contains_key(&version),
                None => true,
            })
        };
        if holds() {
            return Refresh::Found;
        }
        let mut source = self.source_lock();
        // Another caller may have reloaded while this one waited for the lock.
        if holds() {
            return Refresh::Found;
        }
        let Some(source) = source.as_mut() else {
            return Refresh::NoSource;
        };
        if source
            .last_attempt
            .is_some_and(|last| last.elapsed() < source.min_interval)
        {
            return Refresh::Missing;
        }
        source.last_attempt = Some(Instant::now());
        match self.merge_file(&source.path) {
            Ok(_) if holds() => Refresh::Found,
            Ok(_) => Refresh::Missing,
            Err(error) => Refresh::Failed(error),
        }
    }

    /// Rebuilds a key ring from its wrapped export, unwrapping every key up front so a wrong
    /// master key or a corrupted export fails at startup, not on the first request.
    pub fn import(master: &MasterKey, wrapped: &WrappedKeyRing) -> Result<Self> {
        let ring = Self::new(master);
        ring.merge(wrapped)?;
        Ok(ring)
    }

    /// Adds the keys of `wrapped` that this ring does not hold yet (e.g. after another instance
    /// rotated a tenant and persisted the new key). Idempotent; all-or-nothing. Returns how
    /// many keys were added. The same (tenant, version) with different key material is a
    /// [`CryptoError::KeyConflict`].
    pub fn merge(&self, wrapped: &WrappedKeyRing) -> Result<usize> {
        if wrapped.format != WRAPPED_KEY_RING_FORMAT {
            return Err(CryptoError::InvalidKeyRing(format!(
                "unsupported format {}, expected {WRAPPED_KEY_RING_FORMAT}",
                wrapped.format
            )));
        }
        if wrapped.master_key_id != self.master_key_id {
            return Err(CryptoError::MasterKeyMismatch {
                expected: wrapped.master_key_id.clone(),
                actual: self.master_key_id.clone(),
            });
        }
        let mut seen = BTreeMap::new();
        for entry in &wrapped.keys {
            if let Some(previous) = seen.insert((entry.tenant.as_str(), entry.version), entry)
                && previous.wrapped_b64 != entry.wrapped_b64
            {
                return Err(CryptoError::KeyConflict {
                    tenant: entry.tenant.clone(),
                    version: entry.version,
                });
            }
        }

        // Unwrap outside the lock (the expensive, fallible part), then apply atomically.
        let mut unwrapped = Vec::new();
        {
            let tenants = self.read();
            for entry in seen.into_values() {
                match tenants
                    .get(&entry.tenant)
                    .and_then(|ring| ring.keys.get(&entry.version))
                {
                    Some(existing) if existing.wrapped.wrapped_b64 == entry.wrapped_b64 => {}
                    Some(_) => {
                        return Err(CryptoError::KeyConflict {
                            tenant: entry.tenant.clone(),
                            version: entry.version,
                        });
                    }
                    None => unwrapped.push(self.unwrap_key(entry)?),
                }
            }
        }

        let mut tenants = self.write();
        for key in &unwrapped {
            if let Some(existing) = tenants
                .get(&key.wrapped.tenant)
                .and_then(|ring| ring.keys.get(&key.version()))
                && existing.wrapped.wrapped_b64 != key.wrapped.wrapped_b64
            {
                return Err(CryptoError::KeyConflict {
                    tenant: key.wrapped.tenant.clone(),
                    version: key.version(),
                });
            }
        }
        let added = unwrapped.len();
        for key in unwrapped {
            let tenant = key.wrapped.tenant.clone();
            let ring = match tenants.get(&tenant) {
                Some(ring) => ring.with_key(key),
                None => TenantKeyRing::with_first_key(&tenant, key),
            };
            tenants.insert(tenant, Arc::new(ring));
        }
        Ok(added)
    }

    /// The wrapped form of every key, for persistence.
    pub fn export(&self) -> WrappedKeyRing {
        let keys = self
            .read()
            .values()
            .flat_map(|ring| ring.wrapped_keys())
            .collect();
        WrappedKeyRing {
            format: WRAPPED_KEY_RING_FORMAT,
            master_key_id: self.master_key_id.clone(),
            keys,
        }
    }

    /// Creates version 1 of a new tenant's data key and returns it (`1`).
    pub fn create_tenant(&self, tenant: &str) -> Result<u32> {
        let mut tenants = self.write();
        if tenants.contains_key(tenant) {
            return Err(CryptoError::TenantExists {
                tenant: tenant.to_owned(),
            });
        }
        let key = self.generate_key(tenant, 1)?;
        tenants.insert(
            tenant.to_owned(),
            Arc::new(TenantKeyRing::with_first_key(tenant, key)),
        );
        Ok(1)
    }

    /// Adds a new data key version for the tenant and makes it current. Returns the new version.
    /// Older versions stay available for decryption.
    pub fn rotate(&self, tenant: &str) -> Result<u32> {
        let mut tenants = self.write();
        let ring = tenants
            .get(tenant)
            .ok_or_else(|| CryptoError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        let version =
            ring.current_version()
                .checked_add(1)
                .ok_or_else(|| CryptoError::VersionExhausted {
                    tenant: tenant.to_owned(),
                })?;
        let key = self.generate_key(tenant, version)?;
        let rotated = Arc::new(ring.with_key(key));
        tenants.insert(tenant.to_owned(), rotated);
        Ok(version)
    }

    /// Drops an old key version (after every ciphertext under it was re-encrypted). The current
    /// version cannot be retired. Returns whether the version existed.
    pub fn retire(&self, tenant: &str, version: u32) -> Result<bool> {
        let mut tenants = self.write();
        let ring = tenants
            .get(tenant)
            .ok_or_else(|| CryptoError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        if version == ring.current_version() {
            return Err(CryptoError::InvalidKeyRing(format!(
                "cannot retire the current key version {version} of tenant `{tenant}`"
            )));
        }
        if !ring.keys.contains_key(&version) {
            return Ok(false);
        }
        let mut retired = TenantKeyRing::clone(ring);
        retired.keys.remove(&version);
        tenants.insert(tenant.to_owned(), Arc::new(retired));
        Ok(true)
    }

    /// The newest key version of the tenant.
    pub fn current_version(&self, tenant: &str) -> Result<u32> {
        Ok(self.tenant(tenant)?.current_version())
    }

    /// A snapshot of one tenant's keys.
    pub fn tenant(&self, tenant: &str) -> Result<Arc<TenantKeyRing>> {
        self.read()
            .get(tenant)
            .cloned()
            .ok_or_else(|| CryptoError::UnknownTenant {
                tenant: tenant.to_owned(),
            })
    }

    /// Whether the tenant has keys.
    pub fn has_tenant(&self, tenant: &str) -> bool {
        self.read().contains_key(tenant)
    }

    /// All tenant ids (sorted).
    pub fn tenants(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Fingerprint of the master key this ring wraps under.
    pub fn master_key_id(&self) -> &str {
        &self.master_key_id
    }

    fn generate_key(&self, tenant: &str, version: u32) -> Result<DataKey> {
        let mut dek = Zeroizing::new([0u8; DATA_KEY_LEN]);
        kdf::fill_random(dek.as_mut_slice())?;
        let mut nonce = [0u8; WRAP_NONCE_LEN];
        kdf::fill_random(&mut nonce)?;
        let aad = dek_aad(tenant, version);
        let sealed = self
            .kek
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: dek.as_slice(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::InvalidKeyRing("data key wrapping failed".into()))?;
        let mut wrapped = Vec::with_capacity(WRAPPED_LEN);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&sealed);
        Ok(DataKey {
            wrapped: WrappedDataKey {
                tenant: tenant.to_owned(),
                version,
                created_at_unix: now_unix(),
                wrapped_b64: URL_SAFE_NO_PAD.encode(&wrapped),
            },
            cipher: Aes256Gcm::new(&(*dek).into()),
        })
    }

    fn unwrap_key(&self, entry: &WrappedDataKey) -> Result<DataKey> {
        if entry.version == 0 {
            return Err(CryptoError::InvalidKeyRing(format!(
                "tenant `{}` has a key with version 0 (versions start at 1)",
                entry.tenant
            )));
        }
        let wrapped = URL_SAFE_NO_PAD.decode(&entry.wrapped_b64).map_err(|_| {
            CryptoError::InvalidKeyRing(format!(
                "tenant `{}` version {}: wrapped key is not base64url",
                entry.tenant, entry.version
            ))
        })?;
        if wrapped.len() != WRAPPED_LEN {
            return Err(CryptoError::InvalidKeyRing(format!(
                "tenant `{}` version {}: wrapped key has {} bytes, expected {WRAPPED_LEN}",
                entry.tenant,
                entry.version,
                wrapped.len()
            )));
        }
        let (nonce, sealed) = wrapped.split_at(WRAP_NONCE_LEN);
        let nonce: [u8; WRAP_NONCE_LEN] = nonce.try_into().map_err(|_| {
            CryptoError::InvalidKeyRing("wrapped key nonce has the wrong length".into())
        })?;
        let aad = dek_aad(&entry.tenant, entry.version);
        let unwrap_failed = || CryptoError::KeyUnwrapFailed {
            tenant: entry.tenant.clone(),
            version: entry.version,
        };
        let dek = Zeroizing::new(
            self.kek
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| unwrap_failed())?,
        );
        let cipher = Aes256Gcm::new_from_slice(&dek).map_err(|_| unwrap_failed())?;
        Ok(DataKey {
            wrapped: entry.clone(),
            cipher,
        })
    }

    fn source_lock(&self) -> std::sync::MutexGuard<'_, Option<FileSource>> {
        self.source.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<TenantKeyRing>>> {
        // A panic while holding the lock cannot leave the map half-updated (every update is a
        // single insert of a complete snapshot), so a poisoned lock is safe to keep using.
        self.tenants.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<TenantKeyRing>>> {
        self.tenants.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// AAD for wrapping a data key. Unambiguous although `tenant` may contain `|`: the version is
/// the decimal after the last `|`.
fn dek_aad(tenant: &str, version: u32) -> Vec<u8> {
    format!("oc-dek|v1|{tenant}|{version}").into_bytes()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; 32])
    }

    #[test]
    fn create_rotate_and_versions() {
        let ring = KeyRing::new(&master(1));
        assert_eq!(ring.create_tenant("t1").unwrap(), 1);
        assert!(matches!(
            ring.create_tenant("t1"),
            Err(CryptoError::TenantExists { .. })
        ));
        assert_eq!(ring.rotate("t1").unwrap(), 2);
        assert_eq!(ring.rotate("t1").unwrap(), 3);
        assert_eq!(ring.current_version("t1").unwrap(), 3);
        assert_eq!(ring.tenant("t1").unwrap().versions(), vec![1, 2, 3]);
        assert!(matches!(
            ring.rotate("nobody"),
            Err(CryptoError::UnknownTenant { .. })
        ));
        assert!(matches!(
            ring.current_version("nobody"),
            Err(CryptoError::UnknownTenant { .. })
        ));
        assert_eq!(ring.tenants(), vec!["t1".to_owned()]);
    }

    #[test]
    fn export_holds_no_plaintext_key_and_round_trips() {
        let ring = KeyRing::new(&master(1));
        ring.create_tenant("t1").unwrap();
        ring.create_tenant("t2").unwrap();
        ring.rotate("t2").unwrap();
        let exported = ring.export();
        assert_eq!(exported.keys.len(), 3);
        let json = exported.to_json().unwrap();
        let parsed = WrappedKeyRing::from_json(&json).unwrap();
        assert_eq!(parsed, exported);
        let imported = KeyRing::import(&master(1), &parsed).unwrap();
        assert_eq!(imported.export(), exported);
        assert_eq!(imported.current_version("t2").unwrap(), 2);
        assert!(format!("{:?}", imported.tenant("t1").unwrap()).contains("<redacted>"));
    }

    #[test]
    fn wrong_master_key_is_reported_clearly() {
        let ring = KeyRing::new(&master(1));
        ring.create_tenant("t1").unwrap();
        let exported = ring.export();

        let mismatch = KeyRing::import(&master(2), &exported).unwrap_err();
        assert!(
            matches!(mismatch, CryptoError::MasterKeyMismatch { .. }),
            "{mismatch}"
        );
        assert!(mismatch.to_string().contains("master key mismatch"));

        // Even if the fingerprint is forged to match, unwrapping fails (AEAD), naming the key.
        let mut forged = exported.clone();
        forged.master_key_id = master(2).fingerprint();
        let unwrap = KeyRing::import(&master(2), &forged).unwrap_err();
        assert_eq!(
            unwrap,
            CryptoError::KeyUnwrapFailed {
                tenant: "t1".into(),
                version: 1
            }
        );
        assert!(unwrap.to_string().contains("wrong master key"));
    }

    #[test]
    fn wrapped_keys_cannot_be_relabelled() {
        let ring = KeyRing::new(&master(1));
        ring.create_tenant("t1").unwrap();
        ring.rotate("t1").unwrap();
        let mut exported = ring.export();
        exported.keys[0].tenant = "t2".into();
        assert!(matches!(
            KeyRing::import(&master(1), &exported),
            Err(CryptoError::KeyUnwrapFailed { .. })
        ));
        let mut exported = ring.export();
        exported.keys.swap(0, 1);
        let (first_version, second_version) = (exported.keys[0].version, exported.keys[1].version);
        exported.keys[0].version = second_version;
        exported.keys[1].version = first_version;
        assert!(matches!(
            KeyRing::import(&master(1), &exported),
            Err(CryptoError::KeyUnwrapFailed { .. })
        ));
    }

    #[test]
    fn corrupted_exports_are_errors() {
        let ring = KeyRing::new(&master(1));
        ring.create_tenant("t1").unwrap();
        let good = ring.export();

        let mut bad_base64 = good.clone();
        bad_base64.keys[0].wrapped_b64 = "***".into();
        let mut short = good.clone();
        short.keys[0].wrapped_b64 = "AAAA".into();
        let mut zero_version = good.clone();
        zero_version.keys[0].version = 0;
        let mut bad_format = good.clone();
        bad_format.format = 99;
        for broken in [bad_base64, short, zero_version, bad_format] {
            assert!(matches!(
                KeyRing::import(&master(1), &broken),
                Err(CryptoError::InvalidKeyRing(_))
            ));
        }
        assert!(matches!(
            WrappedKeyRing::from_json("{"),
            Err(CryptoError::InvalidKeyRing(_))
        ));
        assert!(matches!(
            WrappedKeyRing::from_json(r#"{"format":1,"master_key_id":"x","keys":[],"extra":1}"#),
            Err(CryptoError::InvalidKeyRing(_))
        ));
    }

    #[test]
    fn merge_adds_new_versions_and_detects_conflicts() {
        let writer = KeyRing::new(&master(1));
        writer.create_tenant("t1").unwrap();
        let reader = KeyRing::import(&master(1), &writer.export()).unwrap();
        writer.rotate("t1").unwrap();
        writer.create_tenant("t2").unwrap();
        assert_eq!(reader.merge(&writer.export()).unwrap(), 2);
        assert_eq!(reader.merge(&writer.export()).unwrap(), 0);
        assert_eq!(reader.current_version("t1").unwrap(), 2);
        assert!(reader.has_tenant("t2"));

        // Two instances that rotated independently produce different v3 keys.
        reader.rotate("t1").unwrap();
        writer.rotate("t1").unwrap();
        let error = reader.merge(&writer.export()).unwrap_err();
        assert_eq!(
            error,
            CryptoError::KeyConflict {
                tenant: "t1".into(),
                version: 3
            }
        );

        let mut duplicated = writer.export();
        let mut twin = duplicated.keys[0].clone();
        twin.wrapped_b64 = duplicated.keys[1].wrapped_b64.clone();
        duplicated.keys.push(twin);
        assert!(matches!(
            KeyRing::import(&master(1), &duplicated),
            Err(CryptoError::KeyConflict { .. })
        ));
    }

    #[test]
    fn retire_drops_old_versions_only() {
        let ring = KeyRing::new(&master(1));
        ring.create_tenant("t1").unwrap();
        ring.rotate("t1").unwrap();
        assert!(matches!(
            ring.retire("t1", 2),
            Err(CryptoError::InvalidKeyRing(_))
        ));
        assert!(ring.retire("t1", 1).unwrap());
        assert!(!ring.retire("t1", 1).unwrap());
        assert_eq!(ring.tenant("t1").unwrap().versions(), vec![2]);
    }

    #[test]
    fn dek_aad_format() {
        assert_eq!(dek_aad("acme", 7), b"oc-dek|v1|acme|7".to_vec());
    }
}
