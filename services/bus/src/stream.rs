//! The bus adapters' side of the [`EventStream`] port the projector consumes: Kafka topics
//! ([`KafkaStream`], over [`KafkaEventSource`] and an [`OffsetStore`]) and the in-process bus
//! ([`LocalStream`], over [`LocalSubscription`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use oc_model::ports::{EventStream, OffsetStore};
use oc_model::{DomainResult, ErrorCode, OrderEvent};
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
