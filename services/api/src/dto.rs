//! Wire types. Requests deny unknown fields; amounts in requests are integers of the order
//! currency's minor unit (`*_minor`), amounts in responses are `Money` objects
//! (`{"minor": 1234, "currency": "CNY"}`). Extension fields travel under their configured
//! names, never as `ext_07`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use oc_model::Money;

pub type ExtensionInput = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub business_identity: String,
    pub order_type: String,
    pub buyer_id: String,
    #[serde(default)]
    pub merchant_id: Option<String>,
    /// The caller's own reference, unique per tenant.
    #[serde(default)]
    pub external_ref: Option<String>,
    /// ISO 4217; defaults to the tenant's currency.
    #[serde(default)]
    pub currency: Option<String>,
    pub lines: Vec<LineInput>,
    #[serde(default)]
    pub promotions: Vec<PromotionInput>,
    #[serde(default)]
    pub coupons: Vec<CouponInput>,
    #[serde(default)]
    pub points_used: u64,
    #[serde(default)]
    pub freight_minor: i64,
    #[serde(default)]
    pub logistics: Option<LogisticsInput>,
    #[serde(default)]
    pub channel: Option<ChannelInput>,
    #[serde(default)]
    pub shipper: Option<PartyInput>,
    #[serde(default)]
    pub receiver: Option<PartyInput>,
    #[serde(default)]
    pub remark: Option<String>,
    #[serde(default)]
    pub extension: ExtensionInput,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    pub sku: String,
    pub product_name: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
    #[serde(default)]
    pub unit_weight_grams: Option<u32>,
    #[serde(default)]
    pub promotion_type: Option<String>,
    #[serde(default)]
    pub extension: ExtensionInput,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionInput {
    pub code: String,
    pub promotion_type: String,
    pub discount_minor: i64,
    /// 1-based line numbers; empty = the whole order.
    #[serde(default)]
    pub line_nos: Vec<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponInput {
    pub code: String,
    pub discount_minor: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticsInput {
    #[serde(default)]
    pub service_product: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expected_pickup_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expected_delivery_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub waybill_no: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub customer_channel: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyInput {
    pub name: String,
    pub phone: String,
    pub address: String,
    #[serde(default)]
    pub region: Option<String>,
}

/// PATCH body: every member is optional; present members replace. In `extension`, `null`
/// removes a field (unless it is required).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrderRequest {
    #[serde(default)]
    pub merchant_id: Option<String>,
    #[serde(default)]
    pub shipper: Option<PartyInput>,
    #[serde(default)]
    pub receiver: Option<PartyInput>,
    #[serde(default)]
    pub remark: Option<String>,
    #[serde(default)]
    pub logistics: Option<LogisticsInput>,
    #[serde(default)]
    pub extension: Option<ExtensionInput>,
    #[serde(default)]
    pub lines: Option<Vec<LineExtensionUpdate>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineExtensionUpdate {
    pub line_no: u32,
    pub extension: ExtensionInput,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub buyer_id: String,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default, with = "crate::extract::number_from_string")]
    pub limit: Option<u32>,
}

// ---- responses ----

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderView {
    pub id: String,
    pub tenant: String,
    pub business_identity: String,
    pub order_type: String,
    pub status: String,
    pub version: u64,
    pub buyer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub lines: Vec<LineView>,
    pub logistics: oc_model::order::LogisticsService,
    pub marketing: oc_model::order::Marketing,
    pub finance: oc_model::order::Finance,
    pub channel: oc_model::order::Channel,
    pub parties: PartiesView,
    pub operation: oc_model::order::Operation,
    pub extension: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineView {
    pub line_no: u32,
    pub sku: String,
    pub product_name: String,
    pub quantity: u32,
    pub unit_price: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_weight_grams: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion_type: Option<String>,
    pub payable: Money,
    pub extension: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PartiesView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipper: Option<PartyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<PartyView>,
}

/// A party as the caller's role may see it: clear, masked (`138****5678`) or withheld.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartyView {
    pub name: String,
    pub phone: String,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `full`, `masked` or `none`: how the PII fields above were rendered.
    pub pii: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderList {
    pub items: Vec<OrderView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
