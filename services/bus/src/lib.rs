#![doc = include_str!("../README.md")]

pub mod cloudevents;
pub mod kafka;
pub mod local;
pub mod offsets;
mod open;
pub mod stream;
pub mod topic;

pub use kafka::{
    Assignment, ConsumedEvent, KafkaBusConfig, KafkaEventBus, KafkaEventSource, Polled,
    SourceConfig, StartOffset, UndecodableRecord, connect_client,
};
pub use local::{LocalBusConfig, LocalBusStats, LocalEventBus, LocalSubscription};
pub use offsets::{InMemoryOffsetStore, OffsetStore};
pub use open::{BusConfig, open};
pub use stream::{KafkaStream, LocalStream, OutboxStream};
pub use topic::{TopicNaming, TopicPolicy, TopicRouting, partition_for, record_key};
