//! Shared test fixtures: search documents and queries.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use oc_model::ports::SearchIndex;
use oc_model::search::{
    BlindIndex, PiiField, ScaledDecimal, SearchDocument, SearchFieldName, SearchQuery, SearchValue,
};
use oc_model::{
    BusinessIdentity, Currency, Money, OrderId, OrderType, PartyId, StatusCode, TenantId,
};
use time::OffsetDateTime;

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

pub fn name(text: &str) -> SearchFieldName {
    SearchFieldName::parse(text).unwrap()
}

pub fn blind(text: &str) -> BlindIndex {
    BlindIndex::parse(text).unwrap()
}

pub fn id(raw: u64) -> OrderId {
    OrderId::from_raw(raw).unwrap()
}

pub fn decimal(text: &str) -> ScaledDecimal {
    ScaledDecimal::from_decimal(text.parse().unwrap()).unwrap()
}

/// 2026-09-21T22:13:20Z, a fixed base time.
pub fn base_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_028_800).unwrap()
}

/// A plain document: pending, cold-chain/standard, buyer `buyer-1`, merchant `m-1`, payable
/// 100.00 CNY, created `minutes` after the base time.
pub fn doc(tenant_name: &str, raw_id: u64, version: u64) -> SearchDocument {
    let at = base_time();
    SearchDocument {
        tenant: tenant(tenant_name),
        order_id: id(raw_id),
        version,
        status: StatusCode::parse("pending_payment").unwrap(),
        business_identity: BusinessIdentity::parse("cold-chain").unwrap(),
        order_type: OrderType::parse("standard").unwrap(),
        buyer_id: PartyId::parse("buyer-1").unwrap(),
        merchant_id: Some(PartyId::parse("m-1").unwrap()),
        created_at: at,
        updated_at: at,
        payable: Money::new(10_000, Currency::CNY),
        product_names: vec!["plain goods".into()],
        skus: vec!["sku-plain".into()],
        ext: BTreeMap::new(),
        pii_blind: BTreeMap::new(),
        archived: false,
    }
}

/// The document `doc` with `ext` values.
pub fn with_ext(mut document: SearchDocument, values: &[(&str, SearchValue)]) -> SearchDocument {
    for (field, value) in values {
        document
            .ext
            .entry(name(field))
            .or_default()
            .push(value.clone());
    }
    document
}

pub fn with_pii(mut document: SearchDocument, field: PiiField, value: &str) -> SearchDocument {
    document.pii_blind.insert(field, blind(value));
    document
}

/// Every id matching `query`, walking all pages; panics on a duplicate.
pub async fn all_ids(index: &dyn SearchIndex, tenant_name: &str, query: SearchQuery) -> Vec<u64> {
    let mut query = query;
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let page = index.search(&tenant(tenant_name), &query).await.unwrap();
        for hit in &page.hits {
            assert!(
                seen.insert(hit.order_id.get()),
                "duplicate {}",
                hit.order_id
            );
            ids.push(hit.order_id.get());
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return ids,
        }
    }
    panic!("pagination did not end");
}

/// The set of ids matching `query`.
pub async fn id_set(
    index: &dyn SearchIndex,
    tenant_name: &str,
    query: SearchQuery,
) -> BTreeSet<u64> {
    all_ids(index, tenant_name, query)
        .await
        .into_iter()
        .collect()
}

pub fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}
