-- The archive (issue #16): the worker looks, per tenant and terminal status, for the orders
-- last changed before the tenant's hot window, oldest first; this index answers that page
-- (and its cursor on (updated_at_ms, id)) without a sort.
CREATE INDEX idx_orders_archive ON orders (tenant, status, updated_at_ms, id);
