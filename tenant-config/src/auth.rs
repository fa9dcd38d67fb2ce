//! API key authentication.
//!
//! Keys are high-entropy random secrets, so the config stores their SHA-256 (a fast hash is
//! right here: a password KDF exists to slow down guessing low-entropy secrets, and guessing a
//! 128-bit random key is hopeless at any speed; the KDF would only cost every request CPU).
//! Lookup is by digest in a hash map, so the time taken depends on the digest of the presented
//! key, never on how much of a stored key it matched; the final comparison of the full digests
//! is constant-time as well.

use oc_model::{PartyId, RoleName, TenantId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who is calling: the tenant, the key id (for logs and per-key limits) and the key's role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub tenant: TenantId,
    pub key_id: String,
    pub role: RoleName,
    /// Set for a merchant-scoped key: the caller sees only this merchant's orders.
    pub merchant: Option<PartyId>,
}

/// The SHA-256 of an API key as the config stores it (lowercase hex). Use this to produce the
/// `sha256:` value of a new key.
pub fn hash_api_key(api_key: &str) -> String {
    to_hex(&digest(api_key))
}

pub(crate) fn digest(api_key: &str) -> [u8; 32] {
    Sha256::digest(api_key.as_bytes()).into()
}

pub(crate) fn digests_match(left: &[u8; 32], right: &[u8; 32]) -> bool {
    left.ct_eq(right).into()
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// 64 hex characters (either case) → 32 bytes.
pub(crate) fn parse_hex_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (index, pair) in bytes.chunks_exact(2).enumerate() {
        out[index] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let digest = digest("oc_test_key");
        assert_eq!(parse_hex_sha256(&to_hex(&digest)), Some(digest));
        assert_eq!(
            parse_hex_sha256(&to_hex(&digest).to_uppercase()),
            Some(digest)
        );
        assert_eq!(parse_hex_sha256("abc"), None);
        assert_eq!(parse_hex_sha256(&"g".repeat(64)), None);
        // a known vector: SHA-256("abc")
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
