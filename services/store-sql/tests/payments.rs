//! The payment records (`PaymentStore`, migration 0009) on SQLite and real MariaDB: a create
//! is one transaction with its outbox event and idempotent by key under concurrency; records
//! are tenant-scoped; a settlement is the payment's compare-and-set on `pending` and the
//! order's `pay` transition in one transaction, so 50 concurrent duplicates commit exactly
//! one transition, and a settlement whose order moved on (timed out) writes nothing; a due
//! query is claimed by one of several workers.

use std::collections::BTreeMap;

use oc_model::lifecycle::{TransitionStore, TransitionWrite};
use oc_model::payment::{
    NewPayment, PaymentIdempotency, PaymentInsert, PaymentSettlement, PaymentStore, RefundInsert,
    RefundSettlement, SettleOutcome,
};
use oc_model::ports::OrderStore;
use oc_model::{
    Checkout, ErrorCode, Order, OrderEffect, OrderEvent, OrderIdGenerator, Payment,
    PaymentEventType, PaymentId, PaymentNote, PaymentStatus, ProviderName, Refund, RefundId,
    RefundStatus, StockEffect, TenantId,
};
use sqlx::Row;
use time::Duration;

#[macro_use]
mod common;

use common::{Harness, NOW_MS, now, transition};

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn globex() -> TenantId {
    TenantId::parse("globex").unwrap()
}

/// A pending payment of `order` for its payable amount, its first query due at `now() + 1 min`.
fn payment_of(order: &Order, sequence: u64) -> NewPayment {
    let generator = OrderIdGenerator::new(7).unwrap();
    let id = PaymentId::generated(generator.next(order.main.id.bucket(), NOW_MS as u64 + sequence));
    let payment = Payment {
        tenant: order.main.tenant.clone(),
        id,
        order_id: order.main.id,
        provider: ProviderName::parse("sandbox").unwrap(),
        amount: order.finance.payable,
        status: PaymentStatus::Pending,
        checkout: Checkout::default(),
        captured: 0,
        reported: None,
        effect: OrderEffect::None,
        created_at: now(),
        updated_at: now(),
        expires_at: now() + Duration::minutes(30),
        paid_at: None,
        next_query_at: Some(now() + Duration::minutes(1)),
        query_attempts: 0,
    };
    let event = OrderEvent::payment(
        order,
        PaymentNote {
            what: PaymentEventType::Created,
            payment_id: id,
            provider: payment.provider.clone(),
            amount: payment.amount,
            reported: None,
            reason: None,
            refund_id: None,
        },
        now(),
    );
    NewPayment {
        payment,
        idempotency: None,
        event,
    }
}

fn keyed(mut new: NewPayment, key: &str, hash: &str) -> NewPayment {
    new.idempotency = Some(PaymentIdempotency {
        key: key.to_owned(),
        request_hash: hash.to_owned(),
    });
    new
}

fn settlement(payment: &Payment, transition: Option<TransitionWrite>) -> PaymentSettlement {
    PaymentSettlement {
        tenant: payment.tenant.clone(),
        id: payment.id,
        status: PaymentStatus::Succeeded,
        captured: payment.amount.minor,
        provider_txn_id: Some("txn-1".into()),
        reported: None,
        effect: OrderEffect::Applied,
        paid_at: Some(now()),
        at: now(),
        transition,
        events: Vec::new(),
    }
}

/// The payment `sequence` of `order`, inserted: it must be a new one.
async fn created(h: &Harness, order: &Order, sequence: u64) -> Payment {
    let PaymentInsert::Created(payment) = h
        .store
        .insert_payment(payment_of(order, sequence))
        .await
        .unwrap()
    else {
        panic!("created")
    };
    payment
}

/// The stored payment `id` of `tenant`: it must exist.
async fn stored_payment(h: &Harness, tenant: &TenantId, id: PaymentId) -> Payment {
    h.store.get_payment(tenant, id).await.unwrap().unwrap()
}

/// Every settlement at once, each on its own task and retried while the database answers
/// `Retryable` (a deadlock victim): the outcomes, in the order given.
async fn race_settlements(
    h: &Harness,
    settlements: Vec<PaymentSettlement>,
) -> Vec<oc_model::DomainResult<SettleOutcome>> {
    let racers: Vec<_> = settlements
        .into_iter()
        .map(|settle| {
            let store = h.store.clone();
            tokio::spawn(async move {
                loop {
                    match store.settle_payment(settle.clone()).await {
                        Err(e) if e.code == ErrorCode::Retryable => continue,
                        other => return other,
                    }
                }
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    outcomes
}

/// A create writes the record and its `payment.created` event in one transaction; 16
/// concurrent creates with one key write one record (the others replay it, a different body is
/// a conflict); another tenant sees none of it; the provider's answer is kept once.
async fn payments_are_created_once_per_key_and_scoped_by_tenant(h: &Harness) {
    let tenant = acme();
    let order = h.insert(&tenant, "buyer-p1", Some(NOW_MS + 60_000)).await;
    let outbox_before = h.count("outbox", "1 = 1").await;
    let racers: Vec<_> = (0..16)
        .map(|n| {
            let store = h.store.clone();
            let new = keyed(payment_of(&order, n), "key-1", "hash-1");
            tokio::spawn(async move { store.insert_payment(new).await })
        })
        .collect();
    let (mut created, mut replayed) = (Vec::new(), Vec::new());
    for racer in racers {
        match racer.await.unwrap().unwrap() {
            PaymentInsert::Created(p) => created.push(p),
            PaymentInsert::Replayed(p) => replayed.push(p),
        }
    }
    assert_eq!(created.len(), 1, "one create wins the key");
    assert!(replayed.iter().all(|p| p.id == created[0].id));
    assert_eq!(h.count("payments", "1 = 1").await, 1);
    assert_eq!(h.count("outbox", "1 = 1").await, outbox_before + 1);
    let conflict = h
        .store
        .insert_payment(keyed(payment_of(&order, 99), "key-1", "hash-2"))
        .await
        .unwrap_err();
    assert_eq!(conflict.code, ErrorCode::Conflict);

    let first = &created[0];
    let stored = h
        .store
        .get_payment(&tenant, first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&stored, first, "a record reads back as written");
    let globex = TenantId::parse("globex").unwrap();
    assert_eq!(h.store.get_payment(&globex, first.id).await.unwrap(), None);
    assert!(
        h.store
            .payments_of_order(&globex, order.main.id)
            .await
            .unwrap()
            .is_empty()
    );

    let checkout = Checkout {
        provider_txn_id: Some("sbx-1".into()),
        pay_url: Some("http://pay/1".into()),
        qr_payload: Some("qr-1".into()),
    };
    h.store
        .set_checkout(&tenant, first.id, &checkout, now())
        .await
        .unwrap();
    let other = Checkout {
        pay_url: Some("http://pay/2".into()),
        ..checkout.clone()
    };
    h.store
        .set_checkout(&tenant, first.id, &other, now())
        .await
        .unwrap();
    let listed = h
        .store
        .payments_of_order(&tenant, order.main.id)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].checkout, checkout, "the first answer is kept");
}

/// 50 settlements of one payment, each with the order's `pay` transition, at once: one
/// commits the payment and the transition together, the others find it settled and write
/// nothing (one history row, one `paid` outbox event).
async fn a_settlement_commits_with_the_pay_transition_exactly_once(h: &Harness) {
    let tenant = acme();
    let order = h.insert(&tenant, "buyer-p2", Some(NOW_MS + 60_000)).await;
    let payment = created(h, &order, 0).await;
    let outbox_before = h.count("outbox", "1 = 1").await;
    let settle = settlement(
        &payment,
        Some(transition(&order, "pay", "paid", StockEffect::Confirm)),
    );
    let mut outcomes = BTreeMap::new();
    for outcome in race_settlements(h, vec![settle; 50]).await {
        *outcomes.entry(format!("{outcome:?}")).or_insert(0) += 1;
    }
    assert_eq!(
        outcomes,
        BTreeMap::from([
            (
                format!("{:?}", Ok::<_, ()>(SettleOutcome::AlreadySettled)),
                49
            ),
            (format!("{:?}", Ok::<_, ()>(SettleOutcome::Settled)), 1),
        ])
    );
    let stored = h.store.get(&tenant, order.main.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.main.version, stored.main.status.as_str()),
        (2, "paid")
    );
    assert_eq!(h.count("order_history", "event = 'pay'").await, 1);
    assert_eq!(h.count("outbox", "1 = 1").await, outbox_before + 1);
    let settled = stored_payment(h, &tenant, payment.id).await;
    assert_eq!(
        (
            settled.status,
            settled.effect,
            settled.captured,
            settled.next_query_at
        ),
        (
            PaymentStatus::Succeeded,
            OrderEffect::Applied,
            payment.amount.minor,
            None
        )
    );
}

/// The order timed out between the read and the settlement: the settlement's transition is
/// stale, so nothing is written — the payment stays pending, to be decided again on what is
/// there now.
async fn a_settlement_whose_order_moved_on_writes_nothing(h: &Harness) {
    let tenant = acme();
    let order = h.insert(&tenant, "buyer-p3", Some(NOW_MS)).await;
    let payment = created(h, &order, 0).await;
    h.store
        .commit_transition(transition(
            &order,
            "timeout",
            "cancelled",
            StockEffect::Release,
        ))
        .await
        .unwrap();
    let outbox_before = h.count("outbox", "1 = 1").await;
    let stale = settlement(
        &payment,
        Some(transition(&order, "pay", "paid", StockEffect::Confirm)),
    );
    let refused = h.store.settle_payment(stale).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::PreconditionFailed);
    let unchanged = stored_payment(h, &tenant, payment.id).await;
    assert_eq!(unchanged, payment);
    assert_eq!(h.count("outbox", "1 = 1").await, outbox_before);
    // another tenant cannot settle it either
    let mut foreign = settlement(&payment, None);
    foreign.tenant = TenantId::parse("globex").unwrap();
    assert_eq!(
        h.store.settle_payment(foreign).await.unwrap(),
        SettleOutcome::AlreadySettled
    );
    assert_eq!(stored_payment(h, &tenant, payment.id).await, payment);
}

/// Pending payments whose query is due are listed per shard; of four workers claiming the
/// same query one wins; a settled payment is never due.
async fn a_due_query_is_claimed_by_one_worker(h: &Harness) {
    let tenant = acme();
    let mut payments = Vec::new();
    for n in 0..6 {
        let order = h.insert(&tenant, &format!("buyer-q{n}"), None).await;
        let p = created(h, &order, n).await;
        payments.push(p);
    }
    let due_at = now() + Duration::minutes(1);
    let mut due = Vec::new();
    for shard in h.store.payment_shards() {
        assert!(
            h.store
                .payments_due(shard, due_at - Duration::milliseconds(1), 100)
                .await
                .unwrap()
                .is_empty()
        );
        due.extend(h.store.payments_due(shard, due_at, 100).await.unwrap());
    }
    assert_eq!(due.len(), 6);
    let target = payments[0].clone();
    let claims: Vec<_> = (0..4)
        .map(|_| {
            let (store, target) = (h.store.clone(), target.clone());
            tokio::spawn(async move {
                store
                    .claim_payment_query(
                        &target.tenant,
                        target.id,
                        due_at,
                        Some(due_at + Duration::minutes(1)),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.unwrap());
    }
    assert_eq!(won, 1);
    let claimed = h
        .store
        .get_payment(&tenant, target.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.query_attempts, 1);
    // a settled payment leaves the due set
    let settled = payments[1].clone();
    assert_eq!(
        h.store
            .settle_payment(settlement(&settled, None))
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    let mut still_due = 0;
    for shard in h.store.payment_shards() {
        still_due += h
            .store
            .payments_due(shard, due_at, 100)
            .await
            .unwrap()
            .len();
    }
    assert_eq!(
        still_due, 4,
        "the claimed one moved on, the settled one left"
    );
}

fn refund_of(payment: &Payment, n: u64, key: &str, minor: i64) -> Refund {
    let generator = OrderIdGenerator::new(9).unwrap();
    Refund {
        tenant: payment.tenant.clone(),
        id: RefundId::generated(generator.next(payment.id.bucket(), NOW_MS as u64 + n)),
        payment_id: payment.id,
        order_id: payment.order_id,
        refund_key: key.to_owned(),
        amount: oc_model::Money::new(minor, payment.amount.currency),
        status: RefundStatus::Requested,
        reason: None,
        attempts: 0,
        failures: 0,
        failure: None,
        next_query_at: Some(now()),
        created_at: now(),
        updated_at: now(),
    }
}

fn settled(refund: RefundId, status: RefundStatus) -> RefundSettlement {
    RefundSettlement {
        tenant: acme(),
        id: refund,
        status,
        failure: None,
        attempt: 1,
        at: now(),
        events: Vec::new(),
    }
}

/// 32 refund requests of 1.00 on a payment that captured 7.50, all at once: exactly 7 are
/// written, the others refused with nothing written; the sum never exceeds the capture. A
/// retried key is the same refund; a failed refund gives its reservation back; the CHECK
/// refuses a direct write past the capture.
async fn refunds_never_exceed_the_captured_amount(h: &Harness) {
    let tenant = acme();
    let order = h.insert(&tenant, "buyer-refund", None).await;
    let payment = created(h, &order, 0).await;
    // nothing captured yet: nothing to refund
    assert_eq!(
        h.store
            .insert_refund(refund_of(&payment, 100, "early", 100), Vec::new())
            .await
            .unwrap(),
        RefundInsert::Exceeds { refundable: 0 }
    );
    assert_eq!(
        h.store
            .settle_payment(settlement(&payment, None))
            .await
            .unwrap(),
        SettleOutcome::Settled
    );
    let captured = payment.amount.minor;
    assert_eq!(captured, 750, "the fixture order's payable");
    let racers: Vec<_> = (0..32u64)
        .map(|n| {
            let store = h.store.clone();
            let refund = refund_of(&payment, n, &format!("after-sale-{n}"), 100);
            tokio::spawn(async move {
                loop {
                    match store.insert_refund(refund.clone(), Vec::new()).await {
                        Err(e) if e.code == ErrorCode::Retryable => continue,
                        other => return other.unwrap(),
                    }
                }
            })
        })
        .collect();
    let (mut created, mut refused) = (Vec::new(), 0);
    for racer in racers {
        match racer.await.unwrap() {
            RefundInsert::Created(refund) => created.push(refund),
            RefundInsert::Exceeds { refundable } => {
                assert!(refundable < 100, "refused with {refundable} left");
                refused += 1;
            }
            RefundInsert::Replayed(other) => panic!("distinct keys: {other:?}"),
        }
    }
    assert_eq!((created.len(), refused), (7, 25));
    assert_eq!(
        h.store.refunded(&tenant, payment.id).await.unwrap(),
        Some(700)
    );
    assert_eq!(h.count("payment_refunds", "1 = 1").await, 7);
    // a retry of a key is the first refund, not a second one (a key that won the race: which
    // seven won is up to the scheduler, and a refused key was never recorded)
    let winner = created[0].refund_key.clone();
    let again = refund_of(&payment, 50, &winner, 100);
    match h.store.insert_refund(again, Vec::new()).await.unwrap() {
        RefundInsert::Replayed(first) => assert_eq!(first.refund_key, winner),
        other => panic!("{other:?}"),
    }
    // what is left, exactly, and then nothing
    let rest = refund_of(&payment, 60, "rest", 50);
    assert!(matches!(
        h.store.insert_refund(rest, Vec::new()).await.unwrap(),
        RefundInsert::Created(_)
    ));
    assert_eq!(
        h.store
            .insert_refund(refund_of(&payment, 61, "one-more", 1), Vec::new())
            .await
            .unwrap(),
        RefundInsert::Exceeds { refundable: 0 }
    );
    // a refund the provider refused gives its 1.00 back, once
    let failed = created[0].id;
    assert!(
        h.store
            .settle_refund(settled(failed, RefundStatus::Failed))
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .settle_refund(settled(failed, RefundStatus::Failed))
            .await
            .unwrap()
    );
    assert!(
        h.store
            .settle_refund(settled(created[1].id, RefundStatus::Succeeded))
            .await
            .unwrap()
    );
    assert_eq!(
        h.store.refunded(&tenant, payment.id).await.unwrap(),
        Some(650)
    );
    // the database itself refuses more than the capture, whoever writes
    let mut refused_by_check = 0;
    for shard in OrderStore::shards(h.store.as_ref()) {
        let past = sqlx::query("UPDATE payments SET refunded = captured + 1 WHERE id = ?")
            .bind(payment.id.as_i64())
            .execute(h.store.shard_pool(shard).unwrap())
            .await;
        refused_by_check += usize::from(past.is_err());
    }
    assert_eq!(refused_by_check, 1, "the CHECK refuses refunded > captured");
    assert_eq!(
        h.store.refunded(&tenant, payment.id).await.unwrap(),
        Some(650)
    );
}

/// A refund's steps at the provider (0010): an attempt is recorded once, only the live
/// attempt's failure counts (a duplicate or stale report writes nothing), a due step is
/// claimed by one worker, a settlement writes its event and ends the steps; a refund event
/// names its refund in the outbox.
async fn refund_attempts_and_failures_are_compare_and_set(h: &Harness) {
    let tenant = acme();
    let order = h.insert(&tenant, "buyer-steps", None).await;
    let payment = created(h, &order, 0).await;
    h.store
        .settle_payment(settlement(&payment, None))
        .await
        .unwrap();
    let note = |refund: &Refund, what| {
        OrderEvent::payment(
            &order,
            PaymentNote {
                what,
                payment_id: payment.id,
                provider: payment.provider.clone(),
                amount: refund.amount,
                reported: None,
                reason: None,
                refund_id: Some(refund.id),
            },
            now(),
        )
    };
    let refund = refund_of(&payment, 1, "as-1", 200);
    let event = note(&refund, PaymentEventType::RefundRequested);
    assert!(matches!(
        h.store
            .insert_refund(refund.clone(), vec![event])
            .await
            .unwrap(),
        RefundInsert::Created(_)
    ));
    let (id, later) = (refund.id, now() + Duration::seconds(60));
    // two workers saw it due: one claims the step
    assert!(
        h.store
            .claim_refund_step(&tenant, id, now(), later)
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .claim_refund_step(&tenant, id, now(), later)
            .await
            .unwrap()
    );
    // attempt 1 accepted once; attempt 2 not before attempt 1 failed
    assert!(
        h.store
            .record_refund_attempt(&tenant, id, 1, now())
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .record_refund_attempt(&tenant, id, 1, now())
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .record_refund_attempt(&tenant, id, 2, now())
            .await
            .unwrap()
    );
    // attempt 1 failed: counted once, a duplicate report writes nothing
    assert!(
        h.store
            .record_refund_failure(&tenant, id, 1, "no", now(), now())
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .record_refund_failure(&tenant, id, 1, "no", now(), now())
            .await
            .unwrap()
    );
    assert!(
        h.store
            .record_refund_attempt(&tenant, id, 2, now())
            .await
            .unwrap()
    );
    // a stale report of attempt 1 while attempt 2 is live: nothing
    assert!(
        !h.store
            .record_refund_failure(&tenant, id, 1, "late", now(), now())
            .await
            .unwrap()
    );
    let read = h.store.get_refund(&tenant, id).await.unwrap().unwrap();
    assert_eq!(
        (read.attempts, read.failures, read.failure.as_deref()),
        (2, 1, Some("no"))
    );
    assert_eq!(read.live_attempt(), Some(2));
    let due = |at| {
        let store = h.store.clone();
        async move {
            let mut due = 0;
            for shard in store.payment_shards() {
                due += store.refunds_due(shard, at, 100).await.unwrap().len();
            }
            due
        }
    };
    assert_eq!(due(now()).await, 1, "due again now after a failure");
    let mut settlement = settled(id, RefundStatus::Succeeded);
    settlement.events = vec![note(&refund, PaymentEventType::Refunded)];
    // settled by the callback of attempt 3, before its submitter recorded it: the refund
    // still says three attempts were made
    settlement.attempt = 3;
    assert!(h.store.settle_refund(settlement.clone()).await.unwrap());
    assert!(!h.store.settle_refund(settlement).await.unwrap());
    let read = h.store.get_refund(&tenant, id).await.unwrap().unwrap();
    assert_eq!((read.status, read.attempts), (RefundStatus::Succeeded, 3));
    assert_eq!(
        due(later + Duration::hours(1)).await,
        0,
        "settled: no more steps"
    );
    assert_eq!(
        h.store
            .refunds_of_payment(&tenant, payment.id)
            .await
            .unwrap()[0]
            .status,
        RefundStatus::Succeeded
    );
    // another tenant sees none of it
    assert_eq!(h.store.get_refund(&globex(), id).await.unwrap(), None);
    assert!(
        h.store
            .refunds_of_payment(&globex(), payment.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        h.count(
            "outbox",
            &format!("payload LIKE '%\"refund_id\":\"{id}\"%'")
        )
        .await,
        2,
        "refund_requested and refunded, once each"
    );
}

/// The CHECK constraints of 0009 refuse what the code never writes.
async fn the_payments_table_refuses_impossible_rows(h: &Harness) {
    let pool = h
        .store
        .shard_pool(OrderStore::shards(h.store.as_ref())[0])
        .unwrap();
    for (status, amount) in [("paid", 100), ("pending", 0)] {
        let result = sqlx::query(
            "INSERT INTO payments (tenant, id, order_id, provider, currency, amount, status, effect, captured, created_at_ms, updated_at_ms, expires_at_ms, query_attempts) VALUES ('acme', 1, 1, 'sandbox', 'CNY', ?, ?, 'none', 0, 0, 0, 0, 0)",
        )
        .bind(amount)
        .bind(status)
        .execute(pool)
        .await;
        assert!(result.is_err(), "{status} {amount} refused");
    }
    let rows = sqlx::query("SELECT COUNT(*) FROM payments")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(rows.try_get::<i64, _>(0).unwrap(), 0);
}

/// `failed` and `expired` settle only a pending payment, once: 32 racing settlements (half
/// failures, half expiries) write one status and one event; another finds it settled. Money
/// captured later still settles it (with the order's `pay`), and then no failure or expiry
/// undoes the capture.
async fn unpaid_settlements_are_compare_and_set_and_a_capture_still_settles_them(h: &Harness) {
    let tenant = acme();
    let order = h.insert(&tenant, "buyer-p9", Some(NOW_MS + 60_000)).await;
    let payment = created(h, &order, 0).await;
    let unpaid = |status: PaymentStatus| {
        let what = if status == PaymentStatus::Failed {
            PaymentEventType::Failed
        } else {
            PaymentEventType::Expired
        };
        PaymentSettlement {
            status,
            captured: 0,
            provider_txn_id: None,
            effect: OrderEffect::None,
            paid_at: None,
            events: vec![OrderEvent::payment(
                &order,
                PaymentNote {
                    what,
                    payment_id: payment.id,
                    provider: payment.provider.clone(),
                    amount: payment.amount,
                    reported: None,
                    reason: Some("unpaid".into()),
                    refund_id: None,
                },
                now(),
            )],
            ..settlement(&payment, None)
        }
    };
    let outbox_before = h.count("outbox", "1 = 1").await;
    let racers = (0..32)
        .map(|n| {
            unpaid(if n % 2 == 0 {
                PaymentStatus::Failed
            } else {
                PaymentStatus::Expired
            })
        })
        .collect();
    let mut settled = 0;
    for outcome in race_settlements(h, racers).await {
        if outcome.unwrap() == SettleOutcome::Settled {
            settled += 1;
        }
    }
    assert_eq!(settled, 1);
    assert_eq!(h.count("outbox", "1 = 1").await, outbox_before + 1);
    let stored = stored_payment(h, &tenant, payment.id).await;
    assert!(
        matches!(
            stored.status,
            PaymentStatus::Failed | PaymentStatus::Expired
        ),
        "{stored:?}"
    );
    assert_eq!(stored.next_query_at, None);
    // the money arrives after all: captured, and the order paid with it
    let capture = settlement(
        &payment,
        Some(transition(&order, "pay", "paid", StockEffect::Confirm)),
    );
    assert_eq!(
        h.store.settle_payment(capture.clone()).await.unwrap(),
        SettleOutcome::Settled
    );
    assert_eq!(
        h.store.settle_payment(capture).await.unwrap(),
        SettleOutcome::AlreadySettled
    );
    for status in [PaymentStatus::Failed, PaymentStatus::Expired] {
        assert_eq!(
            h.store.settle_payment(unpaid(status)).await.unwrap(),
            SettleOutcome::AlreadySettled
        );
    }
    let stored = stored_payment(h, &tenant, payment.id).await;
    assert_eq!(
        (stored.status, stored.captured),
        (PaymentStatus::Succeeded, payment.amount.minor)
    );
    let order = h.store.get(&tenant, order.main.id).await.unwrap().unwrap();
    assert_eq!(order.main.status.as_str(), "paid");
}

both_dialects!(
    unpaid_settlements_are_compare_and_set_and_a_capture_still_settles_them,
    payments_are_created_once_per_key_and_scoped_by_tenant,
    a_settlement_commits_with_the_pay_transition_exactly_once,
    a_settlement_whose_order_moved_on_writes_nothing,
    a_due_query_is_claimed_by_one_worker,
    the_payments_table_refuses_impossible_rows,
    refunds_never_exceed_the_captured_amount,
    refund_attempts_and_failures_are_compare_and_set,
);
