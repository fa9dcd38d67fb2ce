//! The scheduler's reads (`ScheduleStore`) and the guards its writes rely on, on SQLite and
//! real MariaDB: due orders are found through the deadline index page by page, a timeout
//! racing a payment on the same order version commits exactly once, and expired
//! reservations are listed whatever their tenant and released exactly once however many
//! sweepers race, with `available + reserved + sold` constant throughout.
//! (Which expired reservations the sweeper releases — only those whose order does not
//! exist — is decided in `oc-core` and tested on the real binary in
//! `services/ordercenter/tests/scheduler.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oc_model::lifecycle::TransitionStore;
use oc_model::schedule::{DueOrder, ReservationCursor, ScheduleStore};
use oc_model::stock::{Hold, ReserveOutcome, Settle, StockStore};
use oc_model::{ErrorCode, OrderId, ReservationState, Sku, StockEffect, TenantId, UnixMillis};
use oc_store_sql::SqlOrderStore;
use time::Duration;

#[macro_use]
mod common;

use common::{Harness, NOW_MS, now, transition};

/// Every order of every shard due at `now`, page by page as the worker reads them.
async fn all_due(store: &SqlOrderStore, limit: u32) -> Vec<DueOrder> {
    let mut found = Vec::new();
    for shard in ScheduleStore::shards(store) {
        let mut after: Option<DueOrder> = None;
        loop {
            let page = store
                .due_orders(shard, UnixMillis::new(NOW_MS), after.as_ref(), limit)
                .await
                .unwrap();
            found.extend(page.iter().cloned());
            if page.len() < limit as usize {
                break;
            }
            after = page.last().cloned();
        }
    }
    found.sort();
    found
}

/// Orders past their deadline are found, page by page, each once; orders due later, without
/// a deadline or of another tenant at the same deadline are told apart; the earliest
/// deadline of each shard is the lag's reference.
async fn due_orders_are_found_through_the_deadline_in_pages(h: &Harness) {
    let (acme, globex) = (
        TenantId::parse("acme").unwrap(),
        TenantId::parse("globex").unwrap(),
    );
    let mut due = Vec::new();
    for n in 0..9 {
        // three share a deadline: the cursor must not skip or repeat within one
        let deadline = NOW_MS - 60_000 + (n / 3) * 1_000;
        let tenant = if n % 2 == 0 { &acme } else { &globex };
        let order = h
            .insert(tenant, &format!("buyer-{n}"), Some(deadline))
            .await;
        due.push(DueOrder {
            pay_deadline: UnixMillis::new(deadline),
            tenant: tenant.clone(),
            id: order.main.id,
        });
    }
    // exactly now is due; a millisecond later is not
    let at_now = h.insert(&acme, "buyer-now", Some(NOW_MS)).await;
    due.push(DueOrder {
        pay_deadline: UnixMillis::new(NOW_MS),
        tenant: acme.clone(),
        id: at_now.main.id,
    });
    h.insert(&acme, "buyer-later", Some(NOW_MS + 1)).await;
    h.insert(&acme, "buyer-none", None).await;
    due.sort();
    for limit in [1, 2, 4, 100] {
        assert_eq!(all_due(&h.store, limit).await, due, "pages of {limit}");
    }
    let mut earliest = Vec::new();
    for shard in ScheduleStore::shards(h.store.as_ref()) {
        if let Some(at) = h.store.earliest_deadline(shard).await.unwrap() {
            earliest.push(at);
        }
    }
    assert_eq!(
        earliest.into_iter().min(),
        Some(UnixMillis::new(NOW_MS - 60_000))
    );
}

/// A timeout and a payment of the same order version race: exactly one commits, the other is
/// `PreconditionFailed` and wrote nothing (one history row, one outbox event per order).
async fn a_timeout_racing_a_payment_commits_exactly_once(h: &Harness) {
    let tenant = TenantId::parse("acme").unwrap();
    let mut orders = Vec::new();
    for n in 0..20 {
        orders.push(
            h.insert(&tenant, &format!("buyer-r{n}"), Some(NOW_MS))
                .await,
        );
    }
    let outbox_before = h.count("outbox", "1 = 1").await;
    let mut races = Vec::new();
    for order in &orders {
        let pay = transition(order, "pay", "paid", StockEffect::Confirm);
        let timeout = transition(order, "timeout", "cancelled", StockEffect::Release);
        let (first, second) = (h.store.clone(), h.store.clone());
        races.push((
            tokio::spawn(async move { first.commit_transition(pay).await }),
            tokio::spawn(async move { second.commit_transition(timeout).await }),
        ));
    }
    let (mut paid, mut timed_out) = (0, 0);
    for (pay, timeout) in races {
        let (pay, timeout) = (pay.await.unwrap(), timeout.await.unwrap());
        match (&pay, &timeout) {
            (Ok(_), Err(lost)) => {
                assert_eq!(lost.code, ErrorCode::PreconditionFailed, "{lost}");
                paid += 1;
            }
            (Err(lost), Ok(_)) => {
                assert_eq!(lost.code, ErrorCode::PreconditionFailed, "{lost}");
                timed_out += 1;
            }
            other => panic!("exactly one of a pay and a timeout commits: {other:?}"),
        }
    }
    assert_eq!(paid + timed_out, 20);
    assert_eq!(h.count("order_history", "1 = 1").await, 20);
    assert_eq!(h.count("outbox", "1 = 1").await, outbox_before + 20);
    // neither outcome leaves a deadline behind: nothing is due any more
    assert!(all_due(&h.store, 50).await.is_empty());
}

/// Reservations held past their expiry are listed (any tenant, page by page); four sweepers
/// releasing every one of them at once move each exactly once, and the SKU's units add up to
/// what was set at every observation.
async fn expired_reservations_are_released_exactly_once(h: &Harness) {
    let (acme, globex) = (
        TenantId::parse("acme").unwrap(),
        TenantId::parse("globex").unwrap(),
    );
    let sku = Sku::parse("LEAK-1").unwrap();
    for tenant in [&acme, &globex] {
        h.store
            .set_available(tenant, &sku, 100, now())
            .await
            .unwrap();
    }
    let mut expected = Vec::new();
    for n in 0..40u64 {
        let tenant = if n % 2 == 0 { &acme } else { &globex };
        // the last five still hold: not yet expired
        let expires_at = if n < 35 {
            now() - Duration::seconds(60 - (n as i64 % 4))
        } else {
            now() + Duration::seconds(1)
        };
        let hold = Hold {
            tenant: tenant.clone(),
            order_id: OrderId::from_raw(1_000 + n).unwrap(),
            sku: sku.clone(),
            quantity: 1 + n % 2,
            expires_at,
            created_at: now() - Duration::minutes(5),
        };
        assert_eq!(
            h.store.reserve(&hold).await.unwrap(),
            ReserveOutcome::Reserved
        );
        if n < 35 {
            expected.push((tenant.clone(), hold.order_id));
        }
    }
    expected.sort();
    let mut listed = Vec::new();
    for shard in ScheduleStore::shards(h.store.as_ref()) {
        let mut after: Option<ReservationCursor> = None;
        loop {
            let page = h
                .store
                .expired_reservations(shard, UnixMillis::new(NOW_MS), after.as_ref(), 3)
                .await
                .unwrap();
            listed.extend(page.iter().cloned());
            if page.len() < 3 {
                break;
            }
            after = page.last().map(ReservationCursor::of);
        }
    }
    let mut found: Vec<_> = listed
        .iter()
        .map(|r| (r.tenant.clone(), r.order_id))
        .collect();
    found.sort();
    assert_eq!(found, expected);
    assert!(listed.iter().all(|r| r.state == ReservationState::Reserved));

    let done = Arc::new(AtomicBool::new(false));
    let observer = {
        let (store, sku, done) = (h.store.clone(), sku.clone(), done.clone());
        let tenants = [acme.clone(), globex.clone()];
        tokio::spawn(async move {
            let mut observations = 0;
            while !done.load(Ordering::SeqCst) {
                for tenant in &tenants {
                    let level = store.stock_level(tenant, &sku).await.unwrap().unwrap();
                    assert_eq!(level.total(), 100, "{level:?}");
                }
                observations += 1;
                tokio::task::yield_now().await;
            }
            observations
        })
    };
    let listed = Arc::new(listed);
    let sweepers: Vec<_> = (0..4)
        .map(|_| {
            let (store, listed) = (h.store.clone(), listed.clone());
            tokio::spawn(async move {
                let mut moved = 0;
                for reservation in listed.iter() {
                    loop {
                        match store
                            .release(
                                &reservation.tenant,
                                reservation.order_id,
                                &reservation.sku,
                                now(),
                            )
                            .await
                        {
                            Err(e) if e.code == ErrorCode::Retryable => continue,
                            Ok(Settle::Done) => moved += 1,
                            Ok(_) => {}
                            Err(e) => panic!("{e}"),
                        }
                        break;
                    }
                }
                moved
            })
        })
        .collect();
    let mut moved = 0;
    for sweeper in sweepers {
        moved += sweeper.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    assert!(observer.await.unwrap() > 0);
    assert_eq!(moved, 35, "every expired reservation released exactly once");
    // the five still held are untouched: acme holds n = 36, 38 (1 unit each), globex 35, 37,
    // 39 (2 units each)
    let acme_level = h.store.stock_level(&acme, &sku).await.unwrap().unwrap();
    assert_eq!(
        (acme_level.available, acme_level.reserved, acme_level.sold),
        (98, 2, 0)
    );
    let globex_level = h.store.stock_level(&globex, &sku).await.unwrap().unwrap();
    assert_eq!(
        (
            globex_level.available,
            globex_level.reserved,
            globex_level.sold
        ),
        (94, 6, 0)
    );
    assert_eq!(
        h.count("stock_reservations", "state = 'released'").await,
        35
    );
}

both_dialects!(
    due_orders_are_found_through_the_deadline_in_pages,
    a_timeout_racing_a_payment_commits_exactly_once,
    expired_reservations_are_released_exactly_once,
);
