//! The `Order` aggregate, grouped as the seed documents' PDM: main, lines, logistics service,
//! marketing, finance, channel, parties, operation and extension.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{DomainError, DomainResult};
use crate::ext::{ColumnIndex, ExtValue, KvIdentifier, Protected};
use crate::ids::{BusinessIdentity, OrderId, OrderType, PartyId, StatusCode, TenantId};
use crate::money::{Currency, Money};

/// Reserved extension column values of one row, by column; the configured field names live
/// in tenant config and are applied at the API edge.
pub type ExtColumns = BTreeMap<ColumnIndex, Protected<ExtValue>>;

/// The order aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub main: OrderMain,
    pub lines: Vec<OrderLine>,
    pub logistics: LogisticsService,
    pub marketing: Marketing,
    pub finance: Finance,
    pub channel: Channel,
    pub parties: Parties,
    pub operation: Operation,
    pub extension: Extension,
}

/// Main file info: identity, classification, status and version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderMain {
    pub id: OrderId,
    pub tenant: TenantId,
    pub business_identity: BusinessIdentity,
    pub order_type: OrderType,
    pub status: StatusCode,
    /// Starts at 1, bumped by every change; exposed as the ETag.
    pub version: u64,
    pub buyer_id: PartyId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<PartyId>,
    /// The caller's own reference for this order, unique per tenant when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Set while the order waits for payment: after it, a timeout cancel may run.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub pay_deadline: Option<OffsetDateTime>,
}

/// A product line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    /// 1-based, unique inside the order.
    pub line_no: u32,
    pub sku: String,
    pub product_name: String,
    pub quantity: u32,
    pub unit_price: Money,
    /// Net weight of one unit in grams (weighed goods refund by weight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_weight_grams: Option<u32>,
    /// The promotion that priced this line (the seeds' `sku_promotionType` split key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_type: Option<String>,
    /// What the buyer pays for this line after promotions: the refundable ceiling.
    pub payable: Money,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ext: ExtColumns,
}

impl OrderLine {
    /// `unit_price × quantity`.
    pub fn gross(&self) -> DomainResult<Money> {
        Ok(self.unit_price.checked_mul(i64::from(self.quantity))?)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogisticsService {
    /// The logistics product (e.g. `express-standard`, `cold-chain-2-8c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_product: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_pickup_at: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_delivery_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waybill_no: Option<String>,
    /// The carrier that took the goods (e.g. set by a `ship` transition's data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Marketing {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotions: Vec<Promotion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coupons: Vec<Coupon>,
    #[serde(default)]
    pub points_used: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub code: String,
    pub promotion_type: String,
    pub discount: Money,
    /// Lines the discount applies to; empty means the whole order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line_nos: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coupon {
    pub code: String,
    pub discount: Money,
}

/// Amounts, all in the order currency's minor units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finance {
    pub currency: Currency,
    /// Sum of line gross amounts.
    pub goods_total: Money,
    /// Promotions + coupons + points.
    pub discount_total: Money,
    pub freight: Money,
    /// `goods_total - discount_total + freight`.
    pub payable: Money,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<PaymentItem>,
}

/// One payment record (a payment channel's transaction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentItem {
    pub payment_id: String,
    pub channel: String,
    pub amount: Money,
    /// Already refunded from this payment item; the ledger's remaining-refundable check uses it.
    pub refunded: Money,
    #[serde(with = "time::serde::rfc3339")]
    pub paid_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    /// The system the order came from (`app`, `mini-program`, `open-api`, `erp`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_channel: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Parties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipper: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Party>,
}

/// Shipper or receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartyRole {
    Shipper,
    Receiver,
}

impl PartyRole {
    pub const ALL: [PartyRole; 2] = [PartyRole::Shipper, PartyRole::Receiver];

    pub fn as_str(self) -> &'static str {
        match self {
            PartyRole::Shipper => "shipper",
            PartyRole::Receiver => "receiver",
        }
    }
}

impl fmt::Display for PartyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A party's personal-data field: always sealed at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartyField {
    Name,
    Phone,
    Address,
}

impl PartyField {
    pub const ALL: [PartyField; 3] = [PartyField::Name, PartyField::Phone, PartyField::Address];

    pub fn as_str(self) -> &'static str {
        match self {
            PartyField::Name => "name",
            PartyField::Phone => "phone",
            PartyField::Address => "address",
        }
    }
}

impl fmt::Display for PartyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shipper or receiver. Name, phone and address are personal data: always sealed at rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub name: Protected<String>,
    pub phone: Protected<String>,
    pub address: Protected<String>,
    /// Region codes are not personal data and stay searchable in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl Party {
    /// The PII fields, for sealing and opening in one place ([`crate::sealing`]).
    pub fn pii_fields_mut(&mut self) -> [(PartyField, &mut Protected<String>); 3] {
        [
            (PartyField::Name, &mut self.name),
            (PartyField::Phone, &mut self.phone),
            (PartyField::Address, &mut self.address),
        ]
    }

    pub fn pii_fields(&self) -> [(PartyField, &Protected<String>); 3] {
        [
            (PartyField::Name, &self.name),
            (PartyField::Phone, &self.phone),
            (PartyField::Address, &self.address),
        ]
    }

    /// One personal-data field.
    pub fn pii_field(&self, field: PartyField) -> &Protected<String> {
        match field {
            PartyField::Name => &self.name,
            PartyField::Phone => &self.phone,
            PartyField::Address => &self.address,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_system: Option<String>,
    /// Free text; sealed when the order type's config says so (it often holds phone
    /// numbers). Stored as a JSON string when clear and `{"sealed":{…}}` when sealed, so the
    /// stored form says which, and rows written before sealing existed read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<Protected<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
}

/// Extension data: reserved columns of the order table and KV identifiers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: ExtColumns,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<KvIdentifier>,
}

impl Order {
    /// Check the aggregate's own invariants (what any store may rely on): lines numbered
    /// 1..=n, one currency throughout, totals that add up exactly, no plaintext PII.
    pub fn check_invariants(&self) -> DomainResult<()> {
        let currency = self.finance.currency;
        if self.lines.is_empty() {
            return Err(DomainError::invalid(
                "/lines",
                "an order needs at least one line",
            ));
        }
        for (index, line) in self.lines.iter().enumerate() {
            let path = format!("/lines/{index}");
            if line.line_no as usize != index + 1 {
                return Err(DomainError::invalid(
                    format!("{path}/line_no"),
                    "lines are numbered 1..n in order",
                ));
            }
            if line.quantity == 0 {
                return Err(DomainError::invalid(
                    format!("{path}/quantity"),
                    "quantity must be at least 1",
                ));
            }
            for (name, money) in [("unit_price", line.unit_price), ("payable", line.payable)] {
                if money.currency != currency {
                    return Err(DomainError::invalid(
                        format!("{path}/{name}"),
                        "currency differs from the order's",
                    ));
                }
                if money.is_negative() {
                    return Err(DomainError::invalid(
                        format!("{path}/{name}"),
                        "amount must not be negative",
                    ));
                }
            }
        }
        let goods: Vec<Money> = self
            .lines
            .iter()
            .map(OrderLine::gross)
            .collect::<DomainResult<_>>()?;
        let goods_total = Money::checked_sum(currency, &goods)?;
        if goods_total != self.finance.goods_total {
            return Err(DomainError::invalid(
                "/finance/goods_total",
                "goods total is not the sum of the lines",
            ));
        }
        let payable = goods_total
            .checked_sub(self.finance.discount_total)?
            .checked_add(self.finance.freight)?;
        if payable != self.finance.payable || payable.is_negative() {
            return Err(DomainError::invalid(
                "/finance/payable",
                "payable is not goods - discounts + freight",
            ));
        }
        let line_payables = Money::checked_sum(currency, self.lines.iter().map(|l| &l.payable))?;
        if line_payables.checked_add(self.finance.freight)? != payable {
            return Err(DomainError::invalid(
                "/lines",
                "line payables plus freight do not add up to the order payable",
            ));
        }
        for (role, party) in [
            ("shipper", &self.parties.shipper),
            ("receiver", &self.parties.receiver),
        ] {
            if let Some(party) = party
                && let Some((field, _)) =
                    party.pii_fields().into_iter().find(|(_, v)| !v.is_sealed())
            {
                return Err(DomainError::internal(format!(
                    "plaintext PII in /parties/{role}/{field}"
                )));
            }
        }
        Ok(())
    }
}
