-- External references are unique per merchant (orders of no merchant share one namespace):
-- unique per tenant, a merchant key's 409 told it another merchant's reference existed.
-- merchant_scope maps "no merchant" to '' because a unique index lets NULLs repeat.

ALTER TABLE orders ADD COLUMN merchant_scope TEXT GENERATED ALWAYS AS (COALESCE(merchant_id, '')) VIRTUAL;
CREATE UNIQUE INDEX uk_orders_external_ref_merchant ON orders (tenant, merchant_scope, external_ref);
DROP INDEX uk_orders_external_ref;
