-- The slot ledger: which field first wrote each extension slot of a tenant's order type
-- (#13 item 7). Every process checks its tenant config against it at start and at reload,
-- so a restart cannot re-map a slot that holds data. Each shard records the slots its own
-- orders wrote; a reader takes the union of the shards.

CREATE TABLE slot_ledger (
    tenant_id TEXT NOT NULL,
    business_identity TEXT NOT NULL,
    order_type TEXT NOT NULL,
    slot TEXT NOT NULL,
    field TEXT NOT NULL,
    field_type TEXT NOT NULL,
    encrypted INTEGER NOT NULL,
    first_written_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, business_identity, order_type, slot)
) WITHOUT ROWID;
