-- The forward flow (issue #14): the status history of every order, and stock (levels per
-- SKU, reservations of orders).
-- Stock rows live on the shard of the bucket of (tenant, sku), reservations beside them.

CREATE TABLE order_history (
    tenant VARCHAR(32) NOT NULL,
    order_id BIGINT NOT NULL,
    version BIGINT NOT NULL,
    from_status VARCHAR(64) NOT NULL,
    to_status VARCHAR(64) NOT NULL,
    event VARCHAR(64) NOT NULL,
    operator VARCHAR(128) NOT NULL,
    source_system VARCHAR(64) NOT NULL,
    reason TEXT NULL,
    data TEXT NULL,
    stock VARCHAR(16) NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, order_id, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE stock_levels (
    tenant VARCHAR(32) NOT NULL,
    sku VARCHAR(128) NOT NULL,
    bucket SMALLINT NOT NULL,
    available BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    sold BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, sku)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE stock_reservations (
    tenant VARCHAR(32) NOT NULL,
    order_id BIGINT NOT NULL,
    sku VARCHAR(128) NOT NULL,
    quantity BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, order_id, sku),
    KEY idx_reservations_expiry (tenant, state, expires_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
