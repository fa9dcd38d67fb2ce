//! Extension fields of a command: validated by configured name (type, enum, JSON Schema),
//! put in their slot (a reserved column of the order or line, or a KV identifier), and
//! sealed at their site when the field is `encrypted`.

use std::collections::BTreeMap;

use oc_model::order::{ExtColumns, Extension};
use oc_model::sealing::SealedSite;
use oc_model::{
    BusinessDomain, DomainError, DomainResult, ExtTable, ExtValue, KvIdentifier, KvValue, OrderId,
    Protected, Slot, TenantId,
};
use oc_tenant_config::{OrderTypeConfig, ResolvedField};

use crate::orders::input::ExtensionInput;
use crate::sealing::Sealer;

/// Validates and seals the extension fields of one order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExtensionWriter<'a> {
    pub sealer: &'a Sealer,
    pub tenant: &'a TenantId,
    pub order: OrderId,
    pub fields: &'a OrderTypeConfig,
}

fn unknown_field(path: &str, name: &str) -> DomainError {
    DomainError::invalid(
        path,
        format!("unknown extension field {name:?} for this order type"),
    )
}

impl ExtensionWriter<'_> {
    /// The typed value of `field` (sealed at its site when the field is encrypted; `line_no`
    /// is the line of a line field).
    fn column_value(
        &self,
        field: &ResolvedField,
        json: &serde_json::Value,
        line_no: u32,
    ) -> DomainResult<Protected<ExtValue>> {
        let value = field
            .validate(json)
            .map_err(|e| e.under(&format!("/extension/{}", field.name)))?;
        if !field.encrypted {
            return Ok(Protected::Plain(value));
        }
        let site = SealedSite::of_slot(&field.slot, line_no);
        let sealed =
            self.sealer
                .seal_ext(self.tenant, self.order, &site, &value, field.searchable)?;
        Ok(Protected::Sealed { sealed })
    }

    /// A KV row holds the value's canonical text (so the identifier index can look it up);
    /// an encrypted field holds its sealed form.
    fn kv_value(&self, field: &ResolvedField, json: &serde_json::Value) -> DomainResult<KvValue> {
        Ok(match self.column_value(field, json, 0)? {
            Protected::Plain(value) => KvValue::clear(value.canonical_text()),
            Protected::Sealed { sealed } => KvValue::from_sealed(&sealed),
        })
    }

    /// Order-level extension: the fields of the order table and KV identifiers. With
    /// `existing`, a merge-patch: present names replace, `null` removes; every other value
    /// (of a slot no field owns any more, too) is carried over untouched.
    pub(crate) fn order_extension(
        &self,
        input: &ExtensionInput,
        existing: Option<&Extension>,
    ) -> DomainResult<(ExtColumns, Vec<KvIdentifier>)> {
        let mut columns = existing.map(|e| e.columns.clone()).unwrap_or_default();
        let mut identifiers: BTreeMap<(BusinessDomain, String), KvIdentifier> = existing
            .map(|e| {
                e.identifiers
                    .iter()
                    .filter(|i| i.line_no.is_none())
                    .map(|i| ((i.domain, i.key.clone()), i.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (name, json) in input {
            let path = format!("/extension/{name}");
            let field = self
                .fields
                .field(name)
                .ok_or_else(|| unknown_field(&path, name))?;
            match &field.slot {
                Slot::Column {
                    table: ExtTable::Line,
                    ..
                } => {
                    return Err(DomainError::invalid(
                        &path,
                        "this is a line field: send it in lines[].extension",
                    ));
                }
                Slot::Column {
                    table: ExtTable::Order,
                    column,
                } => {
                    if json.is_null() {
                        columns.remove(column);
                    } else {
                        columns.insert(*column, self.column_value(field, json, 0)?);
                    }
                }
                Slot::Kv { domain, key } => {
                    if json.is_null() {
                        identifiers.remove(&(*domain, key.clone()));
                    } else {
                        let value = self.kv_value(field, json)?;
                        let identifier =
                            KvIdentifier::new(*domain, key.clone(), value).map_err(|_| {
                                DomainError::invalid(&path, "value too long for an identifier")
                            })?;
                        identifiers.insert((*domain, key.clone()), identifier);
                    }
                }
            }
        }
        for field in self.fields.fields().iter().filter(|f| f.required) {
            let present = match &field.slot {
                Slot::Column {
                    table: ExtTable::Order,
                    column,
                } => columns.contains_key(column),
                Slot::Kv { domain, key } => identifiers.contains_key(&(*domain, key.clone())),
                Slot::Column {
                    table: ExtTable::Line,
                    ..
                } => true,
            };
            if !present {
                return Err(DomainError::invalid(
                    format!("/extension/{}", field.name),
                    "this field is required",
                ));
            }
        }
        let mut kept: Vec<KvIdentifier> = identifiers.into_values().collect();
        if let Some(existing) = existing {
            kept.extend(
                existing
                    .identifiers
                    .iter()
                    .filter(|i| i.line_no.is_some())
                    .cloned(),
            );
        }
        kept.sort();
        Ok((columns, kept))
    }

    /// The extension columns of line `line_no`, merged into `existing` like
    /// [`Self::order_extension`].
    pub(crate) fn line_extension(
        &self,
        line_no: u32,
        input: &ExtensionInput,
        existing: Option<&ExtColumns>,
    ) -> DomainResult<ExtColumns> {
        let mut columns = existing.cloned().unwrap_or_default();
        for (name, json) in input {
            let path = format!("/extension/{name}");
            let field = self
                .fields
                .field(name)
                .ok_or_else(|| unknown_field(&path, name))?;
            let Slot::Column {
                table: ExtTable::Line,
                column,
            } = &field.slot
            else {
                return Err(DomainError::invalid(
                    &path,
                    "this is an order field: send it in the order's extension",
                ));
            };
            if json.is_null() {
                columns.remove(column);
            } else {
                columns.insert(*column, self.column_value(field, json, line_no)?);
            }
        }
        for field in self.fields.fields().iter().filter(|f| f.required) {
            if let Slot::Column {
                table: ExtTable::Line,
                column,
            } = &field.slot
                && !columns.contains_key(column)
            {
                return Err(DomainError::invalid(
                    format!("/extension/{}", field.name),
                    "this field is required",
                ));
            }
        }
        Ok(columns)
    }
}
