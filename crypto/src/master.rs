//! The master key: the root of the key hierarchy.
//!
//! The master key never encrypts field data. It is only used, through labelled HMAC-SHA256
//! derivations, to obtain
//! - the key-encryption key (KEK) that wraps tenant data keys (label `oc-kek|v1`),
//! - per-tenant blind-index keys (label `oc-blind-index|v1|{tenant}`),
//! - a public fingerprint that identifies the master key in exported key rings
//!   (label `oc-master-key-id|v1`).

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{CryptoError, Result};
use crate::kdf;

/// Length of the master key in bytes (AES-256 / HMAC-SHA256 strength).
pub const MASTER_KEY_LEN: usize = 32;

const KEK_LABEL: &[u8] = b"oc-kek|v1";
const FINGERPRINT_LABEL: &[u8] = b"oc-master-key-id|v1";

/// The 32-byte master key. `Debug` is redacted, the bytes are zeroized on drop, and the type is
/// deliberately not `Clone`: share it with `Arc<MasterKey>`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    bytes: [u8; MASTER_KEY_LEN],
}

impl MasterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// Generates a fresh random master key (for provisioning and tests).
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; MASTER_KEY_LEN];
        kdf::fill_random(&mut bytes)?;
        Ok(Self { bytes })
    }

    /// Parses a textual key: 64 hex digits, or base64 (standard or url-safe alphabet, padded or
    /// not) of exactly 32 bytes. Surrounding whitespace is ignored.
    pub fn from_encoded(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CryptoError::InvalidMasterKey("key text is empty".into()));
        }
        let decoded =
            if text.len() == 2 * MASTER_KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                decode_hex(text)
            } else {
                decode_base64_any(text)
            }
            .ok_or_else(|| {
                CryptoError::InvalidMasterKey("expected 64 hex digits or base64 of 32 bytes".into())
            })?;
        Self::from_slice(&decoded)
    }

    /// Reads the key text from the environment variable `name` (see [`MasterKey::from_encoded`]).
    pub fn from_env(name: &str) -> Result<Self> {
        let value = std::env::var(name).map_err(|error| {
            CryptoError::InvalidMasterKey(format!("environment variable {name}: {error}"))
        })?;
        let value = Zeroizing::new(value);
        Self::from_encoded(&value)
    }

    /// Reads the key from a file: either exactly 32 raw bytes, or key text as accepted by
    /// [`MasterKey::from_encoded`] (a trailing newline is fine).
    pub fn from_file(path: &Path) -> Result<Self> {
        let contents = Zeroizing::new(std::fs::read(path).map_err(|error| {
            CryptoError::InvalidMasterKey(format!("key file {}: {error}", path.display()))
        })?);
        if contents.len() == MASTER_KEY_LEN {
            // 32 bytes can never be a text encoding of 32 bytes (hex is 64, base64 is >= 43).
            return Self::from_slice(&contents);
        }
        let text = std::str::from_utf8(&contents).map_err(|_| {
            CryptoError::InvalidMasterKey(format!(
                "key file {}: neither 32 raw bytes nor utf-8 key text",
                path.display()
            ))
        })?;
        Self::from_encoded(text)
    }

    /// Loads the key from the variable `value_var` if it is set, otherwise from the file named
    /// by the variable `file_var` (the usual `APP_MASTER_KEY` / `APP_MASTER_KEY_FILE` pair).
    pub fn from_env_or_file(value_var: &str, file_var: &str) -> Result<Self> {
        if std::env::var_os(value_var).is_some() {
            return Self::from_env(value_var);
        }
        match std::env::var_os(file_var) {
            Some(path) => Self::from_file(Path::new(&path)),
            None => Err(CryptoError::InvalidMasterKey(format!(
                "neither {value_var} nor {file_var} is set"
            ))),
        }
    }

    /// Base64 (standard, padded) of the key, for provisioning a freshly generated key. The
    /// returned string is zeroized on drop; never log it.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes))
    }

    /// A public, stable fingerprint of this key (16 hex chars of a labelled HMAC). Recorded in
    /// exported key rings so that loading them with the wrong master key gives a clear error.
    /// It reveals nothing about the key.
    pub fn fingerprint(&self) -> String {
        let tag = kdf::hmac_sha256(&self.bytes, FINGERPRINT_LABEL);
        tag[..8].iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The key-encryption key used to wrap data keys (key separation: the master key itself is
    /// never used as an AES key).
    pub(crate) fn derive_kek(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(kdf::hmac_sha256(&self.bytes, KEK_LABEL))
    }

    /// HMAC-SHA256(master, label) for other derivations (blind index).
    pub(crate) fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(kdf::hmac_sha256(&self.bytes, label))
    }

    fn from_slice(bytes: &[u8]) -> Result<Self> {
        let bytes: [u8; MASTER_KEY_LEN] = bytes.try_into().map_err(|_| {
            CryptoError::InvalidMasterKey(format!(
                "expected {MASTER_KEY_LEN} bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self { bytes })
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("MasterKey(<redacted>)")
    }
}

fn decode_hex(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(digits.len() / 2));
    for pair in digits.chunks_exact(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Some(out)
}

fn decode_base64_any(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn sequential() -> [u8; 32] {
        std::array::from_fn(|index| index as u8)
    }

    #[test]
    fn parses_hex_and_all_base64_flavours_to_the_same_key() {
        let expected = MasterKey::from_bytes(sequential()).fingerprint();
        let base64_forms = [
            STANDARD.encode(sequential()),
            STANDARD_NO_PAD.encode(sequential()),
            URL_SAFE.encode(sequential()),
            URL_SAFE_NO_PAD.encode(sequential()),
        ];
        assert_eq!(
            MasterKey::from_encoded(HEX).unwrap().fingerprint(),
            expected
        );
        assert_eq!(
            MasterKey::from_encoded(&HEX.to_uppercase())
                .unwrap()
                .fingerprint(),
            expected
        );
        for form in base64_forms {
            let text = format!("  {form}\n");
            assert_eq!(
                MasterKey::from_encoded(&text).unwrap().fingerprint(),
                expected
            );
        }
    }

    #[test]
    fn rejects_wrong_lengths_and_garbage() {
        for bad in [
            "",
            "  ",
            "abc",
            &HEX[..62],
            &STANDARD.encode([0u8; 16]),
            "not base64 !!",
        ] {
            let error = MasterKey::from_encoded(bad).unwrap_err();
            assert!(
                matches!(error, CryptoError::InvalidMasterKey(_)),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let key = MasterKey::from_bytes([0xAB; 32]);
        let printed = format!("{key:?}");
        assert_eq!(printed, "MasterKey(<redacted>)");
        assert!(!printed.to_lowercase().contains("ab"));
    }

    #[test]
    fn loads_from_file_raw_and_text() {
        let directory = std::env::temp_dir().join(format!("oc-crypto-test-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let raw_path = directory.join("raw.key");
        let text_path = directory.join("text.key");
        std::fs::write(&raw_path, sequential()).unwrap();
        std::fs::write(&text_path, format!("{HEX}\n")).unwrap();
        let expected = MasterKey::from_bytes(sequential()).fingerprint();
        assert_eq!(
            MasterKey::from_file(&raw_path).unwrap().fingerprint(),
            expected
        );
        assert_eq!(
            MasterKey::from_file(&text_path).unwrap().fingerprint(),
            expected
        );
        let missing = MasterKey::from_file(&directory.join("missing.key")).unwrap_err();
        assert!(matches!(missing, CryptoError::InvalidMasterKey(_)));
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn missing_env_var_is_a_clear_error() {
        let error = MasterKey::from_env("OC_CRYPTO_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("OC_CRYPTO_TEST_SURELY_UNSET_VARIABLE")
        );
        let error = MasterKey::from_env_or_file(
            "OC_CRYPTO_TEST_SURELY_UNSET_VARIABLE",
            "OC_CRYPTO_TEST_SURELY_UNSET_FILE_VARIABLE",
        )
        .unwrap_err();
        assert!(matches!(error, CryptoError::InvalidMasterKey(_)));
    }

    #[test]
    fn fingerprints_differ_and_kek_is_not_the_master_key() {
        let first = MasterKey::from_bytes([1; 32]);
        let second = MasterKey::from_bytes([2; 32]);
        assert_ne!(first.fingerprint(), second.fingerprint());
        assert_eq!(first.fingerprint().len(), 16);
        assert_ne!(*first.derive_kek(), [1; 32]);
    }

    #[test]
    fn generated_keys_round_trip_through_base64() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_encoded(&key.to_base64()).unwrap();
        assert_eq!(key.fingerprint(), again.fingerprint());
    }
}
