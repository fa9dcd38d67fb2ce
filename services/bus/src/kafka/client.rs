//! The rskafka client: connecting with a bounded retry deadline, topic metadata and creation,
//! and rskafka errors → domain errors (in one place).

use std::time::Duration;

use oc_model::{DomainError, DomainResult, ErrorCode};
use rskafka::BackoffConfig;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::{Client, ClientBuilder};

use super::config::KafkaBusConfig;

/// Broker-side timeout of a CreateTopics request.
const CREATE_TOPIC_TIMEOUT_MS: i32 = 10_000;
/// How often to look for a topic another client is creating.
const TOPIC_APPEAR_POLL: Duration = Duration::from_millis(50);

/// rskafka's retry policy for every operation of our clients: short, capped, and with a
/// deadline so that an unreachable broker becomes an error.
pub(crate) fn backoff_config(deadline: Duration) -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(1),
        base: 2.0,
        deadline: Some(deadline),
    }
}

/// Connects an rskafka client to `brokers`; fails after `deadline` when none answers.
pub async fn connect_client(
    brokers: Vec<String>,
    client_id: &str,
    deadline: Duration,
) -> DomainResult<Client> {
    if brokers.is_empty() {
        return Err(DomainError::invalid("/brokers", "no kafka broker given"));
    }
    ClientBuilder::new(brokers)
        .client_id(client_id.to_owned())
        .backoff_config(backoff_config(deadline))
        .build()
        .await
        .map_err(|error| convert(error, "connecting to kafka"))
}

/// rskafka error → domain error. Broker and network trouble is `Unavailable` (the caller
/// backs off and retries); a response we cannot understand is `Internal`.
pub(crate) fn convert(error: KafkaError, operation: &str) -> DomainError {
    match &error {
        KafkaError::InvalidResponse(_) => {
            tracing::error!(error = %error, operation, "kafka answered something unexpected");
            DomainError::internal(format!("{operation}: unexpected kafka response"))
        }
        KafkaError::ServerError { protocol_error, .. } => {
            tracing::warn!(error = %error, operation, "kafka refused a request");
            DomainError::unavailable(format!("{operation}: kafka error {protocol_error}"))
        }
        _ => {
            tracing::warn!(error = %error, operation, "kafka unavailable");
            DomainError::unavailable(format!("{operation}: kafka unavailable ({error})"))
        }
    }
}

/// The partition count of `topic`, or `None` when the broker does not know it.
pub(crate) async fn topic_partitions(client: &Client, topic: &str) -> DomainResult<Option<i32>> {
    let topics = client
        .list_topics()
        .await
        .map_err(|error| convert(error, "listing kafka topics"))?;
    Ok(topics
        .into_iter()
        .find(|candidate| candidate.name == topic)
        .map(|found| found.partitions.len() as i32)
        .filter(|count| *count > 0))
}

/// Makes sure `topic` exists and returns its partition count. Creates it with the configured
/// partitions when missing; another client creating it at the same time is fine (the
/// "already exists" answer is taken as success and the real count is read back).
pub(crate) async fn ensure_topic(
    client: &Client,
    topic: &str,
    config: &KafkaBusConfig,
) -> DomainResult<i32> {
    if let Some(partitions) = topic_partitions(client, topic).await? {
        return Ok(partitions);
    }
    if !config.create_topics {
        return Err(DomainError::new(
            ErrorCode::NotFound,
            format!("kafka topic {topic} does not exist and topic creation is off"),
        ));
    }
    let controller = client
        .controller_client()
        .map_err(|error| convert(error, "kafka controller client"))?;
    match controller
        .create_topic(
            topic,
            config.partitions,
            config.replication_factor,
            CREATE_TOPIC_TIMEOUT_MS,
        )
        .await
    {
        Ok(()) => {
            tracing::info!(topic, partitions = config.partitions, "created kafka topic");
            Ok(config.partitions)
        }
        Err(KafkaError::ServerError {
            protocol_error: ProtocolError::TopicAlreadyExists,
            ..
        }) => wait_for_topic(client, topic, config.operation_deadline).await,
        Err(error) => Err(convert(error, "creating a kafka topic")),
    }
}

/// Another client created `topic` just now: wait until its metadata shows the partitions.
async fn wait_for_topic(client: &Client, topic: &str, deadline: Duration) -> DomainResult<i32> {
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(partitions) = topic_partitions(client, topic).await? {
            return Ok(partitions);
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(DomainError::unavailable(format!(
                "kafka topic {topic} exists but has no partitions in the metadata"
            )));
        }
        tokio::time::sleep(TOPIC_APPEAR_POLL).await;
    }
}
