//! After-sale documents in Elasticsearch (issue #20 item 6): request bodies and answers, pure
//! functions like [`super::request`] and [`super::response`].
//!
//! One index per tenant behind an alias, as for orders, but a family of its own:
//! `{prefix}after-sales-{tenant}` → `{prefix}after-sales-{tenant}.v1`. No order name can be an
//! after-sale name (`orders-` and `after-sales-` differ right after the prefix), and the
//! mapping is fixed (no configured fields), so the index is created on the first write
//! that finds its alias missing rather than ensured from the tenant config.

use oc_model::aftersale::AfterSaleId;
use oc_model::aftersale::listing::{
    AfterSaleDocument, AfterSaleHit, AfterSalePage, AfterSaleQuery,
};
use oc_model::{DomainError, DomainResult, OrderId, TenantId};
use serde_json::{Map, Value, json};

use super::config::EsConfig;
use super::request::IndexRequest;
use super::response::parse_hits;
use crate::cursor::{AFTER_SALE_SORT as SORT, Cursor, epoch_millis};

pub fn alias(config: &EsConfig, tenant: &TenantId) -> String {
    format!("{}after-sales-{tenant}", config.index_prefix)
}

pub fn physical_index(config: &EsConfig, tenant: &TenantId) -> String {
    format!("{}.v1", alias(config, tenant))
}

/// Every after-sale index of this deployment (for refresh).
pub fn all_aliases_pattern(config: &EsConfig) -> String {
    format!("{}after-sales-*", config.index_prefix)
}

/// The create-index body: the alias as write index and a strict, fixed mapping.
pub fn build_create_index_body(config: &EsConfig, tenant: &TenantId) -> Value {
    let keyword = json!({"type": "keyword"});
    let millis = json!({"type": "date", "format": "epoch_millis"});
    let mut index = json!({
        "number_of_shards": config.number_of_shards,
        "number_of_replicas": config.number_of_replicas,
    });
    if let Some(every) = config.refresh_interval {
        index["refresh_interval"] = Value::String(format!("{}ms", every.as_millis()));
    }
    json!({
        "settings": {"index": index},
        "aliases": {alias(config, tenant): {"is_write_index": true}},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "tenant": keyword,
                "after_sale_id": {"type": "long"},
                "order_id": {"type": "long"},
                "version": {"type": "long"},
                "status": keyword,
                "kind": keyword,
                "channel": keyword,
                "merchant_id": keyword,
                "skus": keyword,
                "created_at": millis,
                "updated_at": millis,
            }
        }
    })
}

pub fn build_index_request(
    config: &EsConfig,
    doc: &AfterSaleDocument,
) -> DomainResult<IndexRequest> {
    let version = i64::try_from(doc.version)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            DomainError::invalid(
                "/version",
                "version must be 1..=2^63-1 for external versioning",
            )
        })?;
    let mut body = Map::new();
    body.insert("tenant".into(), json!(doc.tenant.as_str()));
    body.insert("after_sale_id".into(), json!(doc.after_sale_id.get()));
    body.insert("order_id".into(), json!(doc.order_id.get()));
    body.insert("version".into(), json!(doc.version));
    body.insert("status".into(), json!(doc.status.as_str()));
    body.insert("kind".into(), json!(doc.kind.as_str()));
    body.insert("channel".into(), json!(doc.channel.as_str()));
    if let Some(merchant) = &doc.merchant_id {
        body.insert("merchant_id".into(), json!(merchant.as_str()));
    }
    body.insert("skus".into(), json!(doc.skus));
    body.insert("created_at".into(), json!(epoch_millis(doc.created_at)));
    body.insert("updated_at".into(), json!(epoch_millis(doc.updated_at)));
    Ok(IndexRequest {
        index: alias(config, &doc.tenant),
        id: doc.after_sale_id.to_string(),
        version,
        body: Value::Object(body),
    })
}

/// The search body: every filter in `bool.filter` with the tenant term as a second guard,
/// newest first with the id as tie-break, `search_after` from the cursor, one hit more than
/// the limit.
pub fn build_search_body(tenant: &TenantId, query: &AfterSaleQuery) -> DomainResult<Value> {
    query.validate()?;
    let after = query
        .cursor
        .as_deref()
        .map(|text| Cursor::decode(text, SORT))
        .transpose()?;
    let mut filter = vec![json!({"term": {"tenant": tenant.as_str()}})];
    if !query.statuses.is_empty() {
        let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
        filter.push(json!({"terms": {"status": statuses}}));
    }
    if let Some(kind) = query.kind {
        filter.push(json!({"term": {"kind": kind.as_str()}}));
    }
    if let Some(channel) = query.channel {
        filter.push(json!({"term": {"channel": channel.as_str()}}));
    }
    if let Some(merchant) = &query.merchant_id {
        filter.push(json!({"term": {"merchant_id": merchant.as_str()}}));
    }
    if let Some(order) = query.order_id {
        filter.push(json!({"term": {"order_id": order.get()}}));
    }
    if let Some(sku) = &query.sku {
        filter.push(json!({"term": {"skus": sku}}));
    }
    let created = query.created_at;
    if created.from.is_some() || created.to.is_some() {
        let mut range = Map::new();
        if let Some(from) = created.from {
            range.insert("gte".into(), json!(epoch_millis(from)));
        }
        if let Some(to) = created.to {
            range.insert("lt".into(), json!(epoch_millis(to)));
        }
        filter.push(json!({"range": {"created_at": range}}));
    }
    let mut body = json!({
        "size": query.limit + 1,
        "_source": false,
        "version": true,
        "track_total_hits": false,
        "query": {"bool": {"filter": filter}},
        "sort": [{"created_at": "desc"}, {"after_sale_id": "desc"}],
    });
    if let Some(cursor) = after {
        body["search_after"] = json!([cursor.key, cursor.order_id.get()]);
    }
    Ok(body)
}

/// The page of an answer to [`build_search_body`].
pub fn parse_search_response(body: &Value, limit: u32) -> DomainResult<AfterSalePage> {
    let (found, more) = parse_hits::<AfterSaleId>(
        body,
        limit,
        "elasticsearch after-sale search",
        "an after-sale id",
    )?;
    let hits = found
        .iter()
        .map(|hit| AfterSaleHit {
            after_sale_id: hit.id,
            version: hit.version,
        })
        .collect();
    let next_cursor = match found.last().filter(|_| more) {
        Some(hit) => Some(
            Cursor {
                sort: SORT,
                key: hit.key,
                order_id: OrderId::from_raw(hit.id.get())?,
            }
            .encode(),
        ),
        None => None,
    };
    Ok(AfterSalePage { hits, next_cursor })
}
