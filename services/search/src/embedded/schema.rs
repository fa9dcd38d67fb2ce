//! The embedded index's schema and how a [`SearchDocument`] becomes a tantivy document.
//!
//! One index for all tenants; every document carries its `tenant` and the query builder
//! adds the tenant clause itself ([`super::query`]). Extension values go into one `ext`
//! keyword field as typed, name-qualified terms, so any configured field is searchable with
//! no schema change:
//!
//! | value | term |
//! |---|---|
//! | keyword | `k:<name>\0<value>` |
//! | bool | `b:<name>\0true` |
//! | int | `i:<name>\0<16 hex digits, sign bit flipped>` |
//! | decimal | `d:<name>\0<16 hex digits of the 10⁻⁹ count, sign bit flipped>` |
//! | date | `t:<name>\0<16 hex digits of the day number, sign bit flipped>` |
//! | blind index | `x:<name>\0<blind index>` |
//!
//! The numeric encodings sort as the numbers do, so a range is a term range.
//!
//! **Archived orders** carry one more `ext` term, [`ARCHIVED_TERM`] (`@archived`: no
//! extension term starts with `@`), and searches leave documents holding it out unless they
//! include archived orders. A term in an existing field rather than a new field on purpose:
//! a tantivy index keeps the schema it was created with, so a new field would make every
//! existing on-disk index unopenable until rebuilt, and a rebuild from the shards (backfill)
//! cannot bring archived orders back (they are gone from the shards). With the schema
//! unchanged, an index written before archiving was marked opens as it is and its documents
//! count as hot, which is what they were when written. The schema is pinned by
//! `tantivy_index_of_the_schema_before_archived_opens_and_counts_as_hot`
//! (`tests/conformance.rs`).

use oc_model::search::{PiiField, SearchDocument, SearchFieldName, SearchValue, SortField};
use tantivy::TantivyDocument;
use tantivy::schema::{FAST, Field, INDEXED, STRING, Schema};

use crate::cursor::epoch_millis;
use crate::text;

/// The field handles of the embedded schema.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub schema: Schema,
    /// `tenant/order_id`: the unique key that replaces and deletes a document.
    pub doc_key: Field,
    pub tenant: Field,
    pub order_id: Field,
    pub version: Field,
    pub status: Field,
    pub business_identity: Field,
    pub order_type: Field,
    pub buyer_id: Field,
    pub merchant_id: Field,
    pub created_at: Field,
    pub updated_at: Field,
    pub payable_minor: Field,
    pub currency: Field,
    pub product_terms: Field,
    pub sku: Field,
    pub ext: Field,
    pub pii_blind: Field,
}

/// The `ext` term marking an archived order's document.
pub(crate) const ARCHIVED_TERM: &str = "@archived";

pub(crate) const ORDER_ID: &str = "order_id";
pub(crate) const VERSION: &str = "version";

impl Fields {
    pub fn new() -> Fields {
        let mut builder = Schema::builder();
        let doc_key = builder.add_text_field("doc_key", STRING);
        let tenant = builder.add_text_field("tenant", STRING);
        let order_id = builder.add_u64_field(ORDER_ID, INDEXED | FAST);
        let version = builder.add_u64_field(VERSION, FAST);
        let status = builder.add_text_field("status", STRING);
        let business_identity = builder.add_text_field("business_identity", STRING);
        let order_type = builder.add_text_field("order_type", STRING);
        let buyer_id = builder.add_text_field("buyer_id", STRING);
        let merchant_id = builder.add_text_field("merchant_id", STRING);
        let created_at = builder.add_i64_field("created_at", INDEXED | FAST);
        let updated_at = builder.add_i64_field("updated_at", INDEXED | FAST);
        let payable_minor = builder.add_i64_field("payable_minor", INDEXED | FAST);
        let currency = builder.add_text_field("currency", STRING);
        let product_terms = builder.add_text_field("product_terms", STRING);
        let sku = builder.add_text_field("sku", STRING);
        let ext = builder.add_text_field("ext", STRING);
        let pii_blind = builder.add_text_field("pii_blind", STRING);
        Fields {
            schema: builder.build(),
            doc_key,
            tenant,
            order_id,
            version,
            status,
            business_identity,
            order_type,
            buyer_id,
            merchant_id,
            created_at,
            updated_at,
            payable_minor,
            currency,
            product_terms,
            sku,
            ext,
            pii_blind,
        }
    }

    /// The fast field a sort reads its key from.
    pub fn sort_key(&self, field: SortField) -> Field {
        match field {
            SortField::CreatedAt => self.created_at,
            SortField::UpdatedAt => self.updated_at,
            SortField::Payable => self.payable_minor,
        }
    }

    pub fn to_document(&self, doc: &SearchDocument) -> TantivyDocument {
        let mut out = TantivyDocument::new();
        out.add_text(
            self.doc_key,
            doc_key(doc.tenant.as_str(), doc.order_id.get()),
        );
        out.add_text(self.tenant, doc.tenant.as_str());
        out.add_u64(self.order_id, doc.order_id.get());
        out.add_u64(self.version, doc.version);
        out.add_text(self.status, doc.status.as_str());
        out.add_text(self.business_identity, doc.business_identity.as_str());
        out.add_text(self.order_type, doc.order_type.as_str());
        out.add_text(self.buyer_id, doc.buyer_id.as_str());
        if let Some(merchant) = &doc.merchant_id {
            out.add_text(self.merchant_id, merchant.as_str());
        }
        out.add_i64(self.created_at, epoch_millis(doc.created_at));
        out.add_i64(self.updated_at, epoch_millis(doc.updated_at));
        out.add_i64(self.payable_minor, doc.payable.minor);
        out.add_text(self.currency, doc.payable.currency.code());
        let mut product_terms = Vec::new();
        for name in &doc.product_names {
            product_terms.extend(text::index_terms(name));
        }
        product_terms.sort();
        product_terms.dedup();
        for term in product_terms {
            out.add_text(self.product_terms, term);
        }
        for sku in &doc.skus {
            out.add_text(self.sku, sku);
        }
        for (name, values) in &doc.ext {
            for value in values {
                out.add_text(self.ext, ext_term(name, value));
            }
        }
        for (field, blind) in &doc.pii_blind {
            out.add_text(self.pii_blind, pii_term(*field, blind.as_str()));
        }
        if doc.archived {
            out.add_text(self.ext, ARCHIVED_TERM);
        }
        out
    }
}

pub(crate) fn doc_key(tenant: &str, order_id: u64) -> String {
    format!("{tenant}/{order_id}")
}

pub(crate) fn pii_term(field: PiiField, blind: &str) -> String {
    format!("{field}\0{blind}")
}

/// The tag and name prefix of a field's terms of one kind: `i:weight\0`.
pub(crate) fn ext_prefix(tag: char, name: &SearchFieldName) -> String {
    format!("{tag}:{name}\0")
}

/// A 64-bit signed value as 16 hex digits that sort like the numbers.
pub(crate) fn sortable(value: i64) -> String {
    format!("{:016x}", (value as u64) ^ (1 << 63))
}

pub(crate) fn day_number(date: time::Date) -> i64 {
    i64::from(date.to_julian_day())
}

pub(crate) fn ext_term(name: &SearchFieldName, value: &SearchValue) -> String {
    match value {
        SearchValue::Keyword(text) => format!("{}{text}", ext_prefix('k', name)),
        SearchValue::Bool(flag) => format!("{}{flag}", ext_prefix('b', name)),
        SearchValue::Int(number) => format!("{}{}", ext_prefix('i', name), sortable(*number)),
        SearchValue::Decimal(decimal) => {
            format!("{}{}", ext_prefix('d', name), sortable(decimal.nanos()))
        }
        SearchValue::Date(date) => {
            format!("{}{}", ext_prefix('t', name), sortable(day_number(*date)))
        }
        SearchValue::BlindIndex(blind) => format!("{}{}", ext_prefix('x', name), blind.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_encoding_keeps_order() {
        let values = [i64::MIN, -18_500_000_000, -1, 0, 1, 42, i64::MAX];
        let encoded: Vec<String> = values.iter().map(|v| sortable(*v)).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
    }
}
