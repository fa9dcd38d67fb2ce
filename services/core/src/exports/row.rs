//! An order as an export row: the columns an export has (derived from the tenant config and
//! the PII policy) and the cells of one order under them.
//!
//! Columns, in order: the core fields (not the tenant, nor the creation date: they are the
//! partition's, in its path, as Hive-style readers expect) (amounts in minor units, times as UTC timestamps,
//! promotions and coupons as JSON text); the personal-data columns (a party's name, phone,
//! address; the remark) unless the policy drops them; then the extension fields of every
//! order type of the tenant, sorted by column name: a column slot under its configured
//! name (`ext_<name>` if that name is a core column's), a KV identifier by domain and key
//! (`<domain>.<key>`, e.g. `marketing.campaign_id`). A column has its field's type when
//! every order type configuring that name agrees on it and the field is not encrypted, else
//! text (the value's canonical text). Lines: their core fields and line extension fields.

use std::collections::{BTreeMap, HashMap};

use oc_crypto::{mask_address, mask_middle, mask_name, mask_phone};
use oc_model::export::{Cell, Column, ColumnType, ExportRow, ExportSchema};
use oc_model::order::Party;
use oc_model::sealing::{PartyField, PartyRole, SealedSite};
use oc_model::{
    DomainResult, ExtFieldType, ExtTable, ExtValue, Order, Protected, Slot, UnixMillis,
};
use oc_tenant_config::{ExportPii, ResolvedField, TenantConfig};

use crate::sealing::{Sealer, party_normalizer};

/// What an export writes for personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiPolicy {
    Dropped,
    Masked,
    Token,
    /// Plaintext: only for a role that sees personal data in full, on request.
    Plain,
}

impl PiiPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiPolicy::Dropped => "dropped",
            PiiPolicy::Masked => "masked",
            PiiPolicy::Token => "token",
            PiiPolicy::Plain => "plain",
        }
    }
}

impl From<ExportPii> for PiiPolicy {
    fn from(pii: ExportPii) -> PiiPolicy {
        match pii {
            ExportPii::Dropped => PiiPolicy::Dropped,
            ExportPii::Masked => PiiPolicy::Masked,
            ExportPii::Token => PiiPolicy::Token,
        }
    }
}

type CoreCell = fn(&Order) -> Cell;

fn text(value: impl ToString) -> Cell {
    Cell::Text(value.to_string())
}

fn opt_text<T: ToString>(value: Option<T>) -> Cell {
    value.map_or(Cell::Null, text)
}

fn millis(at: time::OffsetDateTime) -> Cell {
    Cell::Timestamp(UnixMillis::from(at))
}

fn opt_millis(at: Option<time::OffsetDateTime>) -> Cell {
    at.map_or(Cell::Null, millis)
}

fn json(value: &impl serde::Serialize) -> Cell {
    serde_json::to_string(value).map_or(Cell::Null, Cell::Text)
}

/// The core columns of an order, with how each is read.
const CORE: &[(&str, ColumnType, CoreCell)] = {
    use ColumnType::{Int, Text, Timestamp};
    &[
        ("order_id", Text, |o| text(o.main.id)),
        ("business_identity", Text, |o| {
            text(&o.main.business_identity)
        }),
        ("order_type", Text, |o| text(&o.main.order_type)),
        ("status", Text, |o| text(&o.main.status)),
        ("version", Int, |o| Cell::Int(o.main.version as i64)),
        ("buyer_id", Text, |o| text(&o.main.buyer_id)),
        ("merchant_id", Text, |o| {
            opt_text(o.main.merchant_id.as_ref())
        }),
        ("external_ref", Text, |o| {
            opt_text(o.main.external_ref.as_ref())
        }),
        ("created_at", Timestamp, |o| millis(o.main.created_at)),
        ("updated_at", Timestamp, |o| millis(o.main.updated_at)),
        ("pay_deadline", Timestamp, |o| {
            opt_millis(o.main.pay_deadline)
        }),
        ("currency", Text, |o| text(o.finance.currency)),
        ("goods_total_minor", Int, |o| {
            Cell::Int(o.finance.goods_total.minor)
        }),
        ("discount_total_minor", Int, |o| {
            Cell::Int(o.finance.discount_total.minor)
        }),
        ("freight_minor", Int, |o| Cell::Int(o.finance.freight.minor)),
        ("payable_minor", Int, |o| Cell::Int(o.finance.payable.minor)),
        ("paid_minor", Int, |o| {
            Cell::Int(o.finance.payments.iter().map(|p| p.amount.minor).sum())
        }),
        ("refunded_minor", Int, |o| {
            Cell::Int(o.finance.payments.iter().map(|p| p.refunded.minor).sum())
        }),
        ("points_used", Int, |o| {
            Cell::Int(o.marketing.points_used as i64)
        }),
        ("promotions", Text, |o| json(&o.marketing.promotions)),
        ("coupons", Text, |o| json(&o.marketing.coupons)),
        ("service_product", Text, |o| {
            opt_text(o.logistics.service_product.as_ref())
        }),
        ("carrier", Text, |o| opt_text(o.logistics.carrier.as_ref())),
        ("waybill_no", Text, |o| {
            opt_text(o.logistics.waybill_no.as_ref())
        }),
        ("expected_pickup_at", Timestamp, |o| {
            opt_millis(o.logistics.expected_pickup_at)
        }),
        ("expected_delivery_at", Timestamp, |o| {
            opt_millis(o.logistics.expected_delivery_at)
        }),
        ("channel_source", Text, |o| {
            opt_text(o.channel.source.as_ref())
        }),
        ("customer_channel", Text, |o| {
            opt_text(o.channel.customer_channel.as_ref())
        }),
        ("shipper_region", Text, |o| {
            opt_text(o.parties.shipper.as_ref().and_then(|p| p.region.as_ref()))
        }),
        ("receiver_region", Text, |o| {
            opt_text(o.parties.receiver.as_ref().and_then(|p| p.region.as_ref()))
        }),
        ("created_by", Text, |o| {
            opt_text(o.operation.created_by.as_ref())
        }),
        ("updated_by", Text, |o| {
            opt_text(o.operation.updated_by.as_ref())
        }),
        ("source_system", Text, |o| {
            opt_text(o.operation.source_system.as_ref())
        }),
        ("cancel_reason", Text, |o| {
            opt_text(o.operation.cancel_reason.as_ref())
        }),
    ]
};

/// The personal-data columns of an order (left out when the policy drops PII).
const PII: [(&str, Pii); 7] = [
    (
        "shipper_name",
        Pii::Party(PartyRole::Shipper, PartyField::Name),
    ),
    (
        "shipper_phone",
        Pii::Party(PartyRole::Shipper, PartyField::Phone),
    ),
    (
        "shipper_address",
        Pii::Party(PartyRole::Shipper, PartyField::Address),
    ),
    (
        "receiver_name",
        Pii::Party(PartyRole::Receiver, PartyField::Name),
    ),
    (
        "receiver_phone",
        Pii::Party(PartyRole::Receiver, PartyField::Phone),
    ),
    (
        "receiver_address",
        Pii::Party(PartyRole::Receiver, PartyField::Address),
    ),
    ("remark", Pii::Remark),
];

#[derive(Debug, Clone, Copy)]
enum Pii {
    Party(PartyRole, PartyField),
    Remark,
}

type LineCell = fn(&oc_model::order::OrderLine) -> Cell;

const LINE: &[(&str, ColumnType, LineCell)] = {
    use ColumnType::{Int, Text};
    &[
        ("line_no", Int, |l| Cell::Int(i64::from(l.line_no))),
        ("sku", Text, |l| text(&l.sku)),
        ("product_name", Text, |l| text(&l.product_name)),
        ("quantity", Int, |l| Cell::Int(i64::from(l.quantity))),
        ("unit_price_minor", Int, |l| Cell::Int(l.unit_price.minor)),
        ("unit_weight_grams", Int, |l| {
            l.unit_weight_grams
                .map_or(Cell::Null, |g| Cell::Int(i64::from(g)))
        }),
        ("promotion_type", Text, |l| {
            opt_text(l.promotion_type.as_ref())
        }),
        ("payable_minor", Int, |l| Cell::Int(l.payable.minor)),
    ]
};

/// The export name of a configured field: KV identifiers by domain and key, column slots by
/// their configured name (prefixed `ext_` when a core column has that name).
fn export_name(field: &ResolvedField, line: bool) -> String {
    match &field.slot {
        Slot::Kv { domain, key } => format!("{}.{key}", domain.as_str()),
        Slot::Column { .. } => {
            let taken = if line {
                LINE.iter().any(|(n, ..)| *n == field.name) || field.name == "order_id"
            } else {
                CORE.iter().any(|(n, ..)| *n == field.name)
                    || PII.iter().any(|(n, _)| *n == field.name)
                    || ["lines", "tenant", "date"].contains(&field.name.as_str())
            };
            if taken {
                format!("ext_{}", field.name)
            } else {
                field.name.clone()
            }
        }
    }
}

fn column_type(field_type: ExtFieldType) -> ColumnType {
    match field_type {
        ExtFieldType::Int => ColumnType::Int,
        ExtFieldType::Bool => ColumnType::Bool,
        ExtFieldType::Date => ColumnType::Date,
        ExtFieldType::String | ExtFieldType::Decimal | ExtFieldType::Enum | ExtFieldType::Json => {
            ColumnType::Text
        }
    }
}

/// One extension column while the schema is derived.
#[derive(Debug, Clone)]
struct ExtColumn {
    kind: ColumnType,
    encrypted: bool,
}

/// The columns of one tenant's export under one policy, and where each extension column is.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub schema: ExportSchema,
    policy: PiiPolicy,
    order_ext: HashMap<String, (usize, ExtColumn)>,
    line_ext: HashMap<String, (usize, ExtColumn)>,
}

impl Layout {
    pub(crate) fn of(tenant: &TenantConfig, policy: PiiPolicy) -> Layout {
        let mut order_ext: BTreeMap<String, ExtColumn> = BTreeMap::new();
        let mut line_ext: BTreeMap<String, ExtColumn> = BTreeMap::new();
        for order_type in tenant.order_types() {
            for field in order_type.fields() {
                let line = matches!(
                    field.slot,
                    Slot::Column {
                        table: ExtTable::Line,
                        ..
                    }
                );
                let kind = if field.encrypted {
                    ColumnType::Text
                } else {
                    column_type(field.field_type)
                };
                let target = if line { &mut line_ext } else { &mut order_ext };
                target
                    .entry(export_name(field, line))
                    .and_modify(|c| {
                        if c.kind != kind {
                            c.kind = ColumnType::Text;
                        }
                        c.encrypted |= field.encrypted;
                    })
                    .or_insert(ExtColumn {
                        kind,
                        encrypted: field.encrypted,
                    });
            }
        }
        let keep = |c: &ExtColumn| !(c.encrypted && policy == PiiPolicy::Dropped);
        let mut order: Vec<Column> = CORE
            .iter()
            .map(|(name, kind, _)| Column::new(*name, *kind))
            .collect();
        if policy != PiiPolicy::Dropped {
            order.extend(
                PII.iter()
                    .map(|(name, _)| Column::new(*name, ColumnType::Text)),
            );
        }
        let mut order_index = HashMap::new();
        for (name, column) in order_ext.into_iter().filter(|(_, c)| keep(c)) {
            order_index.insert(name.clone(), (order.len(), column.clone()));
            order.push(Column::new(name, column.kind));
        }
        let mut line = vec![Column::new("order_id", ColumnType::Text)];
        line.extend(LINE.iter().map(|(name, kind, _)| Column::new(*name, *kind)));
        let mut line_index = HashMap::new();
        for (name, column) in line_ext.into_iter().filter(|(_, c)| keep(c)) {
            line_index.insert(name.clone(), (line.len(), column.clone()));
            line.push(Column::new(name, column.kind));
        }
        Layout {
            schema: ExportSchema { order, line },
            policy,
            order_ext: order_index,
            line_ext: line_index,
        }
    }

    /// The row of `order`; its type's fields as the live tenant config defines them.
    pub(crate) fn row(
        &self,
        tenant: &TenantConfig,
        sealer: &Sealer,
        order: &Order,
    ) -> DomainResult<ExportRow> {
        let mut cells: Vec<Cell> = CORE.iter().map(|(_, _, read)| read(order)).collect();
        if self.policy != PiiPolicy::Dropped {
            for (_, pii) in PII {
                cells.push(self.pii_cell(sealer, order, pii)?);
            }
        }
        cells.resize(self.schema.order.len(), Cell::Null);
        let type_config = tenant.order_type(&order.main.business_identity, &order.main.order_type);
        let mut lines = Vec::with_capacity(order.lines.len());
        let mut line_cells_template: Vec<Cell> = Vec::with_capacity(self.schema.line.len());
        for line in &order.lines {
            line_cells_template.clear();
            line_cells_template.push(text(order.main.id));
            line_cells_template.extend(LINE.iter().map(|(_, _, read)| read(line)));
            line_cells_template.resize(self.schema.line.len(), Cell::Null);
            if let Some(type_config) = type_config {
                for (column, value) in &line.ext {
                    let slot = Slot::Column {
                        table: ExtTable::Line,
                        column: *column,
                    };
                    let Some(field) = type_config.field_at(&slot) else {
                        continue;
                    };
                    if let Some((index, ext)) = self.line_ext.get(&export_name(field, true)) {
                        let site = SealedSite::of_slot(&slot, line.line_no);
                        line_cells_template[*index] =
                            self.ext_cell(sealer, order, &site, ext, value)?;
                    }
                }
            }
            lines.push(line_cells_template.clone());
        }
        if let Some(type_config) = type_config {
            for (column, value) in &order.extension.columns {
                let slot = Slot::Column {
                    table: ExtTable::Order,
                    column: *column,
                };
                let Some(field) = type_config.field_at(&slot) else {
                    continue;
                };
                if let Some((index, ext)) = self.order_ext.get(&export_name(field, false)) {
                    let site = SealedSite::OrderColumn(*column);
                    cells[*index] = self.ext_cell(sealer, order, &site, ext, value)?;
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
                let Some(field) = type_config.field_at(&slot) else {
                    continue;
                };
                let Some((index, ext)) = self.order_ext.get(&export_name(field, false)) else {
                    continue;
                };
                let stored = if field.encrypted {
                    identifier
                        .value
                        .sealed()
                        .map(|sealed| Protected::Sealed { sealed })
                } else {
                    ExtValue::from_canonical_text(field.field_type, identifier.value.clear_text())
                        .map(Protected::Plain)
                };
                let Ok(stored) = stored else { continue };
                let site = SealedSite::of_slot(&slot, 0);
                cells[*index] = self.ext_cell(sealer, order, &site, ext, &stored)?;
            }
        }
        Ok(ExportRow {
            order: cells,
            lines,
        })
    }

    fn ext_cell(
        &self,
        sealer: &Sealer,
        order: &Order,
        site: &SealedSite,
        column: &ExtColumn,
        value: &Protected<ExtValue>,
    ) -> DomainResult<Cell> {
        let typed = |value: &ExtValue| match (column.kind, value) {
            (ColumnType::Int, ExtValue::Int(i)) => Cell::Int(*i),
            (ColumnType::Bool, ExtValue::Bool(b)) => Cell::Bool(*b),
            (ColumnType::Date, ExtValue::Date(d)) => Cell::Date(*d),
            (_, other) => Cell::Text(other.canonical_text()),
        };
        let sealed = match value {
            Protected::Plain(plain) => return Ok(typed(plain)),
            Protected::Sealed { sealed } => sealed,
        };
        let tenant = &order.main.tenant;
        Ok(match self.policy {
            PiiPolicy::Dropped => Cell::Null,
            PiiPolicy::Token => opt_text(sealed.blind_index.as_ref()),
            PiiPolicy::Masked => {
                let plain = sealer.open_ext(tenant, order.main.id, site, sealed)?;
                Cell::Text(mask_middle(&plain.canonical_text(), 1, 1))
            }
            PiiPolicy::Plain => typed(&sealer.open_ext(tenant, order.main.id, site, sealed)?),
        })
    }

    fn pii_cell(&self, sealer: &Sealer, order: &Order, pii: Pii) -> DomainResult<Cell> {
        let tenant = &order.main.tenant;
        let (site, value, normalizer, mask): (_, _, _, fn(&str) -> String) = match pii {
            Pii::Party(role, field) => {
                let party: Option<&Party> = match role {
                    PartyRole::Shipper => order.parties.shipper.as_ref(),
                    PartyRole::Receiver => order.parties.receiver.as_ref(),
                };
                let Some(party) = party else {
                    return Ok(Cell::Null);
                };
                let mask: fn(&str) -> String = match field {
                    PartyField::Name => mask_name,
                    PartyField::Phone => mask_phone,
                    PartyField::Address => |a| mask_address(a, 6),
                };
                (
                    SealedSite::Party { role, field },
                    party.pii_field(field),
                    party_normalizer(field),
                    mask,
                )
            }
            Pii::Remark => match &order.operation.remark {
                None => return Ok(Cell::Null),
                Some(remark) => (SealedSite::Remark, remark, None, |t| mask_middle(t, 1, 1)),
            },
        };
        Ok(match self.policy {
            PiiPolicy::Dropped => Cell::Null,
            PiiPolicy::Token => match value {
                Protected::Sealed { sealed } => opt_text(sealed.blind_index.as_ref()),
                // stored before the field was sealed: its token computed as a sealed one's
                Protected::Plain(plain) => opt_text(
                    normalizer.map(|n| sealer.blind_index(tenant, &site.field(), &n, plain)),
                ),
            },
            PiiPolicy::Masked => Cell::Text(mask(&sealer.open_text(
                tenant,
                order.main.id,
                &site,
                value,
            )?)),
            PiiPolicy::Plain => {
                Cell::Text(sealer.open_text(tenant, order.main.id, &site, value)?)
            }
        })
    }
}
