//! Combined return pickups (`PickupStore`, migration 0014) on SQLite and real MariaDB: workers
//! racing to gather the same order's returns write exactly one pickup, and the after-sales
//! name it; ending a pickup is one compare-and-set (a second end writes nothing) that marks
//! every after-sale of it with the waybill, a history entry and an event, or nothing at all
//! when one of them moved meanwhile.

use std::sync::Arc;

use oc_model::aftersale::{
    AfterSale, AfterSaleChannel, AfterSaleHistoryEntry, AfterSaleId, AfterSaleLine, AfterSaleStore,
    AfterSaleType, NewAfterSale, RefundSplit, Reviewer,
};
use oc_model::logistics::{
    AfterSaleMark, PickupCreate, PickupOutcome, PickupStatus, PickupStore, ReturnPickup, Waybill,
};
use oc_model::{ErrorCode, Money, Order, OrderIdGenerator, StatusCode, TenantId, TransitionEvent};

#[macro_use]
mod common;

use common::{Harness, NOW_MS, now};

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn generator() -> OrderIdGenerator {
    OrderIdGenerator::new(5).unwrap()
}

/// A delivered order of 5 units on line 1 and three approved returns of one unit each, with
/// pickup times.
async fn three_returns(h: &Harness) -> (Order, Vec<AfterSale>) {
    let tenant = acme();
    let order = h.delivered_order(&tenant, "buyer-pickup").await;
    let currency = order.finance.currency;
    let mut returns = Vec::new();
    for sequence in 0..3u64 {
        let line = &order.lines[0];
        let after_sale = AfterSale {
            tenant: tenant.clone(),
            id: AfterSaleId::generated(
                generator().next(order.main.id.bucket(), NOW_MS as u64 + sequence),
            ),
            order_id: order.main.id,
            kind: AfterSaleType::ReturnAndRefund,
            channel: AfterSaleChannel::Merchant,
            applicant: "merchant".into(),
            reviewer: Reviewer::None,
            status: StatusCode::parse("approved").unwrap(),
            version: 1,
            appealed: false,
            reason: None,
            lines: vec![AfterSaleLine {
                line_no: 1,
                sku: line.sku.clone(),
                promotion_type: line.promotion_type.clone(),
                unit_price: line.unit_price,
                quantity: 1,
                amount: Money::zero(currency),
            }],
            refund_amount: Money::zero(currency),
            pickup_at: Some(now() + time::Duration::minutes(30 * sequence as i64)),
            pickup_id: None,
            waybill_no: None,
            created_at: now(),
            updated_at: now(),
        };
        let approve = TransitionEvent::parse("approve").unwrap();
        let written = h
            .store
            .apply_after_sale(NewAfterSale {
                event: after_sale.order_event(&order, &approve),
                history: AfterSaleHistoryEntry {
                    version: 1,
                    from: None,
                    to: after_sale.status.clone(),
                    event: approve,
                    channel: after_sale.channel,
                    operator: "merchant".into(),
                    reason: None,
                    occurred_at: now(),
                },
                split: RefundSplit::of_order(&order),
                request_index: vec![0],
                after_sale,
            })
            .await
            .unwrap();
        returns.push(written);
    }
    (order, returns)
}

fn pickup_of(order: &Order, sequence: u64) -> ReturnPickup {
    ReturnPickup {
        tenant: order.main.tenant.clone(),
        id: generator().next(order.main.id.bucket(), NOW_MS as u64 + 1_000 + sequence),
        order_id: order.main.id,
        seq: 0,
        status: PickupStatus::Pending,
        pickup_at: now(),
        items: Vec::new(),
        total_weight_grams: 0,
        attempts: 0,
        next_attempt_at: Some(now()),
        waybill: None,
        last_error: None,
        created_at: now(),
        updated_at: now(),
    }
}

async fn create(
    store: &dyn PickupStore,
    pickup: ReturnPickup,
    taken: &[(AfterSaleId, u64)],
) -> PickupCreate {
    for _ in 0..50 {
        match store.create_pickup(pickup.clone(), taken).await {
            Ok(outcome) => return outcome,
            Err(e) if e.is_transient() => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("a pickup write stayed transient for 50 tries");
}

/// 16 workers gather the same three returns at once: exactly one pickup is written, every
/// after-sale names it, and the order is no longer due.
async fn racing_workers_write_one_pickup_for_an_orders_returns(h: &Harness) {
    let (order, returns) = three_returns(h).await;
    let due_by = now() + time::Duration::minutes(10);
    let shards = h.store.pickup_shards();
    let mut due = Vec::new();
    for shard in &shards {
        due.extend(
            h.store
                .orders_due_for_pickup(*shard, due_by, 10)
                .await
                .unwrap(),
        );
    }
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].order_id, order.main.id);
    assert_eq!(due[0].earliest_pickup_at, now());
    let taken: Vec<(AfterSaleId, u64)> = returns.iter().map(|a| (a.id, a.version)).collect();
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let store: Arc<dyn PickupStore> = h.store.clone();
            let pickup = pickup_of(&order, i);
            let taken = taken.clone();
            tokio::spawn(async move { create(store.as_ref(), pickup, &taken).await })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match tokio::time::timeout(std::time::Duration::from_secs(60), task)
            .await
            .expect("the race ends")
            .unwrap()
        {
            PickupCreate::Created(pickup) => created.push(pickup),
            PickupCreate::Lost => {}
        }
    }
    assert_eq!(created.len(), 1, "one pickup: {created:?}");
    assert_eq!(created[0].seq, 1);
    assert_eq!(h.count("return_pickups", "1 = 1").await, 1);
    let winner = created[0].id;
    for after_sale in h
        .store
        .after_sales_of_order(&order.main.tenant, order.main.id)
        .await
        .unwrap()
    {
        assert_eq!(after_sale.pickup_id, Some(winner));
    }
    for shard in &shards {
        assert!(
            h.store
                .orders_due_for_pickup(*shard, due_by, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let other = TenantId::parse("other").unwrap();
    assert_eq!(h.store.get_pickup(&other, winner).await.unwrap(), None);
    assert!(
        h.store
            .pickups_of_order(&other, order.main.id)
            .await
            .unwrap()
            .is_empty()
    );
}

fn marks(order: &Order, returns: &[AfterSale], event: &str) -> Vec<AfterSaleMark> {
    let fired = TransitionEvent::parse(event).unwrap();
    returns
        .iter()
        .map(|after_sale| {
            let mut next = after_sale.clone();
            next.version += 1;
            AfterSaleMark {
                id: after_sale.id,
                expected_version: after_sale.version,
                history: AfterSaleHistoryEntry {
                    version: next.version,
                    from: Some(after_sale.status.clone()),
                    to: after_sale.status.clone(),
                    event: fired.clone(),
                    channel: after_sale.channel,
                    operator: "pickup".into(),
                    reason: None,
                    occurred_at: now(),
                },
                event: next.order_event(order, &fired),
            }
        })
        .collect()
}

/// Booking marks every after-sale once; a stale after-sale version writes nothing; a second
/// end of the same pickup writes nothing.
async fn a_pickup_ends_once_and_marks_every_after_sale(h: &Harness) {
    let (order, returns) = three_returns(h).await;
    let taken: Vec<(AfterSaleId, u64)> = returns.iter().map(|a| (a.id, a.version)).collect();
    let PickupCreate::Created(pickup) =
        create(h.store.as_ref(), pickup_of(&order, 0), &taken).await
    else {
        panic!("the only writer wins");
    };
    let claimed = h
        .store
        .claim_pickup_attempt(&pickup.tenant, pickup.id, 0, now(), now())
        .await
        .unwrap();
    assert!(claimed);
    let again = h
        .store
        .claim_pickup_attempt(&pickup.tenant, pickup.id, 0, now(), now())
        .await
        .unwrap();
    assert!(!again, "a second claim of the same attempt loses");
    let waybill = Waybill {
        waybill_no: "SBX1".into(),
        carrier: "sandbox".into(),
    };
    let outcome = |marks: Vec<AfterSaleMark>| PickupOutcome {
        tenant: pickup.tenant.clone(),
        id: pickup.id,
        status: PickupStatus::Booked,
        waybill: Some(waybill.clone()),
        error: None,
        at: now(),
        marks,
    };
    // one after-sale seen at a version it is no longer at: nothing is written
    let mut stale = marks(&order, &returns, "pickup_booked");
    stale[2].expected_version = 7;
    stale[2].history.version = 8;
    let refused = h.store.finish_pickup(outcome(stale)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::PreconditionFailed);
    assert_eq!(h.count("return_pickups", "status = 'pending'").await, 1);
    assert_eq!(h.count("after_sales", "waybill_no IS NOT NULL").await, 0);

    assert!(
        h.store
            .finish_pickup(outcome(marks(&order, &returns, "pickup_booked")))
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .finish_pickup(outcome(marks(&order, &returns, "pickup_booked")))
            .await
            .unwrap(),
        "a second end writes nothing"
    );
    let ended = h
        .store
        .get_pickup(&pickup.tenant, pickup.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.status, PickupStatus::Booked);
    assert_eq!(ended.waybill, Some(waybill));
    assert_eq!(ended.attempts, 1);
    assert_eq!(ended.next_attempt_at, None);
    for after_sale in h
        .store
        .after_sales_of_order(&pickup.tenant, pickup.order_id)
        .await
        .unwrap()
    {
        assert_eq!(after_sale.waybill_no.as_deref(), Some("SBX1"));
        assert_eq!(after_sale.version, 2);
        let history = h
            .store
            .after_sale_history(&pickup.tenant, after_sale.id)
            .await
            .unwrap();
        assert_eq!(history.last().unwrap().event.as_str(), "pickup_booked");
    }
    assert_eq!(
        h.count("outbox", "payload LIKE '%\"event\":\"pickup_booked\"%'")
            .await,
        3
    );
}

both_dialects!(
    racing_workers_write_one_pickup_for_an_orders_returns,
    a_pickup_ends_once_and_marks_every_after_sale,
);
