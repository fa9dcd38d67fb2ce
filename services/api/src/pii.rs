//! Sealing and opening personal data and encrypted extension fields.
//!
//! "Who stores, encrypts; who uses, decrypts": values are sealed here before the order
//! reaches a store, and opened here only for roles whose tenant config grants `pii: full`.
//! The associated data binds tenant, table, record and field, so a ciphertext copied to
//! another order, field or tenant fails to open.

use oc_crypto::{BlindIndexer, FieldCipher, FieldContext, Normalizer};
use oc_model::{DomainError, ExtValue, Protected, Sealed, TenantId};

/// How a role sees personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiView {
    Full,
    Masked,
    None,
}

impl PiiView {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiView::Full => "full",
            PiiView::Masked => "masked",
            PiiView::None => "none",
        }
    }
}

/// How a party field is normalised for its blind index; `None` when it has none (addresses
/// are sealed but not searchable).
pub fn party_normalizer(field: &str) -> Option<Normalizer> {
    match field {
        "name" => Some(Normalizer::Trim),
        "phone" => Some(Normalizer::phone_cn()),
        _ => None,
    }
}

/// Extension values are blind-indexed over their trimmed canonical text.
pub const EXT_NORMALIZER: Normalizer = Normalizer::Trim;

/// What a withheld value is shown as.
pub const WITHHELD: &str = "******";

/// The sealing toolkit shared by the handlers.
#[derive(Debug, Clone)]
pub struct Sealer {
    pub cipher: FieldCipher,
    pub blind: std::sync::Arc<BlindIndexer>,
}

/// Where a sealed value lives, for its associated data.
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    pub tenant: &'a TenantId,
    pub table: &'a str,
    pub record_id: &'a str,
    pub field: &'a str,
}

impl Location<'_> {
    fn context(&self) -> FieldContext<'_> {
        FieldContext::new(self.tenant.as_str(), self.table, self.record_id, self.field)
    }
}

fn crypto_error(error: oc_crypto::CryptoError) -> DomainError {
    tracing::error!(error = %error, "field encryption failed");
    DomainError::internal("field encryption failed")
}

impl Sealer {
    /// Seal a text value; `normalizer` adds a blind index for equality search.
    pub fn seal_text(
        &self,
        at: Location<'_>,
        text: &str,
        normalizer: Option<&Normalizer>,
    ) -> Result<Protected<String>, DomainError> {
        let ciphertext = self
            .cipher
            .encrypt_str(&at.context(), text)
            .map_err(crypto_error)?;
        let blind_index = normalizer.map(|n| self.blind_index(at, n, text));
        Ok(Protected::Sealed {
            sealed: Sealed {
                ciphertext,
                blind_index,
            },
        })
    }

    /// The blind index a value sealed at `at` carries: what an equality search compares.
    pub fn blind_index(&self, at: Location<'_>, normalizer: &Normalizer, text: &str) -> String {
        self.blind
            .index(at.tenant.as_str(), at.field, normalizer, text)
    }

    pub fn open_text(
        &self,
        at: Location<'_>,
        value: &Protected<String>,
    ) -> Result<String, DomainError> {
        match value {
            Protected::Plain(text) => Ok(text.clone()),
            Protected::Sealed { sealed } => {
                let plain = self
                    .cipher
                    .decrypt_str(&at.context(), &sealed.ciphertext)
                    .map_err(crypto_error)?;
                Ok(plain.as_str().to_owned())
            }
        }
    }

    /// Seal a typed extension value (its tagged JSON form), with a blind index over its
    /// canonical text when the field is searchable.
    pub fn seal_ext(
        &self,
        at: Location<'_>,
        value: &ExtValue,
        searchable: bool,
    ) -> Result<Protected<ExtValue>, DomainError> {
        let tagged = serde_json::to_string(value)
            .map_err(|e| DomainError::internal(format!("encode value: {e}")))?;
        let ciphertext = self
            .cipher
            .encrypt_str(&at.context(), &tagged)
            .map_err(crypto_error)?;
        let blind_index =
            searchable.then(|| self.blind_index(at, &EXT_NORMALIZER, &value.canonical_text()));
        Ok(Protected::Sealed {
            sealed: Sealed {
                ciphertext,
                blind_index,
            },
        })
    }

    pub fn open_ext(
        &self,
        at: Location<'_>,
        value: &Protected<ExtValue>,
    ) -> Result<ExtValue, DomainError> {
        match value {
            Protected::Plain(value) => Ok(value.clone()),
            Protected::Sealed { sealed } => {
                let tagged = self
                    .cipher
                    .decrypt_str(&at.context(), &sealed.ciphertext)
                    .map_err(crypto_error)?;
                serde_json::from_str(tagged.as_str())
                    .map_err(|e| DomainError::internal(format!("decode sealed value: {e}")))
            }
        }
    }
}

/// Render an opened text for a role.
pub fn render(view: PiiView, plain: &str, mask: fn(&str) -> String) -> String {
    match view {
        PiiView::Full => plain.to_owned(),
        PiiView::Masked => mask(plain),
        PiiView::None => WITHHELD.to_owned(),
    }
}
