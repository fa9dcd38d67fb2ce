//! The SQL stock and transition adapters on SQLite and real MariaDB: concurrent buyers never
//! take more units than there are, confirms and releases move units once, and a stale
//! transition writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oc_model::lifecycle::{TransitionStore, TransitionWrite};
use oc_model::ports::OrderStore;
use oc_model::stock::{Hold, ReserveOutcome, Settle, StockStore};
use oc_model::{
    ErrorCode, HistoryEntry, OrderEvent, OrderEventKind, OrderId, ReservationState, Sku,
    StatusCode, StockEffect, TenantId, TransitionEvent,
};
use time::{Duration, OffsetDateTime};

#[macro_use]
mod common;

use common::Harness;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
}

fn hold(tenant: &TenantId, order: u64, sku: &Sku, quantity: u64) -> Hold {
    Hold {
        tenant: tenant.clone(),
        order_id: OrderId::from_raw(order).unwrap(),
        sku: sku.clone(),
        quantity,
        expires_at: now() + Duration::minutes(15),
        created_at: now(),
    }
}

/// 200 buyers race for 50 units, one each: exactly 50 reservations, the rest refused, and
/// `available + reserved + sold` is 50 at every observation.
async fn concurrent_buyers_never_oversell(h: &Harness) {
    let tenant = TenantId::parse("acme").unwrap();
    let sku = Sku::parse("HOT-1").unwrap();
    h.store
        .set_available(&tenant, &sku, 50, now())
        .await
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let observer = {
        let (store, tenant, sku, done) =
            (h.store.clone(), tenant.clone(), sku.clone(), done.clone());
        tokio::spawn(async move {
            let mut observations = 0;
            while !done.load(Ordering::SeqCst) {
                let level = store.stock_level(&tenant, &sku).await.unwrap().unwrap();
                assert_eq!(level.total(), 50, "{level:?}");
                observations += 1;
                tokio::task::yield_now().await;
            }
            observations
        })
    };
    let buyers: Vec<_> = (1..=200u64)
        .map(|buyer| {
            let (store, hold) = (h.store.clone(), hold(&tenant, buyer, &sku, 1));
            tokio::spawn(async move {
                loop {
                    match store.reserve(&hold).await {
                        Err(e) if e.code == ErrorCode::Retryable => continue,
                        other => return other.unwrap(),
                    }
                }
            })
        })
        .collect();
    let mut reserved = 0;
    let mut refused = 0;
    for buyer in buyers {
        match buyer.await.unwrap() {
            ReserveOutcome::Reserved => reserved += 1,
            ReserveOutcome::Short(level) => {
                assert_eq!(level.unwrap().available, 0);
                refused += 1;
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    assert!(observer.await.unwrap() > 0);
    assert_eq!((reserved, refused), (50, 150));
    let level = h.store.stock_level(&tenant, &sku).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved, level.sold), (0, 50, 0));
    assert_eq!(h.count("stock_reservations", "1 = 1").await, 50);
}

/// Confirm sells once, release gives back once (reserved or sold units), a SKU without
/// stock is short, and another tenant sees no level.
async fn confirm_and_release_move_units_once(h: &Harness) {
    let tenant = TenantId::parse("acme").unwrap();
    let sku = Sku::parse("MUG-2").unwrap();
    let set = h
        .store
        .set_available(&tenant, &sku, 10, now())
        .await
        .unwrap();
    assert_eq!((set.available, set.reserved, set.sold), (10, 0, 0));
    let (first, second) = (OrderId::from_raw(7).unwrap(), OrderId::from_raw(8).unwrap());
    assert_eq!(
        h.store.reserve(&hold(&tenant, 7, &sku, 3)).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        h.store.reserve(&hold(&tenant, 8, &sku, 4)).await.unwrap(),
        ReserveOutcome::Reserved
    );
    // the same order cannot hold the SKU twice
    let twice = h
        .store
        .reserve(&hold(&tenant, 7, &sku, 1))
        .await
        .unwrap_err();
    assert_eq!(twice.code, ErrorCode::Conflict);
    let short = h.store.reserve(&hold(&tenant, 9, &sku, 4)).await.unwrap();
    assert!(
        matches!(short, ReserveOutcome::Short(Some(ref level)) if level.available == 3),
        "{short:?}"
    );

    assert_eq!(
        h.store.confirm(&tenant, first, &sku, now()).await.unwrap(),
        Settle::Done
    );
    assert_eq!(
        h.store.confirm(&tenant, first, &sku, now()).await.unwrap(),
        Settle::Already(ReservationState::Confirmed)
    );
    assert_eq!(
        h.store.release(&tenant, second, &sku, now()).await.unwrap(),
        Settle::Done
    );
    assert_eq!(
        h.store.release(&tenant, second, &sku, now()).await.unwrap(),
        Settle::Already(ReservationState::Released)
    );
    assert_eq!(
        h.store.confirm(&tenant, second, &sku, now()).await.unwrap(),
        Settle::Already(ReservationState::Released)
    );
    let level = h.store.stock_level(&tenant, &sku).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved, level.sold), (7, 0, 3));
    // a refund of a paid order: sold units go back on sale
    assert_eq!(
        h.store.release(&tenant, first, &sku, now()).await.unwrap(),
        Settle::Done
    );
    let level = h.store.stock_level(&tenant, &sku).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved, level.sold), (10, 0, 0));
    // setting stock keeps what is reserved
    assert_eq!(
        h.store.reserve(&hold(&tenant, 11, &sku, 2)).await.unwrap(),
        ReserveOutcome::Reserved
    );
    let reset = h
        .store
        .set_available(&tenant, &sku, 5, now())
        .await
        .unwrap();
    assert_eq!((reset.available, reset.reserved, reset.sold), (5, 2, 0));
    let row = h
        .store
        .reservation(&tenant, OrderId::from_raw(11).unwrap(), &sku)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.quantity, row.state), (2, ReservationState::Reserved));
    assert_eq!(row.expires_at, now() + Duration::minutes(15));

    let missing = OrderId::from_raw(99).unwrap();
    assert_eq!(
        h.store
            .release(&tenant, missing, &sku, now())
            .await
            .unwrap(),
        Settle::Missing
    );
    let unknown = Sku::parse("NEVER-SET").unwrap();
    assert_eq!(
        h.store
            .reserve(&hold(&tenant, 12, &unknown, 1))
            .await
            .unwrap(),
        ReserveOutcome::Short(None)
    );
    let other = TenantId::parse("globex").unwrap();
    assert_eq!(h.store.stock_level(&other, &sku).await.unwrap(), None);
    assert_eq!(
        h.store.reserve(&hold(&other, 13, &sku, 1)).await.unwrap(),
        ReserveOutcome::Short(None)
    );
}

/// A transition is the order's CAS, its history row and its outbox event together: at a
/// stale version none of them is written.
async fn a_transition_is_one_transaction(h: &Harness) {
    let tenant = TenantId::parse("acme").unwrap();
    let order = oc_test_support::fixtures::order(&tenant, "buyer-t");
    h.insert_order(&order).await;
    let write = |expected: u64| {
        let mut next = order.clone();
        next.main.version = expected + 1;
        next.main.status = StatusCode::parse("paid").unwrap();
        let entry = HistoryEntry {
            tenant: tenant.clone(),
            order_id: order.main.id,
            version: expected + 1,
            from: order.main.status.clone(),
            to: next.main.status.clone(),
            event: TransitionEvent::parse("pay").unwrap(),
            operator: "shop-api".into(),
            source_system: "api".into(),
            reason: None,
            data: BTreeMap::new(),
            stock: StockEffect::Confirm,
            occurred_at: now(),
        };
        let mut event = OrderEvent::of(&next, OrderEventKind::StatusChanged);
        event.transition = Some(entry.note("paid".into(), None));
        TransitionWrite {
            expected_version: expected,
            order: next,
            event,
            history: Some(entry),
        }
    };
    let (history_before, outbox_before) = (
        h.count("order_history", "1 = 1").await,
        h.count("outbox", "1 = 1").await,
    );
    let stale = h.store.commit_transition(write(4)).await.unwrap_err();
    assert_eq!(stale.code, ErrorCode::PreconditionFailed, "{stale}");
    assert_eq!(h.count("order_history", "1 = 1").await, history_before);
    assert_eq!(h.count("outbox", "1 = 1").await, outbox_before);
    assert_eq!(
        h.store
            .get(&tenant, order.main.id)
            .await
            .unwrap()
            .unwrap()
            .main
            .version,
        order.main.version
    );

    let stored = h
        .store
        .commit_transition(write(order.main.version))
        .await
        .unwrap();
    assert_eq!(stored.main.status.as_str(), "paid");
    let history = h.store.history(&tenant, order.main.id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].stock, StockEffect::Confirm);
    assert_eq!(history[0].event.as_str(), "pay");
    assert_eq!(h.count("outbox", "1 = 1").await, outbox_before + 1);
    // the same transition again is stale now
    let again = h
        .store
        .commit_transition(write(order.main.version))
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::PreconditionFailed);
    let other = TenantId::parse("globex").unwrap();
    assert!(
        h.store
            .history(&other, order.main.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Many SKUs' levels in one call (one statement per shard): each in the order asked, `None`
/// for a SKU without stock (or with stock only in another tenant), a SKU asked twice
/// answered twice.
async fn levels_of_many_skus_are_read_together(h: &Harness) {
    let (acme, globex) = (
        TenantId::parse("acme").unwrap(),
        TenantId::parse("globex").unwrap(),
    );
    let sku = |i: u64| Sku::parse(format!("MANY-{i}")).unwrap();
    for i in 0..12u64 {
        h.store
            .set_available(&acme, &sku(i), 100 + i, now())
            .await
            .unwrap();
    }
    // another tenant's stock of an SKU acme never set
    h.store
        .set_available(&globex, &sku(20), 7, now())
        .await
        .unwrap();
    let asked: Vec<Sku> = [11, 20, 0, 5, 13, 5, 3, 7, 1, 9, 2, 4, 6, 8, 10]
        .into_iter()
        .map(sku)
        .collect();
    let levels = h.store.stock_levels(&acme, &asked).await.unwrap();
    let seen: Vec<Option<(String, u64)>> = levels
        .iter()
        .map(|level| {
            level.as_ref().map(|level| {
                assert_eq!(level.tenant, acme);
                (level.sku.as_str().to_owned(), level.available)
            })
        })
        .collect();
    let expected: Vec<Option<(String, u64)>> = asked
        .iter()
        .map(|asked| {
            let i: u64 = asked.as_str()["MANY-".len()..].parse().unwrap();
            (i < 12).then(|| (asked.as_str().to_owned(), 100 + i))
        })
        .collect();
    assert_eq!(seen, expected);
    // each answer is what the one-SKU read answers
    for (asked, level) in asked.iter().zip(&levels) {
        assert_eq!(&h.store.stock_level(&acme, asked).await.unwrap(), level);
    }
    assert!(h.store.stock_levels(&acme, &[]).await.unwrap().is_empty());
}

/// Level reads of many placements at once, two tenants with the same SKU names: the store
/// answers concurrent reads from shared statements (`level_reads.rs`), and each caller still
/// gets exactly its own tenant's levels of exactly its SKUs, in its order.
async fn concurrent_level_reads_get_their_own_tenants_levels(h: &Harness) {
    let tenants = [
        TenantId::parse("acme").unwrap(),
        TenantId::parse("globex").unwrap(),
    ];
    let sku = |i: u64| Sku::parse(format!("SHARED-{i}")).unwrap();
    // acme has SKUs 0..20 at 1000 + i, globex the even ones at 2000 + i
    for i in 0..20u64 {
        h.store
            .set_available(&tenants[0], &sku(i), 1_000 + i, now())
            .await
            .unwrap();
        if i.is_multiple_of(2) {
            h.store
                .set_available(&tenants[1], &sku(i), 2_000 + i, now())
                .await
                .unwrap();
        }
    }
    let readers: Vec<_> = (0..64u64)
        .map(|reader| {
            let store = h.store.clone();
            let tenant = tenants[(reader % 2) as usize].clone();
            // each reader its own SKUs: some tracked, some not (20..)
            let asked: Vec<Sku> = (0..5).map(|k| sku((reader * 7 + k * 5) % 26)).collect();
            tokio::spawn(async move {
                let levels = store.stock_levels(&tenant, &asked).await.unwrap();
                (tenant, asked, levels)
            })
        })
        .collect();
    for reader in readers {
        let (tenant, asked, levels) = reader.await.unwrap();
        assert_eq!(levels.len(), asked.len());
        for (asked, level) in asked.iter().zip(levels) {
            let i: u64 = asked.as_str()["SHARED-".len()..].parse().unwrap();
            let expected = match tenant.as_str() {
                "acme" => (i < 20).then_some(1_000 + i),
                _ => (i < 20 && i.is_multiple_of(2)).then_some(2_000 + i),
            };
            assert_eq!(
                level.as_ref().map(|level| level.available),
                expected,
                "{tenant} {asked}"
            );
            if let Some(level) = level {
                assert_eq!((&level.tenant, &level.sku), (&tenant, asked));
            }
        }
    }
}

both_dialects!(
    concurrent_level_reads_get_their_own_tenants_levels,
    levels_of_many_skus_are_read_together,
    concurrent_buyers_never_oversell,
    confirm_and_release_move_units_once,
    a_transition_is_one_transaction,
);
