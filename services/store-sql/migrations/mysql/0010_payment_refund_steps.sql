-- Refunds at the provider (issue #15 item 5): a refund's attempts at the provider, the
-- attempts it reported failed, its last failure reason, and when the active query worker
-- submits or queries it next (NULL once it is settled).
ALTER TABLE payment_refunds ADD COLUMN reason VARCHAR(512) NULL;
ALTER TABLE payment_refunds ADD COLUMN attempts INT NOT NULL DEFAULT 0;
ALTER TABLE payment_refunds ADD COLUMN failures INT NOT NULL DEFAULT 0;
ALTER TABLE payment_refunds ADD COLUMN failure VARCHAR(512) NULL;
ALTER TABLE payment_refunds ADD COLUMN next_query_at_ms BIGINT NULL;
-- the worker walks a shard without knowing its tenants
CREATE INDEX idx_refunds_due ON payment_refunds (next_query_at_ms);
-- the manual-handling list: a tenant's failed refunds, newest first
CREATE INDEX idx_refunds_status ON payment_refunds (tenant, status, id);
