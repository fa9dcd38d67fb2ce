//! Kafka adapter configuration, from a `kafka://` URL or built in code.

use std::time::Duration;

use oc_model::{DomainError, DomainResult};

use crate::topic::{TopicNaming, TopicRouting};

/// Configuration of [`KafkaEventBus`](crate::KafkaEventBus) and the shared client.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaBusConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Kafka `client.id`, shown in broker logs and quotas.
    pub client_id: String,
    /// Prepended to every topic name (`{prefix}.oc.…`); empty for none.
    pub topic_prefix: String,
    /// Which tenants get a topic per business identity.
    pub routing: TopicRouting,
    /// Partitions of topics this adapter creates. Topics that exist keep their own count.
    pub partitions: i32,
    /// Replication factor of topics this adapter creates.
    pub replication_factor: i16,
    /// Create missing topics on first use (otherwise publishing to one fails).
    pub create_topics: bool,
    /// How long one broker operation (connect, metadata, produce of one partition) may retry
    /// before it fails. rskafka would retry forever; the relay has its own backoff, so a bus
    /// that is down must surface as an error, not a hang.
    pub operation_deadline: Duration,
    /// Upper bound of one produce request's record bytes; larger batches are split (in order).
    pub max_request_bytes: usize,
}

impl KafkaBusConfig {
    pub const DEFAULT_PARTITIONS: i32 = 6;
    pub const DEFAULT_CLIENT_ID: &'static str = "ordercenter";
    pub const DEFAULT_OPERATION_DEADLINE: Duration = Duration::from_secs(10);
    /// Well under the broker's default `message.max.bytes` (1 MiB) for an uncompressed batch.
    pub const DEFAULT_MAX_REQUEST_BYTES: usize = 512 * 1024;

    /// Defaults: no prefix, a topic per tenant, 6 partitions, replication 1, topics created.
    pub fn new(brokers: Vec<String>) -> KafkaBusConfig {
        KafkaBusConfig {
            brokers,
            client_id: Self::DEFAULT_CLIENT_ID.to_owned(),
            topic_prefix: String::new(),
            routing: TopicRouting::default(),
            partitions: Self::DEFAULT_PARTITIONS,
            replication_factor: 1,
            create_topics: true,
            operation_deadline: Self::DEFAULT_OPERATION_DEADLINE,
            max_request_bytes: Self::DEFAULT_MAX_REQUEST_BYTES,
        }
    }

    /// `kafka://host:9092[,host2:9092][?prefix=p&partitions=6&replication=3&client_id=x]`.
    pub fn from_url(url: &str) -> DomainResult<KafkaBusConfig> {
        let rest = url.strip_prefix("kafka://").ok_or_else(|| {
            DomainError::invalid("/bus_url", format!("not a kafka:// url: {url:?}"))
        })?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let brokers: Vec<String> = hosts
            .trim_end_matches('/')
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(str::to_owned)
            .collect();
        let mut config = KafkaBusConfig::new(brokers);
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = |what: &str| {
                DomainError::invalid(
                    "/bus_url",
                    format!("kafka url parameter {key}: {what}, got {value:?}"),
                )
            };
            match key {
                "prefix" => config.topic_prefix = value.to_owned(),
                "client_id" => config.client_id = value.to_owned(),
                "partitions" => {
                    config.partitions = value.parse().map_err(|_| bad("not a number"))?;
                }
                "replication" => {
                    config.replication_factor = value.parse().map_err(|_| bad("not a number"))?;
                }
                "create_topics" => {
                    config.create_topics = value.parse().map_err(|_| bad("not true/false"))?;
                }
                _ => return Err(bad("unknown parameter")),
            }
        }
        config.validate()?;
        Ok(config)
    }

    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> KafkaBusConfig {
        self.topic_prefix = prefix.into();
        self
    }

    pub fn with_routing(mut self, routing: TopicRouting) -> KafkaBusConfig {
        self.routing = routing;
        self
    }

    pub fn with_partitions(mut self, partitions: i32) -> KafkaBusConfig {
        self.partitions = partitions;
        self
    }

    /// Checks brokers, partition count, replication and the topic prefix.
    pub fn validate(&self) -> DomainResult<()> {
        if self.brokers.is_empty() {
            return Err(DomainError::invalid("/brokers", "no kafka broker given"));
        }
        if self.partitions < 1 {
            return Err(DomainError::invalid(
                "/partitions",
                "a topic needs at least one partition",
            ));
        }
        if self.replication_factor < 1 {
            return Err(DomainError::invalid(
                "/replication_factor",
                "replication factor must be at least 1",
            ));
        }
        self.naming().map(|_| ())
    }

    /// The topic naming of this config.
    pub fn naming(&self) -> DomainResult<TopicNaming> {
        TopicNaming::new(self.topic_prefix.clone(), self.routing.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let config =
            KafkaBusConfig::from_url("kafka://a:9092,b:9093?prefix=dev&partitions=12").unwrap();
        assert_eq!(config.brokers, vec!["a:9092", "b:9093"]);
        assert_eq!(config.topic_prefix, "dev");
        assert_eq!(config.partitions, 12);
        assert_eq!(
            KafkaBusConfig::from_url("kafka://127.0.0.1:9092/")
                .unwrap()
                .partitions,
            6
        );
        for bad in [
            "http://a:9092",
            "kafka://",
            "kafka://a:1?partitions=0",
            "kafka://a:1?partitions=x",
            "kafka://a:1?nope=1",
            "kafka://a:1?prefix=a/b",
        ] {
            assert!(KafkaBusConfig::from_url(bad).is_err(), "{bad}");
        }
    }
}
