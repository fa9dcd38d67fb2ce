//! Wire types. The request bodies and responses are the core's own input and output types
//! (`oc_core::orders::{input, output}`, `oc_core::transitions`, `oc_core::stock`), re-exported here so the API names them in one
//! place; only the query strings are the API's. Requests deny unknown fields; amounts in
//! requests are integers of the order currency's minor unit (`*_minor`), amounts in
//! responses are `Money` objects (`{"minor": 1234, "currency": "CNY"}`). Extension fields
//! travel under their configured names, never as `ext_07`.

use serde::Deserialize;

pub use oc_core::orders::input::{
    CancelRequest, ChannelInput, CouponInput, CreateOrderRequest, ExtensionInput,
    LineExtensionUpdate, LineInput, LogisticsInput, PartyInput, PromotionInput, UpdateOrderRequest,
};
pub use oc_core::orders::output::{
    Created, LineView, OrderList, OrderView, PartiesView, PartyView, SearchItem, SearchResult,
};
pub use oc_core::stock::{SetStockRequest, StockView};
pub use oc_core::transitions::{HistoryList, HistoryView, TransitionRequest};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub buyer_id: String,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default, with = "crate::extract::number_from_string")]
    pub limit: Option<u32>,
}
