//! The producer side: [`KafkaEventBus`] implements the [`EventBus`] port.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures_util::future::join_all;
use oc_model::ports::EventBus;
use oc_model::{DomainResult, OrderEvent};
use rskafka::client::Client;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;
use tokio::sync::OnceCell;

use super::client::{connect_client, convert, ensure_topic};
use super::config::KafkaBusConfig;
use crate::cloudevents;
use crate::topic::{TopicNaming, partition_for};

/// One topic, opened: a client per partition (each holds a connection to its leader).
#[derive(Debug)]
struct OpenTopic {
    partitions: Vec<PartitionClient>,
}

type TopicCell = Arc<OnceCell<Arc<OpenTopic>>>;

/// Publishes order events to Kafka as CloudEvents (binary mode), key = order id, one topic
/// per tenant (or per business identity), partition = Kafka's hash of the key.
///
/// Connects lazily: [`KafkaEventBus::new`] never touches the network, so the service starts
/// while Kafka is down and [`EventBus::publish`] answers `Unavailable` until it is back (the
/// relay keeps the events in the outbox meanwhile). [`KafkaEventBus::connect`] connects
/// eagerly, for start-up checks.
#[derive(Debug)]
pub struct KafkaEventBus {
    config: KafkaBusConfig,
    naming: TopicNaming,
    client: OnceCell<Arc<Client>>,
    /// Opened topics. A topic whose produce failed is dropped and reopened on next use.
    topics: Mutex<HashMap<String, TopicCell>>,
}

impl KafkaEventBus {
    /// Validates `config`; connects on first use.
    pub fn new(config: KafkaBusConfig) -> DomainResult<KafkaEventBus> {
        config.validate()?;
        let naming = config.naming()?;
        Ok(KafkaEventBus {
            config,
            naming,
            client: OnceCell::new(),
            topics: Mutex::new(HashMap::new()),
        })
    }

    /// Validates `config` and connects now (bounded by `operation_deadline`).
    pub async fn connect(config: KafkaBusConfig) -> DomainResult<KafkaEventBus> {
        let bus = KafkaEventBus::new(config)?;
        bus.client().await?;
        Ok(bus)
    }

    pub fn config(&self) -> &KafkaBusConfig {
        &self.config
    }

    /// The topic naming in use (consumers ask it which topic a tenant's events are in).
    pub fn naming(&self) -> &TopicNaming {
        &self.naming
    }

    /// The topic `event` is published to.
    pub fn topic_for(&self, event: &OrderEvent) -> String {
        self.naming.topic_for(event)
    }

    /// The shared rskafka client (connecting on first call).
    pub async fn client(&self) -> DomainResult<Arc<Client>> {
        self.client
            .get_or_try_init(|| async {
                connect_client(
                    self.config.brokers.clone(),
                    &self.config.client_id,
                    self.config.operation_deadline,
                )
                .await
                .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// Creates `topic` if missing and opens its partitions (at most once at a time per topic).
    async fn open_topic(&self, topic: &str) -> DomainResult<Arc<OpenTopic>> {
        let cell = {
            let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(topics.entry(topic.to_owned()).or_default())
        };
        cell.get_or_try_init(|| async {
            let client = self.client().await?;
            let partition_count = ensure_topic(&client, topic, &self.config).await?;
            let opened = join_all((0..partition_count).map(|partition| {
                client.partition_client(topic, partition, UnknownTopicHandling::Retry)
            }))
            .await;
            let partitions = opened
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| convert(error, "opening kafka partitions"))?;
            Ok(Arc::new(OpenTopic { partitions }))
        })
        .await
        .cloned()
    }

    fn forget_topic(&self, topic: &str) {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics.remove(topic);
    }

    /// Produces one partition's records, in order, split into requests of bounded size.
    async fn produce_in_order(
        &self,
        partition: &PartitionClient,
        records: Vec<Record>,
    ) -> DomainResult<()> {
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for record in records {
            let size = record.approximate_size();
            if !chunk.is_empty() && chunk_bytes + size > self.config.max_request_bytes {
                self.produce_chunk(partition, std::mem::take(&mut chunk))
                    .await?;
                chunk_bytes = 0;
            }
            chunk_bytes += size;
            chunk.push(record);
        }
        self.produce_chunk(partition, chunk).await
    }

    async fn produce_chunk(
        &self,
        partition: &PartitionClient,
        records: Vec<Record>,
    ) -> DomainResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        partition
            .produce(records, Compression::NoCompression)
            .await
            .map(|_offsets| ())
            .map_err(|error| convert(error, "producing to kafka"))
    }
}

#[async_trait]
impl EventBus for KafkaEventBus {
    /// Groups the batch by topic and partition (keeping each group's order), produces every
    /// partition's records with acks = all, partitions concurrently, and returns once every
    /// record is acknowledged. On error some partitions may hold their records already: the
    /// caller retries the whole batch, and consumers drop the repeats by version.
    async fn publish(&self, events: &[OrderEvent]) -> DomainResult<()> {
        let mut by_topic: BTreeMap<String, Vec<&OrderEvent>> = BTreeMap::new();
        for event in events {
            by_topic
                .entry(self.naming.topic_for(event))
                .or_default()
                .push(event);
        }
        let topics = join_all(by_topic.into_iter().map(|(topic, events)| async move {
            let result = self.publish_to_topic(&topic, &events).await;
            if result.is_err() {
                self.forget_topic(&topic);
            }
            result
        }))
        .await;
        topics.into_iter().collect()
    }
}

impl KafkaEventBus {
    async fn publish_to_topic(&self, topic: &str, events: &[&OrderEvent]) -> DomainResult<()> {
        let open = self.open_topic(topic).await?;
        let partition_count = open.partitions.len() as i32;
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for event in events {
            by_partition
                .entry(partition_for(event.order_id, partition_count))
                .or_default()
                .push(cloudevents::encode(event));
        }
        let produced = join_all(by_partition.into_iter().map(|(partition, records)| {
            self.produce_in_order(&open.partitions[partition as usize], records)
        }))
        .await;
        produced.into_iter().collect()
    }
}
