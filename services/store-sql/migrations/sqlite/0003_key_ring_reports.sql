-- Every running server reports here (shard 0 by convention) the data-key version it seals
-- under per tenant, so `keys retire` can tell when no server writes under a version any more.

CREATE TABLE key_ring_reports (
    process_id TEXT NOT NULL,
    description TEXT NOT NULL,
    active_versions TEXT NOT NULL,
    active_since_ms INTEGER NOT NULL,
    settle_ms INTEGER NOT NULL,
    reported_at_ms INTEGER NOT NULL,
    PRIMARY KEY (process_id)
) WITHOUT ROWID;
