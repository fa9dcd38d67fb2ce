-- Orders a read model refused (#13 item 1): the projector records one row per tenant, order
-- and read model and moves on, so one bad order does not stop projection for every tenant;
-- `ordercenter dead-letters list|replay` reads and clears them. In shard 0 by convention
-- (every shard has the table), like consumer_offsets.

CREATE TABLE projector_dead_letters (
    tenant_id TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    sink TEXT NOT NULL,
    order_version INTEGER NOT NULL,
    error_code TEXT NOT NULL,
    error_message TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failed_at_ms INTEGER NOT NULL,
    last_failed_at_ms INTEGER NOT NULL,
    event_id TEXT,
    PRIMARY KEY (tenant_id, order_id, sink)
) WITHOUT ROWID;
