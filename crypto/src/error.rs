//! The one error type of this crate.

/// Everything that can go wrong in `oc-crypto`.
///
/// Messages are lowercase and never contain key material or plaintext. [`CryptoError::DecryptFailed`]
/// deliberately says nothing beyond "failed": the caller cannot tell a wrong context (tenant,
/// table, record, field) from a tampered ciphertext or a wrong key, and neither can an attacker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The ciphertext (or its text form) cannot even be parsed: too short, not base64url, ...
    #[error("malformed ciphertext: {0}")]
    Malformed(&'static str),

    /// The ciphertext starts with a format byte this version of the crate does not know.
    #[error("unknown ciphertext format {0:#04x}")]
    UnknownFormat(u8),

    /// The tenant has no data key ring at all.
    #[error("unknown tenant `{tenant}`: no data keys")]
    UnknownTenant {
        /// Tenant id as given by the caller.
        tenant: String,
    },

    /// The tenant exists but has no data key with this version (e.g. the ciphertext was written
    /// by an instance that rotated; reload the key ring and retry).
    #[error("unknown data key: tenant `{tenant}` version {version}")]
    UnknownKey {
        /// Tenant id as given by the caller.
        tenant: String,
        /// Key version read from the ciphertext.
        version: u32,
    },

    /// Authentication failed. Intentionally carries no detail.
    #[error("decryption failed")]
    DecryptFailed,

    /// Decrypted bytes are not UTF-8 (only from the `*_str` helpers; the value was encrypted
    /// with the bytes API).
    #[error("decrypted value is not utf-8")]
    InvalidUtf8,

    /// The master key could not be loaded or has the wrong shape.
    #[error("invalid master key: {0}")]
    InvalidMasterKey(String),

    /// An exported key ring was wrapped under a different master key than the one supplied.
    #[error(
        "master key mismatch: key ring was wrapped by master key `{expected}`, \
         the supplied master key is `{actual}`"
    )]
    MasterKeyMismatch {
        /// Fingerprint recorded in the exported key ring.
        expected: String,
        /// Fingerprint of the supplied master key.
        actual: String,
    },

    /// A wrapped data key did not unwrap: wrong master key or a corrupted/edited key ring.
    #[error(
        "cannot unwrap data key for tenant `{tenant}` version {version}: \
         wrong master key or corrupted key ring"
    )]
    KeyUnwrapFailed {
        /// Tenant of the data key.
        tenant: String,
        /// Version of the data key.
        version: u32,
    },

    /// The exported key ring is structurally invalid (bad JSON, bad base64, duplicate keys,
    /// unsupported format, ...).
    #[error("invalid key ring: {0}")]
    InvalidKeyRing(String),

    /// The same (tenant, version) exists twice with different key material, typically two
    /// instances rotated concurrently. The persisted store must use insert-if-absent.
    #[error("conflicting data key for tenant `{tenant}` version {version}")]
    KeyConflict {
        /// Tenant of the data key.
        tenant: String,
        /// Version of the data key.
        version: u32,
    },

    /// `create_tenant` for a tenant that already has keys.
    #[error("tenant `{tenant}` already has data keys")]
    TenantExists {
        /// Tenant id as given by the caller.
        tenant: String,
    },

    /// `rotate` cannot go past `u32::MAX` versions.
    #[error("key version space exhausted for tenant `{tenant}`")]
    VersionExhausted {
        /// Tenant id as given by the caller.
        tenant: String,
    },

    /// The key ring file cannot be read, locked or replaced (I/O, permissions, another
    /// process holding the lock for too long). The message names the file.
    #[error("key ring file: {0}")]
    KeyRingFile(String),

    /// The operating system random number generator failed.
    #[error("operating system random number generator failed")]
    Rng,
}

/// Result alias used throughout the crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
