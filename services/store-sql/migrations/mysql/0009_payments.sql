-- Payments (issue #15): one row per payment record, in its order's shard (the payment id
-- carries the order's bucket), keyed by tenant like every table. The provider's word moves
-- `status` out of `pending` exactly once (a compare-and-set in the same transaction as the
-- order's `pay` transition); the CHECKs keep the columns to what the code can write.
CREATE TABLE payments (
    tenant VARCHAR(32) NOT NULL,
    id BIGINT NOT NULL,
    order_id BIGINT NOT NULL,
    provider VARCHAR(32) NOT NULL,
    currency CHAR(3) NOT NULL,
    amount BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL,
    effect VARCHAR(16) NOT NULL,
    captured BIGINT NOT NULL,
    reported_amount BIGINT NULL,
    reported_currency CHAR(3) NULL,
    provider_txn_id VARCHAR(128) NULL,
    pay_url VARCHAR(1024) NULL,
    qr_payload VARCHAR(1024) NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    paid_at_ms BIGINT NULL,
    next_query_at_ms BIGINT NULL,
    query_attempts INT NOT NULL,
    -- minor units reserved by refunds that did not fail (issue #15 item 5)
    refunded BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id),
    KEY idx_payments_order (tenant, order_id),
    -- the active query walks a shard without knowing its tenants
    KEY idx_payments_due (next_query_at_ms),
    CONSTRAINT chk_payments_amount CHECK (amount > 0 AND captured >= 0),
    -- the sum of refunds never above what was captured, whoever writes
    CONSTRAINT chk_payments_refunded CHECK (refunded >= 0 AND refunded <= captured),
    CONSTRAINT chk_payments_status CHECK (status IN ('pending', 'succeeded', 'mismatch')),
    CONSTRAINT chk_payments_effect CHECK (effect IN ('none', 'applied', 'refund_required'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A payment create's Idempotency-Key, scoped to tenant and order, written first in the
-- create's transaction so concurrent duplicates queue on its primary key.
CREATE TABLE payment_idempotency (
    tenant VARCHAR(32) NOT NULL,
    order_id BIGINT NOT NULL,
    idem_key VARCHAR(128) NOT NULL,
    request_hash CHAR(64) NOT NULL,
    payment_id BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, order_id, idem_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A refund of a captured payment: its amount is reserved on the payment's `refunded` in the
-- transaction that writes it (see chk_payments_refunded). One per (payment, refund key).
CREATE TABLE payment_refunds (
    tenant VARCHAR(32) NOT NULL,
    id BIGINT NOT NULL,
    payment_id BIGINT NOT NULL,
    order_id BIGINT NOT NULL,
    refund_key VARCHAR(128) NOT NULL,
    currency CHAR(3) NOT NULL,
    amount BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE KEY uq_refund_key (tenant, payment_id, refund_key),
    CONSTRAINT chk_refunds_amount CHECK (amount > 0),
    CONSTRAINT chk_refunds_status CHECK (status IN ('requested', 'succeeded', 'failed'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
