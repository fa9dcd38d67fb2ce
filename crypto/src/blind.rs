//! Blind indexes: keyed HMAC-SHA256 tokens for equality search on encrypted fields.
//!
//! ```text
//! blind_root  = HMAC-SHA256(master, "oc-blind-index|v1")
//! tenant_key  = HMAC-SHA256(blind_root, tenant)
//! index       = hex(HMAC-SHA256(tenant_key, u64be(len(field)) || field || normalized_value)[..16])
//! ```
//!
//! The same normalized value in the same tenant and field always gives the same 32-hex-char
//! token; other tenants or fields give unrelated tokens. Without the master key the tokens
//! cannot be computed, so a dictionary attack on phone numbers needs the key, unlike a plain
//! hash. What a blind index still leaks to whoever sees the index column: which rows share a
//! value (equality), hence value frequencies. It supports equality only, no prefix or range.

use hmac::Mac;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::kdf;
use crate::master::MasterKey;

const BLIND_ROOT_LABEL: &[u8] = b"oc-blind-index|v1";
/// Bytes of the HMAC kept in the token (128 bits: collisions are negligible, columns stay short).
pub const BLIND_INDEX_BYTES: usize = 16;

/// Computes blind indexes. Holds only a key derived from the master key.
pub struct BlindIndexer {
    root: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for BlindIndexer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BlindIndexer(<redacted>)")
    }
}

impl BlindIndexer {
    /// Derives the blind-index root key; the master key is not retained.
    pub fn new(master: &MasterKey) -> Self {
        Self {
            root: master.derive(BLIND_ROOT_LABEL),
        }
    }

    /// The token for an already normalized value.
    pub fn blind_index(&self, tenant: &str, field: &str, normalized_value: &str) -> String {
        let tenant_key = Zeroizing::new(kdf::hmac_sha256(&self.root, tenant.as_bytes()));
        let mut mac = kdf::hmac_sha256_keyed(&tenant_key);
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
        mac.update(normalized_value.as_bytes());
        let tag = mac.finalize().into_bytes();
        tag[..BLIND_INDEX_BYTES]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Normalizes `raw_value` with `normalizer`, then computes the token. Use the same
    /// normalizer when writing and when searching.
    pub fn index(
        &self,
        tenant: &str,
        field: &str,
        normalizer: &Normalizer,
        raw_value: &str,
    ) -> String {
        let normalized = Zeroizing::new(normalizer.normalize(raw_value));
        self.blind_index(tenant, field, &normalized)
    }
}

/// How a value is canonicalised before indexing, so that different spellings of the same value
/// match. Changing a field's normalizer requires rebuilding its index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalizer {
    /// The value as is.
    Exact,
    /// Leading and trailing whitespace removed.
    Trim,
    /// Trimmed and Unicode-lowercased (`str::to_lowercase`; no NFKC normalisation).
    CaseFold,
    /// Phone numbers: keep digits only (ASCII and full-width `０`-`９`, mapped to ASCII).
    /// With `country_code` (digits, e.g. `"86"`), a number written in international form,
    /// `+86…` or `0086…`, loses that prefix, so `+86 138-1234-5678`, `0086 13812345678` and
    /// `(138) 1234 5678` all normalise to `13812345678`. Numbers of other countries keep their
    /// country code digits. A bare `86138…` without `+`/`00` is left alone (ambiguous).
    Phone {
        /// Home country calling code to strip, digits only; `None` strips nothing.
        #[serde(default)]
        country_code: Option<String>,
    },
    /// E-mail addresses: trimmed and lowercased as a whole (mail providers treat the local part
    /// case-insensitively in practice). No provider-specific rules (dots, `+tag`).
    Email,
}

impl Normalizer {
    /// A phone normalizer for mainland China (`+86`).
    pub fn phone_cn() -> Self {
        Self::Phone {
            country_code: Some("86".to_owned()),
        }
    }

    /// Applies the normalisation.
    pub fn normalize(&self, value: &str) -> String {
        match self {
            Self::Exact => value.to_owned(),
            Self::Trim => value.trim().to_owned(),
            Self::CaseFold | Self::Email => value.trim().to_lowercase(),
            Self::Phone { country_code } => normalize_phone(value, country_code.as_deref()),
        }
    }
}

fn ascii_digit(character: char) -> Option<char> {
    match character {
        '0'..='9' => Some(character),
        // Full-width digits U+FF10..U+FF19, common in CJK input methods.
        '\u{ff10}'..='\u{ff19}' => char::from_digit(u32::from(character) - 0xff10, 10),
        _ => None,
    }
}

fn normalize_phone(value: &str, country_code: Option<&str>) -> String {
    let international_plus = value
        .chars()
        .find(|&character| {
            character == '+' || character == '\u{ff0b}' || ascii_digit(character).is_some()
        })
        .is_some_and(|character| character == '+' || character == '\u{ff0b}');
    let digits: String = value.chars().filter_map(ascii_digit).collect();
    let Some(code) = country_code.filter(|code| !code.is_empty()) else {
        return digits;
    };
    if international_plus && let Some(national) = digits.strip_prefix(code) {
        return national.to_owned();
    }
    if !international_plus
        && let Some(national) = digits
            .strip_prefix("00")
            .and_then(|rest| rest.strip_prefix(code))
    {
        return national.to_owned();
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_normalisation() {
        let cn = Normalizer::phone_cn();
        for spelling in [
            "13812345678",
            "138 1234 5678",
            "138-1234-5678",
            "(138) 1234-5678",
            "+86 138 1234 5678",
            "+86-13812345678",
            "(+86) 138 1234 5678",
            "0086 138 1234 5678",
            "008613812345678",
            " １３８１２３４５６７８ ",
            "＋８６ 13812345678",
        ] {
            assert_eq!(cn.normalize(spelling), "13812345678", "{spelling:?}");
        }
        assert_eq!(cn.normalize("+1 (555) 123-4567"), "15551234567");
        assert_eq!(cn.normalize("8613812345678"), "8613812345678");
        let plain = Normalizer::Phone { country_code: None };
        assert_eq!(plain.normalize("+86 138 1234 5678"), "8613812345678");
        assert_eq!(cn.normalize(""), "");
        assert_eq!(cn.normalize("no digits"), "");
    }

    #[test]
    fn text_normalisers() {
        assert_eq!(Normalizer::Exact.normalize(" A "), " A ");
        assert_eq!(Normalizer::Trim.normalize(" A "), "A");
        assert_eq!(Normalizer::CaseFold.normalize(" ÄbC "), "äbc");
        assert_eq!(
            Normalizer::Email.normalize(" Alice@Example.COM\n"),
            "alice@example.com"
        );
    }

    #[test]
    fn normalizer_serde_shape() {
        let json = serde_json::to_string(&Normalizer::phone_cn()).unwrap();
        assert_eq!(json, r#"{"kind":"phone","country_code":"86"}"#);
        let parsed: Normalizer = serde_json::from_str(r#"{"kind":"case_fold"}"#).unwrap();
        assert_eq!(parsed, Normalizer::CaseFold);
        let phone: Normalizer = serde_json::from_str(r#"{"kind":"phone"}"#).unwrap();
        assert_eq!(phone, Normalizer::Phone { country_code: None });
    }
}
