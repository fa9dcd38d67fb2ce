//! Rendering an order for its caller: extension fields by configured name, personal data
//! opened, masked or withheld by the caller's role.

use std::collections::BTreeMap;

use oc_crypto::{mask_address, mask_middle, mask_name, mask_phone};
use oc_model::order::Party;
use oc_model::sealing::{PartyField, PartyRole, SealedSite};
use oc_model::{DomainError, DomainResult, ExtTable, ExtValue, Order, Protected, Slot};
use oc_tenant_config::ResolvedField;

use crate::caller::{Caller, PiiView};
use crate::orders::output::{LineView, OperationView, OrderView, PartiesView, PartyView};
use crate::sealing::Sealer;

/// What a withheld value is shown as.
pub const WITHHELD: &str = "******";

/// Render an opened text for a role.
fn render(view: PiiView, plain: &str, mask: fn(&str) -> String) -> String {
    match view {
        PiiView::Full => plain.to_owned(),
        PiiView::Masked => mask(plain),
        PiiView::None => WITHHELD.to_owned(),
    }
}

/// Free text that may hold personal data (a sealed remark, an after-sale's reasons) for a
/// role: in full, masked keeping its first and last character, or left out.
pub(crate) fn free_text(view: PiiView, text: &str) -> Option<String> {
    match view {
        PiiView::None => None,
        pii => Some(render(pii, text, |text| mask_middle(text, 1, 1))),
    }
}

/// Renders the orders of one caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Renderer<'a> {
    pub sealer: &'a Sealer,
    pub caller: &'a Caller,
}

impl Renderer<'_> {
    /// The order as this caller may see it: extension fields by configured name, PII opened
    /// or masked by role.
    pub(crate) fn view(&self, order: &Order) -> DomainResult<OrderView> {
        let caller = self.caller;
        let tenant = caller.tenant_config();
        let type_config = tenant.order_type(&order.main.business_identity, &order.main.order_type);
        let mut extension = BTreeMap::new();
        if let Some(type_config) = type_config {
            for (column, value) in &order.extension.columns {
                let site = SealedSite::OrderColumn(*column);
                let slot = Slot::Column {
                    table: ExtTable::Order,
                    column: *column,
                };
                if let Some(field) = type_config.field_at(&slot) {
                    extension.insert(field.name.clone(), self.render_ext(order, &site, value)?);
                }
            }
            for identifier in order
                .extension
                .identifiers
                .iter()
                .filter(|i| i.line_no.is_none())
            {
                let slot = Slot::Kv {
                    domain: identifier.domain,
                    key: identifier.key.clone(),
                };
                if let Some(field) = type_config.field_at(&slot) {
                    let stored = kv_stored(field, identifier)?;
                    let site = SealedSite::of_slot(&slot, 0);
                    extension.insert(field.name.clone(), self.render_ext(order, &site, &stored)?);
                }
            }
        }
        let mut lines = Vec::with_capacity(order.lines.len());
        for line in &order.lines {
            let mut line_extension = BTreeMap::new();
            if let Some(type_config) = type_config {
                for (column, value) in &line.ext {
                    let slot = Slot::Column {
                        table: ExtTable::Line,
                        column: *column,
                    };
                    if let Some(field) = type_config.field_at(&slot) {
                        let site = SealedSite::of_slot(&slot, line.line_no);
                        line_extension
                            .insert(field.name.clone(), self.render_ext(order, &site, value)?);
                    }
                }
            }
            lines.push(LineView {
                line_no: line.line_no,
                sku: line.sku.clone(),
                product_name: line.product_name.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                unit_weight_grams: line.unit_weight_grams,
                promotion_type: line.promotion_type.clone(),
                payable: line.payable,
                extension: line_extension,
            });
        }
        Ok(OrderView {
            id: order.main.id.to_string(),
            tenant: order.main.tenant.to_string(),
            business_identity: order.main.business_identity.to_string(),
            order_type: order.main.order_type.to_string(),
            status: order.main.status.to_string(),
            version: order.main.version,
            buyer_id: order.main.buyer_id.to_string(),
            merchant_id: order.main.merchant_id.as_ref().map(ToString::to_string),
            external_ref: order.main.external_ref.clone(),
            created_at: order.main.created_at,
            updated_at: order.main.updated_at,
            pay_deadline: order.main.pay_deadline,
            lines,
            logistics: order.logistics.clone(),
            marketing: order.marketing.clone(),
            finance: order.finance.clone(),
            channel: order.channel.clone(),
            parties: PartiesView {
                shipper: self.party_view(order, PartyRole::Shipper, &order.parties.shipper)?,
                receiver: self.party_view(order, PartyRole::Receiver, &order.parties.receiver)?,
            },
            operation: self.operation_view(order)?,
            extension,
        })
    }

    /// A party as the caller's role may see it (also an after-sale's pickup contact).
    pub(crate) fn party_view(
        &self,
        order: &Order,
        role: PartyRole,
        party: &Option<Party>,
    ) -> DomainResult<Option<PartyView>> {
        let Some(party) = party else { return Ok(None) };
        let pii = self.caller.pii;
        let open = |field: PartyField,
                    value: &Protected<String>,
                    mask: fn(&str) -> String|
         -> DomainResult<String> {
            if pii == PiiView::None {
                return Ok(WITHHELD.to_owned());
            }
            let plain = self.sealer.open_text(
                &self.caller.tenant,
                order.main.id,
                &SealedSite::Party { role, field },
                value,
            )?;
            Ok(render(pii, &plain, mask))
        };
        Ok(Some(PartyView {
            name: open(PartyField::Name, &party.name, mask_name)?,
            phone: open(PartyField::Phone, &party.phone, mask_phone)?,
            address: open(PartyField::Address, &party.address, |a| mask_address(a, 6))?,
            region: party.region.clone(),
            pii: pii.as_str(),
        }))
    }

    /// The operation group; a sealed remark is free text, masked keeping its first and last
    /// character, and left out for a role that sees no personal data.
    fn operation_view(&self, order: &Order) -> DomainResult<OperationView> {
        let operation = &order.operation;
        let remark = match &operation.remark {
            None => None,
            Some(Protected::Plain(text)) => Some(text.clone()),
            Some(sealed) => match self.caller.pii {
                PiiView::None => None,
                pii => {
                    let plain = self.sealer.open_text(
                        &self.caller.tenant,
                        order.main.id,
                        &SealedSite::Remark,
                        sealed,
                    )?;
                    free_text(pii, &plain)
                }
            },
        };
        Ok(OperationView {
            created_by: operation.created_by.clone(),
            updated_by: operation.updated_by.clone(),
            source_system: operation.source_system.clone(),
            remark,
            cancel_reason: operation.cancel_reason.clone(),
        })
    }

    fn render_ext(
        &self,
        order: &Order,
        site: &SealedSite,
        value: &Protected<ExtValue>,
    ) -> DomainResult<serde_json::Value> {
        let sealed = match value {
            Protected::Plain(plain) => return Ok(plain.to_json()),
            Protected::Sealed { sealed } => sealed,
        };
        let pii = self.caller.pii;
        if pii == PiiView::None {
            return Ok(serde_json::Value::String(WITHHELD.to_owned()));
        }
        let plain = self
            .sealer
            .open_ext(&self.caller.tenant, order.main.id, site, sealed)?;
        Ok(match pii {
            PiiView::Full => plain.to_json(),
            _ => serde_json::Value::String(mask_middle(&plain.canonical_text(), 1, 1)),
        })
    }
}

/// A KV identifier's value as the field configured at its slot reads it: sealed when the
/// field is encrypted, else the typed value of its canonical text.
fn kv_stored(
    field: &ResolvedField,
    identifier: &oc_model::KvIdentifier,
) -> DomainResult<Protected<ExtValue>> {
    let corrupt =
        |e: String| DomainError::internal(format!("corrupt identifier {}: {e}", identifier.key));
    if field.encrypted {
        let sealed = identifier.value.sealed().map_err(|e| corrupt(e.message))?;
        return Ok(Protected::Sealed { sealed });
    }
    ExtValue::from_canonical_text(field.field_type, identifier.value.clear_text())
        .map(Protected::Plain)
        .map_err(|e| corrupt(e.message))
}
