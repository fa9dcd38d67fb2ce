//! Backfill: rebuild read models from the shards by primary-key ranges, resumable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oc_model::ports::{OrderKey, ShardScan};
use oc_model::{DomainError, DomainResult, OrderId, TenantId};
use serde::{Deserialize, Serialize};

use crate::projector::Projector;

/// What to backfill and where to keep the checkpoint.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Orders per shard query (and per checkpoint).
    pub batch_size: u32,
    /// Only this tenant's orders.
    pub tenant: Option<TenantId>,
    /// Where progress is saved after every batch; an existing file is resumed from.
    pub checkpoint: Option<PathBuf>,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            batch_size: 500,
            tenant: None,
            checkpoint: None,
        }
    }
}

/// How far one shard got: the last `(tenant, id)` whose batch was fully applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    pub last_tenant: Option<String>,
    pub last_id: Option<i64>,
    pub done: bool,
    pub orders: u64,
}

impl ShardCheckpoint {
    /// The key the walk goes on after (`None`: from the shard's first key).
    pub fn after(&self) -> DomainResult<Option<OrderKey>> {
        match (&self.last_tenant, self.last_id) {
            (Some(tenant), Some(id)) => Ok(Some(OrderKey {
                tenant: TenantId::parse(tenant.clone())?,
                id: OrderId::from_raw(u64::try_from(id).unwrap_or(0))?,
            })),
            _ => Ok(None),
        }
    }

    /// A batch up to `last` was applied.
    pub fn advance(&mut self, last: &OrderKey, batch: usize) {
        self.last_tenant = Some(last.tenant.as_str().to_owned());
        self.last_id = Some(last.id.as_i64());
        self.orders += batch as u64;
    }
}

/// The checkpoint file: `{"tenant": null | "acme", "shards": {"0": {...}, "1": {...}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillCheckpoint {
    /// The tenant filter it was started with; a resume must use the same.
    pub tenant: Option<String>,
    pub shards: BTreeMap<u16, ShardCheckpoint>,
}

impl BackfillCheckpoint {
    /// Reads a checkpoint; `None` when the file does not exist.
    pub async fn load(path: &Path) -> DomainResult<Option<BackfillCheckpoint>> {
        match tokio::fs::read(path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                DomainError::invalid("/checkpoint", format!("{}: {error}", path.display()))
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(path, &error)),
        }
    }

    /// Writes atomically (temporary file, fsync, rename): a kill leaves the old or the new one.
    pub async fn save(&self, path: &Path) -> DomainResult<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|error| DomainError::internal(format!("checkpoint encoding: {error}")))?;
        let temporary = path.with_extension("tmp");
        let write = async {
            let mut file = tokio::fs::File::create(&temporary).await?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &json).await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&temporary, path).await
        };
        write.await.map_err(|error| io_error(path, &error))
    }
}

fn io_error(path: &Path, error: &std::io::Error) -> DomainError {
    DomainError::unavailable(format!("backfill checkpoint {}: {error}", path.display()))
}

/// What a backfill did (in this run; resumed work done before is in the checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackfillReport {
    /// Orders read from the shards and applied in this run.
    pub orders: u64,
    /// Orders gone between the range scan and the re-read (archived meanwhile).
    pub missing: u64,
    pub batches: u64,
    /// Shards already complete in the checkpoint when this run started.
    pub shards_resumed_done: usize,
    pub shards: usize,
}

/// Rebuilds the projector's sinks from every shard: each shard's `orders` keys are walked by
/// `(tenant, id)` ascending, `batch_size` at a time; each batch goes through
/// [`Projector::apply_orders`] (re-read by primary key, version-checked writes), then the
/// checkpoint is saved. Killed and started again with the same checkpoint file, it goes on
/// after the last saved batch (re-applying at most one batch: harmless).
///
/// To rebuild only some read models, give it a projector built with just those sinks
/// ([`crate::Sinks::only`]).
pub async fn backfill(
    scan: &dyn ShardScan,
    projector: &Projector,
    options: &BackfillOptions,
) -> DomainResult<BackfillReport> {
    let tenant_filter = options
        .tenant
        .as_ref()
        .map(|tenant| tenant.as_str().to_owned());
    let mut checkpoint = match &options.checkpoint {
        Some(path) => BackfillCheckpoint::load(path).await?.unwrap_or_default(),
        None => BackfillCheckpoint::default(),
    };
    if checkpoint.shards.is_empty() {
        checkpoint.tenant = tenant_filter.clone();
    } else if checkpoint.tenant != tenant_filter {
        return Err(DomainError::invalid(
            "/tenant",
            format!(
                "the checkpoint is of a backfill with tenant filter {:?}, not {:?}: use another checkpoint file",
                checkpoint.tenant, tenant_filter
            ),
        ));
    }
    let shards = scan.shards();
    let mut report = BackfillReport {
        shards: shards.len(),
        shards_resumed_done: shards
            .iter()
            .filter(|shard| {
                checkpoint
                    .shards
                    .get(&shard.0)
                    .is_some_and(|done| done.done)
            })
            .count(),
        ..BackfillReport::default()
    };
    let limit = options.batch_size.max(1);
    for shard in shards {
        loop {
            let position = checkpoint.shards.entry(shard.0).or_default().clone();
            if position.done {
                break;
            }
            let keys = scan
                .order_keys(
                    shard,
                    options.tenant.as_ref(),
                    position.after()?.as_ref(),
                    limit,
                )
                .await?;
            let batch: Vec<(TenantId, OrderId)> = keys
                .iter()
                .map(|key| (key.tenant.clone(), key.id))
                .collect();
            let outcome = projector.apply_orders(&batch).await?;
            report.orders += (outcome.orders - outcome.missing) as u64;
            report.missing += outcome.missing as u64;
            report.batches += 1;
            let entry = checkpoint.shards.entry(shard.0).or_default();
            if let Some(last) = keys.last() {
                entry.advance(last, keys.len());
            }
            entry.done = keys.len() < limit as usize;
            if let Some(path) = &options.checkpoint {
                checkpoint.save(path).await?;
            }
        }
    }
    if let Some(search) = &projector.sinks().search {
        search.refresh().await?;
    }
    Ok(report)
}
