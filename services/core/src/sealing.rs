//! The one sealing contract: sealing, opening, re-sealing and blind-indexing every sealed
//! value of an order at its [`SealedSite`].
//!
//! "Who stores, encrypts; who uses, decrypts": values are sealed here before the order
//! reaches a store, and opened here only for roles whose tenant config grants `pii: full`
//! (or `masked`, which opens and masks). The site's associated data binds tenant, table,
//! record and field ([`oc_model::sealing`]), so a ciphertext copied to another order, line,
//! field or tenant fails to open.
//!
//! **KV identifiers.** A KV row holds text ([`oc_model::KvValue`]): the canonical text of a clear
//! value or the JSON of a sealed one. Which of the two it is comes from the tenant config:
//! the field configured at the identifier's slot is `encrypted` or not ([`kv_sealing`]).
//! The text is never inspected to decide, so a clear value that happens to look like a
//! sealed one stays a clear value, and a slot no field owns any more is carried over
//! untouched by every write. The stored text of both kinds is what it always was, so rows
//! written before this module existed read the same.

use std::sync::Arc;

use oc_crypto::{
    BlindIndexer, CryptoError, FieldCipher, FieldContext, KeyRing, MasterKey, Normalizer,
};
use oc_model::sealing::{KvSealing, PartyField, SealedSite, visit_sealed};
use oc_model::{
    BusinessDomain, DomainError, DomainResult, ExtValue, Order, OrderId, Protected, Sealed, Slot,
    TenantId,
};
use oc_tenant_config::{OrderTypeConfig, TenantConfig};

/// How a party field is normalised for its blind index; `None` when it has none (addresses
/// are sealed but not searchable).
pub fn party_normalizer(field: PartyField) -> Option<Normalizer> {
    match field {
        PartyField::Name => Some(Normalizer::Trim),
        PartyField::Phone => Some(Normalizer::phone_cn()),
        PartyField::Address => None,
    }
}

/// Extension values are blind-indexed over their trimmed canonical text.
pub const EXT_NORMALIZER: Normalizer = Normalizer::Trim;

/// The tenant config's answer to "is the KV identifier at this slot sealed" for one order:
/// the `encrypted` flag of the field its business identity and order type configure there.
#[derive(Debug, Clone, Copy)]
pub struct ConfiguredKv<'a> {
    fields: Option<&'a OrderTypeConfig>,
}

impl KvSealing for ConfiguredKv<'_> {
    fn is_sealed(&self, domain: BusinessDomain, key: &str) -> bool {
        self.fields.is_some_and(|fields| {
            fields
                .field_at(&Slot::Kv {
                    domain,
                    key: key.to_owned(),
                })
                .is_some_and(|field| field.encrypted)
        })
    }
}

/// Which KV identifiers of `order` are sealed, by `tenant`'s config (none when the tenant
/// or the order's type is not configured).
pub fn kv_sealing<'a>(tenant: Option<&'a TenantConfig>, order: &Order) -> ConfiguredKv<'a> {
    ConfiguredKv {
        fields: tenant.and_then(|tenant| {
            tenant.order_type(&order.main.business_identity, &order.main.order_type)
        }),
    }
}

/// Why a stored sealed value could not be re-sealed or counted.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// The ciphertext does not parse or does not open at its site.
    #[error("sealed value at {site}: {source}")]
    Crypto {
        site: String,
        #[source]
        source: CryptoError,
    },
    /// The config says sealed, the stored value is not.
    #[error("{0}")]
    Corrupt(#[from] DomainError),
}

/// The sealing toolkit: the field cipher (data keys) and the blind indexer.
#[derive(Debug, Clone)]
pub struct Sealer {
    cipher: FieldCipher,
    blind: Arc<BlindIndexer>,
}

fn crypto_error(error: CryptoError) -> DomainError {
    tracing::error!(error = %error, "field encryption failed");
    DomainError::internal("field encryption failed")
}

/// What [`Sealer::reseal`] did to one order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Sealed values the order holds.
    pub values: u64,
    /// Of those, re-encrypted under the tenant's current data key.
    pub rewritten: u64,
}

impl Sealer {
    pub fn new(cipher: FieldCipher, blind: Arc<BlindIndexer>) -> Sealer {
        Sealer { cipher, blind }
    }

    /// The sealer of a key ring (data keys) and the master key (blind-index keys).
    pub fn from_keys(ring: Arc<KeyRing>, master: &MasterKey) -> Sealer {
        Sealer::new(FieldCipher::new(ring), Arc::new(BlindIndexer::new(master)))
    }

    pub fn cipher(&self) -> &FieldCipher {
        &self.cipher
    }

    fn with_context<T>(
        tenant: &TenantId,
        order: OrderId,
        site: &SealedSite,
        use_it: impl FnOnce(&FieldContext<'_>) -> T,
    ) -> T {
        let location = site.location(order);
        use_it(&FieldContext::new(
            tenant.as_str(),
            location.table,
            &location.record_id,
            &location.field,
        ))
    }

    /// The blind index of `text` for the sealed field named `field` ([`SealedSite::field`]):
    /// what a sealed value carries and what an equality search compares.
    pub fn blind_index(
        &self,
        tenant: &TenantId,
        field: &str,
        normalizer: &Normalizer,
        text: &str,
    ) -> String {
        self.blind.index(tenant.as_str(), field, normalizer, text)
    }

    /// Seal a text at its site: a party's personal-data field, with the blind index its
    /// field has, or the remark (free text, no blind index: not searchable).
    pub fn seal_party(
        &self,
        tenant: &TenantId,
        order: OrderId,
        site: &SealedSite,
        text: &str,
    ) -> DomainResult<Protected<String>> {
        let normalizer = match site {
            SealedSite::Party { field, .. } => party_normalizer(*field),
            SealedSite::Remark => None,
            _ => return Err(DomainError::internal("not a text field")),
        };
        let ciphertext = Self::with_context(tenant, order, site, |context| {
            self.cipher.encrypt_str(context, text)
        })
        .map_err(crypto_error)?;
        let blind_index = normalizer.map(|n| self.blind_index(tenant, &site.field(), &n, text));
        Ok(Protected::Sealed {
            sealed: Sealed {
                ciphertext,
                blind_index,
            },
        })
    }

    /// Open a party's personal-data field or the remark (a plain value is returned as it is).
    pub fn open_text(
        &self,
        tenant: &TenantId,
        order: OrderId,
        site: &SealedSite,
        value: &Protected<String>,
    ) -> DomainResult<String> {
        match value {
            Protected::Plain(text) => Ok(text.clone()),
            Protected::Sealed { sealed } => {
                let plain = Self::with_context(tenant, order, site, |context| {
                    self.cipher.decrypt_str(context, &sealed.ciphertext)
                })
                .map_err(crypto_error)?;
                Ok(plain.as_str().to_owned())
            }
        }
    }

    /// Seal a typed extension value (its tagged JSON form), with a blind index over its
    /// canonical text when the field is searchable.
    pub fn seal_ext(
        &self,
        tenant: &TenantId,
        order: OrderId,
        site: &SealedSite,
        value: &ExtValue,
        searchable: bool,
    ) -> DomainResult<Sealed> {
        let tagged = serde_json::to_string(value)
            .map_err(|e| DomainError::internal(format!("encode value: {e}")))?;
        let ciphertext = Self::with_context(tenant, order, site, |context| {
            self.cipher.encrypt_str(context, &tagged)
        })
        .map_err(crypto_error)?;
        let blind_index = searchable.then(|| {
            self.blind_index(
                tenant,
                &site.field(),
                &EXT_NORMALIZER,
                &value.canonical_text(),
            )
        });
        Ok(Sealed {
            ciphertext,
            blind_index,
        })
    }

    /// Open a sealed extension value.
    pub fn open_ext(
        &self,
        tenant: &TenantId,
        order: OrderId,
        site: &SealedSite,
        sealed: &Sealed,
    ) -> DomainResult<ExtValue> {
        let tagged = Self::with_context(tenant, order, site, |context| {
            self.cipher.decrypt_str(context, &sealed.ciphertext)
        })
        .map_err(crypto_error)?;
        serde_json::from_str(tagged.as_str())
            .map_err(|e| DomainError::internal(format!("decode sealed value: {e}")))
    }

    /// Re-encrypts every sealed value of `order` that is not under its tenant's current data
    /// key (for key rotation, and for values a write carries over). Each value is
    /// authenticated at its site first; blind indexes are kept as they are (their key is not
    /// a data key, see [`oc_crypto::blind`]). On error the order may be partly re-sealed: do
    /// not store it.
    pub fn reseal(&self, order: &mut Order, kv: &dyn KvSealing) -> Result<Resealed, SealingError> {
        let tenant = order.main.tenant.clone();
        let id = order.main.id;
        let mut done = Resealed::default();
        visit_sealed(order, kv, |site, sealed| {
            done.values += 1;
            let again = Self::with_context(&tenant, id, site, |context| {
                self.cipher.reencrypt_str(context, &sealed.ciphertext)
            })
            .map_err(|source| SealingError::Crypto {
                site: site.to_string(),
                source,
            })?;
            if let Some(again) = again {
                sealed.ciphertext = again;
                done.rewritten += 1;
            }
            Ok::<(), SealingError>(())
        })?;
        Ok(done)
    }
}

/// The data key version of every sealed value of an order (an `Err` for a value whose
/// ciphertext cannot even be parsed, or a KV value the config says is sealed and is not).
pub fn sealed_key_versions(order: &Order, kv: &dyn KvSealing) -> Vec<Result<u32, SealingError>> {
    let mut walked = order.clone();
    let mut versions = Vec::new();
    let outcome = visit_sealed(&mut walked, kv, |site, sealed| {
        versions.push(
            oc_crypto::parse_header_str(&sealed.ciphertext)
                .map(|header| header.key_version)
                .map_err(|source| SealingError::Crypto {
                    site: site.to_string(),
                    source,
                }),
        );
        Ok::<(), DomainError>(())
    });
    if let Err(corrupt) = outcome {
        versions.push(Err(SealingError::Corrupt(corrupt)));
    }
    versions
}
