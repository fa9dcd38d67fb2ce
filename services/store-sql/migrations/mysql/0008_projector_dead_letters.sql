-- Orders a read model refused (#13 item 1): the projector records one row per tenant, order
-- and read model and moves on, so one bad order does not stop projection for every tenant;
-- `ordercenter dead-letters list|replay` reads and clears them. In shard 0 by convention
-- (every shard has the table), like consumer_offsets.

CREATE TABLE projector_dead_letters (
    tenant_id VARCHAR(64) NOT NULL,
    order_id BIGINT NOT NULL,
    sink VARCHAR(16) NOT NULL,
    order_version BIGINT NOT NULL,
    error_code VARCHAR(32) NOT NULL,
    error_message VARCHAR(1024) NOT NULL,
    attempts INT NOT NULL,
    first_failed_at_ms BIGINT NOT NULL,
    last_failed_at_ms BIGINT NOT NULL,
    event_id VARCHAR(64) NULL,
    PRIMARY KEY (tenant_id, order_id, sink)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
