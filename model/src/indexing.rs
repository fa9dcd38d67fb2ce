//! Building a [`SearchDocument`] from an [`Order`] and the tenant's field config: what every
//! search index adapter is given to hold of an order (the projector builds it, the adapters
//! store it).
//!
//! The mapping from extension slots to configured names lives in tenant config (per business
//! identity and order type); the caller passes it as the [`SearchFields`] port. Sealed values
//! contribute only their blind index; a plaintext value of a field configured as encrypted is
//! refused, so no personal data reaches an index.

use std::collections::BTreeMap;

use crate::error::{DomainError, DomainResult};
use crate::ext::{ExtTable, ExtValue, Protected, Slot};
use crate::order::{ExtColumns, Order, PartyRole};
use crate::ports::SearchFields;
use crate::search::{
    BlindIndex, PiiField, SearchDocument, SearchFieldKind, SearchFieldName, SearchFieldSpec,
    SearchValue,
};

/// The search document of `order`'s current state.
///
/// Errors: a plaintext value where the field is configured as encrypted or where personal
/// data belongs (`Internal`: a bug upstream), a value that does not fit its configured kind
/// (`InvalidInput`, with the field path).
pub fn document_from_order(
    order: &Order,
    fields: &dyn SearchFields,
) -> DomainResult<SearchDocument> {
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
            let Some(spec) = fields.at_slot(&main.tenant, identity, order_type, &slot) else {
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
        let Some(spec) = fields.at_slot(&main.tenant, identity, order_type, &slot) else {
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
        // the projector marks the cold copy of an archived order itself
        archived: false,
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
        // a value sealed while the field was encrypted: nothing of it is searchable in clear
        (_, Protected::Sealed { .. }) => Ok(None),
        (kind, Protected::Plain(plain)) => SearchValue::from_ext(kind, plain).map(Some),
    }
}

fn dedup(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values.filter(|v| seen.insert(v.clone())).collect()
}
