-- The slot ledger: which field first wrote each extension slot of a tenant's order type
-- (#13 item 7). Every process checks its tenant config against it at start and at reload,
-- so a restart cannot re-map a slot that holds data. Each shard records the slots its own
-- orders wrote; a reader takes the union of the shards.

CREATE TABLE slot_ledger (
    tenant_id VARCHAR(64) NOT NULL,
    business_identity VARCHAR(64) NOT NULL,
    order_type VARCHAR(64) NOT NULL,
    slot VARCHAR(191) NOT NULL,
    field VARCHAR(128) NOT NULL,
    field_type VARCHAR(16) NOT NULL,
    encrypted INT NOT NULL,
    first_written_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, business_identity, order_type, slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
