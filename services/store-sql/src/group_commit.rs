//! Group commit for creates.
//!
//! A create is five inserts (idempotency claim, order, lines, identifiers, outbox) between a
//! `BEGIN` and a `COMMIT`: seven round trips and one log flush per order. Under load most of
//! the time of both the server and the database goes into those round trips, not into the rows
//! (loadtest/PROFILE.md). So each shard has a few writer tasks fed by one queue: a writer takes
//! the first create waiting and, without waiting for more, every other create already queued
//! (up to [`GroupCommit::max_orders`]), and writes them in one transaction with one multi-row
//! statement per table. Nothing waits for a group to fill: with one create in flight the writer
//! writes it at once, alone, so an idle system pays one channel hop; groups form only while
//! every writer is busy, which is exactly when sharing a round trip pays.
//!
//! Each create's answer stays its own:
//! - a group commits as a whole or not at all (one local transaction, like a single create);
//! - a group that fails before its `COMMIT` (a duplicate idempotency key or external
//!   reference, a deadlock) wrote nothing, and its creates are written again one by one, so
//!   every caller gets exactly the answer a lone create would have had (created, replayed,
//!   conflict, already exists);
//! - a group whose `COMMIT` itself failed may or may not have committed: every caller gets
//!   the error, as a lone create would (its retry with the same idempotency key replays);
//! - a create whose caller gave up (a timed-out request) is still written once queued: it may
//!   have been committed by then anyway, and the idempotency key tells on a retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, mpsc, oneshot};

use oc_model::ports::{InsertOutcome, NewOrder};
use oc_model::{DomainError, DomainResult, ErrorCode, ShardId};

use crate::config::{Dialect, GroupCommit};
use crate::create::{GroupError, insert_alone, insert_together};
use crate::shards::Shards;

/// Most lines and identifiers in one group: one multi-row statement binds 30 values per line
/// and 6 per identifier, and SQLite takes at most 32,766 per statement. A create larger than
/// that on its own is written alone.
const MAX_GROUP_LINES: usize = 1_000;
const MAX_GROUP_IDENTIFIERS: usize = 5_000;
/// Creates queued per shard before a caller waits to enqueue.
const QUEUE_DEPTH: usize = 1_024;

struct Job {
    create: NewOrder,
    reply: oneshot::Sender<DomainResult<InsertOutcome>>,
}

impl Job {
    fn lines(&self) -> usize {
        self.create.order.lines.len()
    }

    fn identifiers(&self) -> usize {
        self.create.order.extension.identifiers.len()
    }
}

/// Transactions and creates written by the group-commit writers.
#[derive(Debug, Default)]
pub struct GroupCommitStats {
    transactions: AtomicU64,
    orders: AtomicU64,
}

impl GroupCommitStats {
    /// (create transactions committed, creates in them)
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.transactions.load(Ordering::Relaxed),
            self.orders.load(Ordering::Relaxed),
        )
    }

    fn committed(&self, orders: usize) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.orders.fetch_add(orders as u64, Ordering::Relaxed);
    }
}

/// The queues of every shard's writers.
#[derive(Debug, Clone)]
pub(crate) struct Writers {
    queues: Arc<[mpsc::Sender<Job>]>,
    pub(crate) stats: Arc<GroupCommitStats>,
}

impl Writers {
    /// Spawns `settings.writers` writer tasks per shard on the current runtime. They write
    /// directly to the shards and stop when the last copy of the store (which holds the queues)
    /// is dropped.
    pub(crate) fn spawn(shards: &Shards, settings: GroupCommit) -> DomainResult<Writers> {
        if settings.writers == 0 || settings.max_orders == 0 {
            return Err(DomainError::invalid(
                "/store/group_commit",
                "writers and max_orders must be at least 1",
            ));
        }
        // SQLite writes a file one transaction at a time (`shards::WriteTurn`): a second writer
        // task would only wait for the turn with a group of its own, where one writer takes
        // everything queued meanwhile as one larger group
        let writers = if shards.dialect == Dialect::Sqlite {
            1
        } else {
            settings.writers
        };
        let stats = Arc::new(GroupCommitStats::default());
        let mut queues = Vec::new();
        for shard in shards.ids() {
            let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..writers {
                tokio::spawn(write(
                    shards.clone(),
                    shard,
                    Arc::clone(&receiver),
                    settings.max_orders,
                    Arc::clone(&stats),
                ));
            }
            queues.push(sender);
        }
        Ok(Writers {
            queues: queues.into(),
            stats,
        })
    }

    pub(crate) async fn submit(
        &self,
        shard: ShardId,
        create: NewOrder,
    ) -> DomainResult<InsertOutcome> {
        let queue = self
            .queues
            .get(usize::from(shard.0))
            .ok_or_else(|| DomainError::internal(format!("no writers for shard {}", shard.0)))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job { create, reply })
            .await
            .map_err(|_| DomainError::unavailable("order store writers stopped"))?;
        answer
            .await
            .map_err(|_| DomainError::internal("order store writer stopped before answering"))?
    }
}

/// One writer of one shard: takes a group off the queue, writes it, answers, again.
async fn write(
    store: Shards,
    shard: ShardId,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_orders: usize,
    stats: Arc<GroupCommitStats>,
) {
    let mut held: Option<Job> = None;
    loop {
        let group = {
            let mut queue = queue.lock().await;
            let first = match held.take() {
                Some(job) => job,
                None => match queue.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            let (mut lines, mut identifiers) = (first.lines(), first.identifiers());
            let mut group = vec![first];
            while group.len() < max_orders {
                let Ok(job) = queue.try_recv() else { break };
                if lines + job.lines() > MAX_GROUP_LINES
                    || identifiers + job.identifiers() > MAX_GROUP_IDENTIFIERS
                {
                    held = Some(job);
                    break;
                }
                lines += job.lines();
                identifiers += job.identifiers();
                group.push(job);
            }
            group
        };
        write_group(&store, shard, group, &stats).await;
    }
}

async fn write_group(
    store: &Shards,
    shard: ShardId,
    mut group: Vec<Job>,
    stats: &GroupCommitStats,
) {
    // SQLite writes even a lone create as a group: in one message (`insert_in_one_message`);
    // refused, it is written again alone below
    if group.len() == 1 && store.dialect != Dialect::Sqlite {
        let job = group.remove(0);
        write_alone(store, job.create, job.reply, stats).await;
        return;
    }
    let (creates, replies): (Vec<NewOrder>, Vec<_>) =
        group.into_iter().map(|job| (job.create, job.reply)).unzip();
    match insert_together(store, shard, &creates).await {
        Ok(()) => {
            stats.committed(creates.len());
            for (create, reply) in creates.into_iter().zip(replies) {
                let _ = reply.send(Ok(InsertOutcome::Created(create.order)));
            }
        }
        // refused before COMMIT for a reason of its own creates (a duplicate key, a deadlock):
        // nothing was written, each is written again alone and gets its own answer
        Err(GroupError::BeforeCommit(error)) if error.code != ErrorCode::Unavailable => {
            tracing::debug!(
                shard = shard.0,
                orders = creates.len(),
                error = %error.message,
                "create group refused; writing its creates one by one"
            );
            for (create, reply) in creates.into_iter().zip(replies) {
                write_alone(store, create, reply, stats).await;
            }
        }
        // the COMMIT failed (unknown outcome), or the shard is down or its pool exhausted (one
        // by one would fail the same way, slower): every caller gets the error
        Err(GroupError::AtCommit(error) | GroupError::BeforeCommit(error)) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

async fn write_alone(
    store: &Shards,
    create: NewOrder,
    reply: oneshot::Sender<DomainResult<InsertOutcome>>,
    stats: &GroupCommitStats,
) {
    let outcome = insert_alone(store, create).await;
    if matches!(outcome, Ok(InsertOutcome::Created(_))) {
        stats.committed(1);
    }
    let _ = reply.send(outcome);
}
