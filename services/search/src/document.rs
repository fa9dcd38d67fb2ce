//! Building a [`SearchDocument`] from an [`Order`] and the tenant's field config.
//!
//! The mapping from extension slots to configured names stays in the caller's hands (it
//! lives in tenant config, per business identity and order type): the caller passes a
//! [`FieldNamer`]. Sealed values contribute only their blind index; a plaintext value of a
//! field configured as encrypted is refused, so no personal data reaches an index.

use std::collections::BTreeMap;

use oc_model::ext::{ExtTable, Protected, Slot};
use oc_model::order::{ExtColumns, PartyRole};
use oc_model::search::{
    BlindIndex, PiiField, SearchDocument, SearchFieldKind, SearchFieldName, SearchFieldSpec,
    SearchValue,
};
use oc_model::{BusinessIdentity, DomainError, DomainResult, ExtValue, Order, OrderType};

/// Tells which extension slots are searchable, under which name and kind, for a business
/// identity and order type. Any `Fn(&BusinessIdentity, &OrderType, &Slot) ->
/// Option<SearchFieldSpec>` is one.
pub trait FieldNamer {
    /// The searchable field configured at `slot`; `None` when the slot holds no searchable
    /// field in this context.
    fn searchable_field(
        &self,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec>;
}

impl<F> FieldNamer for F
where
    F: Fn(&BusinessIdentity, &OrderType, &Slot) -> Option<SearchFieldSpec>,
{
    fn searchable_field(
        &self,
        identity: &BusinessIdentity,
        order_type: &OrderType,
        slot: &Slot,
    ) -> Option<SearchFieldSpec> {
        self(identity, order_type, slot)
    }
}

/// The search document of `order`'s current state.
///
/// Errors: a plaintext value where the field is configured as encrypted or where personal
/// data belongs (`Internal`: a bug upstream), a value that does not fit its configured kind
/// (`InvalidInput`, with the field path).
pub fn document_from_order(order: &Order, namer: &impl FieldNamer) -> DomainResult<SearchDocument> {
    let main = &order.main;
    let identity = &main.business_identity;
    let order_type = &main.order_type;
    let mut ext: BTreeMap<SearchFieldName, Vec<SearchValue>> = BTreeMap::new();

    let mut add_columns = |table: ExtTable, columns: &ExtColumns, path: &str| {
        for (column, value) in columns {
            let slot = Slot::Column {
                table,
                column: *column,
            };
            let Some(spec) = namer.searchable_field(identity, order_type, &slot) else {
                continue;
            };
            let field_path = format!("{path}/{column}");
            if let Some(value) = column_value(&spec, value).map_err(|e| e.under(&field_path))? {
                ext.entry(spec.name).or_default().push(value);
            }
        }
        Ok::<(), DomainError>(())
    };
    add_columns(
        ExtTable::Order,
        &order.extension.columns,
        "/extension/columns",
    )?;
    for (index, line) in order.lines.iter().enumerate() {
        add_columns(ExtTable::Line, &line.ext, &format!("/lines/{index}/ext"))?;
    }

    for (index, identifier) in order.extension.identifiers.iter().enumerate() {
        let slot = Slot::Kv {
            domain: identifier.domain,
            key: identifier.key.clone(),
        };
        let Some(spec) = namer.searchable_field(identity, order_type, &slot) else {
            continue;
        };
        let path = format!("/extension/identifiers/{index}/value");
        if spec.kind == SearchFieldKind::BlindIndex {
            // the field is encrypted (the config says so through the namer): the identifier
            // holds its sealed form, and only the blind index is searchable
            let sealed = identifier.value.sealed().map_err(|_| {
                DomainError::internal(format!(
                    "plaintext value of encrypted identifier {path} offered to the search index"
                ))
            })?;
            let sealed: Protected<ExtValue> = Protected::Sealed { sealed };
            if let Some(value) = column_value(&spec, &sealed).map_err(|e| e.under(&path))? {
                ext.entry(spec.name).or_default().push(value);
            }
            continue;
        }
        let value = SearchValue::from_text(spec.kind, identifier.value.clear_text())
            .map_err(|e| e.under(&path))?;
        ext.entry(spec.name).or_default().push(value);
    }

    let mut pii_blind = BTreeMap::new();
    for field in PiiField::ALL {
        let (role, name) = field.party_site();
        let party = match role {
            PartyRole::Shipper => order.parties.shipper.as_ref(),
            PartyRole::Receiver => order.parties.receiver.as_ref(),
        };
        let Some(party) = party else { continue };
        match party.pii_field(name) {
            Protected::Sealed { sealed } => {
                if let Some(blind) = &sealed.blind_index {
                    pii_blind.insert(field, BlindIndex::parse(blind.clone())?);
                }
            }
            Protected::Plain(_) => {
                return Err(DomainError::internal(format!(
                    "plaintext PII in /parties/{role}/{name} offered to the search index"
                )));
            }
        }
    }

    Ok(SearchDocument {
        tenant: main.tenant.clone(),
        order_id: main.id,
        version: main.version,
        status: main.status.clone(),
        business_identity: identity.clone(),
        order_type: order_type.clone(),
        buyer_id: main.buyer_id.clone(),
        merchant_id: main.merchant_id.clone(),
        created_at: main.created_at,
        updated_at: main.updated_at,
        payable: order.finance.payable,
        product_names: order.lines.iter().map(|l| l.product_name.clone()).collect(),
        skus: dedup(order.lines.iter().map(|l| l.sku.clone())),
        ext,
        pii_blind,
    })
}

/// The index value of one reserved-column value; `None` when a sealed value has nothing
/// searchable (no blind index, or the field is not configured as encrypted any more).
fn column_value(
    spec: &SearchFieldSpec,
    value: &Protected<ExtValue>,
) -> DomainResult<Option<SearchValue>> {
    match (spec.kind, value) {
        (SearchFieldKind::BlindIndex, Protected::Sealed { sealed }) => sealed
            .blind_index
            .as_ref()
            .map(|blind| BlindIndex::parse(blind.clone()).map(SearchValue::BlindIndex))
            .transpose(),
        (_, Protected::Sealed { .. }) => {
            tracing::debug!(field = %spec.name, "sealed value of a clear search field skipped");
            Ok(None)
        }
        (kind, Protected::Plain(plain)) => SearchValue::from_ext(kind, plain).map(Some),
    }
}

fn dedup(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values.filter(|v| seen.insert(v.clone())).collect()
}
