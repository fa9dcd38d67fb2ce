//! The long-running processes: `serve` (the API, and on a single node the relay, the
//! projector and the scheduler beside it), the cluster `relay`, `project` and `scheduler`
//! workers with their `/metrics` and `/healthz` listener, and the shutdown signal they all
//! stop on.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use oc_api::metrics::Metrics;
use oc_api::router_with;
use oc_bus::{
    KafkaEventBus, KafkaStream, LocalBusConfig, LocalEventBus, OutboxStream, SourceConfig,
    StartOffset,
};
use oc_core::aftersales::PickupWorker;
use oc_core::archive::Archiver;
use oc_core::scheduler::{OutboxReader, Purger, Scheduler};
use oc_model::archive::ArchiveStore;
use oc_model::ports::{OffsetStore, OrderStore, ShardScan};
use oc_model::retention::RetentionStore;
use oc_model::schedule::ScheduleStore;
use oc_projector::Projector;
use oc_relay::{Relay, RelayConfig};
use oc_tenant_config::ConfigSet;

use crate::config::ServiceConfig;
use crate::keyring::spawn_sighup_reloader;
use crate::wiring::{Wiring, build, kafka_bus};

/// Relay counters and lag per shard at `/metrics`.
fn register_relay_metrics(metrics: &Metrics, relay: Relay) {
    metrics.register(Box::new(move |out: &mut String| relay.stats().render(out)));
}

/// Projector counters per read model and its lag behind the stream at `/metrics`.
fn register_projector_metrics(metrics: &Metrics, projector: Projector) {
    metrics.register(Box::new(move |out: &mut String| {
        projector.stats().render(out)
    }));
}

/// Scheduler counters, lag per shard and rows purged at `/metrics`.
fn register_scheduler_metrics(metrics: &Metrics, scheduler: &Scheduler) {
    let stats = scheduler.stats();
    let purged = scheduler.purge_stats();
    metrics.register(Box::new(move |out: &mut String| {
        stats.render(out);
        if let Some(purged) = &purged {
            purged.render(out);
        }
    }));
}

/// The timeout worker, reservation sweeper and purge jobs over the wired store's shards.
/// On a single node the outbox purge also waits for the projector's durable position.
fn scheduler_of(wiring: &Wiring, config: &ServiceConfig) -> Scheduler {
    let reader = config.single_node.then(|| OutboxReader {
        offsets: wiring.store.clone() as Arc<dyn OffsetStore>,
        group: SINGLE_NODE_PROJECTOR_GROUP.to_owned(),
        topic: OutboxStream::TOPIC.to_owned(),
    });
    let purger = Purger::new(
        wiring.store.clone() as Arc<dyn RetentionStore>,
        config.purge.clone(),
        reader,
    );
    wiring
        .state
        .core
        .scheduler(
            wiring.store.clone() as Arc<dyn ScheduleStore>,
            config.scheduler.clone(),
        )
        .with_purger(purger)
}

/// The archive over the wired store's shards into the wired cold store; `None` without a
/// cold store.
pub(crate) fn archiver_of(wiring: &Wiring, config: &ServiceConfig) -> Option<Archiver> {
    let cold = wiring.sinks.cold.clone()?;
    Some(wiring.state.core.archiver(
        wiring.store.clone() as Arc<dyn ArchiveStore>,
        cold,
        config.archive.clone(),
    ))
}

/// Archive counters, bytes and lag behind the policy at `/metrics`.
fn register_archive_metrics(metrics: &Metrics, archiver: &Archiver) {
    let stats = archiver.stats();
    metrics.register(Box::new(move |out: &mut String| stats.render(out)));
}

/// `ordercenter archive`: the archive over every shard until SIGTERM, with `/metrics`. Any
/// number may run: they copy the same bytes, and the delete's version guard lets one win.
pub async fn archive(config: ServiceConfig) -> anyhow::Result<()> {
    let wiring = build(&config).await?;
    // the archive reads the tenant config (retention, state machines): it follows reloads
    wiring.reload_tenant_config_on_sighup(&config)?;
    let archiver = archiver_of(&wiring, &config)
        .ok_or_else(|| anyhow::anyhow!("the archive needs a cold store (OC_COLD_URL)"))?;
    register_archive_metrics(&wiring.state.metrics, &archiver);
    let (stop, http_stop) = stop_pair();
    let http = serve_worker_http(&config, Arc::clone(&wiring.state.metrics), http_stop).await?;
    println!(
        "archive running: {} shards, a pass every {} ms, at most {} orders/s",
        config.shards.len(),
        config.archive.poll_interval.as_millis(),
        config.archive.rate_per_sec
    );
    archiver.run(shutdown_signal()).await;
    let _ = stop.send(true);
    let _ = http.await;
    Ok(())
}

/// Pickup counters and alerts at `/metrics`.
fn register_pickup_metrics(metrics: &Metrics, worker: &PickupWorker) {
    let stats = worker.stats();
    metrics.register(Box::new(move |out: &mut String| stats.render(out)));
}

/// `ordercenter pickup`: the combined return pickup worker over every shard until SIGTERM,
/// with `/metrics`; `once`: one pass, its report printed as JSON. Any number may run: a
/// pickup is written with the after-sales it takes in one transaction, each carrier call is
/// claimed by a compare-and-set, and the carrier answers one waybill per idempotency key.
pub async fn pickup(config: ServiceConfig, once: bool) -> anyhow::Result<()> {
    let wiring = build(&config).await?;
    let worker = crate::wiring::pickup_worker(&wiring, &config).ok_or_else(|| {
        anyhow::anyhow!("the pickup worker needs a logistics provider (OC_LOGISTICS_URL)")
    })?;
    if once {
        let report = worker.pass().await;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    wiring.reload_tenant_config_on_sighup(&config)?;
    register_pickup_metrics(&wiring.state.metrics, &worker);
    let (stop, http_stop) = stop_pair();
    let http = serve_worker_http(&config, Arc::clone(&wiring.state.metrics), http_stop).await?;
    println!(
        "pickup running: {} shards, a pass every {} ms, booked {} ms before the earliest pickup, at most {} attempts",
        config.shards.len(),
        config.pickup.poll_interval.as_millis(),
        config.pickup.lead.as_millis(),
        config.pickup.max_attempts
    );
    worker.run(shutdown_signal()).await;
    let _ = stop.send(true);
    let _ = http.await;
    Ok(())
}

/// The workers' HTTP listener: `/metrics` and `/healthz` on `OC_LISTEN` (default
/// 127.0.0.1:9100), until `stop` resolves.
async fn serve_worker_http(
    config: &ServiceConfig,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::routing::get;
    let address = if config.listen_set {
        config.listen
    } else {
        SocketAddr::from(([127, 0, 0, 1], 9100))
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address} for /metrics (set OC_LISTEN)"))?;
    let router = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "{\"status\":\"ok\"}" }));
    tracing::info!(address = %listener.local_addr()?, "worker metrics listening");
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "worker metrics listener stopped");
        }
    }))
}

/// The consumer group of the single-node projector's outbox position.
const SINGLE_NODE_PROJECTOR_GROUP: &str = "single-node-projector";

/// Single-node workers: the relay moves outbox rows to the in-process bus, the projector
/// applies them to the search index, the cold store and the cache. The projector reads the
/// outbox itself from a position kept in the store (the bus only wakes it), so events the
/// bus held when the process died are applied after the restart.
fn spawn_single_node_workers(
    wiring: &Wiring,
    config: &ServiceConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let bus = Arc::new(LocalEventBus::new(LocalBusConfig::default()));
    let mut stream = OutboxStream::new(
        wiring.store.clone() as Arc<dyn ShardScan>,
        wiring.store.clone() as Arc<dyn OffsetStore>,
        SINGLE_NODE_PROJECTOR_GROUP,
    )
    .waking_on(bus.subscribe());
    if let Some(search) = &wiring.sinks.search {
        // the embedded index commits on an interval: store positions only behind its commits
        stream = stream.flushing(Arc::clone(search), std::time::Duration::from_secs(1));
    }
    let relay = Relay::new(
        wiring.store.clone() as Arc<dyn OrderStore>,
        wiring.guards.bus(bus),
        RelayConfig::default(),
    );
    wiring.guards.expose_late(&wiring.state, "bus");
    let projector = wiring.projector();
    register_relay_metrics(&wiring.state.metrics, relay.clone());
    register_projector_metrics(&wiring.state.metrics, projector.clone());
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let relay_stop = stopped(stop.clone());
    let projector_stop = stopped(stop.clone());
    // the scheduler of a single node: its timeouts and releases go through the same
    // guarded writes as a cluster's, so a second server on the same files could not
    // double-fire either
    let scheduler = scheduler_of(wiring, config);
    register_scheduler_metrics(&wiring.state.metrics, &scheduler);
    let scheduler_stop = stopped(stop.clone());
    // the archive of a single node, throttled (OC_ARCHIVE_RATE; 0: none)
    let archiver = archiver_of(wiring, config).filter(|_| config.archive.rate_per_sec > 0);
    if let Some(archiver) = &archiver {
        register_archive_metrics(&wiring.state.metrics, archiver);
    }
    let archive_stop = stopped(stop.clone());
    let pickup_stop = stopped(stop.clone());
    let mut tasks = payment_queries(wiring, stopped(stop));
    // the pickup worker of a single node, when a logistics provider is configured
    if let Some(worker) = crate::wiring::pickup_worker(wiring, config) {
        register_pickup_metrics(&wiring.state.metrics, &worker);
        tasks.push(tokio::spawn(async move { worker.run(pickup_stop).await }));
    }
    if let Some(archiver) = archiver {
        tasks.push(tokio::spawn(
            async move { archiver.run(archive_stop).await },
        ));
    }
    tasks.extend([
        tokio::spawn(async move { scheduler.run(scheduler_stop).await }),
        tokio::spawn(async move {
            if let Err(error) = relay.run(relay_stop).await {
                tracing::error!(error = %error.message, "relay stopped");
            }
        }),
        tokio::spawn(async move {
            if let Err(error) = projector.run(&mut stream, projector_stop).await {
                tracing::error!(error = %error.message, "projector stopped");
            }
        }),
    ]);
    tasks
}

/// The payments' active query (pending payments asked about at their provider), beside the
/// scheduler in single-node `serve` and in `ordercenter scheduler`: any number may run, a
/// query is claimed by a compare-and-set and its answer applied exactly once.
fn payment_queries(
    wiring: &Wiring,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Vec<tokio::task::JoinHandle<()>> {
    match wiring.state.core.payments.clone() {
        Some(payments) => vec![tokio::spawn(
            async move { payments.run_queries(stop).await },
        )],
        None => Vec::new(),
    }
}

/// `ordercenter serve`: the API (and, on a single node, the relay and the projector) until
/// Ctrl-C or SIGTERM.
pub async fn serve(config: ServiceConfig) -> anyhow::Result<()> {
    let wiring = build(&config).await?;
    // export jobs run inside the server that accepted them: any still `running` in its
    // export dir lost their process, and are marked failed rather than left running
    if let Some(exporter) = &wiring.state.exports
        && config.export_dir.is_some()
    {
        match exporter.fail_interrupted() {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                jobs = n,
                "export jobs interrupted by a restart marked failed"
            ),
            Err(error) => tracing::warn!(%error, "export jobs not checked"),
        }
    }
    wiring.reload_tenant_config_on_sighup(&config)?;
    spawn_sighup_reloader(wiring.key_ring())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = if config.single_node {
        spawn_single_node_workers(&wiring, &config, stopped)
    } else {
        Vec::new()
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    // reported before the first request: `keys retire` must see every server that can seal
    let key_report = crate::key_reports::Reporter::new(
        Arc::clone(&wiring.store),
        wiring.key_ring(),
        &format!("serve on {address}"),
        config.edge.request_timeout,
    )
    .start({
        let mut stopped = stop.subscribe();
        async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
    })
    .await?;
    tracing::info!(%address, shards = config.shards.len(), single_node = config.single_node, "order center listening");
    println!(
        "order center listening on http://{address} ({} shards{})",
        config.shards.len(),
        if config.single_node {
            ", single-node: SQLite, relay, search index and cold store under the data dir"
        } else {
            ""
        }
    );
    if config.single_node {
        println!(
            "try: curl -s -H 'Authorization: Bearer {key}' 'http://{address}/v1/orders?buyer_id=buyer-1'   (example key of tenant `retail`, see README)",
            key = crate::EXAMPLE_RETAIL_KEY
        );
    }
    axum::serve(listener, router_with(wiring.state.clone(), config.edge))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = key_report.await;
    Ok(())
}

/// `ordercenter relay`: the cluster relay, outbox of every shard → Kafka, until SIGTERM.
pub async fn relay(config: ServiceConfig) -> anyhow::Result<()> {
    let wiring = build(&config).await?;
    // the relay reads no tenant config (topics come from the events), but a SIGHUP sent to
    // every process after a config change must not end it
    wiring.reload_tenant_config_on_sighup(&config)?;
    let bus = kafka_bus(&config).await?;
    let relay = Relay::new(
        wiring.store.clone() as Arc<dyn OrderStore>,
        wiring.guards.bus(bus),
        RelayConfig::default(),
    );
    register_relay_metrics(&wiring.state.metrics, relay.clone());
    let (stop, http_stop) = stop_pair();
    let http = serve_worker_http(&config, Arc::clone(&wiring.state.metrics), http_stop).await?;
    println!(
        "relay running: {} shards → {}",
        config.shards.len(),
        config
            .kafka_url
            .as_ref()
            .map(|url| url.redacted())
            .unwrap_or_default()
    );
    let outcome = relay
        .run(shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("relay: {}", e.message));
    let _ = stop.send(true);
    let _ = http.await;
    outcome
}

/// `ordercenter scheduler`: the cluster timeout worker, reservation sweeper and purge jobs
/// over every shard, until SIGTERM. Run as many as wanted: they find the same work, and the order's
/// compare-and-set and the reservation's conditional state change let exactly one of them
/// (or a payment that lands first) change each order and reservation.
pub async fn scheduler(config: ServiceConfig) -> anyhow::Result<()> {
    let wiring = build(&config).await?;
    // the timeout reads the tenant config (state machines): it follows reloads
    wiring.reload_tenant_config_on_sighup(&config)?;
    let scheduler = scheduler_of(&wiring, &config);
    register_scheduler_metrics(&wiring.state.metrics, &scheduler);
    let (stop, http_stop) = stop_pair();
    let http = serve_worker_http(&config, Arc::clone(&wiring.state.metrics), http_stop).await?;
    let (queries_stop, queries_stopped) = stop_pair();
    let queries = payment_queries(&wiring, queries_stopped);
    println!(
        "scheduler running: {} shards, a pass every {} ms, payment queries every {} ms",
        config.shards.len(),
        config.scheduler.poll_interval.as_millis(),
        config.payments.poll_interval.as_millis()
    );
    scheduler.run(shutdown_signal()).await;
    let _ = queries_stop.send(true);
    for task in queries {
        let _ = task.await;
    }
    let _ = stop.send(true);
    let _ = http.await;
    Ok(())
}

/// A stop flag for a worker's HTTP listener: send `true` to stop it.
fn stop_pair() -> (
    tokio::sync::watch::Sender<bool>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    (stop, async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    })
}

/// The topics of every tenant of `tenants`.
fn topics_of(bus: &KafkaEventBus, tenants: &ConfigSet) -> Vec<String> {
    tenants
        .tenants()
        .flat_map(|tenant| {
            bus.naming()
                .topics_of_tenant(tenant.id(), tenant.business_identities().keys())
        })
        .collect()
}

/// `ordercenter project`: the cluster projector, Kafka (every configured tenant's topics) →
/// the configured read models, positions kept in the shard database, until SIGTERM. The
/// tenant config reloads on SIGHUP; the topics of tenants (or business identities) it adds
/// are read from then on.
pub async fn project(config: ServiceConfig) -> anyhow::Result<()> {
    let wiring = build(&config).await?;
    let bus = kafka_bus(&config).await?;
    let mut config_changes = wiring.config.subscribe();
    let topics = topics_of(&bus, &wiring.config.current());
    let (follow, followed) = tokio::sync::watch::channel(topics.clone());
    wiring.reload_tenant_config_on_sighup(&config)?;
    let client = bus
        .client()
        .await
        .map_err(|e| anyhow::anyhow!("kafka: {}", e.message))?;
    let offsets = wiring.store.clone() as Arc<dyn OffsetStore>;
    let mut stream = KafkaStream::new(
        client,
        topics.clone(),
        offsets,
        "ordercenter-projector",
        StartOffset::Earliest,
        SourceConfig {
            assignment: config.projector_member,
            ..SourceConfig::default()
        },
    )
    .follow_topics(followed);
    let topic_bus = Arc::clone(&bus);
    tokio::spawn(async move {
        while config_changes.changed().await.is_ok() {
            let tenants = config_changes.borrow_and_update().clone();
            follow.send_replace(topics_of(&topic_bus, &tenants));
        }
    });
    let projector = wiring.projector();
    register_projector_metrics(&wiring.state.metrics, projector.clone());
    let (stop, http_stop) = stop_pair();
    let http = serve_worker_http(&config, Arc::clone(&wiring.state.metrics), http_stop).await?;
    println!(
        "projector {} running: {} → search {}, cold {}",
        config.projector_member,
        topics.join(","),
        config
            .search_url
            .as_ref()
            .map_or("-".to_owned(), |url| url.redacted()),
        config
            .cold_url
            .as_ref()
            .map_or("-".to_owned(), |url| url.redacted())
    );
    let outcome = projector
        .run(&mut stream, shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("projector: {}", e.message));
    let _ = stop.send(true);
    let _ = http.await;
    outcome
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
