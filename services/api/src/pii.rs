//! Sealing and opening personal data and encrypted extension fields.
//!
//! "Who stores, encrypts; who uses, decrypts": values are sealed here before the order
//! reaches a store, and opened here only for roles whose tenant config grants `pii: full`.
//! The associated data binds tenant, table, record and field, so a ciphertext copied to
//! another order, field or tenant fails to open.

use oc_crypto::{BlindIndexer, CryptoError, FieldCipher, FieldContext, Normalizer};
use oc_model::{DomainError, ExtTable, ExtValue, Order, Protected, Sealed, Slot, TenantId};

use crate::service::{line_record, slot_field};

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

/// What [`Sealer::reseal`] did to one order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Sealed values the order holds.
    pub values: u64,
    /// Of those, re-encrypted under the tenant's current data key.
    pub rewritten: u64,
}

/// Calls `visit` with every sealed value a stored order holds and the location it was sealed
/// at: party fields, encrypted extension columns of the order and its lines, and encrypted KV
/// identifiers (whose row holds the JSON of the sealed value). The locations are the ones
/// the write path seals at ([`crate::service`]), so associated data matches. A KV value
/// rewritten by `visit` is written back into its identifier.
pub fn visit_sealed(
    order: &mut Order,
    mut visit: impl FnMut(Location<'_>, &mut Sealed) -> Result<(), CryptoError>,
) -> Result<(), CryptoError> {
    let tenant = order.main.tenant.clone();
    let record = order.main.id.to_string();
    let at = |table: &'static str, record_id: &str, field: &str| {
        (table, record_id.to_owned(), field.to_owned())
    };
    let mut sealed_at = |(table, record_id, field): (&str, String, String), sealed: &mut Sealed| {
        visit(
            Location {
                tenant: &tenant,
                table,
                record_id: &record_id,
                field: &field,
            },
            sealed,
        )
    };
    for (role, party) in [
        ("shipper", &mut order.parties.shipper),
        ("receiver", &mut order.parties.receiver),
    ] {
        let Some(party) = party else { continue };
        for (name, value) in party.pii_fields_mut() {
            if let Protected::Sealed { sealed } = value {
                sealed_at(at("orders", &record, &format!("{role}.{name}")), sealed)?;
            }
        }
    }
    for (column, value) in &mut order.extension.columns {
        if let Protected::Sealed { sealed } = value {
            let field = slot_field(&Slot::Column {
                table: ExtTable::Order,
                column: *column,
            });
            sealed_at(at("orders", &record, &field), sealed)?;
        }
    }
    for line in &mut order.lines {
        let line_id = line_record(order.main.id, line.line_no);
        for (column, value) in &mut line.ext {
            if let Protected::Sealed { sealed } = value {
                let field = slot_field(&Slot::Column {
                    table: ExtTable::Line,
                    column: *column,
                });
                sealed_at(at("order_lines", &line_id, &field), sealed)?;
            }
        }
    }
    for identifier in &mut order.extension.identifiers {
        // only encrypted fields store the JSON of a sealed value in a KV row
        if !identifier.value.starts_with("{\"sealed\"") {
            continue;
        }
        let Ok(Protected::<ExtValue>::Sealed { mut sealed }) =
            serde_json::from_str::<Protected<ExtValue>>(&identifier.value)
        else {
            continue;
        };
        let field = slot_field(&Slot::Kv {
            domain: identifier.domain,
            key: identifier.key.clone(),
        });
        let before = sealed.clone();
        sealed_at(at("orders", &record, &field), &mut sealed)?;
        if sealed != before {
            identifier.value = serde_json::to_string(&Protected::<ExtValue>::Sealed { sealed })
                .map_err(|_| CryptoError::Malformed("cannot encode a sealed value"))?;
        }
    }
    Ok(())
}

/// The data key version of every sealed value of an order (an `Err` for a value whose
/// ciphertext cannot even be parsed).
pub fn sealed_key_versions(order: &Order) -> Vec<Result<u32, CryptoError>> {
    let mut order = order.clone();
    let mut versions = Vec::new();
    let _ = visit_sealed(&mut order, |_, sealed| {
        versions.push(oc_crypto::parse_header_str(&sealed.ciphertext).map(|h| h.key_version));
        Ok(())
    });
    versions
}

impl Sealer {
    /// Re-encrypts every sealed value of `order` that is not under its tenant's current data
    /// key (for key rotation). Each value is authenticated at its location first; blind
    /// indexes are kept as they are (their key is not a data key, see
    /// [`oc_crypto::blind`]). On error the order may be partly re-sealed: do not store it.
    pub fn reseal(&self, order: &mut Order) -> Result<Resealed, CryptoError> {
        let mut done = Resealed::default();
        visit_sealed(order, |at, sealed| {
            done.values += 1;
            if let Some(again) = self
                .cipher
                .reencrypt_str(&at.context(), &sealed.ciphertext)?
            {
                sealed.ciphertext = again;
                done.rewritten += 1;
            }
            Ok(())
        })?;
        Ok(done)
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
