//! After-sales (`AfterSaleStore`, migration 0011) on SQLite and real MariaDB: the units of an
//! order line under live after-sales plus those returned never exceed what was bought, however
//! many channels apply at once (the database's conditional update, no lock); the units'
//! amounts add up to the line's payable exactly; a closed after-sale gives its units back and a
//! refunded one keeps them; one refund per after-sale; every read is tenant-scoped; the
//! archive deletes ended after-sales with their order, and an application for an archived
//! order is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use oc_model::aftersale::{
    AfterSale, AfterSaleChannel, AfterSaleHistoryEntry, AfterSaleId, AfterSaleLine,
    AfterSaleRefund, AfterSaleStore, AfterSaleTransition, AfterSaleType, LedgerEffect,
    NewAfterSale, RefundSplit, Reviewer,
};
use oc_model::ports::OrderStore;
use oc_model::{
    ErrorCode, Money, Order, OrderIdGenerator, PaymentId, RefundId, StatusCode, TenantId,
    TransitionEvent,
};

#[macro_use]
mod common;

use common::{Harness, NOW_MS, now};

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// An application for `lines` (line number, units) of `order`, through `channel`.
fn application(
    order: &Order,
    sequence: u64,
    channel: AfterSaleChannel,
    kind: AfterSaleType,
    lines: &[(u32, u32)],
) -> NewAfterSale {
    let generator = OrderIdGenerator::new(3).unwrap();
    let id =
        AfterSaleId::generated(generator.next(order.main.id.bucket(), NOW_MS as u64 + sequence));
    let currency = order.finance.currency;
    let after_sale = AfterSale {
        tenant: order.main.tenant.clone(),
        id,
        order_id: order.main.id,
        kind,
        channel,
        applicant: format!("{channel}-{sequence}"),
        reviewer: Reviewer::Merchant,
        status: StatusCode::parse("applied").unwrap(),
        version: 1,
        appealed: false,
        reason: None,
        lines: lines
            .iter()
            .map(|(line_no, quantity)| {
                let line = &order.lines[*line_no as usize - 1];
                AfterSaleLine {
                    line_no: *line_no,
                    sku: line.sku.clone(),
                    promotion_type: line.promotion_type.clone(),
                    unit_price: line.unit_price,
                    quantity: *quantity,
                    amount: Money::zero(currency),
                }
            })
            .collect(),
        refund_amount: Money::zero(currency),
        pickup_at: None,
        pickup_id: None,
        waybill_no: None,
        created_at: now(),
        updated_at: now(),
    };
    let apply = TransitionEvent::parse("apply").unwrap();
    NewAfterSale {
        event: after_sale.order_event(order, &apply),
        history: AfterSaleHistoryEntry {
            version: 1,
            from: None,
            to: after_sale.status.clone(),
            event: apply,
            channel,
            operator: after_sale.applicant.clone(),
            reason: None,
            occurred_at: now(),
        },
        split: RefundSplit::of_order(order),
        request_index: (0..lines.len()).collect(),
        after_sale,
    }
}

/// A transition of `after_sale` (at its version) to `to` with its ledger effect.
fn moved(
    order: &Order,
    after_sale: &AfterSale,
    event: &str,
    to: &str,
    ledger: LedgerEffect,
    refund: Option<AfterSaleRefund>,
) -> AfterSaleTransition {
    let event = TransitionEvent::parse(event).unwrap();
    let mut next = after_sale.clone();
    next.version += 1;
    next.status = StatusCode::parse(to).unwrap();
    AfterSaleTransition {
        tenant: after_sale.tenant.clone(),
        id: after_sale.id,
        expected_version: after_sale.version,
        to: next.status.clone(),
        reviewer: after_sale.reviewer,
        appealed: after_sale.appealed,
        ledger,
        history: AfterSaleHistoryEntry {
            version: next.version,
            from: Some(after_sale.status.clone()),
            to: next.status.clone(),
            event: event.clone(),
            channel: AfterSaleChannel::Merchant,
            operator: "reviewer".into(),
            reason: None,
            occurred_at: now(),
        },
        event: next.order_event(order, &event),
        refund,
    }
}

/// Apply, retrying what the store calls transient (SQLite's busy writer, a MariaDB deadlock)
/// a bounded number of times.
async fn apply(store: &dyn AfterSaleStore, new: NewAfterSale) -> Result<AfterSale, ErrorCode> {
    for _ in 0..50 {
        match store.apply_after_sale(new.clone()).await {
            Ok(after_sale) => return Ok(after_sale),
            Err(e) if e.is_transient() => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => {
                assert_eq!(e.field.as_deref(), Some("/lines/0/quantity"), "{e}");
                return Err(e.code);
            }
        }
    }
    panic!("an application stayed transient for 50 tries");
}

/// 64 applications from the three channels at once, each for one unit of a 5-unit line:
/// exactly 5 are accepted, the others refused naming the line, and the 5 accepted units refund
/// the line's payable to the minor unit.
async fn sixty_four_concurrent_applications_from_three_channels_accept_exactly_the_bought_units(
    h: &Harness,
) {
    let tenant = acme();
    let order = h.delivered_order(&tenant, "buyer-race").await;
    let channels = [
        AfterSaleChannel::User,
        AfterSaleChannel::Merchant,
        AfterSaleChannel::CustomerService,
    ];
    let tasks: Vec<_> = (0..64u64)
        .map(|i| {
            let store: Arc<dyn AfterSaleStore> = h.store.clone();
            let new = application(
                &order,
                i,
                channels[i as usize % 3],
                AfterSaleType::RefundOnly,
                &[(1, 1)],
            );
            tokio::spawn(async move { apply(store.as_ref(), new).await })
        })
        .collect();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match tokio::time::timeout(std::time::Duration::from_secs(60), task)
            .await
            .expect("the race ends")
            .unwrap()
        {
            Ok(after_sale) => accepted.push(after_sale),
            Err(code) => {
                assert_eq!(code, ErrorCode::InvalidInput);
                refused += 1;
            }
        }
    }
    assert_eq!(accepted.len(), 5, "exactly the bought units");
    assert_eq!(refused, 59);
    let mut amounts: Vec<i64> = accepted.iter().map(|a| a.refund_amount.minor).collect();
    amounts.sort_unstable();
    assert_eq!(amounts, vec![200, 200, 201, 201, 201]);
    assert_eq!(h.count("after_sales", "1 = 1").await, 5);
    assert_eq!(h.count("after_sale_lines", "1 = 1").await, 5);
    assert_eq!(
        h.count(
            "after_sale_units",
            "line_no = 1 AND held = 5 AND held_amount = 1003"
        )
        .await,
        1
    );
    let taken = h.store.units_taken(&tenant, order.main.id).await.unwrap();
    assert_eq!(taken, BTreeMap::from([(1, 5)]));
}

/// The seed's duplicate request split over two racing calls: one takes the one unit of line
/// 2, the other is refused; the database's CHECK refuses an update that would take more even
/// when the statement's own condition is left out.
async fn the_last_unit_cannot_be_taken_twice(h: &Harness) {
    let tenant = acme();
    let order = h.delivered_order(&tenant, "buyer-dup").await;
    let first = application(
        &order,
        1,
        AfterSaleChannel::Merchant,
        AfterSaleType::RefundOnly,
        &[(2, 1)],
    );
    let second = application(
        &order,
        2,
        AfterSaleChannel::User,
        AfterSaleType::RefundOnly,
        &[(2, 1)],
    );
    let (a, b) = tokio::join!(
        apply(h.store.as_ref(), first),
        apply(h.store.as_ref(), second)
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    let bypass = "UPDATE after_sale_units SET held = held + 1 WHERE line_no = 2";
    let mut refused = false;
    for shard in OrderStore::shards(h.store.as_ref()) {
        let pool = h.store.shard_pool(shard).unwrap();
        if sqlx::query(bypass).execute(pool).await.is_err() {
            refused = true;
        }
    }
    assert!(refused, "chk_after_sale_units_count refuses a second hold");
}

/// A rejected-then-closed after-sale gives its units (and their amount) back; a refunded one
/// keeps them; a stale version writes nothing; an after-sale is refunded once.
async fn closing_releases_units_and_a_refund_keeps_them_once(h: &Harness) {
    let tenant = acme();
    let order = h.delivered_order(&tenant, "buyer-flow").await;
    let store = h.store.as_ref();
    let whole = apply(
        store,
        application(
            &order,
            1,
            AfterSaleChannel::User,
            AfterSaleType::RefundOnly,
            &[(1, 5)],
        ),
    )
    .await
    .unwrap();
    assert_eq!(whole.refund_amount.minor, 1_003);
    assert!(
        apply(
            store,
            application(
                &order,
                2,
                AfterSaleChannel::User,
                AfterSaleType::Exchange,
                &[(1, 1)]
            )
        )
        .await
        .is_err()
    );

    let rejected = store
        .transition_after_sale(moved(
            &order,
            &whole,
            "reject",
            "rejected",
            LedgerEffect::None,
            None,
        ))
        .await
        .unwrap();
    let stale = store
        .transition_after_sale(moved(
            &order,
            &whole,
            "approve",
            "approved",
            LedgerEffect::None,
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code, ErrorCode::PreconditionFailed);
    store
        .transition_after_sale(moved(
            &order,
            &rejected,
            "close",
            "closed",
            LedgerEffect::Release,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        store.units_taken(&tenant, order.main.id).await.unwrap()[&1],
        0
    );

    // the units are free again: two after-sales take them, with the same amounts as before
    let two = apply(
        store,
        application(
            &order,
            3,
            AfterSaleChannel::User,
            AfterSaleType::RefundOnly,
            &[(1, 2)],
        ),
    )
    .await
    .unwrap();
    assert_eq!(two.refund_amount.minor, 402);
    let generator = OrderIdGenerator::new(5).unwrap();
    let refund = AfterSaleRefund {
        refund_id: RefundId::generated(generator.next(order.main.id.bucket(), NOW_MS as u64)),
        payment_id: PaymentId::generated(generator.next(order.main.id.bucket(), NOW_MS as u64 + 1)),
        amount: two.refund_amount,
    };
    let approved = store
        .transition_after_sale(moved(
            &order,
            &two,
            "approve",
            "approved",
            LedgerEffect::None,
            None,
        ))
        .await
        .unwrap();
    let refunding = store
        .transition_after_sale(moved(
            &order,
            &approved,
            "refund",
            "refunding",
            LedgerEffect::None,
            Some(refund.clone()),
        ))
        .await
        .unwrap();
    assert_eq!(
        store.after_sale_refund(&tenant, two.id).await.unwrap(),
        Some(refund.clone())
    );
    // a second refund of the same after-sale, even at its current version, is refused
    let again = store
        .transition_after_sale(moved(
            &order,
            &refunding,
            "refund",
            "refunding",
            LedgerEffect::None,
            Some(refund),
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::Conflict);
    store
        .transition_after_sale(moved(
            &order,
            &refunding,
            "complete",
            "completed",
            LedgerEffect::Settle,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        h.count(
            "after_sale_units",
            "line_no = 1 AND held = 0 AND returned = 2 AND returned_amount = 402"
        )
        .await,
        1
    );
    let rest = apply(
        store,
        application(
            &order,
            4,
            AfterSaleChannel::Merchant,
            AfterSaleType::RefundOnly,
            &[(1, 3)],
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        rest.refund_amount.minor, 601,
        "402 + 601 = the line's 1,003"
    );

    let history = store.after_sale_history(&tenant, two.id).await.unwrap();
    let events: Vec<&str> = history.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["apply", "approve", "refund", "complete"]);
    assert_eq!(h.count("outbox", "1 = 1").await, 1 + 3 + 4 + 1);

    // the order's after-sales read together are each the same as read alone, lines included
    let all = store
        .after_sales_of_order(&tenant, order.main.id)
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "whole, two and rest");
    for one in &all {
        assert!(!one.lines.is_empty());
        assert_eq!(
            store
                .get_after_sale(&tenant, one.id)
                .await
                .unwrap()
                .as_ref(),
            Some(one)
        );
    }
}

/// Another tenant's after-sale and order read as nothing.
async fn after_sales_are_scoped_by_tenant(h: &Harness) {
    let tenant = acme();
    let order = h.delivered_order(&tenant, "buyer-scope").await;
    let mine = apply(
        h.store.as_ref(),
        application(
            &order,
            1,
            AfterSaleChannel::User,
            AfterSaleType::Repair,
            &[(2, 1)],
        ),
    )
    .await
    .unwrap();
    assert_eq!(mine.refund_amount.minor, 0, "a repair refunds nothing");
    let found = h
        .store
        .get_after_sale(&tenant, mine.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, mine);
    assert_eq!(
        h.store
            .after_sales_of_order(&tenant, order.main.id)
            .await
            .unwrap(),
        vec![mine.clone()]
    );
    let other = TenantId::parse("globex").unwrap();
    assert_eq!(h.store.get_after_sale(&other, mine.id).await.unwrap(), None);
    assert!(
        h.store
            .after_sales_of_order(&other, order.main.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        h.store
            .after_sale_history(&other, mine.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        h.store
            .units_taken(&other, order.main.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The archive's delete takes an order's after-sales with it only when they are exactly the
/// ones copied and none still holds units; an application for an order the archive deleted
/// is refused as archived (409), whatever the applicant read before.
async fn the_archive_deletes_ended_after_sales_with_their_order_and_refuses_late_applications(
    h: &Harness,
) {
    use oc_model::archive::ArchiveStore;
    let tenant = acme();
    let order = h.delivered_order(&tenant, "buyer-archive").await;
    let store = h.store.as_ref();
    let live = apply(
        store,
        application(
            &order,
            1,
            AfterSaleChannel::User,
            AfterSaleType::RefundOnly,
            &[(1, 1)],
        ),
    )
    .await
    .unwrap();
    let mut copy = order.clone();
    copy.main.version += 1;
    let event = oc_model::OrderEvent::of(&copy, oc_model::OrderEventKind::Archived);
    let version = order.main.version;
    // a live after-sale (units held) keeps the order hot, even named in the copy
    assert!(store.in_flight(&tenant, order.main.id).await.unwrap());
    assert!(
        !store
            .delete_archived(&tenant, order.main.id, version, &[(live.id, 1)], &event)
            .await
            .unwrap()
    );
    let ended = store
        .transition_after_sale(moved(
            &order,
            &live,
            "cancel",
            "cancelled",
            LedgerEffect::Release,
            None,
        ))
        .await
        .unwrap();
    assert!(!store.in_flight(&tenant, order.main.id).await.unwrap());
    // a copy that misses it, or holds an older version of it, deletes nothing
    for copied in [vec![], vec![(ended.id, 1)]] {
        assert!(
            !store
                .delete_archived(&tenant, order.main.id, version, &copied, &event)
                .await
                .unwrap(),
            "{copied:?}"
        );
    }
    assert!(
        store
            .get_after_sale(&tenant, ended.id)
            .await
            .unwrap()
            .is_some()
    );
    // the copy of what is there: order and after-sale go together
    assert!(
        store
            .delete_archived(&tenant, order.main.id, version, &[(ended.id, 2)], &event)
            .await
            .unwrap()
    );
    assert_eq!(store.get_after_sale(&tenant, ended.id).await.unwrap(), None);
    assert!(
        store
            .after_sale_history(&tenant, ended.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .units_taken(&tenant, order.main.id)
            .await
            .unwrap()
            .is_empty()
    );
    // an application made from what was read before the delete is refused, nothing written
    let late = store
        .apply_after_sale(application(
            &order,
            2,
            AfterSaleChannel::User,
            AfterSaleType::RefundOnly,
            &[(1, 1)],
        ))
        .await
        .unwrap_err();
    assert_eq!(late.code, ErrorCode::Conflict, "{late}");
    assert!(late.message.contains("archived"), "{late}");
    assert!(
        store
            .after_sales_of_order(&tenant, order.main.id)
            .await
            .unwrap()
            .is_empty()
    );
    // not even the line's unit ledger row (opened before the application's transaction)
    assert_eq!(
        store.units_taken(&tenant, order.main.id).await.unwrap(),
        std::collections::BTreeMap::new(),
        "a refused late application left a unit ledger row"
    );
}

both_dialects!(
    the_archive_deletes_ended_after_sales_with_their_order_and_refuses_late_applications,
    sixty_four_concurrent_applications_from_three_channels_accept_exactly_the_bought_units,
    the_last_unit_cannot_be_taken_twice,
    closing_releases_units_and_a_refund_keeps_them_once,
    after_sales_are_scoped_by_tenant,
);
