//! After-sale lists for the merchant and customer-service consoles (issue #20 item 6, seed 000
//! "After-Sale Review"): what the indexer writes for one after-sale ([`AfterSaleDocument`]),
//! what a list asks ([`AfterSaleQuery`]) and gets back ([`AfterSalePage`]).
//!
//! The document is always the whole after-sale as the shard holds it when the event is
//! handled (the seed's rule: every event re-reads the row by primary key and writes the
//! whole document), so a lost or reordered event is repaired by the next one. A list answers
//! ids and versions only: details are read from the shard.
//!
//! No personal data: ids, codes, SKUs and times.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AfterSale, AfterSaleChannel, AfterSaleId, AfterSaleType};
use crate::error::{DomainError, DomainResult};
use crate::ids::{OrderId, PartyId, StatusCode, TenantId};
use crate::ports::page::Page;
use crate::search::{MAX_SEARCH_LIMIT, TimeRange};

/// The flattened after-sale an index holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterSaleDocument {
    pub tenant: TenantId,
    pub after_sale_id: AfterSaleId,
    pub order_id: OrderId,
    /// The after-sale's version: an index keeps the highest version it was given.
    pub version: u64,
    pub status: StatusCode,
    pub kind: AfterSaleType,
    pub channel: AfterSaleChannel,
    /// The order's merchant (an after-sale has no merchant of its own).
    pub merchant_id: Option<PartyId>,
    /// SKUs of the after-sale's lines.
    pub skus: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl AfterSaleDocument {
    /// The document of `after_sale`, whose order has `merchant_id`.
    pub fn of(after_sale: &AfterSale, merchant_id: Option<PartyId>) -> AfterSaleDocument {
        let mut skus: Vec<String> = after_sale
            .lines
            .iter()
            .map(|line| line.sku.clone())
            .collect();
        skus.sort();
        skus.dedup();
        AfterSaleDocument {
            tenant: after_sale.tenant.clone(),
            after_sale_id: after_sale.id,
            order_id: after_sale.order_id,
            version: after_sale.version,
            status: after_sale.status.clone(),
            kind: after_sale.kind,
            channel: after_sale.channel,
            merchant_id,
            skus,
            created_at: after_sale.created_at,
            updated_at: after_sale.updated_at,
        }
    }
}

/// A list request. Every filter present must hold (AND); `statuses` matches any of its codes.
/// Always newest first (`created_at`, then the id, descending). No tenant here: it is the
/// port's separate argument, from the authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterSaleQuery {
    pub statuses: Vec<StatusCode>,
    pub kind: Option<AfterSaleType>,
    pub channel: Option<AfterSaleChannel>,
    pub merchant_id: Option<PartyId>,
    pub order_id: Option<OrderId>,
    /// After-sales with a line of this SKU.
    pub sku: Option<String>,
    pub created_at: TimeRange,
    /// The opaque cursor of the previous page.
    pub cursor: Option<String>,
    /// 1..=[`MAX_SEARCH_LIMIT`].
    pub limit: u32,
}

impl Default for AfterSaleQuery {
    fn default() -> Self {
        AfterSaleQuery {
            statuses: Vec::new(),
            kind: None,
            channel: None,
            merchant_id: None,
            order_id: None,
            sku: None,
            created_at: TimeRange::default(),
            cursor: None,
            limit: 20,
        }
    }
}

impl AfterSaleQuery {
    /// Limits every adapter (and the shard fallback) relies on; field paths name the query
    /// parameter at fault.
    pub fn validate(&self) -> DomainResult<()> {
        if self.limit == 0 || self.limit > MAX_SEARCH_LIMIT {
            return Err(DomainError::invalid(
                "/limit",
                format!("limit must be 1..={MAX_SEARCH_LIMIT}"),
            ));
        }
        if let (Some(from), Some(to)) = (self.created_at.from, self.created_at.to)
            && from > to
        {
            return Err(DomainError::invalid(
                "/from",
                "time range starts after it ends",
            ));
        }
        Ok(())
    }

    /// Whether `document` passes every filter (not the cursor): the shard fallback's check
    /// and the conformance suite's reference.
    pub fn matches(&self, document: &AfterSaleDocument) -> bool {
        let at = document.created_at;
        (self.statuses.is_empty() || self.statuses.contains(&document.status))
            && self.kind.is_none_or(|kind| kind == document.kind)
            && self
                .channel
                .is_none_or(|channel| channel == document.channel)
            && self
                .merchant_id
                .as_ref()
                .is_none_or(|merchant| document.merchant_id.as_ref() == Some(merchant))
            && self.order_id.is_none_or(|order| order == document.order_id)
            && self
                .sku
                .as_ref()
                .is_none_or(|sku| document.skus.contains(sku))
            && self.created_at.from.is_none_or(|from| at >= from)
            && self.created_at.to.is_none_or(|to| at < to)
    }
}

/// One matching after-sale: its id and the version the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AfterSaleHit {
    pub after_sale_id: AfterSaleId,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSalePage {
    pub hits: Vec<AfterSaleHit>,
    /// Present when there may be more.
    pub next_cursor: Option<String>,
}

impl AfterSalePage {
    pub fn ids(&self) -> Vec<AfterSaleId> {
        self.hits.iter().map(|hit| hit.after_sale_id).collect()
    }
}

/// The shards' answer to an after-sale list, for when the index is unavailable (the
/// degraded switch): every shard of the tenant is asked and the answers merged, newest first
/// (`created_at`, then the id, descending). Slower than the index, and a page's cursor is the
/// shards' own (an index cursor is refused at `/cursor`, and the other way round).
#[async_trait]
pub trait AfterSaleListing: Send + Sync + fmt::Debug + 'static {
    async fn list_after_sales(
        &self,
        tenant: &TenantId,
        query: &AfterSaleQuery,
    ) -> DomainResult<Page<AfterSale>>;
}

fn _object_safety(_: &dyn AfterSaleListing) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_limits() {
        assert!(AfterSaleQuery::default().validate().is_ok());
        let zero = AfterSaleQuery {
            limit: 0,
            ..AfterSaleQuery::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().field.as_deref(),
            Some("/limit")
        );
        let now = OffsetDateTime::UNIX_EPOCH;
        let backwards = AfterSaleQuery {
            created_at: TimeRange {
                from: Some(now + time::Duration::SECOND),
                to: Some(now),
            },
            ..AfterSaleQuery::default()
        };
        assert_eq!(
            backwards.validate().unwrap_err().field.as_deref(),
            Some("/from")
        );
    }
}
