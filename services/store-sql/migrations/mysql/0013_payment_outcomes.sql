-- Payment outcomes (issue #15 item 2): a payment the provider reports failed settles
-- `failed`, one that passes its expiry unpaid settles `expired`. Only the status CHECK widens;
-- MariaDB drops and re-adds a named CHECK in place.
ALTER TABLE payments DROP CONSTRAINT chk_payments_status;
ALTER TABLE payments ADD CONSTRAINT chk_payments_status CHECK (status IN ('pending', 'succeeded', 'mismatch', 'failed', 'expired'));
-- Payments left pending past their last query by the code before this migration (its last
-- claim cleared next_query_at_ms): due again, so the active query settles them now.
UPDATE payments SET next_query_at_ms = expires_at_ms WHERE status = 'pending' AND next_query_at_ms IS NULL;
