//! The sealing contract's locations: which values of an order are sealed, and where each one
//! lives, spelled as the associated data that binds its ciphertext there.
//!
//! A sealed value's associated data names tenant, table, record id and field, so a ciphertext
//! copied to another order, line, field or tenant does not open. Those strings are inside
//! every stored ciphertext: they are defined here once ([`SealedSite`]) and never change
//! (`services/core/tests/sealed_v1.rs` opens ciphertexts frozen before this module existed).
//! The field part is also what a searchable value's blind index is keyed by, so the value
//! written at sealing time and the value a search computes come from the same
//! [`SealedSite::field`].
//!
//! Which values of an order are sealed ([`visit_sealed`], the one walk used by sealing
//! checks, re-encryption, key-version counting and the search document):
//! - every party name, phone and address;
//! - the order's remark, when it was written sealed (its order type's `remark.encrypted`);
//!   like a party field, its stored form says whether it is sealed;
//! - an extension column value stored sealed: a column holds the tagged JSON of
//!   [`Protected<ExtValue>`](crate::ext::Protected), so its stored form says which it is;
//! - a KV identifier at a slot whose configured field is `encrypted`. A KV row holds text,
//!   and a clear value may be any text, including one that looks like a sealed value; only
//!   the tenant config can tell, so the walk asks the caller ([`KvSealing`]) and never reads
//!   it off the text (see [`KvValue`](crate::ext::KvValue)).
//!
//! This module knows no keys and no cipher: sealing and opening are `oc-core`'s
//! `sealing::Sealer`. It lives in the model so adapters (the search document, the projector)
//! share the locations without depending on the application core.

use std::fmt;

use crate::error::DomainError;
use crate::ext::{BusinessDomain, ColumnIndex, ExtTable, Protected, Sealed, Slot};
use crate::ids::OrderId;
use crate::order::Order;
pub use crate::order::{PartyField, PartyRole};

/// The table every order-level sealed value is bound to.
const ORDERS_TABLE: &str = "orders";
/// The table line-level sealed values are bound to.
const LINES_TABLE: &str = "order_lines";

/// Where one sealed value of an order lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SealedSite {
    /// A party's name, phone or address.
    Party { role: PartyRole, field: PartyField },
    /// A reserved extension column of the order row.
    OrderColumn(ColumnIndex),
    /// A reserved extension column of one line row.
    LineColumn { line_no: u32, column: ColumnIndex },
    /// A KV identifier of the order.
    Kv { domain: BusinessDomain, key: String },
    /// The order's free-text remark (`operation.remark`).
    Remark,
}

/// The associated-data field of the remark.
const REMARK_FIELD: &str = "operation.remark";

/// The associated-data location of a sealed value, without the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteLocation {
    pub table: &'static str,
    pub record_id: String,
    pub field: String,
}

/// The field of every value sealed in `slot`: the field part of its associated data, and
/// the name its blind index is keyed by (`order.ext_04`, `line.ext_01`,
/// `kv.party.passport`). A safe config change never re-maps a slot, so this never changes
/// for a stored value.
pub fn slot_field(slot: &Slot) -> String {
    match slot {
        Slot::Column { table, column } => format!("{}.{}", table.as_str(), column),
        Slot::Kv { domain, key } => format!("kv.{domain}.{key}"),
    }
}

impl SealedSite {
    /// The site of a value of the extension field at `slot`; `line_no` is the line of a line
    /// column (ignored for order-level slots).
    pub fn of_slot(slot: &Slot, line_no: u32) -> SealedSite {
        match slot {
            Slot::Column {
                table: ExtTable::Order,
                column,
            } => SealedSite::OrderColumn(*column),
            Slot::Column {
                table: ExtTable::Line,
                column,
            } => SealedSite::LineColumn {
                line_no,
                column: *column,
            },
            Slot::Kv { domain, key } => SealedSite::Kv {
                domain: *domain,
                key: key.clone(),
            },
        }
    }

    /// The extension slot of the site; `None` for a party field.
    pub fn slot(&self) -> Option<Slot> {
        match self {
            SealedSite::Party { .. } | SealedSite::Remark => None,
            SealedSite::OrderColumn(column) => Some(Slot::Column {
                table: ExtTable::Order,
                column: *column,
            }),
            SealedSite::LineColumn { column, .. } => Some(Slot::Column {
                table: ExtTable::Line,
                column: *column,
            }),
            SealedSite::Kv { domain, key } => Some(Slot::Kv {
                domain: *domain,
                key: key.clone(),
            }),
        }
    }

    /// The table of the associated data: `order_lines` for line columns, else `orders`.
    pub fn table(&self) -> &'static str {
        match self {
            SealedSite::LineColumn { .. } => LINES_TABLE,
            SealedSite::Party { .. }
            | SealedSite::OrderColumn(_)
            | SealedSite::Kv { .. }
            | SealedSite::Remark => ORDERS_TABLE,
        }
    }

    /// The record id of the associated data: the order id, or `<order id>/<line no>` for a
    /// line column.
    pub fn record_id(&self, order: OrderId) -> String {
        match self {
            SealedSite::LineColumn { line_no, .. } => format!("{order}/{line_no}"),
            SealedSite::Party { .. }
            | SealedSite::OrderColumn(_)
            | SealedSite::Kv { .. }
            | SealedSite::Remark => order.to_string(),
        }
    }

    /// The field of the associated data, which is also the blind index's key name:
    /// `receiver.phone` for a party field, [`slot_field`] for an extension slot.
    pub fn field(&self) -> String {
        match self {
            SealedSite::Party { role, field } => format!("{role}.{field}"),
            SealedSite::OrderColumn(column) => format!("{}.{column}", ExtTable::Order.as_str()),
            SealedSite::LineColumn { column, .. } => {
                format!("{}.{column}", ExtTable::Line.as_str())
            }
            SealedSite::Kv { domain, key } => format!("kv.{domain}.{key}"),
            SealedSite::Remark => REMARK_FIELD.to_owned(),
        }
    }

    /// Table, record id and field of the site in order `order`.
    pub fn location(&self, order: OrderId) -> SiteLocation {
        SiteLocation {
            table: self.table(),
            record_id: self.record_id(order),
            field: self.field(),
        }
    }
}

impl fmt::Display for SealedSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealedSite::LineColumn { line_no, column } => write!(f, "line {line_no} {column}"),
            other => f.write_str(&other.field()),
        }
    }
}

/// Whether the field configured at a KV slot of an order is `encrypted`: the tenant config's
/// answer for the order's business identity and order type. A slot no configured field
/// owns answers `false`: its value is carried over untouched.
pub trait KvSealing {
    fn is_sealed(&self, domain: BusinessDomain, key: &str) -> bool;
}

impl<F: Fn(BusinessDomain, &str) -> bool> KvSealing for F {
    fn is_sealed(&self, domain: BusinessDomain, key: &str) -> bool {
        self(domain, key)
    }
}

/// Calls `visit` with every sealed value of `order` and its site, in a fixed order: shipper
/// then receiver (name, phone, address), the order's columns, each line's columns, the KV
/// identifiers, the remark. Plaintext party values and clear column values are not sites. A sealed KV
/// value rewritten by `visit` is written back into its identifier.
///
/// Errors: a KV identifier that `kv` says is sealed but does not hold a sealed value
/// (`Internal`, naming the site), or whatever `visit` returns.
pub fn visit_sealed<E: From<DomainError>>(
    order: &mut Order,
    kv: &dyn KvSealing,
    mut visit: impl FnMut(&SealedSite, &mut Sealed) -> Result<(), E>,
) -> Result<(), E> {
    for role in PartyRole::ALL {
        let party = match role {
            PartyRole::Shipper => order.parties.shipper.as_mut(),
            PartyRole::Receiver => order.parties.receiver.as_mut(),
        };
        let Some(party) = party else { continue };
        for (field, value) in party.pii_fields_mut() {
            if let Protected::Sealed { sealed } = value {
                visit(&SealedSite::Party { role, field }, sealed)?;
            }
        }
    }
    for (column, value) in &mut order.extension.columns {
        if let Protected::Sealed { sealed } = value {
            visit(&SealedSite::OrderColumn(*column), sealed)?;
        }
    }
    for line in &mut order.lines {
        for (column, value) in &mut line.ext {
            if let Protected::Sealed { sealed } = value {
                let site = SealedSite::LineColumn {
                    line_no: line.line_no,
                    column: *column,
                };
                visit(&site, sealed)?;
            }
        }
    }
    for identifier in &mut order.extension.identifiers {
        if !kv.is_sealed(identifier.domain, &identifier.key) {
            continue;
        }
        let site = SealedSite::Kv {
            domain: identifier.domain,
            key: identifier.key.clone(),
        };
        let mut sealed = identifier.value.sealed().map_err(|_| {
            E::from(DomainError::internal(format!(
                "KV identifier {site} is configured encrypted but does not hold a sealed value"
            )))
        })?;
        let before = sealed.clone();
        visit(&site, &mut sealed)?;
        if sealed != before {
            identifier.value = crate::ext::KvValue::from_sealed(&sealed);
        }
    }
    if let Some(Protected::Sealed { sealed }) = &mut order.operation.remark {
        visit(&SealedSite::Remark, sealed)?;
    }
    Ok(())
}

/// Every sealed value of `order` with its site, in [`visit_sealed`]'s order.
pub fn sealed_values(
    order: &Order,
    kv: &dyn KvSealing,
) -> Result<Vec<(SealedSite, Sealed)>, DomainError> {
    let mut copy = order.clone();
    let mut found = Vec::new();
    visit_sealed(&mut copy, kv, |site, sealed| {
        found.push((site.clone(), sealed.clone()));
        Ok::<(), DomainError>(())
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(index: u8) -> ColumnIndex {
        ColumnIndex::new(index).unwrap()
    }

    /// The associated-data strings are in stored ciphertexts: these are the ones every
    /// existing value was sealed with.
    #[test]
    fn locations_are_the_stored_ones() {
        let order: OrderId = OrderId::from_raw(1 << 40).unwrap();
        let id = order.to_string();
        let cases = [
            (
                SealedSite::Party {
                    role: PartyRole::Receiver,
                    field: PartyField::Phone,
                },
                ("orders", id.clone(), "receiver.phone"),
            ),
            (
                SealedSite::OrderColumn(column(4)),
                ("orders", id.clone(), "order.ext_04"),
            ),
            (
                SealedSite::LineColumn {
                    line_no: 2,
                    column: column(1),
                },
                ("order_lines", format!("{id}/2"), "line.ext_01"),
            ),
            (
                SealedSite::Kv {
                    domain: BusinessDomain::Party,
                    key: "passport".into(),
                },
                ("orders", id.clone(), "kv.party.passport"),
            ),
            (
                SealedSite::Remark,
                ("orders", id.clone(), "operation.remark"),
            ),
        ];
        for (site, (table, record_id, field)) in cases {
            let location = site.location(order);
            assert_eq!(location.table, table, "{site:?}");
            assert_eq!(location.record_id, record_id, "{site:?}");
            assert_eq!(location.field, field, "{site:?}");
            if let Some(slot) = site.slot() {
                assert_eq!(slot_field(&slot), field, "one field name per slot");
                assert_eq!(SealedSite::of_slot(&slot, 2), site);
            }
        }
    }
}
