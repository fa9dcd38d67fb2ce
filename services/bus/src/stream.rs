//! The bus adapters' side of the [`EventStream`] port the projector consumes: Kafka topics
//! ([`KafkaStream`], over [`KafkaEventSource`] and an [`OffsetStore`]) and the in-process bus
//! ([`LocalStream`], over [`LocalSubscription`]), and the store's outbox read by sequence
//! ([`OutboxStream`], the single-node projector's durable position).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use oc_model::ports::{EventStream, OffsetStore, SearchIndex, ShardScan};
use oc_model::{DomainResult, ErrorCode, OrderEvent, ShardId};
use rskafka::client::Client;

use crate::kafka::{KafkaEventSource, SourceConfig, StartOffset};
use crate::local::LocalSubscription;

#[derive(Debug)]
enum Topic {
    /// Not created yet (no event published to it so far): retried on every poll.
    Pending(String),
    Open(KafkaEventSource),
}

/// Kafka topics read from the offsets an [`OffsetStore`] holds for a consumer group (else
/// from `start`). Topics that do not exist yet are opened as soon as they do.
#[derive(Debug)]
pub struct KafkaStream {
    client: Arc<Client>,
    offsets: Arc<dyn OffsetStore>,
    group: String,
    start: StartOffset,
    config: SourceConfig,
    topics: Vec<Topic>,
    /// Names to read from now on as well (see [`KafkaStream::follow_topics`]).
    follow: Option<tokio::sync::watch::Receiver<Vec<String>>>,
    uncommitted: bool,
    undecodable: u64,
}

impl KafkaStream {
    pub fn new(
        client: Arc<Client>,
        topics: Vec<String>,
        offsets: Arc<dyn OffsetStore>,
        group: impl Into<String>,
        start: StartOffset,
        config: SourceConfig,
    ) -> KafkaStream {
        KafkaStream {
            client,
            offsets,
            group: group.into(),
            start,
            config,
            topics: topics.into_iter().map(Topic::Pending).collect(),
            follow: None,
            uncommitted: false,
            undecodable: 0,
        }
    }

    /// Also reads every topic `topics` names from now on: a name new to the stream is opened
    /// as the ones given at the start are (from its committed positions, else from `start`),
    /// before the next poll. A name that leaves the list is still read (its tenant's old
    /// events; harmless to a projector, which applies by version). For a tenant added to the
    /// config of a running process.
    pub fn follow_topics(mut self, topics: tokio::sync::watch::Receiver<Vec<String>>) -> Self {
        self.follow = Some(topics);
        self.take_new_topics();
        self
    }

    /// Names of the followed list this stream does not read yet, added as pending.
    fn take_new_topics(&mut self) {
        let Some(follow) = &mut self.follow else {
            return;
        };
        if !follow.has_changed().unwrap_or(false) && !self.topics.is_empty() {
            return;
        }
        let names = follow.borrow_and_update().clone();
        for name in names {
            let known = self.topics.iter().any(|topic| match topic {
                Topic::Pending(pending) => *pending == name,
                Topic::Open(source) => source.topic() == name,
            });
            if !known {
                tracing::info!(topic = %name, "following a new topic");
                self.topics.push(Topic::Pending(name));
            }
        }
    }

    /// Records skipped because they were not order events (logged by the source).
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }

    async fn open_pending(&mut self) -> DomainResult<()> {
        for topic in &mut self.topics {
            let Topic::Pending(name) = topic else {
                continue;
            };
            match KafkaEventSource::open_committed(
                &self.client,
                name,
                self.offsets.as_ref(),
                &self.group,
                self.start,
                self.config,
            )
            .await
            {
                Ok(source) => *topic = Topic::Open(source),
                Err(error) if error.code == ErrorCode::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventStream for KafkaStream {
    async fn next_batch(&mut self) -> DomainResult<Vec<OrderEvent>> {
        self.take_new_topics();
        self.open_pending().await?;
        let mut open: Vec<&mut KafkaEventSource> = self
            .topics
            .iter_mut()
            .filter_map(|topic| match topic {
                Topic::Open(source) => Some(source),
                Topic::Pending(_) => None,
            })
            .collect();
        if open.is_empty() {
            tokio::time::sleep(self.config.max_wait).await;
            return Ok(Vec::new());
        }
        let polled = join_all(open.iter_mut().map(|source| source.poll())).await;
        let mut events = Vec::new();
        let mut first_error = None;
        for result in polled {
            match result {
                Ok(polled) => {
                    if !polled.is_empty() {
                        self.uncommitted = true;
                    }
                    self.undecodable += polled.undecodable.len() as u64;
                    events.extend(polled.events.into_iter().map(|consumed| consumed.event));
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        // a failed topic did not advance; the others' events are returned and committed
        match first_error {
            Some(error) if events.is_empty() => Err(error),
            _ => Ok(events),
        }
    }

    async fn commit(&mut self) -> DomainResult<()> {
        if !self.uncommitted {
            return Ok(());
        }
        for topic in &self.topics {
            if let Topic::Open(source) = topic {
                source.commit(self.offsets.as_ref(), &self.group).await?;
            }
        }
        self.uncommitted = false;
        Ok(())
    }

    fn lag(&self) -> Option<u64> {
        let mut total = None;
        for topic in &self.topics {
            if let Topic::Open(source) = topic {
                for behind in source.lag().into_values().flatten() {
                    *total.get_or_insert(0u64) += u64::try_from(behind).unwrap_or(0);
                }
            }
        }
        total
    }
}

/// The in-process bus. It keeps no positions: commit is a no-op, and a restarted process
/// relies on a backfill (or reconciliation) for what it missed.
#[derive(Debug)]
pub struct LocalStream {
    subscription: LocalSubscription,
    max_batch: usize,
    idle_wait: Duration,
}

impl LocalStream {
    pub fn new(subscription: LocalSubscription) -> LocalStream {
        LocalStream {
            subscription,
            max_batch: 512,
            idle_wait: Duration::from_millis(200),
        }
    }

    pub fn with_max_batch(mut self, max_batch: usize) -> LocalStream {
        self.max_batch = max_batch.max(1);
        self
    }
}

#[async_trait]
impl EventStream for LocalStream {
    async fn next_batch(&mut self) -> DomainResult<Vec<OrderEvent>> {
        let first = match tokio::time::timeout(self.idle_wait, self.subscription.recv()).await {
            Ok(Some(event)) => event,
            // idle, or the bus is gone (nothing will ever come: wait like an idle poll)
            Ok(None) => {
                tokio::time::sleep(self.idle_wait).await;
                return Ok(Vec::new());
            }
            Err(_elapsed) => return Ok(Vec::new()),
        };
        let mut events = vec![first];
        while events.len() < self.max_batch {
            match self.subscription.try_recv() {
                Some(event) => events.push(event),
                None => break,
            }
        }
        Ok(events)
    }

    async fn commit(&mut self) -> DomainResult<()> {
        Ok(())
    }

    fn lag(&self) -> Option<u64> {
        Some(self.subscription.queued() as u64)
    }
}

/// The outbox of every shard, read by sequence, with the position kept in an
/// [`OffsetStore`]: the single-node projector's stream.
///
/// The in-process bus holds events in memory only, and the relay marks a row published once
/// the bus holds it; a process that dies between the two loses what the queue held. This
/// stream reads the outbox itself (published or not) from the position committed under its
/// consumer group (topic [`OutboxStream::TOPIC`], partition = shard, value = the next
/// sequence to read, as Kafka positions are), so a restart resumes where the last applied
/// batch ended. The in-process subscription, when given, only wakes it early; its events are
/// discarded. Sequence order is commit order only where a shard commits one writer at a time
/// (SQLite): use it in single-node mode.
///
/// A read model that makes writes durable on an interval (the embedded search index commits
/// every second) must not fall behind the stored position: with [`OutboxStream::flushing`],
/// a position is stored at most once per `every`, right after that index's `refresh` (its
/// commit). A crash then replays at most `every` of batches, which the projector's version
/// checks make harmless.
#[derive(Debug)]
pub struct OutboxStream {
    store: Arc<dyn ShardScan>,
    offsets: Arc<dyn OffsetStore>,
    group: String,
    /// Last sequence returned per shard (`None`: nothing yet); `None` until loaded.
    read: Option<BTreeMap<ShardId, Option<u64>>>,
    uncommitted: bool,
    wake: Option<LocalSubscription>,
    /// Made durable before a position is stored, at most once per interval.
    flush: Option<(Arc<dyn SearchIndex>, Duration)>,
    last_stored: Option<std::time::Instant>,
    max_batch: u32,
    idle_wait: Duration,
}

impl OutboxStream {
    /// The topic name the positions are stored under.
    pub const TOPIC: &'static str = "outbox";

    /// The outbox of `store`'s shards from the positions `group` committed in `offsets`
    /// (read on the first poll, so a failure there is retried like any poll).
    pub fn new(
        store: Arc<dyn ShardScan>,
        offsets: Arc<dyn OffsetStore>,
        group: impl Into<String>,
    ) -> OutboxStream {
        OutboxStream {
            store,
            offsets,
            group: group.into(),
            read: None,
            uncommitted: false,
            wake: None,
            flush: None,
            last_stored: None,
            max_batch: 512,
            idle_wait: Duration::from_millis(200),
        }
    }

    /// Stores positions at most once per `every`, each time after `index.refresh()`.
    pub fn flushing(mut self, index: Arc<dyn SearchIndex>, every: Duration) -> OutboxStream {
        self.flush = Some((index, every));
        self
    }

    /// The last sequence read per shard: the committed positions, loaded once.
    async fn positions(&mut self) -> DomainResult<&mut BTreeMap<ShardId, Option<u64>>> {
        if self.read.is_none() {
            let committed = self.offsets.load(&self.group, Self::TOPIC).await?;
            let read = self
                .store
                .shards()
                .into_iter()
                .map(|shard| {
                    // stored: the next sequence to read (Kafka's convention); kept: the last read
                    let next = committed.get(&i32::from(shard.0)).copied().unwrap_or(0);
                    (
                        shard,
                        u64::try_from(next).ok().and_then(|n| n.checked_sub(1)),
                    )
                })
                .collect();
            self.read = Some(read);
        }
        Ok(self.read.get_or_insert_with(BTreeMap::new))
    }

    /// Wakes on events of the in-process bus instead of waiting out the idle poll.
    pub fn waking_on(mut self, subscription: LocalSubscription) -> OutboxStream {
        self.wake = Some(subscription);
        self
    }

    /// The wake-up's events carry nothing the outbox does not: drop them.
    fn drain_wake(&mut self) {
        if let Some(wake) = &mut self.wake {
            while wake.try_recv().is_some() {}
        }
    }
}

#[async_trait]
impl EventStream for OutboxStream {
    async fn next_batch(&mut self) -> DomainResult<Vec<OrderEvent>> {
        self.drain_wake();
        let store = Arc::clone(&self.store);
        let max_batch = self.max_batch;
        let mut events = Vec::new();
        let mut advanced = false;
        for (shard, last) in self.positions().await?.iter_mut() {
            let entries = store.outbox_after(*shard, *last, max_batch).await?;
            if let Some(entry) = entries.last() {
                *last = Some(entry.sequence);
                advanced = true;
            }
            events.extend(entries.into_iter().map(|entry| entry.event));
        }
        self.uncommitted |= advanced;
        if events.is_empty() {
            // woken by the bus, or waited out the idle poll; a closed bus wakes nobody
            let waited = match &mut self.wake {
                Some(wake) => matches!(
                    tokio::time::timeout(self.idle_wait, wake.recv()).await,
                    Ok(Some(_)) | Err(_)
                ),
                None => false,
            };
            if !waited {
                tokio::time::sleep(self.idle_wait).await;
            }
        }
        Ok(events)
    }

    async fn commit(&mut self) -> DomainResult<()> {
        if !self.uncommitted {
            return Ok(());
        }
        let Some(read) = &self.read else {
            return Ok(());
        };
        if let Some((index, every)) = &self.flush {
            if self
                .last_stored
                .is_some_and(|stored| stored.elapsed() < *every)
            {
                return Ok(()); // stored with a later batch
            }
            index.refresh().await?;
        }
        let next: BTreeMap<i32, i64> = read
            .iter()
            .filter_map(|(shard, last)| {
                let next = i64::try_from(last.as_ref()? + 1).ok()?;
                Some((i32::from(shard.0), next))
            })
            .collect();
        self.offsets.commit(&self.group, Self::TOPIC, &next).await?;
        self.uncommitted = false;
        self.last_stored = Some(std::time::Instant::now());
        Ok(())
    }
}
