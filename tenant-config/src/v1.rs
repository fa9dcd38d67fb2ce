//! Version 1 of the file format, exactly as written: plain strings for codes (checked with
//! paths by the loader), `deny_unknown_fields` everywhere. A future version 2 gets its own
//! module and a conversion into the same resolved types; version 1 files keep loading.

use std::collections::BTreeMap;

use oc_model::ExtFieldType;
use serde::Deserialize;

use crate::types::{
    Endpoint, InventoryAccelerator, InventoryMode, PiiAccess, RateLimit, ShardKey, UntrackedSkus,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenant {
    #[allow(dead_code)] // checked before deserialising
    pub version: u32,
    pub tenant: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub currency: String,
    #[serde(default)]
    pub api_keys: Vec<RawApiKey>,
    #[serde(default)]
    pub roles: BTreeMap<String, RawRole>,
    pub rate_limits: RawRateLimits,
    pub shard_policy: RawShardPolicy,
    pub retention: RawRetention,
    #[serde(default)]
    pub exports: RawExports,
    #[serde(default)]
    pub business_identities: BTreeMap<String, RawIdentity>,
    #[serde(default)]
    pub after_sales: Option<RawAfterSales>,
}

/// `after_sales:`: machines per after-sale type and review routing, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAfterSales {
    #[serde(default)]
    pub review_routing: Option<RawReviewRouting>,
    #[serde(default)]
    pub state_machines: BTreeMap<String, RawAfterSaleMachine>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReviewRouting {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub customer_service: Option<String>,
}

/// An order machine's shape without what only orders have (stock effects, event data and
/// types): an after-sale's events are the core's own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAfterSaleMachine {
    pub initial: String,
    pub states: Vec<String>,
    pub terminal: Vec<String>,
    pub transitions: Vec<RawAfterSaleTransition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAfterSaleTransition {
    pub from: String,
    pub event: String,
    pub to: String,
}

impl RawAfterSaleMachine {
    /// As an order machine, to be checked by the same code (paths included).
    pub fn as_order_machine(&self) -> RawStateMachine {
        RawStateMachine {
            initial: self.initial.clone(),
            states: self.states.clone(),
            terminal: self.terminal.clone(),
            transitions: self
                .transitions
                .iter()
                .map(|t| RawTransition {
                    from: t.from.clone(),
                    event: t.event.clone(),
                    to: t.to.clone(),
                    event_type: None,
                    stock: None,
                    data: Vec::new(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiKey {
    pub id: String,
    pub role: String,
    pub sha256: String,
    #[serde(default)]
    pub merchant: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    pub endpoints: Vec<Endpoint>,
    pub pii: PiiAccess,
    #[serde(default)]
    pub pii_filters: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    pub per_second: u32,
    pub burst: u32,
    #[serde(default)]
    pub per_key: BTreeMap<String, RateLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShardPolicy {
    pub key: ShardKey,
    pub shard_group: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExports {
    #[serde(default)]
    pub pii: crate::types::ExportPii,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetention {
    pub hot_days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    #[serde(default)]
    pub description: Option<String>,
    pub state_machine: RawStateMachine,
    pub order_types: BTreeMap<String, RawOrderType>,
    #[serde(default)]
    pub inventory: Option<RawInventory>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInventory {
    pub mode: InventoryMode,
    #[serde(default)]
    pub untracked_skus: Option<UntrackedSkus>,
    #[serde(default)]
    pub accelerator: Option<InventoryAccelerator>,
    #[serde(default)]
    pub hot_skus: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStateMachine {
    pub initial: String,
    pub states: Vec<String>,
    pub terminal: Vec<String>,
    pub transitions: Vec<RawTransition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransition {
    pub from: String,
    pub event: String,
    pub to: String,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub stock: Option<String>,
    #[serde(default)]
    pub data: Vec<RawDataField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataField {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: ExtFieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub values: Option<Vec<String>>,
    #[serde(default)]
    pub constraints: Option<serde_json::Value>,
    #[serde(default)]
    pub into: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrderType {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub fields: Vec<RawField>,
    #[serde(default)]
    pub retired_slots: Vec<String>,
    #[serde(default)]
    pub payment_window_seconds: Option<u32>,
    #[serde(default)]
    pub receiver_required: bool,
    #[serde(default)]
    pub partial_payments: bool,
    #[serde(default)]
    pub remark: RawRemark,
}

/// How an order type keeps the free-text `remark`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRemark {
    #[serde(default)]
    pub encrypted: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawField {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: ExtFieldType,
    pub slot: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub searchable: bool,
    #[serde(default)]
    pub encrypted: bool,
    #[serde(default)]
    pub values: Option<Vec<String>>,
    #[serde(default)]
    pub constraints: Option<serde_json::Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub examples: Vec<serde_json::Value>,
}
