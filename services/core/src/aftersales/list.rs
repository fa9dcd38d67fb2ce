//! After-sale lists for the merchant and customer-service consoles (`after_sales.list`,
//! issue #20 item 6, seed 000 "After-Sale Review"): filters and cursor pages over the search
//! index's after-sale documents, each after-sale then read from its shard (lists from the
//! index, details from the system of record, as for orders).
//!
//! Query parameters: `status` (comma list), `type`, `channel`, `merchant`, `order`, `sku`,
//! `from` / `to` (RFC 3339 creation time, `[from, to)`), `cursor`, `limit` (1–100, default
//! 20). Unknown parameters are refused. A merchant-scoped key sees its merchant's after-sales
//! only (the merchant of their orders), like its order searches.
//!
//! When no index is configured or it is unavailable, the list is answered from the shards
//! (every shard asked, merged newest first) with `"degraded": true`, the orders' switch
//! ([`crate::orders::search::index_unavailable`]). Its cursors are the shards' own: a walk
//! begun on the index starts again when the index goes away, and the other way round.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use oc_model::aftersale::listing::{AfterSaleListing, AfterSaleQuery};
use oc_model::aftersale::{AfterSale, AfterSaleChannel, AfterSaleType};
use oc_model::ports::SearchIndex;
use oc_model::search::TimeRange;
use oc_model::{DomainError, DomainResult, ErrorCode, OrderId, PartyId, StatusCode};
use oc_tenant_config::Endpoint;

use super::{AfterSaleService, AfterSaleView};
use crate::caller::Caller;
use crate::orders::search::{index_unavailable, parse_int, parse_time, query_path};

const PARAMETERS: &[&str] = &[
    "status", "type", "channel", "merchant", "order", "sku", "from", "to", "cursor", "limit",
];
const MAX_LIMIT: u32 = 100;

/// The answer of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AfterSaleList {
    pub items: Vec<AfterSaleView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// True when the index was unavailable and the shards answered instead.
    pub degraded: bool,
}

/// The list use case: the after-sale service, the index and the shards' fallback.
#[derive(Debug, Clone)]
pub struct AfterSaleLists {
    pub(crate) after_sales: AfterSaleService,
    pub(crate) search: Option<Arc<dyn SearchIndex>>,
    pub(crate) shards: Arc<dyn AfterSaleListing>,
}

fn parse_list<T>(name: &str, text: &str, parse: impl Fn(&str) -> Option<T>) -> DomainResult<T> {
    parse(text).ok_or_else(|| {
        DomainError::invalid(query_path(name), format!("{text:?} is not a known {name}"))
    })
}

impl AfterSaleLists {
    pub fn new(
        after_sales: AfterSaleService,
        search: Option<Arc<dyn SearchIndex>>,
        shards: Arc<dyn AfterSaleListing>,
    ) -> AfterSaleLists {
        AfterSaleLists {
            after_sales,
            search,
            shards,
        }
    }

    fn build_query(
        caller: &Caller,
        params: &BTreeMap<String, String>,
    ) -> DomainResult<AfterSaleQuery> {
        if let Some(unknown) = params.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
            return Err(DomainError::invalid(
                query_path(unknown),
                format!("unknown parameter (known: {})", PARAMETERS.join(", ")),
            ));
        }
        let get = |name: &str| params.get(name).map(String::as_str);
        let mut query = AfterSaleQuery::default();
        if let Some(text) = get("status") {
            query.statuses = text
                .split(',')
                .map(|code| {
                    StatusCode::parse(code.trim()).map_err(|e| e.under(&query_path("status")))
                })
                .collect::<DomainResult<_>>()?;
        }
        query.kind = get("type")
            .map(|text| parse_list("type", text, AfterSaleType::parse))
            .transpose()?;
        query.channel = get("channel")
            .map(|text| parse_list("channel", text, AfterSaleChannel::parse))
            .transpose()?;
        let merchant_id = get("merchant")
            .map(|v| PartyId::parse(v).map_err(|e| e.under(&query_path("merchant"))))
            .transpose()?;
        // a merchant-scoped key lists its own merchant's after-sales only
        query.merchant_id = caller.merchant_for_read(merchant_id, &query_path("merchant"))?;
        query.order_id = get("order")
            .map(|v| {
                v.parse::<OrderId>()
                    .map_err(|_| DomainError::invalid(query_path("order"), "not an order id"))
            })
            .transpose()?;
        if let Some(sku) = get("sku") {
            if sku.is_empty() || sku.chars().count() > 128 {
                return Err(DomainError::invalid(
                    query_path("sku"),
                    "a SKU is 1 to 128 characters",
                ));
            }
            query.sku = Some(sku.to_owned());
        }
        query.created_at = TimeRange {
            from: get("from").map(|v| parse_time("from", v)).transpose()?,
            to: get("to").map(|v| parse_time("to", v)).transpose()?,
        };
        if let Some(cursor) = get("cursor") {
            if cursor.len() > 512 {
                return Err(DomainError::invalid(
                    query_path("cursor"),
                    "at most 512 characters",
                ));
            }
            query.cursor = Some(cursor.to_owned());
        }
        if let Some(text) = get("limit") {
            query.limit = u32::try_from(parse_int("limit", text)?).unwrap_or(0);
            if !(1..=MAX_LIMIT).contains(&query.limit) {
                return Err(DomainError::invalid(
                    query_path("limit"),
                    format!("limit must be 1 to {MAX_LIMIT}"),
                ));
            }
        }
        query.validate().map_err(|e| {
            DomainError::invalid(format!("/query{}", e.field.unwrap_or_default()), e.message)
        })?;
        Ok(query)
    }

    /// The caller's tenant's after-sales matching `params`, newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        params: &BTreeMap<String, String>,
    ) -> DomainResult<AfterSaleList> {
        caller.require(Endpoint::AfterSalesList)?;
        let query = Self::build_query(caller, params)?;
        let outcome = match &self.search {
            Some(index) => index.search_after_sales(&caller.tenant, &query).await,
            None => Err(DomainError::unavailable("no search index is configured")),
        };
        let page = match outcome {
            Ok(page) => page,
            Err(error) if index_unavailable(&error) => {
                tracing::warn!(error = %error.message, "search index unavailable; listing after-sales from the shards");
                return self.list_on_the_shards(caller, &query).await;
            }
            Err(error) => return Err(query_error(error)),
        };
        let store = &self.after_sales.store;
        let mut items = Vec::with_capacity(page.hits.len());
        for hit in &page.hits {
            // details from the shard; the index can trail an archiving: skip what is gone
            if let Some(after_sale) = store
                .get_after_sale(&caller.tenant, hit.after_sale_id)
                .await?
            {
                items.push(view(after_sale, caller));
            }
        }
        Ok(AfterSaleList {
            items,
            next_cursor: page.next_cursor,
            degraded: false,
        })
    }

    async fn list_on_the_shards(
        &self,
        caller: &Caller,
        query: &AfterSaleQuery,
    ) -> DomainResult<AfterSaleList> {
        let page = self
            .shards
            .list_after_sales(&caller.tenant, query)
            .await
            .map_err(query_error)?;
        Ok(AfterSaleList {
            items: page
                .items
                .into_iter()
                .map(|after_sale| view(after_sale, caller))
                .collect(),
            next_cursor: page.next_cursor,
            degraded: true,
        })
    }
}

/// A listed after-sale as `caller` may see it (its reason by the role's PII view).
fn view(after_sale: AfterSale, caller: &Caller) -> AfterSaleView {
    AfterSaleView::of(after_sale, Vec::new(), None).shown_to(caller)
}

/// A query error of the index or the shards (a bad cursor) named at its query parameter.
fn query_error(error: DomainError) -> DomainError {
    match (&error.code, error.field.as_deref()) {
        (ErrorCode::InvalidInput, Some(field)) if !field.starts_with("/query") => DomainError {
            field: Some(format!("/query{field}")),
            ..error
        },
        _ => error,
    }
}
