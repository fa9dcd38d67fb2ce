//! Coalesced reads of stock levels.
//!
//! Every placement of an identity that keeps stock reads its SKUs' levels first (one
//! statement per shard, `StockStore::stock_levels`). Unlike the create's own transaction,
//! which group commit shares, those reads were one round trip per placement and shard: under
//! load they were most of the statements MariaDB answered for a create (loadtest/PROFILE.md).
//! So each shard has a reader task fed by a queue, as group commit's writers are: the reader
//! takes the first read waiting and every other one already queued (up to
//! [`MAX_BATCH_SKUS`] SKUs), and answers them all from one `SELECT … WHERE tenant = ? AND
//! sku IN (…)` per tenant among them. Nothing waits for a batch to fill; batches form while
//! the reader is busy. A level read this way is as fresh as one read alone: the statement
//! runs after every request in its batch was made.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use oc_model::{DomainError, DomainResult, ShardId, Sku, StockLevel, TenantId};

use crate::error::convert;
use crate::shards::Shards;
use crate::tables::stock_levels;

/// Reader tasks per shard. One: a point read by primary key takes MariaDB well under a
/// millisecond, so one reader keeps up and batches more (cluster create, 64 workers: 3,206 and
/// 3,647/s with one reader against 3,061 and 3,211/s with two, interleaved; PROFILE.md).
const READERS: usize = 1;
/// Most SKUs answered by one batch (and bound in one statement).
const MAX_BATCH_SKUS: usize = 500;
/// Reads queued per shard before a caller waits to enqueue.
const QUEUE_DEPTH: usize = 1_024;

struct Job {
    tenant: TenantId,
    skus: Vec<Sku>,
    reply: oneshot::Sender<DomainResult<Vec<StockLevel>>>,
}

/// The queues of every shard's readers.
#[derive(Debug, Clone)]
pub(crate) struct LevelReaders {
    queues: Arc<[mpsc::Sender<Job>]>,
}

impl LevelReaders {
    /// Spawns the readers of every shard on the current runtime; they stop when the last
    /// copy of the store (which holds the queues) is dropped.
    pub(crate) fn spawn(shards: &Shards) -> LevelReaders {
        let mut queues = Vec::new();
        for shard in shards.ids() {
            let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..READERS {
                tokio::spawn(read(shards.clone(), shard, Arc::clone(&receiver)));
            }
            queues.push(sender);
        }
        LevelReaders {
            queues: queues.into(),
        }
    }

    /// The levels of `skus` of `tenant` on `shard` that exist, in no particular order.
    pub(crate) async fn levels(
        &self,
        shard: ShardId,
        tenant: &TenantId,
        skus: Vec<Sku>,
    ) -> DomainResult<Vec<StockLevel>> {
        let queue = self.queues.get(usize::from(shard.0)).ok_or_else(|| {
            DomainError::internal(format!("no level readers for shard {}", shard.0))
        })?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job {
                tenant: tenant.clone(),
                skus,
                reply,
            })
            .await
            .map_err(|_| DomainError::unavailable("stock level readers stopped"))?;
        answer
            .await
            .map_err(|_| DomainError::internal("stock level reader stopped before answering"))?
    }
}

/// One reader of one shard: takes a batch off the queue, reads it, answers, again.
async fn read(shards: Shards, shard: ShardId, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut held: Option<Job> = None;
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let first = match held.take() {
                Some(job) => job,
                None => match queue.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            let mut skus = first.skus.len();
            let mut batch = vec![first];
            while let Ok(job) = queue.try_recv() {
                if skus + job.skus.len() > MAX_BATCH_SKUS {
                    held = Some(job);
                    break;
                }
                skus += job.skus.len();
                batch.push(job);
            }
            batch
        };
        let mut wanted: BTreeMap<&TenantId, BTreeSet<&Sku>> = BTreeMap::new();
        for job in &batch {
            wanted.entry(&job.tenant).or_default().extend(&job.skus);
        }
        let found = read_batch(&shards, shard, wanted).await;
        for job in batch {
            let answer = match &found {
                Ok(found) => Ok(job
                    .skus
                    .iter()
                    .filter_map(|sku| found.get(&(job.tenant.clone(), sku.clone())).cloned())
                    .collect()),
                Err(error) => Err(error.clone()),
            };
            let _ = job.reply.send(answer);
        }
    }
}

/// One statement per tenant of the batch; the levels found, by tenant and SKU.
pub(crate) async fn read_batch(
    shards: &Shards,
    shard: ShardId,
    wanted: BTreeMap<&TenantId, BTreeSet<&Sku>>,
) -> DomainResult<HashMap<(TenantId, Sku), StockLevel>> {
    let pool = shards.pool(shard)?;
    let mut found = HashMap::new();
    for (tenant, skus) in wanted {
        let statement = stock_levels::select_many(skus.len());
        let mut query = sqlx::query(&statement).bind(tenant.as_str());
        for sku in &skus {
            query = query.bind(sku.as_str());
        }
        let rows = query.fetch_all(pool).await.map_err(convert)?;
        for row in &rows {
            let level = stock_levels::decode(row)?;
            found.insert((level.tenant.clone(), level.sku.clone()), level);
        }
    }
    Ok(found)
}
