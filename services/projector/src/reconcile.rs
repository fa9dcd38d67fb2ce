//! Reconciliation: per tenant and creation-time window, the shards against each read model,
//! order by order and by count + checksum; and repair through the projector.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt as _;
use oc_model::ports::{CreatedWindow, PageRequest, ShardScan};
use oc_model::search::{SearchQuery, SearchSort, SortDirection, SortField, TimeRange};
use oc_model::{DomainResult, OrderId, TenantId, UnixMillis};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::projector::{Projector, Sinks};
use crate::stats::SinkKind;

/// Which orders to compare: `tenant`'s orders created in `[from, to)`.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    pub tenant: TenantId,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// Rows per shard query and per read-model scan page.
    pub page_size: u32,
    /// Point lookups in flight at once.
    pub concurrency: usize,
}

impl ReconcileOptions {
    pub fn new(tenant: TenantId, from: OffsetDateTime, to: OffsetDateTime) -> ReconcileOptions {
        ReconcileOptions {
            tenant,
            from,
            to,
            page_size: 500,
            concurrency: 16,
        }
    }
}

/// A read model holding another version than the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionDiff {
    pub order_id: OrderId,
    pub shard_version: u64,
    pub model_version: u64,
}

/// One read model against the shards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelReport {
    /// In the shard, not in the read model (for the cache: never a difference, see `misses`).
    pub missing: Vec<OrderId>,
    /// The read model holds an older version.
    pub stale: Vec<VersionDiff>,
    /// The read model holds a *newer* version than the shard (should never happen).
    pub ahead: Vec<VersionDiff>,
    /// In the read model's window, not in the shard (search, cold; the cache cannot be
    /// scanned). For the cold store these are expected for archived orders.
    pub extra: Vec<OrderId>,
    /// Cache only: orders not cached (fine: a cache holds what it holds).
    pub misses: u64,
    /// Archived orders (in the cold store, gone from the shards) this read model holds at
    /// the archived copy's version: not differences. For the search index an archived order
    /// at another version is `stale` or `ahead` (against the cold store's version, in
    /// `shard_version`), one it lacks is `missing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archived: Vec<OrderId>,
}

impl ModelReport {
    /// Differences, not counting cache misses nor cold-store extras (archived orders).
    pub fn differences(&self, kind: SinkKind) -> usize {
        let extra = if kind == SinkKind::Cold {
            0
        } else {
            self.extra.len()
        };
        self.missing.len() + self.stale.len() + self.ahead.len() + extra
    }
}

/// Count and order-independent sum of `hash(order_id, version)`: two sides with the same
/// count and sum hold the same versions of the same orders (with overwhelming probability).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub count: u64,
    /// Wrapping sum of the 64-bit item hashes, 16 hex digits.
    #[serde(with = "hex_u64")]
    pub sum: u64,
}

impl Checksum {
    pub fn add(&mut self, order_id: OrderId, version: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(item_hash(order_id, version));
    }
}

/// SplitMix64 finaliser: a stable, well-mixed 64-bit hash (independent of Rust's hasher).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of one `(order id, version)` pair, as used in [`Checksum`].
pub fn item_hash(order_id: OrderId, version: u64) -> u64 {
    mix(order_id.get() ^ mix(version))
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{value:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    pub shard: Checksum,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold: Option<Checksum>,
}

/// The reconciliation report (serialises to the JSON documented in the crate README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub tenant: TenantId,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Orders of the window in the shards.
    pub shard_count: u64,
    /// One entry per read model checked.
    pub per_model: BTreeMap<SinkKind, ModelReport>,
    pub checksum: Checksums,
    /// No differences in any read model.
    pub clean: bool,
}

impl ReconcileReport {
    pub fn differences(&self) -> usize {
        self.per_model
            .iter()
            .map(|(kind, model)| model.differences(*kind))
            .sum()
    }

    pub fn model(&self, kind: SinkKind) -> Option<&ModelReport> {
        self.per_model.get(&kind)
    }
}

/// `(order id → version)` of the window, over every shard.
async fn shard_versions(
    scan: &dyn ShardScan,
    options: &ReconcileOptions,
) -> DomainResult<BTreeMap<OrderId, u64>> {
    // the shards keep whole milliseconds: `[from, to)` is `[ceil(from), ceil(to))` in them
    let window = CreatedWindow {
        tenant: options.tenant.clone(),
        from: UnixMillis::ceil(options.from),
        to: UnixMillis::ceil(options.to),
    };
    let page_size = options.page_size.max(1);
    let mut versions = BTreeMap::new();
    for shard in scan.shards() {
        let mut after = None;
        loop {
            let page = scan
                .versions_created(shard, &window, after, page_size)
                .await?;
            let count = page.len();
            for (id, version) in page {
                after = Some(id);
                versions.insert(id, version);
            }
            if count < page_size as usize {
                break;
            }
        }
    }
    Ok(versions)
}

/// `(order id → version)` of the window as the search index holds it.
async fn search_versions(
    sinks: &Sinks,
    options: &ReconcileOptions,
) -> DomainResult<Option<BTreeMap<OrderId, u64>>> {
    let Some(index) = &sinks.search else {
        return Ok(None);
    };
    index.refresh().await?;
    let mut versions = BTreeMap::new();
    let mut cursor = None;
    loop {
        let query = SearchQuery {
            created_at: TimeRange {
                from: Some(options.from),
                to: Some(options.to),
            },
            sort: SearchSort {
                field: SortField::CreatedAt,
                direction: SortDirection::Asc,
            },
            // every document of the window: archived orders' too, which reconcile
            // compares with the cold store
            include_archived: true,
            cursor: cursor.take(),
            limit: options
                .page_size
                .clamp(1, oc_model::search::MAX_SEARCH_LIMIT),
            ..SearchQuery::default()
        };
        let page = index.search(&options.tenant, &query).await?;
        for hit in &page.hits {
            versions.insert(hit.order_id, hit.version);
        }
        match page.next_cursor {
            Some(next) if !page.hits.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    Ok(Some(versions))
}

/// `(order id → version)` of the window as the cold store holds it.
async fn cold_versions(
    sinks: &Sinks,
    options: &ReconcileOptions,
) -> DomainResult<Option<BTreeMap<OrderId, u64>>> {
    let Some(cold) = &sinks.cold else {
        return Ok(None);
    };
    let mut versions = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = cold
            .scan(
                &options.tenant,
                options.from,
                options.to,
                PageRequest {
                    cursor: cursor.take(),
                    limit: options.page_size.max(1),
                },
            )
            .await?;
        for order in &page.items {
            versions.insert(order.main.id, order.main.version);
        }
        match page.next_cursor {
            Some(next) if !page.items.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    Ok(Some(versions))
}

/// Sorts one model's versions against the shard's. `lookup` is asked for orders the scan
/// did not find (a scan may miss what a point read finds, e.g. an order indexed with
/// another creation time), so `missing` means "not there at all".
async fn compare<F, Fut>(
    shard: &BTreeMap<OrderId, u64>,
    scanned: Option<&BTreeMap<OrderId, u64>>,
    concurrency: usize,
    lookup: F,
) -> DomainResult<ModelReport>
where
    F: Fn(OrderId) -> Fut,
    Fut: std::future::Future<Output = DomainResult<Option<u64>>>,
{
    let mut report = ModelReport::default();
    let found: Vec<(OrderId, u64, DomainResult<Option<u64>>)> = futures_util::stream::iter(
        shard
            .iter()
            .map(|(id, version)| (*id, *version))
            .collect::<Vec<_>>(),
    )
    .map(|(id, shard_version)| {
        let known = scanned.and_then(|scan| scan.get(&id).copied());
        let lookup = &lookup;
        async move {
            let held = match known {
                Some(version) => Ok(Some(version)),
                None => lookup(id).await,
            };
            (id, shard_version, held)
        }
    })
    .buffered(concurrency.max(1))
    .collect()
    .await;
    for (order_id, shard_version, held) in found {
        match held? {
            None => report.missing.push(order_id),
            Some(model_version) if model_version < shard_version => {
                report.stale.push(VersionDiff {
                    order_id,
                    shard_version,
                    model_version,
                })
            }
            Some(model_version) if model_version > shard_version => {
                report.ahead.push(VersionDiff {
                    order_id,
                    shard_version,
                    model_version,
                })
            }
            Some(_) => {}
        }
    }
    if let Some(scan) = scanned {
        report.extra = scan
            .keys()
            .filter(|id| !shard.contains_key(id))
            .copied()
            .collect();
    }
    Ok(report)
}

/// Sorts the search index's view of archived orders: an extra (in the index, not in the
/// shards) that the cold store holds is archived, compared with the cold store's version;
/// an archived order of the window the index lacks is missing.
async fn archived_in_search<C, CFut, S, SFut>(
    report: &mut ModelReport,
    shard: &BTreeMap<OrderId, u64>,
    search: Option<&BTreeMap<OrderId, u64>>,
    cold: Option<&BTreeMap<OrderId, u64>>,
    cold_version: C,
    search_version: S,
) -> DomainResult<()>
where
    C: Fn(OrderId) -> CFut,
    CFut: std::future::Future<Output = DomainResult<Option<u64>>>,
    S: Fn(OrderId) -> SFut,
    SFut: std::future::Future<Output = DomainResult<Option<u64>>>,
{
    let mut extra = Vec::new();
    for id in std::mem::take(&mut report.extra) {
        let known = cold.and_then(|versions| versions.get(&id).copied());
        let held = search.and_then(|versions| versions.get(&id).copied());
        let archived = match known {
            Some(version) => Some(version),
            None => cold_version(id).await?,
        };
        match (archived, held) {
            (Some(archived), Some(held)) if held == archived => report.archived.push(id),
            (Some(archived), Some(held)) if held < archived => report.stale.push(VersionDiff {
                order_id: id,
                shard_version: archived,
                model_version: held,
            }),
            (Some(archived), Some(held)) => report.ahead.push(VersionDiff {
                order_id: id,
                shard_version: archived,
                model_version: held,
            }),
            _ => extra.push(id),
        }
    }
    report.extra = extra;
    if let Some(cold) = cold {
        for id in cold.keys().filter(|id| !shard.contains_key(id)) {
            let in_scan = search.is_some_and(|versions| versions.contains_key(id));
            if !in_scan && search_version(*id).await?.is_none() {
                report.missing.push(*id);
            }
        }
    }
    Ok(())
}

fn checksum_of(versions: &BTreeMap<OrderId, u64>) -> Checksum {
    let mut checksum = Checksum::default();
    for (id, version) in versions {
        checksum.add(*id, *version);
    }
    checksum
}

/// Compares the shards with every read model in `sinks` for `tenant`'s orders created in
/// `[from, to)`. Read-only.
pub async fn reconcile(
    scan: &dyn ShardScan,
    sinks: &Sinks,
    options: &ReconcileOptions,
) -> DomainResult<ReconcileReport> {
    let shard = shard_versions(scan, options).await?;
    let search = search_versions(sinks, options).await?;
    let cold = cold_versions(sinks, options).await?;
    let tenant = &options.tenant;
    let mut per_model = BTreeMap::new();
    if let Some(index) = &sinks.search {
        let report = compare(&shard, search.as_ref(), options.concurrency, |id| {
            index.get_version(tenant, id)
        })
        .await?;
        per_model.insert(SinkKind::Search, report);
    }
    if let (Some(cold_store), Some(report)) = (&sinks.cold, per_model.get_mut(&SinkKind::Search)) {
        archived_in_search(
            report,
            &shard,
            search.as_ref(),
            cold.as_ref(),
            |id| async move {
                Ok(cold_store
                    .get(tenant, id)
                    .await?
                    .map(|order| order.main.version))
            },
            |id| async move {
                match &sinks.search {
                    Some(index) => index.get_version(tenant, id).await,
                    None => Ok(None),
                }
            },
        )
        .await?;
    }
    if let Some(cold_store) = &sinks.cold {
        let mut report = compare(
            &shard,
            cold.as_ref(),
            options.concurrency,
            |id| async move {
                Ok(cold_store
                    .get(tenant, id)
                    .await?
                    .map(|order| order.main.version))
            },
        )
        .await?;
        // the cold store's extras are the archived orders
        report.archived = std::mem::take(&mut report.extra);
        per_model.insert(SinkKind::Cold, report);
    }
    if let Some(cache) = &sinks.cache {
        let mut report = compare(&shard, None, options.concurrency, |id| async move {
            Ok(cache.get(tenant, id).await?.map(|order| order.main.version))
        })
        .await?;
        // a cache miss is fine: only wrong versions are differences
        report.misses = std::mem::take(&mut report.missing).len() as u64;
        per_model.insert(SinkKind::Cache, report);
    }
    let mut report = ReconcileReport {
        tenant: tenant.clone(),
        from: options.from,
        to: options.to,
        shard_count: shard.len() as u64,
        per_model,
        checksum: Checksums {
            shard: checksum_of(&shard),
            search: search.as_ref().map(checksum_of),
            cold: cold.as_ref().map(checksum_of),
        },
        clean: false,
    };
    report.clean = report.differences() == 0;
    Ok(report)
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    pub before: ReconcileReport,
    /// Orders re-applied through the projector.
    pub reapplied: usize,
    /// Search documents of orders no longer in the shards, deleted.
    pub deleted_from_search: usize,
    /// Entries ahead of the shard removed from the search index or the cache before
    /// re-applying (the cold store keeps the highest version and is only reported).
    pub reset_ahead: usize,
    /// The check after the repair.
    pub after: ReconcileReport,
}

/// Reconciles, re-applies every differing order to the projector's sinks (through
/// [`Projector::apply_orders`], the consumer's own code path), removes search documents of
/// orders gone from the shards, then reconciles again.
pub async fn repair(
    scan: &dyn ShardScan,
    projector: &Projector,
    options: &ReconcileOptions,
) -> DomainResult<RepairReport> {
    let sinks = projector.sinks();
    let store = projector.store();
    let before = reconcile(scan, sinks, options).await?;
    let tenant = &options.tenant;
    let mut to_apply = BTreeSet::new();
    let mut deleted_from_search = 0;
    let mut reset_ahead = 0;
    for (kind, model) in &before.per_model {
        to_apply.extend(model.missing.iter().copied());
        to_apply.extend(model.stale.iter().map(|diff| diff.order_id));
        for diff in &model.ahead {
            to_apply.insert(diff.order_id);
            match (kind, &sinks.search, &sinks.cache) {
                (SinkKind::Search, Some(index), _) => {
                    index.delete(tenant, diff.order_id).await?;
                    reset_ahead += 1;
                }
                (SinkKind::Cache, _, Some(cache)) => {
                    cache.invalidate(tenant, diff.order_id).await?;
                    reset_ahead += 1;
                }
                _ => {}
            }
        }
        if *kind == SinkKind::Search
            && let Some(index) = &sinks.search
        {
            for id in &model.extra {
                if store.get(tenant, *id).await?.is_some() {
                    to_apply.insert(*id);
                } else {
                    index.delete(tenant, *id).await?;
                    deleted_from_search += 1;
                }
            }
        }
    }
    let keys: Vec<(TenantId, OrderId)> = to_apply.iter().map(|id| (tenant.clone(), *id)).collect();
    projector.apply_orders(&keys).await?;
    if let Some(index) = &sinks.search {
        index.refresh().await?;
    }
    let after = reconcile(scan, sinks, options).await?;
    Ok(RepairReport {
        before,
        reapplied: keys.len(),
        deleted_from_search,
        reset_ahead,
        after,
    })
}
