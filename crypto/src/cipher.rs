//! Field encryption with AES-256-GCM under the tenant's current data key.
//!
//! # Ciphertext layout (format `0x01`)
//!
//! ```text
//! offset  size  content
//! 0       1     format byte, 0x01
//! 1       4     key version, u32 big-endian (the key id is (tenant from the context, version))
//! 5       12    nonce, random per encryption
//! 17      n+16  AES-256-GCM ciphertext of the n plaintext bytes, followed by the 16-byte tag
//! ```
//!
//! The minimum length is therefore 33 bytes (empty plaintext). The tenant is not stored in the
//! blob; it is bound through the AAD.
//!
//! # Associated data
//!
//! ```text
//! format (1) || key version (u32 BE) || len(tenant) || tenant || len(table) || table
//!            || len(record_id) || record_id || len(field) || field
//! ```
//!
//! where every `len` is a u64 big-endian byte count, so the encoding is injective: a ciphertext
//! copied to another tenant, table, record or field, or with its version byte edited, fails to
//! decrypt.

use std::fmt;
use std::sync::Arc;

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::kdf;
use crate::keyring::{DataKey, KeyRing, TenantKeyRing};

/// Format byte of the current ciphertext layout.
pub const FORMAT_V1: u8 = 0x01;
/// Nonce length in bytes (96 bits).
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Bytes before the AES-GCM ciphertext: format, version, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Length of the ciphertext of an empty plaintext.
pub const MIN_CIPHERTEXT_LEN: usize = HEADER_LEN + TAG_LEN;

/// Where an encrypted value lives. Every part is bound into the AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldContext<'a> {
    /// Tenant id; also selects the data key ring.
    pub tenant: &'a str,
    /// Table (or document type) name, e.g. `orders`.
    pub table: &'a str,
    /// Primary key of the record, as text.
    pub record_id: &'a str,
    /// Field (column) name, e.g. `receiver_phone`.
    pub field: &'a str,
}

impl<'a> FieldContext<'a> {
    /// Builds a context.
    pub fn new(tenant: &'a str, table: &'a str, record_id: &'a str, field: &'a str) -> Self {
        Self {
            tenant,
            table,
            record_id,
            field,
        }
    }

    /// The associated data for this context, format and key version (see the module docs).
    pub fn associated_data(&self, format: u8, key_version: u32) -> Vec<u8> {
        let parts = [self.tenant, self.table, self.record_id, self.field];
        let capacity = 5 + parts.iter().map(|part| 8 + part.len()).sum::<usize>();
        let mut aad = Vec::with_capacity(capacity);
        aad.push(format);
        aad.extend_from_slice(&key_version.to_be_bytes());
        for part in parts {
            kdf::push_length_prefixed(&mut aad, part.as_bytes());
        }
        aad
    }
}

/// The parsed fixed header of a ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CiphertextHeader {
    /// Format byte (always [`FORMAT_V1`] once parsed successfully).
    pub format: u8,
    /// Data key version that encrypted the value.
    pub key_version: u32,
}

/// Parses and validates the header of a binary ciphertext without decrypting it (e.g. for a
/// backfill job looking for values still under an old key version).
pub fn parse_header(ciphertext: &[u8]) -> Result<CiphertextHeader> {
    parse(ciphertext).map(|parsed| parsed.header)
}

/// [`parse_header`] of the text form produced by [`FieldCipher::encrypt_str`] (e.g. for
/// counting stored values per key version).
pub fn parse_header_str(ciphertext: &str) -> Result<CiphertextHeader> {
    parse_header(&decode_text(ciphertext)?)
}

struct Parsed<'a> {
    header: CiphertextHeader,
    nonce: [u8; NONCE_LEN],
    sealed: &'a [u8],
}

fn parse(ciphertext: &[u8]) -> Result<Parsed<'_>> {
    let Some((&format, rest)) = ciphertext.split_first() else {
        return Err(CryptoError::Malformed("empty input"));
    };
    if format != FORMAT_V1 {
        return Err(CryptoError::UnknownFormat(format));
    }
    if ciphertext.len() < MIN_CIPHERTEXT_LEN {
        return Err(CryptoError::Malformed("too short"));
    }
    let (version, rest) = rest
        .split_at_checked(4)
        .ok_or(CryptoError::Malformed("too short"))?;
    let (nonce, sealed) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(CryptoError::Malformed("too short"))?;
    let version: [u8; 4] = version
        .try_into()
        .map_err(|_| CryptoError::Malformed("too short"))?;
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| CryptoError::Malformed("too short"))?;
    Ok(Parsed {
        header: CiphertextHeader {
            format,
            key_version: u32::from_be_bytes(version),
        },
        nonce,
        sealed,
    })
}

fn decode_text(text: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CryptoError::Malformed("not base64url"))
}

/// Encrypts and decrypts field values with the data keys of a [`KeyRing`].
#[derive(Clone)]
pub struct FieldCipher {
    keyring: Arc<KeyRing>,
}

impl fmt::Debug for FieldCipher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("FieldCipher")
            .field("keyring", &self.keyring)
            .finish()
    }
}

impl FieldCipher {
    /// A cipher over a shared key ring (rotations on the ring are seen immediately).
    pub fn new(keyring: Arc<KeyRing>) -> Self {
        Self { keyring }
    }

    /// The key ring.
    pub fn keyring(&self) -> &Arc<KeyRing> {
        &self.keyring
    }

    /// Encrypts with the tenant's current data key and a fresh random nonce.
    pub fn encrypt(&self, context: &FieldContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
        let ring = self.keyring.tenant(context.tenant)?;
        seal(ring.current_key(), context, plaintext)
    }

    /// Decrypts a ciphertext produced by [`FieldCipher::encrypt`] for the same context. Any
    /// malformed, tampered or misplaced input is an `Err`, never a panic.
    pub fn decrypt(
        &self,
        context: &FieldContext<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let parsed = parse(ciphertext)?;
        let ring = self.ring_holding(context.tenant, parsed.header.key_version)?;
        let key = ring
            .key(parsed.header.key_version)
            .ok_or_else(|| CryptoError::UnknownKey {
                tenant: context.tenant.to_owned(),
                version: parsed.header.key_version,
            })?;
        open(key, context, &parsed)
    }

    /// The tenant's keys, reloaded from the watched key ring file once (rate-limited, see
    /// [`KeyRing::refresh_for`]) when they lack `version`: a value written by a process that
    /// rotated before this one heard of it still opens.
    fn ring_holding(&self, tenant: &str, version: u32) -> Result<Arc<TenantKeyRing>> {
        if let Ok(ring) = self.keyring.tenant(tenant)
            && ring.key(version).is_some()
        {
            return Ok(ring);
        }
        // The outcome only matters through what the ring holds afterwards.
        let _ = self.keyring.refresh_for(tenant, Some(version));
        self.keyring.tenant(tenant)
    }

    /// [`FieldCipher::encrypt`] of a string, returned as base64url without padding (safe in
    /// JSON, URLs and text columns).
    pub fn encrypt_str(&self, context: &FieldContext<'_>, plaintext: &str) -> Result<String> {
        let ciphertext = self.encrypt(context, plaintext.as_bytes())?;
        Ok(URL_SAFE_NO_PAD.encode(ciphertext))
    }

    /// Decrypts the text form produced by [`FieldCipher::encrypt_str`].
    pub fn decrypt_str(
        &self,
        context: &FieldContext<'_>,
        ciphertext: &str,
    ) -> Result<Zeroizing<String>> {
        let mut plaintext = self.decrypt(context, &decode_text(ciphertext)?)?;
        // Move the bytes out (no copy) so the String takes over the allocation; on invalid UTF-8
        // the bytes go back under `Zeroizing` before being dropped.
        let bytes = std::mem::take(&mut *plaintext);
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(error) => {
                drop(Zeroizing::new(error.into_bytes()));
                Err(CryptoError::InvalidUtf8)
            }
        }
    }

    /// Re-encrypts under the tenant's current key. `Ok(None)` when the ciphertext already uses
    /// the current version (nothing to write back). The input is always authenticated first, so
    /// a misplaced or tampered value is an error here too.
    pub fn reencrypt(
        &self,
        context: &FieldContext<'_>,
        ciphertext: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let parsed = parse(ciphertext)?;
        let ring = self.ring_holding(context.tenant, parsed.header.key_version)?;
        let current = ring.current_key();
        let key = ring
            .key(parsed.header.key_version)
            .ok_or_else(|| CryptoError::UnknownKey {
                tenant: context.tenant.to_owned(),
                version: parsed.header.key_version,
            })?;
        // Authenticate even when nothing needs rewriting, so a backfill job never reports a
        // misplaced or corrupted value as "up to date".
        let plaintext = open(key, context, &parsed)?;
        if key.version() == current.version() {
            return Ok(None);
        }
        seal(current, context, &plaintext).map(Some)
    }

    /// [`FieldCipher::reencrypt`] on the text form.
    pub fn reencrypt_str(
        &self,
        context: &FieldContext<'_>,
        ciphertext: &str,
    ) -> Result<Option<String>> {
        let reencrypted = self.reencrypt(context, &decode_text(ciphertext)?)?;
        Ok(reencrypted.map(|bytes| URL_SAFE_NO_PAD.encode(bytes)))
    }
}

fn seal(key: &DataKey, context: &FieldContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    kdf::fill_random(&mut nonce)?;
    let aad = context.associated_data(FORMAT_V1, key.version());
    let sealed = key
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // Only possible for plaintexts beyond AES-GCM's 64 GiB limit.
        .map_err(|_| CryptoError::Malformed("plaintext too long"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&key.version().to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open(
    key: &DataKey,
    context: &FieldContext<'_>,
    parsed: &Parsed<'_>,
) -> Result<Zeroizing<Vec<u8>>> {
    let aad = context.associated_data(parsed.header.format, parsed.header.key_version);
    key.cipher()
        .decrypt(
            &Nonce::from(parsed.nonce),
            Payload {
                msg: parsed.sealed,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::DecryptFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_short_and_unknown_inputs() {
        assert_eq!(
            parse_header(&[]),
            Err(CryptoError::Malformed("empty input"))
        );
        assert_eq!(
            parse_header(&[0x02; 40]),
            Err(CryptoError::UnknownFormat(0x02))
        );
        assert_eq!(
            parse_header(&[FORMAT_V1; MIN_CIPHERTEXT_LEN - 1]),
            Err(CryptoError::Malformed("too short"))
        );
        let mut minimal = vec![0u8; MIN_CIPHERTEXT_LEN];
        minimal[0] = FORMAT_V1;
        minimal[1..5].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            parse_header(&minimal),
            Ok(CiphertextHeader {
                format: FORMAT_V1,
                key_version: 7
            })
        );
    }

    #[test]
    fn associated_data_is_injective_over_part_boundaries() {
        let first = FieldContext::new("a|b", "c", "r", "f").associated_data(FORMAT_V1, 1);
        let second = FieldContext::new("a", "b|c", "r", "f").associated_data(FORMAT_V1, 1);
        assert_ne!(first, second);
        let shifted = FieldContext::new("ab", "", "r", "f").associated_data(FORMAT_V1, 1);
        let unshifted = FieldContext::new("a", "b", "r", "f").associated_data(FORMAT_V1, 1);
        assert_ne!(shifted, unshifted);
        assert_ne!(
            FieldContext::new("a", "b", "r", "f").associated_data(FORMAT_V1, 1),
            FieldContext::new("a", "b", "r", "f").associated_data(FORMAT_V1, 2)
        );
    }
}
