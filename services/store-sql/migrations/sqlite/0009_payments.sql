-- Payments (issue #15): one row per payment record, in its order's shard (the payment id
-- carries the order's bucket), keyed by tenant like every table. The provider's word moves
-- `status` out of `pending` exactly once (a compare-and-set in the same transaction as the
-- order's `pay` transition); the CHECKs keep the columns to what the code can write.
CREATE TABLE payments (
    tenant TEXT NOT NULL,
    id INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    provider TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL,
    status TEXT NOT NULL,
    effect TEXT NOT NULL,
    captured INTEGER NOT NULL,
    reported_amount INTEGER,
    reported_currency TEXT,
    provider_txn_id TEXT,
    pay_url TEXT,
    qr_payload TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    paid_at_ms INTEGER,
    next_query_at_ms INTEGER,
    query_attempts INTEGER NOT NULL,
    -- minor units reserved by refunds that did not fail (issue #15 item 5)
    refunded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id),
    CONSTRAINT chk_payments_amount CHECK (amount > 0 AND captured >= 0),
    -- the sum of refunds never above what was captured, whoever writes
    CONSTRAINT chk_payments_refunded CHECK (refunded >= 0 AND refunded <= captured),
    CONSTRAINT chk_payments_status CHECK (status IN ('pending', 'succeeded', 'mismatch')),
    CONSTRAINT chk_payments_effect CHECK (effect IN ('none', 'applied', 'refund_required'))
) WITHOUT ROWID;
CREATE INDEX idx_payments_order ON payments (tenant, order_id);
-- the active query walks a shard without knowing its tenants
CREATE INDEX idx_payments_due ON payments (next_query_at_ms);

-- A payment create's Idempotency-Key, scoped to tenant and order, written first in the
-- create's transaction so concurrent duplicates queue on its primary key.
CREATE TABLE payment_idempotency (
    tenant TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    payment_id INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, order_id, idem_key)
) WITHOUT ROWID;

-- A refund of a captured payment: its amount is reserved on the payment's `refunded` in the
-- transaction that writes it (see chk_payments_refunded). One per (payment, refund key).
CREATE TABLE payment_refunds (
    tenant TEXT NOT NULL,
    id INTEGER NOT NULL,
    payment_id INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    refund_key TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    CONSTRAINT chk_refunds_amount CHECK (amount > 0),
    CONSTRAINT chk_refunds_status CHECK (status IN ('requested', 'succeeded', 'failed'))
) WITHOUT ROWID;
CREATE UNIQUE INDEX uq_refund_key ON payment_refunds (tenant, payment_id, refund_key);
