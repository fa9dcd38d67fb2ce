//! The key ring file: the wrapped key ring on disk that every process of a deployment reads,
//! and the one way to change it.
//!
//! A change (a new tenant's first key, a rotation, a retirement) rewrites the whole file. Two
//! processes changing it at once from what each read before would each write their own
//! version 1 of a new tenant; the one whose file is replaced holds a key no file has, and what
//! it seals is unreadable after its restart. So every change here:
//!
//! 1. takes an exclusive lock on `<file>.lock` beside the file: an operating-system file lock
//!    (`flock`), released when its holder ends, even by a crash, so no stale lock is left
//!    behind (the lock file itself stays; it holds nothing);
//! 2. reads the file again under the lock and changes only what is still missing;
//! 3. replaces the file atomically: a temporary file of its own (owner-only), fsync, rename
//!    over the file, fsync of the directory.
//!
//! Readers take no lock: the file is replaced, never written in place, so a reader sees the
//! old ring or the new one. The lock works between processes on one host and on file systems
//! that pass `flock` through (local disks, a volume shared by containers on one host); not
//! across hosts on NFS.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{CryptoError, Result};
use crate::keyring::{KeyRing, WrappedKeyRing};

/// How often a waiting [`KeyRingFile::lock`] tries again.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// The key ring file at one path. See the module docs.
#[derive(Debug, Clone)]
pub struct KeyRingFile {
    path: PathBuf,
}

/// The exclusive lock of a key ring file; released on drop.
#[derive(Debug)]
pub struct KeyRingFileLock {
    // closing the file releases the flock
    _file: File,
    path: PathBuf,
}

impl KeyRingFileLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What [`KeyRingFile::add_missing_tenants`] found and did.
#[derive(Debug)]
pub struct TenantKeys {
    /// The key ring as the file holds it now.
    pub ring: KeyRing,
    /// Tenants that got their first key (version 1) just now, sorted.
    pub created: Vec<String>,
}

fn file_error(path: &Path, what: &str, error: impl std::fmt::Display) -> CryptoError {
    CryptoError::KeyRingFile(format!("{what} {}: {error}", path.display()))
}

impl KeyRingFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<file>.lock` (`keyring.json` → `keyring.lock`).
    pub fn lock_path(&self) -> PathBuf {
        self.path.with_extension("lock")
    }

    /// The ring the file holds, opened with the key-encryption key of `like` (see
    /// [`KeyRing::empty_like`]); `None` when there is no file. Every key is unwrapped, so a
    /// wrong master key or a damaged file is an error here.
    pub fn read(&self, like: &KeyRing) -> Result<Option<KeyRing>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(file_error(&self.path, "reading", error)),
        };
        let ring = like.empty_like();
        ring.merge(&WrappedKeyRing::from_json(&text)?)?;
        Ok(Some(ring))
    }

    /// Takes the exclusive lock, waiting up to `wait` for another holder to finish.
    pub fn lock(&self, wait: Duration) -> Result<KeyRingFileLock> {
        let path = self.lock_path();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(|error| file_error(&path, "cannot open the key ring lock", error))?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(KeyRingFileLock { _file: file, path }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(CryptoError::KeyRingFile(format!(
                        "the key ring lock {} is still held after {wait:?}: another process is \
                         changing the key ring (a `keys` command or a starting server)",
                        path.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(error)) => {
                    return Err(file_error(&path, "cannot take the key ring lock", error));
                }
            }
        }
    }

    /// Replaces the file with `ring` (wrapped keys only). Needs the lock: a write without it
    /// could replace another process's change.
    pub fn write(&self, ring: &KeyRing, lock: &KeyRingFileLock) -> Result<()> {
        debug_assert_eq!(lock.path, self.lock_path());
        let json = ring.export().to_json()?;
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&directory)
            .map_err(|error| file_error(&directory, "creating", error))?;
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "keyring".into());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        let temporary = directory.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
        let written = (|| {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temporary)?;
            file.write_all(json.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)?;
            // the rename itself is durable once the directory is
            File::open(&directory)?.sync_all()
        })();
        written.map_err(|error| {
            let _ = std::fs::remove_file(&temporary);
            file_error(&self.path, "writing", error)
        })
    }

    /// Makes sure the file holds a data key for each of `tenants`: those without one get
    /// version 1, under the lock and after reading the file again, so processes doing this at
    /// once agree on every key. A file that already holds them all is only read (no lock, no
    /// write: a read-only file is fine then). Creates the file when there is none. `like`
    /// gives the key-encryption key (see [`KeyRing::empty_like`]).
    pub fn add_missing_tenants(
        &self,
        like: &KeyRing,
        tenants: &[String],
        wait: Duration,
    ) -> Result<TenantKeys> {
        if let Some(ring) = self.read(like)?
            && tenants.iter().all(|tenant| ring.has_tenant(tenant))
        {
            return Ok(TenantKeys {
                ring,
                created: Vec::new(),
            });
        }
        let lock = self.lock(wait)?;
        let (ring, existed) = match self.read(like)? {
            Some(ring) => (ring, true),
            None => (like.empty_like(), false),
        };
        let mut created = Vec::new();
        for tenant in tenants {
            if !ring.has_tenant(tenant) {
                ring.create_tenant(tenant)?;
                created.push(tenant.clone());
            }
        }
        if !created.is_empty() || !existed {
            self.write(&ring, &lock)?;
        }
        created.sort();
        created.dedup();
        Ok(TenantKeys { ring, created })
    }
}
