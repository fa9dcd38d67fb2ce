//! What the order commands take: the create, update and cancel inputs. They are also the
//! API's request bodies (`oc-api` re-exports them as its wire types), so they deny unknown
//! fields. Amounts are integers of the order currency's minor unit (`*_minor`); extension
//! fields travel under their configured names, never as `ext_07`.

use std::collections::BTreeMap;

use serde::Deserialize;
use time::OffsetDateTime;

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
    /// Usually set by a `ship` transition's data; a PATCH of the group replaces it too.
    #[serde(default)]
    pub carrier: Option<String>,
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
