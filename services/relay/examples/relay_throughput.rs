//! Measures relay throughput from real MariaDB shards to the real Kafka-protocol broker.
//!
//! ```sh
//! cargo run --release -p oc-relay --example relay_throughput -- [orders] [versions] [batch]
//! ```
//!
//! Writes `orders × versions` events through the store into two fresh test databases (not
//! timed), then runs the relay until every event is published and marked, and prints
//! events/s. Uses the same services and environment variables as the tests.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_bus::{KafkaBusConfig, KafkaEventBus};
use oc_model::ports::EventBus;
use oc_relay::{Relay, RelayConfig};

fn arg(index: usize, default: u64) -> u64 {
    std::env::args()
        .nth(index)
        .map(|value| value.parse().expect("a number"))
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let orders = arg(1, 2_000) as usize;
    let versions = arg(2, 2);
    let batch_size = arg(3, 256) as u32;
    let shards = common::Shards::mariadb("relay_bench").await;
    let tenants = [common::tenant("acme"), common::tenant("globex")];
    let started = Instant::now();
    common::create_orders(&shards.store, &tenants, orders / 2, versions).await;
    let expected = (orders / 2 * 2) as u64 * versions;
    println!(
        "wrote {expected} events ({} orders × {versions} versions) in {:.1?}",
        orders / 2 * 2,
        started.elapsed()
    );

    let bus_config = KafkaBusConfig::new(oc_test_support::kafka_brokers())
        .with_topic_prefix(oc_test_support::unique_prefix("relay_bench"));
    let bus = Arc::new(KafkaEventBus::connect(bus_config).await.unwrap());
    let relay = Relay::new(
        shards.store(),
        bus as Arc<dyn EventBus>,
        RelayConfig {
            batch_size,
            idle_poll: Duration::from_millis(5),
            ..RelayConfig::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn({
        let relay = relay.clone();
        async move {
            relay
                .run(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    while relay.stats().published_total < expected {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    println!(
        "relayed {expected} events in {elapsed:.2?} with batch {batch_size}: {:.0} events/s \
         (2 MariaDB shards → Kafka, acks=all, topics created on first use)",
        expected as f64 / elapsed.as_secs_f64()
    );
    shards.finish().await;
}
