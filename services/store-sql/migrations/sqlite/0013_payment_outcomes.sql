-- Payment outcomes (issue #15 item 2): a payment the provider reports failed settles
-- `failed`, one that passes its expiry unpaid settles `expired`. Only the status CHECK widens.
-- SQLite cannot alter a CHECK, so the table is rebuilt (its documented procedure): a copy with
-- the wider CHECK under a `_rebuild` name, the rows copied column by column, the old table
-- dropped (with its indexes), the copy renamed, the indexes made again. No table references
-- `payments` by a foreign key, so no foreign-key handling is needed; the migrator runs the
-- statements in order on a shard nothing else uses yet (it runs before the store opens).
CREATE TABLE payments_rebuild (
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
    refunded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id),
    CONSTRAINT chk_payments_amount CHECK (amount > 0 AND captured >= 0),
    CONSTRAINT chk_payments_refunded CHECK (refunded >= 0 AND refunded <= captured),
    CONSTRAINT chk_payments_status CHECK (status IN ('pending', 'succeeded', 'mismatch', 'failed', 'expired')),
    CONSTRAINT chk_payments_effect CHECK (effect IN ('none', 'applied', 'refund_required'))
) WITHOUT ROWID;
INSERT INTO payments_rebuild (tenant, id, order_id, provider, currency, amount, status, effect, captured, reported_amount, reported_currency, provider_txn_id, pay_url, qr_payload, created_at_ms, updated_at_ms, expires_at_ms, paid_at_ms, next_query_at_ms, query_attempts, refunded)
    SELECT tenant, id, order_id, provider, currency, amount, status, effect, captured, reported_amount, reported_currency, provider_txn_id, pay_url, qr_payload, created_at_ms, updated_at_ms, expires_at_ms, paid_at_ms, next_query_at_ms, query_attempts, refunded FROM payments;
DROP TABLE payments;
ALTER TABLE payments_rebuild RENAME TO payments;
CREATE INDEX idx_payments_order ON payments (tenant, order_id);
CREATE INDEX idx_payments_due ON payments (next_query_at_ms);
-- Payments left pending past their last query by the code before this migration (its last
-- claim cleared next_query_at_ms): due again, so the active query settles them now.
UPDATE payments SET next_query_at_ms = expires_at_ms WHERE status = 'pending' AND next_query_at_ms IS NULL;
