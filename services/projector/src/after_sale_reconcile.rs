//! Reconciliation of the after-sale documents (issue #20 item 6): per tenant and creation
//! window, the shards' after-sales against the search index's, by id and version; and repair
//! through the projector's own path ([`Projector::apply_orders`] re-reads every after-sale of
//! each order by primary key and writes its whole document).
//!
//! The backfill needs nothing of its own: it applies every order through
//! [`Projector::apply_orders`], which re-indexes each order's after-sales too (with
//! [`Projector::with_after_sales`]).

use std::collections::{BTreeMap, BTreeSet};

use oc_model::aftersale::AfterSaleId;
use oc_model::aftersale::listing::{AfterSaleListing, AfterSaleQuery};
use oc_model::ports::{ColdStore, SearchIndex};
use oc_model::search::{MAX_SEARCH_LIMIT, TimeRange};
use oc_model::{DomainResult, OrderId, TenantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::projector::Projector;
use crate::reconcile::ReconcileOptions;

/// The index holding another version of an after-sale than its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AfterSaleVersionDiff {
    pub after_sale_id: AfterSaleId,
    pub shard_version: u64,
    pub index_version: u64,
}

/// The search index's after-sales against the shards'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSaleReconcileReport {
    pub tenant: TenantId,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// After-sales of the window in the shards.
    pub shard_count: u64,
    /// In a shard, not in the index.
    pub missing: Vec<AfterSaleId>,
    /// The index holds an older version.
    pub stale: Vec<AfterSaleVersionDiff>,
    /// The index holds a newer version than the shard (should never happen).
    pub ahead: Vec<AfterSaleVersionDiff>,
    /// In the index's window, in no shard, and not archived (never written to a shard, or
    /// no cold store to ask).
    pub extra: Vec<AfterSaleId>,
    /// In the index's window, in no shard, in the cold store: archived with its order (the
    /// index keeps its last document, as it keeps an archived order's). Not a difference.
    #[serde(default)]
    pub archived: Vec<AfterSaleId>,
    pub clean: bool,
}

impl AfterSaleReconcileReport {
    pub fn differences(&self) -> usize {
        self.missing.len() + self.stale.len() + self.ahead.len() + self.extra.len()
    }
}

fn window_query(options: &ReconcileOptions, cursor: Option<String>) -> AfterSaleQuery {
    AfterSaleQuery {
        created_at: TimeRange {
            from: Some(options.from),
            to: Some(options.to),
        },
        cursor,
        limit: options.page_size.clamp(1, MAX_SEARCH_LIMIT),
        ..AfterSaleQuery::default()
    }
}

/// `after-sale id → (order id, version)` of the window, over every shard.
async fn shard_after_sales(
    shards: &dyn AfterSaleListing,
    options: &ReconcileOptions,
) -> DomainResult<BTreeMap<AfterSaleId, (OrderId, u64)>> {
    let mut found = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = shards
            .list_after_sales(&options.tenant, &window_query(options, cursor.take()))
            .await?;
        for after_sale in &page.items {
            found.insert(after_sale.id, (after_sale.order_id, after_sale.version));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(found),
        }
    }
}

/// `after-sale id → version` of the window as the index holds it.
async fn index_after_sales(
    index: &dyn SearchIndex,
    options: &ReconcileOptions,
) -> DomainResult<BTreeMap<AfterSaleId, u64>> {
    index.refresh().await?;
    let mut found = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = index
            .search_after_sales(&options.tenant, &window_query(options, cursor.take()))
            .await?;
        for hit in &page.hits {
            found.insert(hit.after_sale_id, hit.version);
        }
        match page.next_cursor {
            Some(next) if !page.hits.is_empty() => cursor = Some(next),
            _ => return Ok(found),
        }
    }
}

/// Compares the shards' after-sales of `tenant` created in `[from, to)` with the index's;
/// what the index holds beyond the shards is looked up in `cold` (archived with its order)
/// where a cold store is given. Read-only.
pub async fn reconcile_after_sales(
    shards: &dyn AfterSaleListing,
    index: &dyn SearchIndex,
    cold: Option<&dyn ColdStore>,
    options: &ReconcileOptions,
) -> DomainResult<AfterSaleReconcileReport> {
    let shard = shard_after_sales(shards, options).await?;
    let indexed = index_after_sales(index, options).await?;
    let mut report = AfterSaleReconcileReport {
        tenant: options.tenant.clone(),
        from: options.from,
        to: options.to,
        shard_count: shard.len() as u64,
        missing: Vec::new(),
        stale: Vec::new(),
        ahead: Vec::new(),
        extra: Vec::new(),
        archived: Vec::new(),
        clean: false,
    };
    for (id, (_, shard_version)) in &shard {
        // a point lookup, not only the window scan: the index may file it elsewhere in time
        let held = match indexed.get(id) {
            Some(version) => Some(*version),
            None => index.after_sale_version(&options.tenant, *id).await?,
        };
        let diff = |index_version| AfterSaleVersionDiff {
            after_sale_id: *id,
            shard_version: *shard_version,
            index_version,
        };
        match held {
            None => report.missing.push(*id),
            Some(version) if version < *shard_version => report.stale.push(diff(version)),
            Some(version) if version > *shard_version => report.ahead.push(diff(version)),
            Some(_) => {}
        }
    }
    for id in indexed.keys().filter(|id| !shard.contains_key(id)) {
        let archived = match cold {
            Some(cold) => cold.after_sale_order(&options.tenant, *id).await?.is_some(),
            None => false,
        };
        if archived {
            report.archived.push(*id);
        } else {
            report.extra.push(*id);
        }
    }
    report.clean = report.differences() == 0;
    Ok(report)
}

/// What a repair of the after-sale documents did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSaleRepairReport {
    pub before: AfterSaleReconcileReport,
    /// Orders whose after-sales were re-applied through the projector.
    pub reapplied_orders: usize,
    /// The check after the repair (`ahead` and `extra` are reported, not changed: the index
    /// keeps the highest version it was given and the port has no after-sale delete).
    pub after: AfterSaleReconcileReport,
}

/// Reconciles, re-applies the orders of every missing or stale after-sale through the
/// projector (which must index after-sales: [`Projector::with_after_sales`]), then
/// reconciles again.
pub async fn repair_after_sales(
    shards: &dyn AfterSaleListing,
    projector: &Projector,
    options: &ReconcileOptions,
) -> DomainResult<AfterSaleRepairReport> {
    let Some(index) = projector.sinks().search.clone() else {
        return Err(oc_model::DomainError::invalid(
            "/search",
            "the projector has no search index to repair",
        ));
    };
    let cold = projector.sinks().cold.clone();
    let before = reconcile_after_sales(shards, index.as_ref(), cold.as_deref(), options).await?;
    let shard = shard_after_sales(shards, options).await?;
    let orders: BTreeSet<OrderId> = before
        .missing
        .iter()
        .chain(before.stale.iter().map(|diff| &diff.after_sale_id))
        .filter_map(|id| shard.get(id).map(|(order, _)| *order))
        .collect();
    let keys: Vec<(TenantId, OrderId)> = orders
        .iter()
        .map(|order| (options.tenant.clone(), *order))
        .collect();
    projector.apply_orders(&keys).await?;
    index.refresh().await?;
    let after = reconcile_after_sales(shards, index.as_ref(), cold.as_deref(), options).await?;
    Ok(AfterSaleRepairReport {
        before,
        reapplied_orders: keys.len(),
        after,
    })
}
