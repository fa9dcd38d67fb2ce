-- The scheduler (issue #14): the timeout worker and the reservation sweeper walk every shard
-- without knowing its tenants, so their indexes lead with what they look for.
-- A payment deadline is set only while an order waits in its state machine's first state
-- (a transition out of it clears it), so the deadline alone finds the due orders; the
-- index of 0001 on (tenant, status, pay_deadline_ms) needs the tenant first.
CREATE INDEX idx_orders_due ON orders (pay_deadline_ms);
-- Reservations still `reserved` past their expiry, of any tenant (0006's index leads with
-- the tenant).
CREATE INDEX idx_reservations_due ON stock_reservations (state, expires_at_ms);
