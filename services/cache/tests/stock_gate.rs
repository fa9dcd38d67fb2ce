//! The `StockGate` port's cases on its one adapter, `RedisStockGate`, against the real Redis
//! of `OC_TEST_REDIS_URL`: several SKUs taken all or nothing in one script, missing counters
//! reported (never guessed), a seed never overwriting a counter in use, give-backs only to
//! counters that exist, counters expiring, tenants apart, and 200 concurrent buyers of 50
//! units admitted exactly 50 times. Every test has its own key prefix.

use std::sync::Arc;
use std::time::Duration;

use oc_cache::{RedisStockGate, RedisStockGateConfig};
use oc_model::TenantId;
use oc_model::stock::{GateOutcome, Sku, StockGate};
use oc_test_support::RedisPrefix;

struct Harness {
    gate: RedisStockGate,
    prefix: RedisPrefix,
}

impl Harness {
    fn new(label: &str, ttl: Duration) -> Harness {
        let prefix = RedisPrefix::new(label).unwrap();
        let mut config = RedisStockGateConfig::new(oc_test_support::redis_url())
            .with_key_prefix(format!("{}:", prefix.prefix()))
            .with_ttl(ttl);
        // correctness, not speed, is tested here: a generous budget for a loaded machine
        config.timeout = Duration::from_secs(5);
        Harness {
            gate: RedisStockGate::connect(config).unwrap(),
            prefix,
        }
    }

    /// The counter of `sku` as Redis holds it.
    async fn counter(&self, tenant: &TenantId, sku: &Sku) -> Option<i64> {
        let mut connection = self.prefix.connection().await.unwrap();
        redis::cmd("GET")
            .arg(self.gate.key(tenant, sku))
            .query_async(&mut connection)
            .await
            .unwrap()
    }

    async fn finish(self) {
        self.prefix.cleanup().await.unwrap();
    }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn sku(name: &str) -> Sku {
    Sku::parse(name).unwrap()
}

const LONG: Duration = Duration::from_secs(600);

#[tokio::test]
async fn several_skus_are_taken_all_or_nothing() {
    let h = Harness::new("gate_all", LONG);
    let (t, a, b) = (tenant("retail"), sku("SKU-A"), sku("SKU-B"));
    // nothing seeded: both reported missing, in the order asked
    assert_eq!(
        h.gate
            .admit(&t, &[(a.clone(), 2), (b.clone(), 1)])
            .await
            .unwrap(),
        GateOutcome::Missing(vec![a.clone(), b.clone()])
    );
    h.gate.seed(&t, &a, 5).await.unwrap();
    // one still missing: nothing taken from the other
    assert_eq!(
        h.gate
            .admit(&t, &[(a.clone(), 2), (b.clone(), 1)])
            .await
            .unwrap(),
        GateOutcome::Missing(vec![b.clone()])
    );
    assert_eq!(h.counter(&t, &a).await, Some(5));
    h.gate.seed(&t, &b, 1).await.unwrap();
    assert_eq!(
        h.gate
            .admit(&t, &[(a.clone(), 2), (b.clone(), 1)])
            .await
            .unwrap(),
        GateOutcome::Admitted
    );
    assert_eq!(
        (h.counter(&t, &a).await, h.counter(&t, &b).await),
        (Some(3), Some(0))
    );
    // B is sold out: A keeps its units
    assert_eq!(
        h.gate
            .admit(&t, &[(a.clone(), 1), (b.clone(), 1)])
            .await
            .unwrap(),
        GateOutcome::Short {
            sku: b.clone(),
            available: 0
        }
    );
    assert_eq!(
        (h.counter(&t, &a).await, h.counter(&t, &b).await),
        (Some(3), Some(0))
    );
    h.finish().await;
}

#[tokio::test]
async fn a_seed_never_overwrites_a_counter_and_give_backs_need_one() {
    let h = Harness::new("gate_seed", LONG);
    let (t, a) = (tenant("retail"), sku("SKU-A"));
    // a give-back to a missing counter is dropped: SQL, which the seed reads, has the units
    h.gate.give_back(&t, &a, 4).await.unwrap();
    assert_eq!(h.counter(&t, &a).await, None);
    h.gate.seed(&t, &a, 10).await.unwrap();
    assert_eq!(
        h.gate.admit(&t, &[(a.clone(), 3)]).await.unwrap(),
        GateOutcome::Admitted
    );
    // a late seeder (read SQL before the admission) does not put the 3 units back
    h.gate.seed(&t, &a, 10).await.unwrap();
    assert_eq!(h.counter(&t, &a).await, Some(7));
    h.gate.give_back(&t, &a, 3).await.unwrap();
    assert_eq!(h.counter(&t, &a).await, Some(10));
    // forget: the next admission finds it missing
    h.gate.forget(&t, &a).await.unwrap();
    assert_eq!(
        h.gate.admit(&t, &[(a.clone(), 1)]).await.unwrap(),
        GateOutcome::Missing(vec![a.clone()])
    );
    h.finish().await;
}

#[tokio::test]
async fn counters_expire_and_tenants_are_apart() {
    let h = Harness::new("gate_ttl", Duration::from_millis(300));
    let (retail, outlet, a) = (tenant("retail"), tenant("outlet"), sku("SKU-A"));
    h.gate.seed(&retail, &a, 2).await.unwrap();
    // the same SKU of another tenant is another counter
    assert_eq!(
        h.gate.admit(&outlet, &[(a.clone(), 1)]).await.unwrap(),
        GateOutcome::Missing(vec![a.clone()])
    );
    assert_eq!(
        h.gate.admit(&retail, &[(a.clone(), 1)]).await.unwrap(),
        GateOutcome::Admitted
    );
    // the admission keeps the counter's expiry: it is rebuilt from SQL afterwards
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.counter(&retail, &a).await, None);
    assert_eq!(
        h.gate.admit(&retail, &[(a.clone(), 1)]).await.unwrap(),
        GateOutcome::Missing(vec![a.clone()])
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_buyers_of_fifty_units_are_admitted_fifty_times() {
    let h = Harness::new("gate_race", LONG);
    let (t, a, b) = (tenant("retail"), sku("SKU-A"), sku("SKU-B"));
    h.gate.seed(&t, &a, 50).await.unwrap();
    // B has plenty: every admission takes one A and one B, or neither
    h.gate.seed(&t, &b, 1_000).await.unwrap();
    let gate = Arc::new(h.gate.clone());
    let buyers: Vec<_> = (0..200)
        .map(|_| {
            let (gate, t, a, b) = (Arc::clone(&gate), t.clone(), a.clone(), b.clone());
            tokio::spawn(async move { gate.admit(&t, &[(a, 1), (b, 1)]).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for buyer in buyers {
        match buyer.await.unwrap() {
            GateOutcome::Admitted => admitted += 1,
            GateOutcome::Short { sku, available } => {
                assert_eq!((sku, available), (a.clone(), 0));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(admitted, 50);
    assert_eq!(
        (h.counter(&t, &a).await, h.counter(&t, &b).await),
        (Some(0), Some(950))
    );
    h.finish().await;
}
