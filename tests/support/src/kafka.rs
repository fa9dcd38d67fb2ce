//! A Kafka topic per test, on the broker of [`kafka_brokers`].

use std::time::Duration;

use anyhow::Context as _;
use rskafka::BackoffConfig;
use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};

use crate::{bounded, kafka_brokers, unique_prefix};

/// Broker-side timeout for topic creation and deletion.
const TOPIC_REQUEST_TIMEOUT_MS: i32 = 10_000;

/// Connects an rskafka client to [`kafka_brokers`].
///
/// rskafka retries forever by default; this client gives up after 20 s so that a broker
/// that is down fails the test instead of hanging it.
pub async fn kafka_client() -> anyhow::Result<Client> {
    let brokers = kafka_brokers();
    bounded("connecting to kafka", async {
        ClientBuilder::new(brokers.clone())
            .client_id("oc-test-support")
            .backoff_config(BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
                deadline: Some(Duration::from_secs(20)),
            })
            .build()
            .await
            .with_context(|| {
                format!(
                    "connecting to kafka brokers {} (run `deploy/local/services.sh up`)",
                    brokers.join(",")
                )
            })
    })
    .await
}

/// A unique topic name `oct_<unique_prefix>`; [`KafkaTopic::create`] creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTopic {
    name: String,
}

impl KafkaTopic {
    /// A fresh topic name for the test named by `label`. Does not touch the broker.
    pub fn new(label: &str) -> Self {
        Self {
            name: format!("oct_{}", unique_prefix(label)),
        }
    }

    /// The topic name: only `[a-z0-9_]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the topic with `partitions` partitions (replication factor 1) through the
    /// controller client.
    pub async fn create(&self, partitions: i32) -> anyhow::Result<()> {
        let client = kafka_client().await?;
        bounded("creating a kafka topic", async {
            client
                .controller_client()
                .context("kafka controller client")?
                .create_topic(&self.name, partitions, 1, TOPIC_REQUEST_TIMEOUT_MS)
                .await
                .with_context(|| format!("creating kafka topic {}", self.name))
        })
        .await
    }

    /// A client bound to one partition of the topic (retries while the topic is unknown,
    /// within the client's 20 s deadline).
    pub async fn partition_client(
        &self,
        client: &Client,
        partition: i32,
    ) -> anyhow::Result<PartitionClient> {
        bounded("opening a kafka partition client", async {
            client
                .partition_client(self.name.clone(), partition, UnknownTopicHandling::Retry)
                .await
                .with_context(|| format!("partition client for {}/{partition}", self.name))
        })
        .await
    }

    /// Deletes the topic. The local broker keeps topics in memory only, so this is
    /// tidiness rather than a necessity.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        let client = kafka_client().await?;
        bounded("deleting a kafka topic", async {
            client
                .controller_client()
                .context("kafka controller client")?
                .delete_topic(&self.name, TOPIC_REQUEST_TIMEOUT_MS)
                .await
                .with_context(|| format!("deleting kafka topic {}", self.name))
        })
        .await
    }
}
