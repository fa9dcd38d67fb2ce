//! Translating a [`SearchQuery`] into a tantivy query. The tenant clause is added in one
//! place, [`tenant_scoped`], which every search goes through.

use std::ops::Bound;

use oc_model::search::{ExtCondition, ExtRange, SearchQuery, SearchSort, SortDirection};
use oc_model::{DomainError, DomainResult, TenantId};
use tantivy::Term;
use tantivy::query::{
    BooleanQuery, InvertedIndexRangeQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};

use super::schema::{ARCHIVED_TERM, Fields, day_number, ext_prefix, ext_term, pii_term, sortable};
use crate::cursor::{Cursor, epoch_millis};
use crate::text;

/// All `clauses` hold as they say, and the document must belong to `tenant`. The only way
/// a search query is built.
pub(crate) fn tenant_scoped(
    fields: &Fields,
    tenant: &TenantId,
    clauses: Vec<(Occur, Box<dyn Query>)>,
) -> BooleanQuery {
    let mut all = Vec::with_capacity(clauses.len() + 1);
    all.push((Occur::Must, term(fields.tenant, tenant.as_str())));
    all.extend(clauses);
    BooleanQuery::new(all)
}

fn term(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

fn i64_range(field: Field, lower: Bound<i64>, upper: Bound<i64>) -> Box<dyn Query> {
    let to_term = |value| Term::from_field_i64(field, value);
    Box::new(RangeQuery::new(lower.map(to_term), upper.map(to_term)))
}

/// The filter clauses of `query` (without the tenant and the page position), each with how
/// it must hold.
pub(crate) fn filter_clauses(
    fields: &Fields,
    query: &SearchQuery,
) -> DomainResult<Vec<(Occur, Box<dyn Query>)>> {
    let mut clauses: Vec<Box<dyn Query>> = Vec::new();
    if !query.statuses.is_empty() {
        clauses.push(Box::new(TermSetQuery::new(query.statuses.iter().map(
            |status| Term::from_field_text(fields.status, status.as_str()),
        ))));
    }
    if let Some(identity) = &query.business_identity {
        clauses.push(term(fields.business_identity, identity.as_str()));
    }
    if let Some(order_type) = &query.order_type {
        clauses.push(term(fields.order_type, order_type.as_str()));
    }
    if let Some(buyer) = &query.buyer_id {
        clauses.push(term(fields.buyer_id, buyer.as_str()));
    }
    if let Some(merchant) = &query.merchant_id {
        clauses.push(term(fields.merchant_id, merchant.as_str()));
    }
    if let Some(sku) = &query.sku {
        clauses.push(term(fields.sku, sku));
    }
    let range = query.created_at;
    if range.from.is_some() || range.to.is_some() {
        let lower = range
            .from
            .map_or(Bound::Unbounded, |at| Bound::Included(epoch_millis(at)));
        let upper = range
            .to
            .map_or(Bound::Unbounded, |at| Bound::Excluded(epoch_millis(at)));
        clauses.push(i64_range(fields.created_at, lower, upper));
    }
    if let Some(amount) = &query.payable {
        clauses.push(term(fields.currency, amount.currency.code()));
        if amount.min_minor.is_some() || amount.max_minor.is_some() {
            clauses.push(i64_range(
                fields.payable_minor,
                amount.min_minor.map_or(Bound::Unbounded, Bound::Included),
                amount.max_minor.map_or(Bound::Unbounded, Bound::Included),
            ));
        }
    }
    for filter in &query.ext {
        match &filter.condition {
            ExtCondition::Equals(value) => {
                clauses.push(term(fields.ext, &ext_term(&filter.name, value)));
            }
            ExtCondition::Range(range) => {
                let (tag, min, max) = match *range {
                    ExtRange::Int { min, max } => ('i', min, max),
                    ExtRange::Decimal { min, max } => {
                        ('d', min.map(|d| d.nanos()), max.map(|d| d.nanos()))
                    }
                    ExtRange::Date { min, max } => ('t', min.map(day_number), max.map(day_number)),
                };
                let prefix = ext_prefix(tag, &filter.name);
                let lower = format!("{prefix}{}", min.map(sortable).unwrap_or_default());
                let upper = match max {
                    Some(max) => Bound::Included(format!("{prefix}{}", sortable(max))),
                    // just past every term of this name: the separator `\0` plus one
                    None => Bound::Excluded(format!("{}\u{1}", &prefix[..prefix.len() - 1])),
                };
                let to_term = |text: String| Term::from_field_text(fields.ext, &text);
                clauses.push(Box::new(InvertedIndexRangeQuery::new(
                    Bound::Included(to_term(lower)),
                    upper.map(to_term),
                )));
            }
        }
    }
    for (field, blind) in &query.pii {
        clauses.push(term(fields.pii_blind, &pii_term(*field, blind.as_str())));
    }
    if let Some(product_text) = &query.product_text {
        let terms = text::query_terms(product_text);
        if terms.is_empty() {
            return Err(DomainError::invalid(
                "/product_text",
                "text query has no letters or digits",
            ));
        }
        for word in terms {
            clauses.push(term(fields.product_terms, &word));
        }
    }
    let mut all: Vec<(Occur, Box<dyn Query>)> = clauses
        .into_iter()
        .map(|clause| (Occur::Must, clause))
        .collect();
    if !query.include_archived {
        // "not marked archived", so a document written before the mark existed is hot
        all.push((Occur::MustNot, term(fields.ext, ARCHIVED_TERM)));
    }
    Ok(all)
}

/// Documents strictly after `cursor` in `sort` order: `(key, id)` beyond the cursor's pair.
pub(crate) fn after_clause(fields: &Fields, sort: SearchSort, cursor: &Cursor) -> Box<dyn Query> {
    let key_field = fields.sort_key(sort.field);
    let id_term = |id| Term::from_field_u64(fields.order_id, id);
    let (key_beyond, id_beyond) = match sort.direction {
        SortDirection::Desc => (
            i64_range(key_field, Bound::Unbounded, Bound::Excluded(cursor.key)),
            RangeQuery::new(
                Bound::Unbounded,
                Bound::Excluded(id_term(cursor.order_id.get())),
            ),
        ),
        SortDirection::Asc => (
            i64_range(key_field, Bound::Excluded(cursor.key), Bound::Unbounded),
            RangeQuery::new(
                Bound::Excluded(id_term(cursor.order_id.get())),
                Bound::Unbounded,
            ),
        ),
    };
    let same_key_later_id = BooleanQuery::new(vec![
        (
            Occur::Must,
            i64_range(
                key_field,
                Bound::Included(cursor.key),
                Bound::Included(cursor.key),
            ),
        ),
        (Occur::Must, Box::new(id_beyond) as Box<dyn Query>),
    ]);
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, key_beyond),
        (Occur::Should, Box::new(same_key_later_id)),
    ]))
}
