-- The forward flow (issue #14): the status history of every order, and stock (levels per
-- SKU, reservations of orders).
-- Stock rows live on the shard of the bucket of (tenant, sku), reservations beside them.

CREATE TABLE order_history (
    tenant TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    event TEXT NOT NULL,
    operator TEXT NOT NULL,
    source_system TEXT NOT NULL,
    reason TEXT NULL,
    data TEXT NULL,
    stock TEXT NOT NULL,
    occurred_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, order_id, version)
) WITHOUT ROWID;

CREATE TABLE stock_levels (
    tenant TEXT NOT NULL,
    sku TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    available INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    sold INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, sku)
) WITHOUT ROWID;

CREATE TABLE stock_reservations (
    tenant TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    state TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, order_id, sku)
) WITHOUT ROWID;
CREATE INDEX idx_reservations_expiry ON stock_reservations (tenant, state, expires_at_ms);
