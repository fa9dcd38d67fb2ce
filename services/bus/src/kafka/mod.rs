//! The Kafka adapter (cluster mode), over rskafka: config, client, producer (the
//! [`EventBus`](oc_model::ports::EventBus) port) and the event source for consumers.

mod bus;
mod client;
mod config;
mod source;

pub use bus::KafkaEventBus;
pub use client::connect_client;
pub use config::KafkaBusConfig;
pub use source::{
    Assignment, ConsumedEvent, KafkaEventSource, Polled, SourceConfig, StartOffset,
    UndecodableRecord,
};
