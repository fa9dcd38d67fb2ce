//! The in-process bus (single-node mode, `local://`): a fan-out to subscribers in the same
//! process.
//!
//! # Lagging subscribers: backpressure, never silent loss
//!
//! Every subscriber has its own bounded queue ([`LocalBusConfig::capacity`]). `publish`
//! delivers a batch to every subscriber concurrently and **waits for room** in each queue; it
//! returns only once every matching subscriber holds the whole batch. When a subscriber stays
//! full for longer than [`LocalBusConfig::publish_timeout`], `publish` fails with
//! `Unavailable` instead of dropping anything. The publisher is the relay: it keeps the batch
//! in the outbox (durable, on disk) and retries it after a backoff. Subscribers that had room
//! may then receive some events twice, which they ignore by version.
//!
//! Why this and not a `tokio::sync::broadcast` channel: broadcast overwrites the oldest
//! events when a receiver lags, so the receiver would have to notice `Lagged` and rebuild
//! from the store. Backpressure keeps memory bounded by `capacity × subscribers` and moves
//! the backlog to the one place built to hold it (the outbox, whose age the relay reports as
//! lag), with no resync protocol. The cost: a stuck subscriber stalls delivery to every
//! subscriber, visibly (publish errors, growing relay lag), not silently.
//!
//! A subscriber sees the events published after it subscribed; what came before is in the
//! store (a read model starts with a backfill). Dropping a [`LocalSubscription`] unsubscribes.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_core::Stream;
use futures_util::future::join_all;
use oc_model::ports::EventBus;
use oc_model::{DomainError, DomainResult, OrderEvent, TenantId};
use tokio::sync::mpsc;

/// Sizes and patience of the in-process bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalBusConfig {
    /// Events each subscriber may have queued.
    pub capacity: usize,
    /// How long `publish` waits for a full subscriber before failing.
    pub publish_timeout: Duration,
}

impl Default for LocalBusConfig {
    fn default() -> Self {
        LocalBusConfig {
            capacity: 1024,
            publish_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of the in-process bus (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalBusStats {
    pub subscribers: usize,
    /// Events accepted by `publish` calls that succeeded.
    pub published_total: u64,
    /// `publish` calls that failed because a subscriber stayed full.
    pub publish_timeouts: u64,
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    tenant: Option<TenantId>,
    sender: mpsc::Sender<OrderEvent>,
}

#[derive(Debug)]
struct Shared {
    config: LocalBusConfig,
    subscribers: Mutex<Vec<Subscriber>>,
    /// One publish at a time, so two batches never interleave in a queue.
    publish_lock: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    published_total: AtomicU64,
    publish_timeouts: AtomicU64,
}

/// The in-process [`EventBus`]. Cloning gives another handle to the same bus.
#[derive(Debug, Clone)]
pub struct LocalEventBus {
    shared: Arc<Shared>,
}

impl Default for LocalEventBus {
    fn default() -> Self {
        LocalEventBus::new(LocalBusConfig::default())
    }
}

impl LocalEventBus {
    /// # Panics
    /// When `config.capacity` is zero.
    pub fn new(config: LocalBusConfig) -> LocalEventBus {
        assert!(
            config.capacity > 0,
            "a subscriber queue holds at least one event"
        );
        LocalEventBus {
            shared: Arc::new(Shared {
                config,
                subscribers: Mutex::new(Vec::new()),
                publish_lock: tokio::sync::Mutex::new(()),
                next_id: AtomicU64::new(0),
                published_total: AtomicU64::new(0),
                publish_timeouts: AtomicU64::new(0),
            }),
        }
    }

    /// Every tenant's events, from now on.
    pub fn subscribe(&self) -> LocalSubscription {
        self.add_subscriber(None)
    }

    /// One tenant's events only, from now on (the in-process twin of a tenant's topic).
    pub fn subscribe_tenant(&self, tenant: TenantId) -> LocalSubscription {
        self.add_subscriber(Some(tenant))
    }

    fn add_subscriber(&self, tenant: Option<TenantId>) -> LocalSubscription {
        let (sender, receiver) = mpsc::channel(self.shared.config.capacity);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock_subscribers()
            .push(Subscriber { id, tenant, sender });
        LocalSubscription { id, receiver }
    }

    pub fn stats(&self) -> LocalBusStats {
        LocalBusStats {
            subscribers: self.lock_subscribers().len(),
            published_total: self.shared.published_total.load(Ordering::Relaxed),
            publish_timeouts: self.shared.publish_timeouts.load(Ordering::Relaxed),
        }
    }

    fn lock_subscribers(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.shared
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What delivering a batch to one subscriber came to.
enum Delivery {
    Delivered,
    /// The subscription was dropped: remove it.
    Gone(u64),
    /// The queue stayed full past the timeout.
    Full(u64),
}

async fn deliver(
    id: u64,
    sender: mpsc::Sender<OrderEvent>,
    events: Vec<OrderEvent>,
    capacity: usize,
    deadline: tokio::time::Instant,
) -> Delivery {
    // reserve_many cannot ask for more than the queue holds: go in capacity-sized steps
    for chunk in events.chunks(capacity) {
        match tokio::time::timeout_at(deadline, sender.reserve_many(chunk.len())).await {
            Ok(Ok(permits)) => {
                for (permit, event) in permits.zip(chunk) {
                    permit.send(event.clone());
                }
            }
            Ok(Err(_closed)) => return Delivery::Gone(id),
            Err(_elapsed) => return Delivery::Full(id),
        }
    }
    Delivery::Delivered
}

#[async_trait]
impl EventBus for LocalEventBus {
    async fn publish(&self, events: &[OrderEvent]) -> DomainResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let _one_at_a_time = self.shared.publish_lock.lock().await;
        let capacity = self.shared.config.capacity;
        let deadline = tokio::time::Instant::now() + self.shared.config.publish_timeout;
        let deliveries: Vec<_> = self
            .lock_subscribers()
            .iter()
            .map(|subscriber| {
                let matching: Vec<OrderEvent> = events
                    .iter()
                    .filter(|event| {
                        subscriber
                            .tenant
                            .as_ref()
                            .is_none_or(|tenant| *tenant == event.tenant)
                    })
                    .cloned()
                    .collect();
                deliver(
                    subscriber.id,
                    subscriber.sender.clone(),
                    matching,
                    capacity,
                    deadline,
                )
            })
            .collect();
        let outcomes = join_all(deliveries).await;

        let mut full = Vec::new();
        let mut gone = Vec::new();
        for outcome in outcomes {
            match outcome {
                Delivery::Delivered => {}
                Delivery::Gone(id) => gone.push(id),
                Delivery::Full(id) => full.push(id),
            }
        }
        if !gone.is_empty() {
            self.lock_subscribers()
                .retain(|subscriber| !gone.contains(&subscriber.id));
        }
        if !full.is_empty() {
            self.shared.publish_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                subscribers = ?full,
                timeout_ms = self.shared.config.publish_timeout.as_millis() as u64,
                "in-process bus subscribers lag: publish refused, the relay will retry"
            );
            return Err(DomainError::unavailable(format!(
                "in-process bus: {} subscriber(s) stayed full for {:?}",
                full.len(),
                self.shared.config.publish_timeout
            )));
        }
        self.shared
            .published_total
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A subscriber's end of the in-process bus: a [`Stream`] of events (or [`recv`](Self::recv)).
#[derive(Debug)]
pub struct LocalSubscription {
    id: u64,
    receiver: mpsc::Receiver<OrderEvent>,
}

impl LocalSubscription {
    /// A number unique among this bus's subscriptions.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next event; `None` once the bus is dropped and the queue is drained.
    pub async fn recv(&mut self) -> Option<OrderEvent> {
        self.receiver.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<OrderEvent> {
        self.receiver.try_recv().ok()
    }

    /// Events queued and not yet received.
    pub fn queued(&self) -> usize {
        self.receiver.len()
    }
}

impl Stream for LocalSubscription {
    type Item = OrderEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OrderEvent>> {
        self.receiver.poll_recv(cx)
    }
}
