//! The projector on real services: MariaDB shards (two), the relay, Kafka (tansu), Redis,
//! and the embedded tantivy and redb read models on temporary directories. No mocks.

#[path = "projector_common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ReadModels, Shards, create_orders, projector, tenant, window};
use oc_bus::{
    InMemoryOffsetStore, KafkaBusConfig, KafkaEventBus, KafkaStream, OffsetStore, SourceConfig,
    StartOffset,
};
use oc_cache::{L1Config, RedisCache, RedisCacheConfig, TieredCache};
use oc_cold_store::RedbColdStore;
use oc_model::ports::{Cache, ColdStore, EventBus, SearchIndex};
use oc_model::search::{
    BlindIndex, ExtCondition, ExtFilter, PiiField, SearchFieldName, SearchQuery, SearchValue,
};
use oc_model::{Order, OrderId, TenantId};
use oc_projector::{
    BackfillCheckpoint, BackfillOptions, ProjectorStats, ReconcileOptions, ReconcileReport,
    SinkKind, SinkStats, Sinks, VersionDiff, backfill, reconcile, repair,
};
use oc_relay::{Relay, RelayConfig};
use oc_store_sql::SqlOrderStore;
use rand::Rng as _;

fn kafka_bus(prefix: &str) -> Arc<KafkaEventBus> {
    let config =
        KafkaBusConfig::new(oc_test_support::kafka_brokers()).with_topic_prefix(prefix.to_owned());
    Arc::new(KafkaEventBus::new(config).unwrap())
}

fn relay(shards: &Shards, bus: &Arc<KafkaEventBus>) -> Relay {
    Relay::new(
        shards.store(),
        Arc::clone(bus) as Arc<dyn EventBus>,
        RelayConfig {
            batch_size: 64,
            idle_poll: Duration::from_millis(20),
            ..RelayConfig::default()
        },
    )
}

async fn kafka_stream(
    bus: &KafkaEventBus,
    tenants: &[TenantId],
    offsets: Arc<dyn OffsetStore>,
) -> KafkaStream {
    let topics = tenants
        .iter()
        .map(|t| bus.naming().tenant_topic(t))
        .collect();
    KafkaStream::new(
        bus.client().await.unwrap(),
        topics,
        offsets,
        "projector-test",
        StartOffset::Earliest,
        SourceConfig {
            max_wait: Duration::from_millis(50),
            ..SourceConfig::default()
        },
    )
}

fn options(tenant_id: &TenantId) -> ReconcileOptions {
    let (from, to) = window();
    ReconcileOptions::new(tenant_id.clone(), from, to)
}

/// Latest version of every order, by tenant.
fn latest(orders: &[Vec<Order>]) -> BTreeMap<OrderId, u64> {
    orders
        .iter()
        .map(|versions| {
            let last = versions.last().unwrap();
            (last.main.id, last.main.version)
        })
        .collect()
}

/// Waits until every tenant reconciles clean with `expected` orders in the shards.
async fn wait_clean(
    store: &SqlOrderStore,
    sinks: &Sinks,
    tenants: &[(TenantId, usize)],
    limit: Duration,
) -> Vec<ReconcileReport> {
    let started = Instant::now();
    loop {
        let mut reports = Vec::new();
        for (tenant_id, expected) in tenants {
            let report = reconcile(store, sinks, &options(tenant_id)).await.unwrap();
            assert!(report.shard_count <= *expected as u64);
            reports.push(report);
        }
        if reports.iter().zip(tenants).all(|(report, (_, expected))| {
            // per-order clean, and the scans agree too (no write landed mid-check)
            report.clean
                && report.shard_count == *expected as u64
                && report
                    .checksum
                    .search
                    .is_none_or(|sum| sum == report.checksum.shard)
                && report
                    .checksum
                    .cold
                    .is_none_or(|sum| sum == report.checksum.shard)
        }) {
            return reports;
        }
        assert!(
            started.elapsed() < limit,
            "read models not in sync after {limit:?}: {}",
            serde_json::to_string(
                &reports
                    .iter()
                    .map(|r| (r.shard_count, r.differences()))
                    .collect::<Vec<_>>()
            )
            .unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sum_sink(total: &mut SinkStats, life: Option<&SinkStats>) {
    if let Some(life) = life {
        total.applied += life.applied;
        total.skipped_stale += life.skipped_stale;
        total.failures += life.failures;
        total.rejected += life.rejected;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_search_cold_and_redis_cache_end_to_end() {
    let started = Instant::now();
    let shards = Shards::mariadb("proj_e2e").await;
    let tenants = [tenant("retail"), tenant("express")];
    let mut written = BTreeMap::new();
    for tenant_id in &tenants {
        written.insert(
            tenant_id.clone(),
            create_orders(&shards.store, tenant_id, 0, 40, 3).await,
        );
    }
    let models = ReadModels::open().await;
    let redis_prefix = oc_test_support::RedisPrefix::new("proj_e2e").unwrap();
    let redis = RedisCache::connect(
        RedisCacheConfig::new(oc_test_support::redis_url()).with_key_prefix(redis_prefix.prefix()),
    )
    .await
    .unwrap();
    let cache = Arc::new(TieredCache::with_redis(L1Config::default(), redis));
    let sinks = models.sinks().with_cache(cache.clone());

    let bus = kafka_bus(&oc_test_support::unique_prefix("proj_e2e"));
    let relay = relay(&shards, &bus);
    let relaying = tokio::spawn({
        let relay = relay.clone();
        async move { relay.run(std::future::pending()).await }
    });
    let projector = projector(shards.store(), sinks.clone());
    let mut stream = kafka_stream(&bus, &tenants, Arc::new(InMemoryOffsetStore::new())).await;
    let projecting = tokio::spawn({
        let projector = projector.clone();
        async move { projector.run(&mut stream, std::future::pending()).await }
    });

    let expected: Vec<(TenantId, usize)> = tenants.iter().map(|t| (t.clone(), 40)).collect();
    let reports = wait_clean(&shards.store, &sinks, &expected, Duration::from_secs(30)).await;
    for report in &reports {
        assert_eq!(report.checksum.search, Some(report.checksum.shard));
        assert_eq!(report.checksum.cold, Some(report.checksum.shard));
        assert_eq!(
            report.model(SinkKind::Cache).unwrap().misses,
            0,
            "every order cached"
        );
    }
    relaying.abort();
    projecting.abort();

    // each read model holds the shard's latest version of every order
    for (tenant_id, orders) in &written {
        for (id, version) in latest(orders) {
            assert_eq!(
                models.search.get_version(tenant_id, id).await.unwrap(),
                Some(version)
            );
            let cold = models.cold.get(tenant_id, id).await.unwrap().unwrap();
            assert_eq!(cold.main.version, version);
            assert_eq!(
                cache
                    .get(tenant_id, id)
                    .await
                    .unwrap()
                    .unwrap()
                    .main
                    .version,
                version
            );
        }
    }
    // searchable fields by their configured names (retail/standard config), sealed ones by
    // blind index only
    models.search.refresh().await.unwrap();
    let by_level = SearchQuery {
        ext: vec![ExtFilter {
            name: SearchFieldName::parse("member_level").unwrap(),
            condition: ExtCondition::Equals(SearchValue::Keyword("gold".into())),
        }],
        limit: 100,
        ..SearchQuery::default()
    };
    let retail = tenant("retail");
    assert_eq!(
        models
            .search
            .search(&retail, &by_level)
            .await
            .unwrap()
            .hits
            .len(),
        40
    );
    let by_phone_tail = SearchQuery {
        ext: vec![ExtFilter {
            name: SearchFieldName::parse("buyer_phone_tail").unwrap(),
            condition: ExtCondition::Equals(SearchValue::BlindIndex(
                BlindIndex::parse("bitail").unwrap(),
            )),
        }],
        limit: 100,
        ..SearchQuery::default()
    };
    assert_eq!(
        models
            .search
            .search(&retail, &by_phone_tail)
            .await
            .unwrap()
            .hits
            .len(),
        40
    );
    let by_receiver_phone = SearchQuery {
        pii: vec![(PiiField::ReceiverPhone, BlindIndex::parse("bip").unwrap())],
        limit: 100,
        ..SearchQuery::default()
    };
    assert_eq!(
        models
            .search
            .search(&tenant("express"), &by_receiver_phone)
            .await
            .unwrap()
            .hits
            .len(),
        40
    );

    let stats = projector.stats();
    for kind in SinkKind::ALL {
        let sink = stats.sink(kind).unwrap();
        assert_eq!(sink.failures, 0, "{kind}: {:?}", sink.last_error);
        assert_eq!(sink.rejected, 0, "{kind}: {:?}", sink.last_error);
        assert!(sink.applied >= 80, "{kind}: {sink:?}");
    }
    assert_eq!(stats.missing, 0);
    assert_eq!(stats.lag, Some(0));
    println!(
        "e2e: {} in {:?}",
        serde_json::to_string(&stats).unwrap(),
        started.elapsed()
    );
    redis_prefix.cleanup().await.unwrap();
    shards.finish().await;
}

/// 2,000 orders (3,000 versions) written while the relay and the projector are each killed
/// (task abort) and restarted five times, at random points; offsets survive in the offset
/// store, as they would in a durable one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_projector_killed_mid_stream_lose_nothing_and_apply_by_version() {
    const PER_TENANT: usize = 1_000;
    const RESTARTS: usize = 5;
    let started = Instant::now();
    let shards = Shards::mariadb("proj_crash").await;
    let tenants = [tenant("retail"), tenant("express")];
    let models = ReadModels::open().await;
    let cache = Arc::new(TieredCache::moka_only(L1Config {
        max_capacity: 10_000,
        ttl: Duration::from_secs(600),
    }));
    let sinks = models.sinks().with_cache(cache.clone());
    let prefix = oc_test_support::unique_prefix("proj_crash");
    let offsets: Arc<dyn OffsetStore> = Arc::new(InMemoryOffsetStore::new());

    let body = async {
        let writer = tokio::spawn({
            let store = shards.store.clone();
            let tenants = tenants.clone();
            async move {
                let mut all = Vec::new();
                for tenant_id in &tenants {
                    all.extend(create_orders(&store, tenant_id, 0, PER_TENANT, 2).await);
                }
                all
            }
        });
        let mut totals: BTreeMap<SinkKind, SinkStats> = BTreeMap::new();
        let mut add_life = |stats: &ProjectorStats| {
            for kind in SinkKind::ALL {
                sum_sink(totals.entry(kind).or_default(), stats.sink(kind));
            }
        };
        let mut kills_with_work_left = 0;
        for _ in 0..RESTARTS {
            let bus = kafka_bus(&prefix);
            let relay = relay(&shards, &bus);
            let relaying = tokio::spawn({
                let relay = relay.clone();
                async move { relay.run(std::future::pending()).await }
            });
            let projector = projector(shards.store(), sinks.clone());
            let mut stream = kafka_stream(&bus, &tenants, Arc::clone(&offsets)).await;
            let projecting = tokio::spawn({
                let projector = projector.clone();
                async move { projector.run(&mut stream, std::future::pending()).await }
            });
            let (relay_life, projector_life) = {
                let mut rng = rand::thread_rng();
                (rng.gen_range(100..700), rng.gen_range(100..700))
            };
            let (first, second, first_is_relay) = if relay_life < projector_life {
                (relay_life, projector_life, true)
            } else {
                (projector_life, relay_life, false)
            };
            tokio::time::sleep(Duration::from_millis(first)).await;
            if first_is_relay {
                relaying.abort()
            } else {
                projecting.abort()
            }
            tokio::time::sleep(Duration::from_millis(second - first)).await;
            if first_is_relay {
                projecting.abort()
            } else {
                relaying.abort()
            }
            let _ = relaying.await;
            let _ = projecting.await;
            let stats = projector.stats();
            if stats.lag.is_some_and(|lag| lag > 0) || !writer.is_finished() {
                kills_with_work_left += 1;
            }
            add_life(&stats);
        }
        let written = writer.await.unwrap();

        // the last lives run to completion
        let bus = kafka_bus(&prefix);
        let relay = relay(&shards, &bus);
        let relaying = tokio::spawn({
            let relay = relay.clone();
            async move { relay.run(std::future::pending()).await }
        });
        let projector = projector(shards.store(), sinks.clone());
        let mut stream = kafka_stream(&bus, &tenants, Arc::clone(&offsets)).await;
        let projecting = tokio::spawn({
            let projector = projector.clone();
            async move { projector.run(&mut stream, std::future::pending()).await }
        });
        let expected: Vec<(TenantId, usize)> =
            tenants.iter().map(|t| (t.clone(), PER_TENANT)).collect();
        wait_clean(&shards.store, &sinks, &expected, Duration::from_secs(40)).await;
        relaying.abort();
        projecting.abort();
        let _ = projecting.await;
        add_life(&projector.stats());
        (written, totals, kills_with_work_left)
    };
    let (written, totals, kills_with_work_left) =
        tokio::time::timeout(Duration::from_secs(60), body)
            .await
            .expect("the crash test stays under 60 s");
    assert!(kills_with_work_left >= 1, "some kills hit work in flight");

    let versions_total: usize = written.iter().map(Vec::len).sum();
    assert_eq!(written.len(), 2 * PER_TENANT);
    for versions in &written {
        let last = versions.last().unwrap();
        let tenant_id = &last.main.tenant;
        assert_eq!(
            models
                .search
                .get_version(tenant_id, last.main.id)
                .await
                .unwrap(),
            Some(last.main.version)
        );
        assert_eq!(
            models
                .cold
                .get(tenant_id, last.main.id)
                .await
                .unwrap()
                .unwrap()
                .main
                .version,
            last.main.version
        );
        assert_eq!(
            cache
                .get(tenant_id, last.main.id)
                .await
                .unwrap()
                .unwrap()
                .main
                .version,
            last.main.version
        );
    }
    for (kind, total) in &totals {
        // a write changes a read model only for a newer version: at most one effective
        // write per version, at least one per order, every other delivery a no-op. (A kill
        // can land after a sink wrote and before the projector counted it: up to
        // `concurrency` uncounted writes per kill.)
        let uncounted_at_most = (16 * RESTARTS) as u64;
        assert!(
            total.applied + uncounted_at_most >= written.len() as u64,
            "{kind}: {total:?}"
        );
        assert!(
            total.applied <= versions_total as u64,
            "{kind}: applied twice in effect: {total:?}"
        );
        assert_eq!(total.rejected, 0, "{kind}");
    }
    println!(
        "crash: {} orders, {versions_total} versions, {kills_with_work_left} kills with work left, totals {} in {:?}",
        written.len(),
        serde_json::to_string(&totals).unwrap(),
        started.elapsed()
    );
    shards.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_rebuilds_read_models_and_resumes_from_its_checkpoint() {
    let started = Instant::now();
    let shards = Shards::mariadb("proj_backfill").await;
    let (retail, express) = (tenant("retail"), tenant("express"));
    create_orders(&shards.store, &retail, 0, 150, 3).await;
    create_orders(&shards.store, &express, 0, 50, 3).await;
    let expected = [(retail.clone(), 150), (express.clone(), 50)];

    // a wiped read model, rebuilt
    let models = ReadModels::open().await;
    let report = backfill(
        &shards.store,
        &projector(shards.store(), models.sinks()),
        &BackfillOptions {
            batch_size: 32,
            ..BackfillOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.orders, 200);
    assert_eq!(report.missing, 0);
    wait_clean(
        &shards.store,
        &models.sinks(),
        &expected,
        Duration::from_secs(5),
    )
    .await;

    // killed mid-way, resumed from the checkpoint file
    let fresh = ReadModels::open().await;
    let checkpoint = fresh.dir.path().join("backfill.json");
    let resume_options = BackfillOptions {
        batch_size: 10,
        tenant: None,
        checkpoint: Some(checkpoint.clone()),
    };
    let running = tokio::spawn({
        let store = shards.store.clone();
        let projector = projector(shards.store(), fresh.sinks());
        let options = resume_options.clone();
        async move { backfill(&store, &projector, &options).await }
    });
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Some(saved)) = BackfillCheckpoint::load(&checkpoint).await
                && saved.shards.values().map(|shard| shard.orders).sum::<u64>() >= 40
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the backfill makes progress");
    running.abort();
    assert!(
        running.await.unwrap_err().is_cancelled(),
        "killed before it finished"
    );
    let saved = BackfillCheckpoint::load(&checkpoint)
        .await
        .unwrap()
        .unwrap();
    let done_before: u64 = saved.shards.values().map(|shard| shard.orders).sum();
    assert!(done_before < 200, "{saved:?}");
    let resumed = backfill(
        &shards.store,
        &projector(shards.store(), fresh.sinks()),
        &resume_options,
    )
    .await
    .unwrap();
    assert!(resumed.orders < 200, "resumed, not restarted: {resumed:?}");
    assert!(
        resumed.orders >= 200 - done_before,
        "{resumed:?} after {done_before}"
    );
    let finished = BackfillCheckpoint::load(&checkpoint)
        .await
        .unwrap()
        .unwrap();
    assert!(finished.shards.values().all(|shard| shard.done));
    assert_eq!(
        finished
            .shards
            .values()
            .map(|shard| shard.orders)
            .sum::<u64>(),
        200
    );
    wait_clean(
        &shards.store,
        &fresh.sinks(),
        &expected,
        Duration::from_secs(5),
    )
    .await;

    // one tenant, one read model
    let cold_only = RedbColdStore::open(fresh.dir.path().join("cold-retail.redb"))
        .await
        .unwrap();
    let cold_sinks = Sinks::none().with_cold(Arc::new(cold_only));
    let report = backfill(
        &shards.store,
        &projector(shards.store(), cold_sinks.clone()),
        &BackfillOptions {
            tenant: Some(retail.clone()),
            ..BackfillOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.orders, 150);
    assert!(
        reconcile(&shards.store, &cold_sinks, &options(&retail))
            .await
            .unwrap()
            .clean
    );
    let other = reconcile(&shards.store, &cold_sinks, &options(&express))
        .await
        .unwrap();
    assert_eq!(other.model(SinkKind::Cold).unwrap().missing.len(), 50);
    println!("backfill: {:?}", started.elapsed());
    shards.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_reports_exactly_the_corruptions_and_repair_fixes_them() {
    let started = Instant::now();
    let shards = Shards::mariadb("proj_reconcile").await;
    let retail = tenant("retail");
    let written = create_orders(&shards.store, &retail, 0, 60, 3).await;
    let models = ReadModels::open().await;
    backfill(
        &shards.store,
        &projector(
            shards.store(),
            Sinks::none().with_search(models.search.clone()),
        ),
        &BackfillOptions::default(),
    )
    .await
    .unwrap();

    // a cold store and a cache filled directly, with an old version here and there
    let cold = Arc::new(
        RedbColdStore::open(models.dir.path().join("cold-b.redb"))
            .await
            .unwrap(),
    );
    let cache = Arc::new(TieredCache::moka_only(L1Config::single_node()));
    let multi: Vec<&Vec<Order>> = written
        .iter()
        .filter(|versions| versions.len() >= 2)
        .collect();
    let (a, b, c, e) = (multi[0], multi[1], multi[2], multi[3]);
    for versions in &written {
        let last = versions.last().unwrap();
        if versions != c {
            let put = if versions == b { &versions[0] } else { last };
            assert!(cold.put(put).await.unwrap());
        }
        let cached = if versions == e { &versions[0] } else { last };
        assert!(cache.put_if_newer(cached).await.unwrap());
    }
    // search: one document deleted, one of an order the shards never had
    let id_of = |versions: &Vec<Order>| versions[0].main.id;
    models.search.delete(&retail, id_of(a)).await.unwrap();
    let ghost = common::order(&retail, 999);
    let ghost_document =
        oc_search::document_from_order(&ghost, &oc_model::ports::NoSearchFields).unwrap();
    assert!(models.search.upsert(&ghost_document).await.unwrap());

    let sinks = Sinks::none()
        .with_search(models.search.clone())
        .with_cold(cold.clone())
        .with_cache(cache.clone());
    let report = reconcile(&shards.store, &sinks, &options(&retail))
        .await
        .unwrap();
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "tenant",
        "from",
        "to",
        "shard_count",
        "per_model",
        "checksum",
        "clean",
    ] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    println!("report: {json}");
    assert!(!report.clean);
    assert_eq!(report.shard_count, 60);
    let search = report.model(SinkKind::Search).unwrap();
    assert_eq!(search.missing, vec![id_of(a)]);
    assert_eq!(search.extra, vec![ghost.main.id]);
    assert!(search.stale.is_empty() && search.ahead.is_empty());
    let cold_report = report.model(SinkKind::Cold).unwrap();
    assert_eq!(cold_report.missing, vec![id_of(c)]);
    assert_eq!(
        cold_report.stale,
        vec![VersionDiff {
            order_id: id_of(b),
            shard_version: b.last().unwrap().main.version,
            model_version: 1,
        }]
    );
    assert!(cold_report.extra.is_empty() && cold_report.ahead.is_empty());
    let cache_report = report.model(SinkKind::Cache).unwrap();
    assert_eq!(
        cache_report
            .stale
            .iter()
            .map(|d| d.order_id)
            .collect::<Vec<_>>(),
        vec![id_of(e)]
    );
    assert_eq!(cache_report.misses, 0);
    assert_eq!(report.differences(), 5);
    assert_eq!(report.checksum.shard.count, 60);
    assert_eq!(
        report.checksum.search.unwrap().count,
        60,
        "one missing, one extra"
    );
    assert_ne!(report.checksum.search, Some(report.checksum.shard));
    assert_ne!(report.checksum.cold, Some(report.checksum.shard));

    let repaired = repair(
        &shards.store,
        &projector(shards.store(), sinks.clone()),
        &options(&retail),
    )
    .await
    .unwrap();
    assert_eq!(repaired.reapplied, 4);
    assert_eq!(repaired.deleted_from_search, 1);
    assert!(repaired.after.clean, "{:?}", repaired.after);
    assert_eq!(
        repaired.after.checksum.search,
        Some(repaired.after.checksum.shard)
    );
    assert_eq!(
        repaired.after.checksum.cold,
        Some(repaired.after.checksum.shard)
    );
    let again = reconcile(&shards.store, &sinks, &options(&retail))
        .await
        .unwrap();
    assert!(again.clean);
    let expected_versions = latest(&written);
    for id in [id_of(a), id_of(b), id_of(c), id_of(e)] {
        assert_eq!(
            cache.get(&retail, id).await.unwrap().unwrap().main.version,
            expected_versions[&id]
        );
    }
    assert!(BTreeSet::from([id_of(a), id_of(b)]).len() == 2);
    println!("reconcile: {:?}", started.elapsed());
    shards.finish().await;
}

/// Throughput from Kafka into tantivy + redb: a topic preloaded by the relay, consumed from
/// the start. Run with `cargo test --release -p oc-projector --test projector throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn throughput_from_kafka_into_tantivy_and_redb() {
    let shards = Shards::mariadb("proj_speed").await;
    let tenants = [tenant("retail"), tenant("express")];
    for tenant_id in &tenants {
        create_orders(&shards.store, tenant_id, 0, 2_500, 2).await;
    }
    let bus = kafka_bus(&oc_test_support::unique_prefix("proj_speed"));
    let events = relay(&shards, &bus).drain().await.unwrap() as u64;
    let models = ReadModels::open().await;
    let projector = projector(shards.store(), models.sinks());
    let mut stream = kafka_stream(&bus, &tenants, Arc::new(InMemoryOffsetStore::new())).await;
    let started = Instant::now();
    let running = tokio::spawn({
        let projector = projector.clone();
        async move { projector.run(&mut stream, std::future::pending()).await }
    });
    while projector.stats().events < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    running.abort();
    let stats = projector.stats();
    println!(
        "throughput: {events} events ({} orders) in {elapsed:?}: {:.0} events/s, {:.0} orders/s",
        stats.orders,
        events as f64 / elapsed.as_secs_f64(),
        stats.orders as f64 / elapsed.as_secs_f64()
    );
    shards.finish().await;
}
