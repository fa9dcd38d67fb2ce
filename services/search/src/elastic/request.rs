//! Request building: pure functions from domain types to the JSON and parameters the
//! adapter sends. Golden-tested in `tests/golden/`.
//!
//! ## Index design
//! One index per tenant behind an alias, `{prefix}orders-{tenant}` → `{prefix}orders-{tenant}.v1`
//! (`.` because no tenant id contains it, see [`EsConfig::physical_index`]):
//! - each tenant has its own extension fields and types, so its own mapping (one shared
//!   index would merge every tenant's `ext.*` fields into one mapping and let one tenant's
//!   type choice block another's);
//! - isolation is by construction (the tenant is in the path) and every query still
//!   carries a `tenant` term filter as a second guard;
//! - a tenant can be reindexed (type change) or dropped on its own; writes use
//!   `require_alias=true`, so a missing alias fails loudly instead of auto-creating an index
//!   with a dynamic mapping.
//!
//! The cost is one index (and its shards) per tenant; for many small tenants the
//! alternative is a shared index with `routing=tenant` and a filtered alias per tenant, at
//! the price of a shared `ext` mapping.

use oc_model::search::{
    ExtCondition, ExtRange, PiiField, SearchDocument, SearchFieldKind, SearchFieldName,
    SearchFieldSpec, SearchQuery, SearchValue,
};
use oc_model::{DomainError, DomainResult, TenantId};
use serde::Serialize;
use serde_json::{Map, Value, json};
use time::macros::format_description;

use super::config::{EsConfig, ORDERCENTER_CJK_ANALYZER, ORDERCENTER_CJK_SEARCH_ANALYZER};
use crate::cursor::{Cursor, direction_name, epoch_millis, sort_field_name};

/// An index (write) request: the URL parts, query parameters and body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexRequest {
    /// The alias (see the module docs).
    pub index: String,
    /// The order id in decimal.
    pub id: String,
    /// `version` + `version_type=external`: ES writes only when this is strictly greater
    /// than the version it holds and answers 409 otherwise.
    pub version: i64,
    pub body: Value,
}

impl IndexRequest {
    /// What goes over the wire, for golden files: method, path and query as the
    /// `elasticsearch` client sends them.
    pub fn describe(&self) -> Value {
        json!({
            "method": "POST",
            "path": format!("/{}/_doc/{}", self.index, self.id),
            "query": {
                "require_alias": "true",
                "version": self.version.to_string(),
                "version_type": "external",
            },
            "body": self.body,
        })
    }
}

pub fn build_index_request(config: &EsConfig, doc: &SearchDocument) -> DomainResult<IndexRequest> {
    let version = i64::try_from(doc.version)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            DomainError::invalid(
                "/version",
                "version must be 1..=2^63-1 for external versioning",
            )
        })?;
    Ok(IndexRequest {
        index: config.alias(&doc.tenant),
        id: doc.order_id.to_string(),
        version,
        body: document_body(doc),
    })
}

/// The `_source` of an order document. Times are epoch milliseconds; decimals are 10⁻⁹
/// counts; dates are `yyyy-MM-dd`; extension values are always arrays.
pub fn document_body(doc: &SearchDocument) -> Value {
    let mut body = Map::new();
    body.insert("tenant".into(), json!(doc.tenant.as_str()));
    body.insert("order_id".into(), json!(doc.order_id.get()));
    body.insert("version".into(), json!(doc.version));
    body.insert("status".into(), json!(doc.status.as_str()));
    body.insert(
        "business_identity".into(),
        json!(doc.business_identity.as_str()),
    );
    body.insert("order_type".into(), json!(doc.order_type.as_str()));
    body.insert("buyer_id".into(), json!(doc.buyer_id.as_str()));
    if let Some(merchant) = &doc.merchant_id {
        body.insert("merchant_id".into(), json!(merchant.as_str()));
    }
    body.insert("created_at".into(), json!(epoch_millis(doc.created_at)));
    body.insert("updated_at".into(), json!(epoch_millis(doc.updated_at)));
    body.insert("payable_minor".into(), json!(doc.payable.minor));
    body.insert("currency".into(), json!(doc.payable.currency.code()));
    body.insert("product_names".into(), json!(doc.product_names));
    body.insert("skus".into(), json!(doc.skus));
    let ext: Map<String, Value> = doc
        .ext
        .iter()
        .map(|(name, values)| {
            (
                name.to_string(),
                Value::Array(values.iter().map(value_json).collect()),
            )
        })
        .collect();
    body.insert("ext".into(), Value::Object(ext));
    let pii: Map<String, Value> = doc
        .pii_blind
        .iter()
        .map(|(field, blind)| (field.to_string(), json!(blind.as_str())))
        .collect();
    body.insert("pii_blind".into(), Value::Object(pii));
    // only archived documents carry the flag: a hot document's source is what it was before
    // the flag existed, and the search filter reads a missing flag as hot
    if doc.archived {
        body.insert("archived".into(), json!(true));
    }
    Value::Object(body)
}

fn date_text(date: time::Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

fn value_json(value: &SearchValue) -> Value {
    match value {
        SearchValue::Keyword(text) => json!(text),
        SearchValue::Int(number) => json!(number),
        SearchValue::Decimal(decimal) => json!(decimal.nanos()),
        SearchValue::Bool(flag) => json!(flag),
        SearchValue::Date(date) => json!(date_text(*date)),
        SearchValue::BlindIndex(blind) => json!(blind.as_str()),
    }
}

fn field_mapping(kind: SearchFieldKind) -> Value {
    match kind {
        SearchFieldKind::Keyword | SearchFieldKind::BlindIndex => json!({"type": "keyword"}),
        SearchFieldKind::Int => json!({"type": "long"}),
        SearchFieldKind::Decimal => json!({"type": "long", "meta": {"scale": "9"}}),
        SearchFieldKind::Bool => json!({"type": "boolean"}),
        SearchFieldKind::Date => json!({"type": "date", "format": "strict_date"}),
    }
}

/// The `ext` properties for a tenant's searchable fields. Two specs of one name with
/// different kinds cannot share a mapping: an error naming the field.
pub fn ext_properties(fields: &[SearchFieldSpec]) -> DomainResult<Map<String, Value>> {
    let mut properties = Map::new();
    let mut kinds = std::collections::BTreeMap::<&SearchFieldName, SearchFieldKind>::new();
    for spec in fields {
        if let Some(existing) = kinds.insert(&spec.name, spec.kind)
            && existing != spec.kind
        {
            return Err(DomainError::invalid(
                format!("/ext/{}", spec.name),
                format!(
                    "search field {} is configured as {existing} and as {}; one name needs one kind per tenant",
                    spec.name, spec.kind
                ),
            ));
        }
        properties.insert(spec.name.to_string(), field_mapping(spec.kind));
    }
    Ok(properties)
}

/// The create-index body of a tenant's physical index: settings, the alias (as write
/// index) and a strict mapping. Unknown fields are rejected (`dynamic: strict`), so nothing
/// that is not declared here (plaintext PII included) can be indexed by mistake.
pub fn build_create_index_body(
    config: &EsConfig,
    tenant: &TenantId,
    fields: &[SearchFieldSpec],
) -> DomainResult<Value> {
    let keyword = json!({"type": "keyword"});
    let millis = json!({"type": "date", "format": "epoch_millis"});
    let pii: Map<String, Value> = PiiField::ALL
        .iter()
        .map(|field| (field.to_string(), keyword.clone()))
        .collect();
    let mut index = json!({
        "number_of_shards": config.number_of_shards,
        "number_of_replicas": config.number_of_replicas,
    });
    if let Some(refresh) = refresh_interval(config) {
        index["refresh_interval"] = refresh;
    }
    Ok(json!({
        "settings": {
            "index": index,
            "analysis": ordercenter_analysis(),
        },
        "aliases": {
            config.alias(tenant): {"is_write_index": true}
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "tenant": keyword,
                "order_id": {"type": "long"},
                "version": {"type": "long"},
                "status": keyword,
                "business_identity": keyword,
                "order_type": keyword,
                "buyer_id": keyword,
                "merchant_id": keyword,
                "created_at": millis,
                "updated_at": millis,
                "payable_minor": {"type": "long"},
                "currency": keyword,
                "archived": {"type": "boolean"},
                "product_names": product_names_mapping(config),
                "skus": keyword,
                "ext": {
                    "type": "object",
                    "dynamic": "strict",
                    "properties": ext_properties(fields)?,
                },
                "pii_blind": {
                    "type": "object",
                    "dynamic": "strict",
                    "properties": pii,
                },
            }
        }
    }))
}

/// The analyzers every index defines (used when `product_analyzer` names them).
fn ordercenter_analysis() -> Value {
    let chain = |bigram_filter: &str| {
        json!({
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["cjk_width", "lowercase", bigram_filter],
        })
    };
    json!({
        "filter": {
            "ordercenter_cjk_bigram_and_unigram": {
                "type": "cjk_bigram",
                "output_unigrams": true,
            }
        },
        "analyzer": {
            ORDERCENTER_CJK_ANALYZER: chain("ordercenter_cjk_bigram_and_unigram"),
            ORDERCENTER_CJK_SEARCH_ANALYZER: chain("cjk_bigram"),
        }
    })
}

fn product_names_mapping(config: &EsConfig) -> Value {
    if config.product_analyzer == ORDERCENTER_CJK_ANALYZER {
        json!({
            "type": "text",
            "analyzer": ORDERCENTER_CJK_ANALYZER,
            "search_analyzer": ORDERCENTER_CJK_SEARCH_ANALYZER,
        })
    } else {
        json!({"type": "text", "analyzer": config.product_analyzer})
    }
}

/// The configured refresh interval as the engine spells it (`"250ms"`).
fn refresh_interval(config: &EsConfig) -> Option<Value> {
    config
        .refresh_interval
        .map(|every| Value::String(format!("{}ms", every.as_millis())))
}

/// The settings body that gives an existing index the configured refresh interval (a
/// dynamic setting), or `None` when the engine's default is kept.
pub fn build_refresh_settings_body(config: &EsConfig) -> Option<Value> {
    refresh_interval(config).map(|refresh| json!({"index": {"refresh_interval": refresh}}))
}

/// The put-mapping body that adds new searchable fields to an existing tenant index, and
/// `archived` to an index created before that flag existed (adding a field is allowed on a
/// strict mapping; putting the same mapping again is a no-op). Elasticsearch refuses to
/// change an existing field's type: that needs a new generation and a reindex.
pub fn build_put_mapping_body(fields: &[SearchFieldSpec]) -> DomainResult<Value> {
    Ok(json!({
        "properties": {
            "archived": {"type": "boolean"},
            "ext": {"properties": ext_properties(fields)?}
        }
    }))
}

fn date_millis(at: time::OffsetDateTime) -> Value {
    json!(epoch_millis(at))
}

/// The search body of `query` for `tenant`: every filter in `bool.filter` (no scoring),
/// product text as a `match` with `operator: and`, sort by the key then `order_id`, and
/// `search_after` from the cursor. Asks one hit more than the limit to know whether
/// another page exists.
pub fn build_search_body(tenant: &TenantId, query: &SearchQuery) -> DomainResult<Value> {
    query.validate()?;
    let after = query
        .cursor
        .as_deref()
        .map(|text| Cursor::decode(text, query.sort))
        .transpose()?;
    let mut filter = vec![json!({"term": {"tenant": tenant.as_str()}})];
    if !query.statuses.is_empty() {
        let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
        filter.push(json!({"terms": {"status": statuses}}));
    }
    if let Some(identity) = &query.business_identity {
        filter.push(json!({"term": {"business_identity": identity.as_str()}}));
    }
    if let Some(order_type) = &query.order_type {
        filter.push(json!({"term": {"order_type": order_type.as_str()}}));
    }
    if let Some(buyer) = &query.buyer_id {
        filter.push(json!({"term": {"buyer_id": buyer.as_str()}}));
    }
    if let Some(merchant) = &query.merchant_id {
        filter.push(json!({"term": {"merchant_id": merchant.as_str()}}));
    }
    if let Some(sku) = &query.sku {
        filter.push(json!({"term": {"skus": sku}}));
    }
    let created = query.created_at;
    if created.from.is_some() || created.to.is_some() {
        let mut range = Map::new();
        if let Some(from) = created.from {
            range.insert("gte".into(), date_millis(from));
        }
        if let Some(to) = created.to {
            range.insert("lt".into(), date_millis(to));
        }
        filter.push(json!({"range": {"created_at": range}}));
    }
    if let Some(amount) = &query.payable {
        filter.push(json!({"term": {"currency": amount.currency.code()}}));
        let mut range = Map::new();
        if let Some(min) = amount.min_minor {
            range.insert("gte".into(), json!(min));
        }
        if let Some(max) = amount.max_minor {
            range.insert("lte".into(), json!(max));
        }
        if !range.is_empty() {
            filter.push(json!({"range": {"payable_minor": range}}));
        }
    }
    for ext in &query.ext {
        let path = format!("ext.{}", ext.name);
        match &ext.condition {
            ExtCondition::Equals(value) => {
                filter.push(json!({"term": {path: value_json(value)}}));
            }
            ExtCondition::Range(range) => {
                let (min, max) = match *range {
                    ExtRange::Int { min, max } => (min.map(|v| json!(v)), max.map(|v| json!(v))),
                    ExtRange::Decimal { min, max } => {
                        (min.map(|v| json!(v.nanos())), max.map(|v| json!(v.nanos())))
                    }
                    ExtRange::Date { min, max } => (
                        min.map(|d| json!(date_text(d))),
                        max.map(|d| json!(date_text(d))),
                    ),
                };
                let mut bounds = Map::new();
                if let Some(min) = min {
                    bounds.insert("gte".into(), min);
                }
                if let Some(max) = max {
                    bounds.insert("lte".into(), max);
                }
                filter.push(json!({"range": {path: bounds}}));
            }
        }
    }
    for (field, blind) in &query.pii {
        filter.push(json!({"term": {format!("pii_blind.{field}"): blind.as_str()}}));
    }
    let mut bool_query = Map::new();
    bool_query.insert("filter".into(), Value::Array(filter));
    if !query.include_archived {
        // `must_not archived: true`, not `archived: false`: documents written before the flag
        // existed have no `archived` at all and are hot
        bool_query.insert("must_not".into(), json!([{"term": {"archived": true}}]));
    }
    if let Some(text) = &query.product_text {
        if crate::text::query_terms(text).is_empty() {
            return Err(DomainError::invalid(
                "/product_text",
                "text query has no letters or digits",
            ));
        }
        bool_query.insert(
            "must".into(),
            json!([{"match": {"product_names": {"query": text, "operator": "and"}}}]),
        );
    }
    let direction = direction_name(query.sort.direction);
    let mut body = json!({
        "size": query.limit + 1,
        "_source": false,
        "version": true,
        "query": {"bool": bool_query},
        "sort": [
            {sort_field_name(query.sort.field): direction},
            {"order_id": direction},
        ],
    });
    if let Some(cursor) = after {
        body["search_after"] = json!([cursor.key, cursor.order_id.get()]);
    }
    Ok(body)
}
