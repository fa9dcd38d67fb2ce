//! The consumer side: [`KafkaEventSource`] reads one topic's partitions from given offsets and
//! decodes the CloudEvents records back into [`OrderEvent`]s.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use oc_model::{DomainError, DomainResult, ErrorCode, OrderEvent};
use rskafka::client::Client;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};

use super::client::{convert, topic_partitions};
use crate::cloudevents::{self, DecodeError};
use crate::offsets::OffsetStore;

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartOffset {
    /// The oldest record the broker still keeps (a new read model reads everything).
    #[default]
    Earliest,
    /// Only records produced from now on.
    Latest,
}

/// Which partitions of a topic this consumer reads: a static share of a consumer group.
///
/// rskafka speaks no group protocol, so a group of `members` consumers splits the partitions
/// statically: member `i` owns every partition `p` with `p % members == i`. Every member must
/// be started with the same `members`; each commits only the positions of its own
/// partitions, so members never overwrite each other's positions. An order's events share a
/// partition (key = order id), so exactly one member applies them, in order. During a
/// rollout that changes `members`, two members may briefly read the same partition: the
/// consumers are idempotent and version-checked, so that costs duplicates, never a stale
/// write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    member: u32,
    members: u32,
}

impl Default for Assignment {
    fn default() -> Self {
        Assignment::all()
    }
}

impl Assignment {
    /// Every partition (a group of one).
    pub const fn all() -> Assignment {
        Assignment {
            member: 0,
            members: 1,
        }
    }

    /// Member `member` of a group of `members` (`member < members`).
    pub fn new(member: u32, members: u32) -> DomainResult<Assignment> {
        if members == 0 || member >= members {
            return Err(DomainError::invalid(
                "/member",
                format!("member {member} of {members}: expected 0 <= member < members"),
            ));
        }
        Ok(Assignment { member, members })
    }

    /// Parses `i/n` (for example `0/3`).
    pub fn parse(text: &str) -> DomainResult<Assignment> {
        let invalid = || {
            DomainError::invalid(
                "/member",
                format!("{text:?} is not a group share: expected i/n, for example 0/3"),
            )
        };
        let (member, members) = text.trim().split_once('/').ok_or_else(invalid)?;
        let member = member.trim().parse().map_err(|_| invalid())?;
        let members = members.trim().parse().map_err(|_| invalid())?;
        Assignment::new(member, members)
    }

    pub fn member(&self) -> u32 {
        self.member
    }

    pub fn members(&self) -> u32 {
        self.members
    }

    /// Whether this member reads `partition`.
    pub fn owns(&self, partition: i32) -> bool {
        u32::try_from(partition).is_ok_and(|p| p % self.members == self.member)
    }
}

impl std::fmt::Display for Assignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.member, self.members)
    }
}

/// How much one [`KafkaEventSource::poll`] fetches and waits, and which partitions it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceConfig {
    /// Upper bound of record bytes fetched per partition per poll.
    pub max_bytes_per_partition: i32,
    /// How long the broker may hold a fetch open waiting for new records.
    pub max_wait: Duration,
    /// This consumer's share of the partitions.
    pub assignment: Assignment,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            max_bytes_per_partition: 1024 * 1024,
            max_wait: Duration::from_millis(200),
            assignment: Assignment::all(),
        }
    }
}

/// One event read from the topic, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedEvent {
    pub partition: i32,
    pub offset: i64,
    pub event: OrderEvent,
}

/// A record that is not a valid order event (written by someone else, or corrupted). It is
/// skipped by the positions, and handed to the caller to log or dead-letter: never dropped
/// silently, and never allowed to stall the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndecodableRecord {
    pub partition: i32,
    pub offset: i64,
    pub error: DecodeError,
}

/// What one poll read: events in offset order within each partition, partitions in turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    pub events: Vec<ConsumedEvent>,
    pub undecodable: Vec<UndecodableRecord>,
}

impl Polled {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.undecodable.is_empty()
    }
}

#[derive(Debug)]
struct PartitionReader {
    partition: i32,
    client: PartitionClient,
    /// The next offset to read (Kafka's committed-offset convention).
    next_offset: i64,
    /// The high watermark from the last fetch (`None` before the first).
    high_watermark: Option<i64>,
}

/// Reads a topic's partitions (those [`SourceConfig::assignment`] gives it), each from its own
/// offset, and yields `(partition, offset, OrderEvent)`.
///
/// rskafka has no consumer groups: the source does not coordinate with other consumers and
/// does not commit by itself. A consumer processes a [`Polled`] batch, then stores
/// [`KafkaEventSource::positions`] in an [`OffsetStore`] (see [`KafkaEventSource::commit`]);
/// after a restart it reopens from what was stored. Crashing between processing and commit
/// means the batch is read again: at-least-once, like the bus itself.
#[derive(Debug)]
pub struct KafkaEventSource {
    topic: String,
    config: SourceConfig,
    partitions: Vec<PartitionReader>,
}

/// The offset `start` names in one partition.
///
/// `Latest` is read as the high watermark of an empty fetch, not with ListOffsets(latest).
/// On Apache Kafka the two are the same value; the fetch also holds on brokers that answer
/// ListOffsets(latest) with the last *batch*'s base offset + 1 (tansu 0.6 did, which would
/// replay part of the last batch), at the cost of one small request per partition at open.
async fn start_offset(partition: &PartitionClient, start: StartOffset) -> DomainResult<i64> {
    let earliest = partition
        .get_offset(OffsetAt::Earliest)
        .await
        .map_err(|error| convert(error, "reading a kafka offset"))?;
    match start {
        StartOffset::Earliest => Ok(earliest),
        StartOffset::Latest => {
            let (_records, high_watermark) = partition
                .fetch_records(earliest, 1..2, 0)
                .await
                .map_err(|error| convert(error, "reading a kafka high watermark"))?;
            Ok(high_watermark)
        }
    }
}

impl KafkaEventSource {
    /// Opens the partitions of `topic` that `config.assignment` owns (a member may own none
    /// when the group is larger than the partition count). A partition starts at `committed[partition]` when
    /// present, else at `start`. A topic that does not exist (yet) is `NotFound`.
    pub async fn open(
        client: &Client,
        topic: &str,
        committed: &BTreeMap<i32, i64>,
        start: StartOffset,
        config: SourceConfig,
    ) -> DomainResult<KafkaEventSource> {
        let partition_count = topic_partitions(client, topic).await?.ok_or_else(|| {
            DomainError::new(
                ErrorCode::NotFound,
                format!("kafka topic {topic} does not exist"),
            )
        })?;
        let owned = (0..partition_count).filter(|p| config.assignment.owns(*p));
        let opened = join_all(owned.map(|partition| async move {
            let partition_client = client
                .partition_client(topic, partition, UnknownTopicHandling::Retry)
                .await
                .map_err(|error| convert(error, "opening a kafka partition"))?;
            let next_offset = match committed.get(&partition) {
                Some(offset) => *offset,
                None => start_offset(&partition_client, start).await?,
            };
            Ok::<_, DomainError>(PartitionReader {
                partition,
                client: partition_client,
                next_offset,
                high_watermark: None,
            })
        }))
        .await;
        let partitions = opened.into_iter().collect::<DomainResult<Vec<_>>>()?;
        Ok(KafkaEventSource {
            topic: topic.to_owned(),
            config,
            partitions,
        })
    }

    /// Opens `topic` from the offsets `store` holds for `group` (else from `start`).
    pub async fn open_committed(
        client: &Client,
        topic: &str,
        store: &dyn OffsetStore,
        group: &str,
        start: StartOffset,
        config: SourceConfig,
    ) -> DomainResult<KafkaEventSource> {
        let committed = store.load(group, topic).await?;
        KafkaEventSource::open(client, topic, &committed, start, config).await
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// How many partitions this source reads (all of the topic's, unless assigned a share).
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    /// The partitions this source reads, ascending.
    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.iter().map(|r| r.partition).collect()
    }

    /// The next offset to read per partition: what to commit once everything polled so far
    /// has been processed.
    pub fn positions(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .map(|reader| (reader.partition, reader.next_offset))
            .collect()
    }

    /// Records behind per partition, as of the last poll (`None` before the first poll).
    pub fn lag(&self) -> BTreeMap<i32, Option<i64>> {
        self.partitions
            .iter()
            .map(|reader| {
                let behind = reader
                    .high_watermark
                    .map(|high| (high - reader.next_offset).max(0));
                (reader.partition, behind)
            })
            .collect()
    }

    /// Moves one partition's position (replay, or skip).
    pub fn seek(&mut self, partition: i32, offset: i64) -> DomainResult<()> {
        let reader = self
            .partitions
            .iter_mut()
            .find(|reader| reader.partition == partition)
            .ok_or_else(|| {
                DomainError::invalid(
                    "/partition",
                    format!(
                        "topic {} has no partition {partition} read by this source",
                        self.topic
                    ),
                )
            })?;
        reader.next_offset = offset;
        Ok(())
    }

    /// Fetches from every partition at once (each waits up to `max_wait` for data) and
    /// advances the positions past what it returns. A position below the broker's retention
    /// start is an error (`Unavailable`, "offset out of range"): the caller decides whether to
    /// [`seek`](Self::seek) to the earliest offset and rebuild with a backfill.
    pub async fn poll(&mut self) -> DomainResult<Polled> {
        if self.partitions.is_empty() {
            // a member whose share of this topic is empty: wait like an idle fetch
            tokio::time::sleep(self.config.max_wait).await;
            return Ok(Polled::default());
        }
        let max_bytes = self.config.max_bytes_per_partition.max(1);
        let max_wait_ms = i32::try_from(self.config.max_wait.as_millis()).unwrap_or(i32::MAX);
        let fetched = join_all(self.partitions.iter().map(|reader| {
            reader
                .client
                .fetch_records(reader.next_offset, 1..max_bytes, max_wait_ms)
        }))
        .await;

        // all or nothing: a failed partition must not advance the others past records
        // that this call then never returns
        let fetched = fetched
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| convert(error, "fetching from kafka"))?;
        let mut polled = Polled::default();
        for (index, (records, high_watermark)) in fetched.into_iter().enumerate() {
            let reader = &mut self.partitions[index];
            reader.high_watermark = Some(high_watermark);
            let partition = reader.partition;
            for record_and_offset in records {
                let offset = record_and_offset.offset;
                if offset < reader.next_offset {
                    continue;
                }
                match cloudevents::decode(&record_and_offset.record) {
                    Ok(event) => polled.events.push(ConsumedEvent {
                        partition,
                        offset,
                        event,
                    }),
                    Err(error) => {
                        tracing::warn!(
                            topic = %self.topic, partition, offset, error = %error,
                            "undecodable record on an order topic"
                        );
                        polled.undecodable.push(UndecodableRecord {
                            partition,
                            offset,
                            error,
                        });
                    }
                }
                reader.next_offset = offset + 1;
            }
        }
        Ok(polled)
    }

    /// Stores [`positions`](Self::positions) for `group`.
    pub async fn commit(&self, store: &dyn OffsetStore, group: &str) -> DomainResult<()> {
        store.commit(group, &self.topic, &self.positions()).await
    }
}
