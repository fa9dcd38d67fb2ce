//! Opening the event bus named by a URL of the service config: the one way the binary gets
//! a bus, so no other crate matches these schemes. (The in-process bus of a single node has
//! no URL: the binary builds [`LocalEventBus`](crate::LocalEventBus) itself.)

use oc_model::{DomainError, DomainResult};

use crate::kafka::{KafkaBusConfig, KafkaEventBus};

/// Which bus to open, from a URL:
///
/// - `kafka://host:9092[,host2:9092][?prefix=p&partitions=6&replication=3&client_id=x&create_topics=true]`:
///   Kafka (any Kafka-protocol broker), see [`KafkaBusConfig::from_url`].
#[derive(Debug, Clone, PartialEq)]
pub enum BusConfig {
    Kafka(KafkaBusConfig),
}

impl BusConfig {
    /// Parse a URL (no I/O).
    pub fn parse(url: &str) -> DomainResult<BusConfig> {
        if url.starts_with("kafka://") {
            return KafkaBusConfig::from_url(url).map(BusConfig::Kafka);
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(DomainError::invalid(
            "/bus_url",
            format!("unsupported event bus scheme {scheme:?}: use kafka://host:9092"),
        ))
    }

    /// The bus. It implements the `EventBus` port; the projector also reads its topics
    /// through [`KafkaEventBus::client`]. It connects on first use, so a process starts while
    /// the broker is down (see [`KafkaEventBus::new`]).
    pub async fn open(self) -> DomainResult<KafkaEventBus> {
        match self {
            BusConfig::Kafka(config) => KafkaEventBus::new(config),
        }
    }
}

/// [`BusConfig::parse`] then [`BusConfig::open`].
pub async fn open(url: &str) -> DomainResult<KafkaEventBus> {
    BusConfig::parse(url)?.open().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_adapter() {
        assert_eq!(
            BusConfig::parse("kafka://k1:9092,k2:9092?prefix=t&partitions=3").unwrap(),
            BusConfig::Kafka(
                KafkaBusConfig::from_url("kafka://k1:9092,k2:9092?prefix=t&partitions=3").unwrap()
            )
        );
        for bad in [
            "kafka://",
            "kafka://k:9092?partitions=0",
            "amqp://mq:5672",
            "k:9092",
        ] {
            let error = BusConfig::parse(bad).unwrap_err();
            assert_eq!(error.code, oc_model::ErrorCode::InvalidInput, "{bad}");
        }
    }

    #[tokio::test]
    async fn open_does_not_wait_for_the_broker() {
        let bus = open("kafka://127.0.0.1:1?prefix=never").await.unwrap();
        assert_eq!(bus.config().topic_prefix, "never");
    }
}
