//! `payments` and `payment_idempotency`: payment records (migration 0009) and the
//! Idempotency-Keys of their creates. Columns, binding, decoding and the statements on the
//! two tables are here and nowhere else.

use std::sync::LazyLock;

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use oc_model::payment::{PaymentIdempotency, PaymentSettlement};
use oc_model::{
    Checkout, Currency, DomainResult, Money, OrderEffect, OrderId, Payment, PaymentId,
    PaymentStatus, ProviderName, Refund, RefundId, RefundStatus, TenantId,
};

use super::{
    AnyTx, Binder, Columns, Table, corrupt, count, currency_of, fetch_all, fetch_optional,
    from_unix_ms, idempotency, int, moved_one, opt_int, opt_text, text, unix_ms, unsigned,
};
use crate::error::{WriteError, convert};

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "payments",
        Columns::of(&[
            "tenant",
            "id",
            "order_id",
            "provider",
            "currency",
            "amount",
            "status",
            "effect",
            "captured",
            "reported_amount",
            "reported_currency",
            "provider_txn_id",
            "pay_url",
            "qr_payload",
            "created_at_ms",
            "updated_at_ms",
            "expires_at_ms",
            "paid_at_ms",
            "next_query_at_ms",
            "query_attempts",
        ]),
    )
});

fn bind<'q>(row: Binder<'q>, payment: &'q Payment) -> Binder<'q> {
    row.bind("tenant", payment.tenant.as_str())
        .bind("id", payment.id.as_i64())
        .bind("order_id", payment.order_id.as_i64())
        .bind("provider", payment.provider.as_str())
        .bind("currency", payment.amount.currency.code())
        .bind("amount", payment.amount.minor)
        .bind("status", payment.status.as_str())
        .bind("effect", payment.effect.as_str())
        .bind("captured", payment.captured)
        .bind("reported_amount", payment.reported.map(|m| m.minor))
        .bind(
            "reported_currency",
            payment.reported.map(|m| m.currency.code().to_owned()),
        )
        .bind(
            "provider_txn_id",
            payment.checkout.provider_txn_id.as_deref(),
        )
        .bind("pay_url", payment.checkout.pay_url.as_deref())
        .bind("qr_payload", payment.checkout.qr_payload.as_deref())
        .bind("created_at_ms", unix_ms(payment.created_at))
        .bind("updated_at_ms", unix_ms(payment.updated_at))
        .bind("expires_at_ms", unix_ms(payment.expires_at))
        .bind("paid_at_ms", payment.paid_at.map(unix_ms))
        .bind("next_query_at_ms", payment.next_query_at.map(unix_ms))
        .bind("query_attempts", i64::from(payment.query_attempts))
}

pub(crate) fn decode(row: &AnyRow) -> DomainResult<Payment> {
    let status = text(row, "status")?;
    let effect = text(row, "effect")?;
    let reported = match (
        opt_int(row, "reported_amount")?,
        opt_text(row, "reported_currency")?,
    ) {
        (Some(minor), Some(code)) => {
            Some(Money::new(minor, Currency::parse(&code).map_err(corrupt)?))
        }
        _ => None,
    };
    Ok(Payment {
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        id: PaymentId::from_raw(unsigned(row, "id")?).map_err(corrupt)?,
        order_id: OrderId::from_raw(unsigned(row, "order_id")?).map_err(corrupt)?,
        provider: ProviderName::parse(text(row, "provider")?).map_err(corrupt)?,
        amount: Money::new(int(row, "amount")?, currency_of(row)?),
        status: PaymentStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown payment status {status:?}")))?,
        checkout: Checkout {
            provider_txn_id: opt_text(row, "provider_txn_id")?,
            pay_url: opt_text(row, "pay_url")?,
            qr_payload: opt_text(row, "qr_payload")?,
        },
        captured: int(row, "captured")?,
        reported,
        effect: OrderEffect::parse(&effect)
            .ok_or_else(|| corrupt(format!("unknown order effect {effect:?}")))?,
        created_at: from_unix_ms(int(row, "created_at_ms")?)?,
        updated_at: from_unix_ms(int(row, "updated_at_ms")?)?,
        expires_at: from_unix_ms(int(row, "expires_at_ms")?)?,
        paid_at: opt_int(row, "paid_at_ms")?.map(from_unix_ms).transpose()?,
        next_query_at: opt_int(row, "next_query_at_ms")?
            .map(from_unix_ms)
            .transpose()?,
        query_attempts: count(row, "query_attempts")?,
    })
}

pub(crate) async fn insert(tx: &mut AnyTx<'_>, payment: &Payment) -> DomainResult<()> {
    let sql = TABLE.insert(1);
    bind(TABLE.binder(sqlx::query(&sql)), payment)
        .done()
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    Ok(())
}

static SELECT_ONE: LazyLock<String> = LazyLock::new(|| TABLE.select("WHERE tenant = ? AND id = ?"));
static SELECT_OF_ORDER: LazyLock<String> =
    LazyLock::new(|| TABLE.select("WHERE tenant = ? AND order_id = ? ORDER BY id"));
static SELECT_DUE: LazyLock<String> = LazyLock::new(|| {
    TABLE.select(
        "WHERE next_query_at_ms IS NOT NULL AND next_query_at_ms <= ? AND status = 'pending' ORDER BY next_query_at_ms LIMIT ?",
    )
});

pub(crate) async fn get(
    pool: &AnyPool,
    tenant: &TenantId,
    id: PaymentId,
) -> DomainResult<Option<Payment>> {
    fetch_optional(
        sqlx::query(&SELECT_ONE)
            .bind(tenant.as_str())
            .bind(id.as_i64()),
        pool,
        decode,
    )
    .await
}

pub(crate) async fn of_order(
    pool: &AnyPool,
    tenant: &TenantId,
    order_id: OrderId,
) -> DomainResult<Vec<Payment>> {
    fetch_all(
        sqlx::query(&SELECT_OF_ORDER)
            .bind(tenant.as_str())
            .bind(order_id.as_i64()),
        pool,
        decode,
    )
    .await
}

pub(crate) async fn due(pool: &AnyPool, now_ms: i64, limit: u32) -> DomainResult<Vec<Payment>> {
    fetch_all(
        sqlx::query(&SELECT_DUE).bind(now_ms).bind(i64::from(limit)),
        pool,
        decode,
    )
    .await
}

/// The provider's answer to the create, while the payment is pending and has none yet.
pub(crate) async fn set_checkout(
    pool: &AnyPool,
    tenant: &TenantId,
    id: PaymentId,
    checkout: &Checkout,
    at_ms: i64,
) -> DomainResult<()> {
    sqlx::query(
        "UPDATE payments SET provider_txn_id = COALESCE(provider_txn_id, ?), pay_url = ?, qr_payload = ?, updated_at_ms = ? WHERE tenant = ? AND id = ? AND pay_url IS NULL AND qr_payload IS NULL",
    )
    .bind(checkout.provider_txn_id.as_deref())
    .bind(checkout.pay_url.as_deref())
    .bind(checkout.qr_payload.as_deref())
    .bind(at_ms)
    .bind(tenant.as_str())
    .bind(id.as_i64())
    .execute(pool)
    .await
    .map_err(convert)?;
    Ok(())
}

/// The settlement's compare-and-set on `pending`: whether this transaction moved it.
pub(crate) async fn settle(
    tx: &mut AnyTx<'_>,
    settlement: &PaymentSettlement,
) -> DomainResult<bool> {
    // the compare-and-set: only from the statuses this settlement may leave (the list is the
    // model's constant names, never input)
    let from = settlement
        .status
        .settles_from()
        .iter()
        .map(|status| format!("'{}'", status.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    if from.is_empty() {
        return Err(oc_model::DomainError::internal(
            "a settlement leaves pending",
        ));
    }
    let sql = format!(
        "UPDATE payments SET status = ?, effect = ?, captured = ?, reported_amount = ?, reported_currency = ?, provider_txn_id = COALESCE(?, provider_txn_id), paid_at_ms = ?, updated_at_ms = ?, next_query_at_ms = NULL WHERE tenant = ? AND id = ? AND status IN ({from})"
    );
    moved_one(
        sqlx::query(&sql)
            .bind(settlement.status.as_str())
            .bind(settlement.effect.as_str())
            .bind(settlement.captured)
            .bind(settlement.reported.map(|m| m.minor))
            .bind(settlement.reported.map(|m| m.currency.code().to_owned()))
            .bind(settlement.provider_txn_id.as_deref())
            .bind(settlement.paid_at.map(unix_ms))
            .bind(unix_ms(settlement.at))
            .bind(settlement.tenant.as_str())
            .bind(settlement.id.as_i64()),
        &mut **tx,
    )
    .await
}

/// Move a due query from `seen` to `next`, counting the attempt, unless someone did first.
pub(crate) async fn claim_query(
    pool: &AnyPool,
    tenant: &TenantId,
    id: PaymentId,
    seen_ms: i64,
    next_ms: Option<i64>,
) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE payments SET next_query_at_ms = ?, query_attempts = query_attempts + 1 WHERE tenant = ? AND id = ? AND status = 'pending' AND next_query_at_ms = ?",
        )
        .bind(next_ms)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .bind(seen_ms),
        pool,
    )
    .await
}

/// The idempotency claim of a create, written first. The database's own error is kept: a
/// unique violation means someone committed the key first.
pub(crate) async fn claim_key(
    tx: &mut AnyTx<'_>,
    payment: &Payment,
    record: &PaymentIdempotency,
) -> Result<(), WriteError> {
    sqlx::query(
        "INSERT INTO payment_idempotency (tenant, order_id, idem_key, request_hash, payment_id, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(payment.tenant.as_str())
    .bind(payment.order_id.as_i64())
    .bind(record.key.as_str())
    .bind(record.request_hash.as_str())
    .bind(payment.id.as_i64())
    .bind(unix_ms(payment.created_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The stored request hash and payment of a key, if it was committed.
pub(crate) async fn find_key(
    pool: &AnyPool,
    tenant: &TenantId,
    order_id: OrderId,
    key: &str,
) -> DomainResult<Option<(String, PaymentId)>> {
    let row = sqlx::query(
        "SELECT request_hash, payment_id FROM payment_idempotency WHERE tenant = ? AND order_id = ? AND idem_key = ?",
    )
    .bind(tenant.as_str())
    .bind(order_id.as_i64())
    .bind(key)
    .fetch_optional(pool)
    .await
    .map_err(convert)?;
    row.map(|row| {
        let (hash, id) = idempotency::claimed(&row, "payment_id")?;
        Ok((hash, PaymentId::from_raw(id).map_err(corrupt)?))
    })
    .transpose()
}

// ---------------------------------------------------------------------------------------------
// payment_refunds

fn decode_refund(row: &AnyRow) -> DomainResult<Refund> {
    let status = text(row, "status")?;
    Ok(Refund {
        tenant: TenantId::parse(text(row, "tenant")?).map_err(corrupt)?,
        id: RefundId::from_raw(unsigned(row, "id")?).map_err(corrupt)?,
        payment_id: PaymentId::from_raw(unsigned(row, "payment_id")?).map_err(corrupt)?,
        order_id: OrderId::from_raw(unsigned(row, "order_id")?).map_err(corrupt)?,
        refund_key: text(row, "refund_key")?,
        amount: Money::new(int(row, "amount")?, currency_of(row)?),
        status: RefundStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown refund status {status:?}")))?,
        reason: opt_text(row, "reason")?,
        attempts: count(row, "attempts")?,
        failures: count(row, "failures")?,
        failure: opt_text(row, "failure")?,
        next_query_at: opt_int(row, "next_query_at_ms")?
            .map(from_unix_ms)
            .transpose()?,
        created_at: from_unix_ms(int(row, "created_at_ms")?)?,
        updated_at: from_unix_ms(int(row, "updated_at_ms")?)?,
    })
}

pub(crate) static REFUND_TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "payment_refunds",
        Columns::of(&[
            "tenant",
            "id",
            "payment_id",
            "order_id",
            "refund_key",
            "currency",
            "amount",
            "status",
            "reason",
            "attempts",
            "failures",
            "failure",
            "next_query_at_ms",
            "created_at_ms",
            "updated_at_ms",
        ]),
    )
});

fn bind_refund<'q>(row: Binder<'q>, refund: &'q Refund) -> Binder<'q> {
    row.bind("tenant", refund.tenant.as_str())
        .bind("id", refund.id.as_i64())
        .bind("payment_id", refund.payment_id.as_i64())
        .bind("order_id", refund.order_id.as_i64())
        .bind("refund_key", refund.refund_key.as_str())
        .bind("currency", refund.amount.currency.code())
        .bind("amount", refund.amount.minor)
        .bind("status", refund.status.as_str())
        .bind("reason", refund.reason.as_deref())
        .bind("attempts", i64::from(refund.attempts))
        .bind("failures", i64::from(refund.failures))
        .bind("failure", refund.failure.as_deref())
        .bind("next_query_at_ms", refund.next_query_at.map(unix_ms))
        .bind("created_at_ms", unix_ms(refund.created_at))
        .bind("updated_at_ms", unix_ms(refund.updated_at))
}

/// The refund row, first in its transaction: a unique violation on (tenant, payment, key)
/// means the key was used before.
pub(crate) async fn insert_refund(tx: &mut AnyTx<'_>, refund: &Refund) -> Result<(), WriteError> {
    let sql = REFUND_TABLE.insert(1);
    bind_refund(REFUND_TABLE.binder(sqlx::query(&sql)), refund)
        .done()
        .execute(&mut **tx)
        .await?;
    Ok(())
}

static SELECT_REFUND: LazyLock<String> =
    LazyLock::new(|| REFUND_TABLE.select("WHERE tenant = ? AND id = ?"));
static SELECT_REFUND_BY_KEY: LazyLock<String> =
    LazyLock::new(|| REFUND_TABLE.select("WHERE tenant = ? AND payment_id = ? AND refund_key = ?"));
static SELECT_REFUNDS_OF_PAYMENT: LazyLock<String> =
    LazyLock::new(|| REFUND_TABLE.select("WHERE tenant = ? AND payment_id = ? ORDER BY id"));
static SELECT_REFUNDS_WITH_STATUS: LazyLock<String> = LazyLock::new(|| {
    REFUND_TABLE.select("WHERE tenant = ? AND status = ? ORDER BY id DESC LIMIT ?")
});
static SELECT_REFUNDS_DUE: LazyLock<String> = LazyLock::new(|| {
    REFUND_TABLE.select(
        "WHERE next_query_at_ms IS NOT NULL AND next_query_at_ms <= ? AND status = 'requested' ORDER BY next_query_at_ms LIMIT ?",
    )
});

/// Reserve `amount` on a succeeded payment of `currency` while what is left covers it.
pub(crate) async fn reserve_refund(tx: &mut AnyTx<'_>, refund: &Refund) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE payments SET refunded = refunded + ? WHERE tenant = ? AND id = ? AND status = 'succeeded' AND currency = ? AND refunded + ? <= captured",
        )
        .bind(refund.amount.minor)
        .bind(refund.tenant.as_str())
        .bind(refund.payment_id.as_i64())
        .bind(refund.amount.currency.code())
        .bind(refund.amount.minor),
        &mut **tx,
    )
    .await
}

pub(crate) async fn refund_by_key(
    pool: &AnyPool,
    tenant: &TenantId,
    payment_id: PaymentId,
    key: &str,
) -> DomainResult<Option<Refund>> {
    fetch_optional(
        sqlx::query(&SELECT_REFUND_BY_KEY)
            .bind(tenant.as_str())
            .bind(payment_id.as_i64())
            .bind(key),
        pool,
        decode_refund,
    )
    .await
}

/// `requested` → `status` (no further steps); whether this transaction moved it.
pub(crate) async fn settle_refund(
    tx: &mut AnyTx<'_>,
    tenant: &TenantId,
    id: RefundId,
    status: RefundStatus,
    failure: Option<&str>,
    attempt: u32,
    at_ms: i64,
) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE payment_refunds SET status = ?, failure = COALESCE(?, failure), attempts = CASE WHEN attempts < ? THEN ? ELSE attempts END, next_query_at_ms = NULL, updated_at_ms = ? WHERE tenant = ? AND id = ? AND status = 'requested'",
        )
        .bind(status.as_str())
        .bind(failure)
        .bind(i64::from(attempt))
        .bind(i64::from(attempt))
        .bind(at_ms)
        .bind(tenant.as_str())
        .bind(id.as_i64()),
        &mut **tx,
    )
    .await
}

/// Give a failed refund's reservation back.
pub(crate) async fn release_refund(tx: &mut AnyTx<'_>, refund: &Refund) -> DomainResult<()> {
    sqlx::query("UPDATE payments SET refunded = refunded - ? WHERE tenant = ? AND id = ?")
        .bind(refund.amount.minor)
        .bind(refund.tenant.as_str())
        .bind(refund.payment_id.as_i64())
        .execute(&mut **tx)
        .await
        .map_err(convert)?;
    Ok(())
}

pub(crate) async fn refunded(
    pool: &AnyPool,
    tenant: &TenantId,
    id: PaymentId,
) -> DomainResult<Option<(i64, i64)>> {
    let row = sqlx::query("SELECT refunded, captured FROM payments WHERE tenant = ? AND id = ?")
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .fetch_optional(pool)
        .await
        .map_err(convert)?;
    row.map(|row| Ok((int(&row, "refunded")?, int(&row, "captured")?)))
        .transpose()
}

/// A refund, read on a pool or inside a transaction (as that transaction sees it).
pub(crate) async fn get_refund(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    tenant: &TenantId,
    id: RefundId,
) -> DomainResult<Option<Refund>> {
    fetch_optional(
        sqlx::query(&SELECT_REFUND)
            .bind(tenant.as_str())
            .bind(id.as_i64()),
        executor,
        decode_refund,
    )
    .await
}

pub(crate) async fn refunds_of_payment(
    pool: &AnyPool,
    tenant: &TenantId,
    payment_id: PaymentId,
) -> DomainResult<Vec<Refund>> {
    fetch_all(
        sqlx::query(&SELECT_REFUNDS_OF_PAYMENT)
            .bind(tenant.as_str())
            .bind(payment_id.as_i64()),
        pool,
        decode_refund,
    )
    .await
}

pub(crate) async fn refunds_with_status(
    pool: &AnyPool,
    tenant: &TenantId,
    status: RefundStatus,
    limit: u32,
) -> DomainResult<Vec<Refund>> {
    fetch_all(
        sqlx::query(&SELECT_REFUNDS_WITH_STATUS)
            .bind(tenant.as_str())
            .bind(status.as_str())
            .bind(i64::from(limit)),
        pool,
        decode_refund,
    )
    .await
}

pub(crate) async fn refunds_due(
    pool: &AnyPool,
    now_ms: i64,
    limit: u32,
) -> DomainResult<Vec<Refund>> {
    fetch_all(
        sqlx::query(&SELECT_REFUNDS_DUE)
            .bind(now_ms)
            .bind(i64::from(limit)),
        pool,
        decode_refund,
    )
    .await
}

/// Move a refund's due step from `seen` to `next`, unless someone did first.
pub(crate) async fn claim_refund_step(
    pool: &AnyPool,
    tenant: &TenantId,
    id: RefundId,
    seen_ms: i64,
    next_ms: i64,
) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE payment_refunds SET next_query_at_ms = ? WHERE tenant = ? AND id = ? AND status = 'requested' AND next_query_at_ms = ?",
        )
        .bind(next_ms)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .bind(seen_ms),
        pool,
    )
    .await
}

/// Submission `attempt` accepted: only from no live attempt (`attempts = failures`).
pub(crate) async fn record_refund_attempt(
    pool: &AnyPool,
    tenant: &TenantId,
    id: RefundId,
    attempt: u32,
    at_ms: i64,
) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE payment_refunds SET attempts = ?, updated_at_ms = ? WHERE tenant = ? AND id = ? AND status = 'requested' AND attempts = ? AND failures = ?",
        )
        .bind(i64::from(attempt))
        .bind(at_ms)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .bind(i64::from(attempt) - 1)
        .bind(i64::from(attempt) - 1),
        pool,
    )
    .await
}

/// The live attempt `attempt` failed: only while it is the live one.
pub(crate) async fn record_refund_failure(
    pool: &AnyPool,
    tenant: &TenantId,
    id: RefundId,
    attempt: u32,
    failure: &str,
    next_ms: i64,
    at_ms: i64,
) -> DomainResult<bool> {
    moved_one(
        sqlx::query(
            "UPDATE payment_refunds SET failures = ?, failure = ?, next_query_at_ms = ?, updated_at_ms = ? WHERE tenant = ? AND id = ? AND status = 'requested' AND attempts = ? AND failures = ?",
        )
        .bind(i64::from(attempt))
        .bind(failure)
        .bind(next_ms)
        .bind(at_ms)
        .bind(tenant.as_str())
        .bind(id.as_i64())
        .bind(i64::from(attempt))
        .bind(i64::from(attempt) - 1),
        pool,
    )
    .await
}
