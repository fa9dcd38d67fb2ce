//! Small internal primitives: HMAC-SHA256 with a 32-byte key, and OS randomness.

use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use zeroize::Zeroize;

use crate::error::{CryptoError, Result};

type HmacSha256 = Hmac<Sha256>;

/// Starts an HMAC-SHA256 computation keyed with a 32-byte key.
///
/// `Mac::new_from_slice` returns a `Result` even though HMAC accepts keys of any length. To stay
/// free of unreachable `unwrap`s we build the block-sized key ourselves: RFC 2104 pads a key
/// shorter than the block size (64 bytes for SHA-256) with zeros, which is exactly what
/// `new_from_slice` does internally. A unit test checks both paths agree.
pub(crate) fn hmac_sha256_keyed(key: &[u8; 32]) -> HmacSha256 {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    block[..key.len()].copy_from_slice(key);
    let mac = <HmacSha256 as hmac::digest::KeyInit>::new(&block);
    block.as_mut_slice().zeroize();
    mac
}

/// HMAC-SHA256(key, message).
pub(crate) fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut mac = hmac_sha256_keyed(key);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Fills `buffer` from the operating system RNG, reporting failure instead of panicking.
pub(crate) fn fill_random(buffer: &mut [u8]) -> Result<()> {
    OsRng.try_fill_bytes(buffer).map_err(|_| CryptoError::Rng)
}

/// Appends `part` with a big-endian u64 length prefix, so a sequence of parts is unambiguous
/// ("a|b" + "c" never encodes like "a" + "b|c").
pub(crate) fn push_length_prefixed(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_be_bytes());
    out.extend_from_slice(part);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_key_construction_matches_new_from_slice() {
        let key = [0x42u8; 32];
        let mut reference = <HmacSha256 as Mac>::new_from_slice(&key).unwrap();
        reference.update(b"message");
        let expected: [u8; 32] = reference.finalize().into_bytes().into();
        assert_eq!(hmac_sha256(&key, b"message"), expected);
    }

    #[test]
    fn matches_an_independent_implementation() {
        // Key 32 x 0x0b, data "Hi There" (RFC 4231 case 1 shape with a 32-byte key); expected
        // value computed with Python's `hmac.new(b"\x0b" * 32, b"Hi There", hashlib.sha256)`.
        let key = [0x0bu8; 32];
        let tag = hmac_sha256(&key, b"Hi There");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }

    #[test]
    fn length_prefix_is_unambiguous() {
        let mut left = Vec::new();
        push_length_prefixed(&mut left, b"a|b");
        push_length_prefixed(&mut left, b"c");
        let mut right = Vec::new();
        push_length_prefixed(&mut right, b"a");
        push_length_prefixed(&mut right, b"b|c");
        assert_ne!(left, right);
    }
}
