//! What the order use cases answer: orders rendered for the caller (extension fields by
//! configured name, personal data opened, masked or withheld by role), lists and search
//! pages. Amounts are `Money` objects (`{"minor": 1234, "currency": "CNY"}`). They are also
//! the API's response bodies (`oc-api` re-exports them).

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use oc_model::Money;
use oc_model::search::TotalHits;

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
    /// When an order waiting for payment is cancelled by its `timeout` if still unpaid (its
    /// order type's payment window after placement); absent once it left that status.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub pay_deadline: Option<OffsetDateTime>,
    pub lines: Vec<LineView>,
    pub logistics: oc_model::order::LogisticsService,
    pub marketing: oc_model::order::Marketing,
    pub finance: oc_model::order::Finance,
    pub channel: oc_model::order::Channel,
    pub parties: PartiesView,
    pub operation: OperationView,
    pub extension: BTreeMap<String, serde_json::Value>,
}

/// Who wrote the order and why, as the caller may see it: a sealed remark is opened,
/// masked or left out by role, like other personal data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OperationView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
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

/// One order of a search answer: the order as `GET` renders it, and whether it is archived.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchItem {
    #[serde(flatten)]
    pub order: OrderView,
    /// True when the order was archived (moved to the cold store; listed only when the
    /// search asked `include_archived=true`, or while the index has not caught up).
    pub archived: bool,
}

/// The answer of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    pub items: Vec<SearchItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<TotalHits>,
    /// True when the index was unavailable and the buyer's shard answered instead.
    pub degraded: bool,
}

/// The result of a create: the order and whether it was an idempotent replay.
#[derive(Debug)]
pub struct Created {
    pub view: OrderView,
    pub replayed: bool,
}
