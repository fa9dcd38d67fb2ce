-- Every running server reports here (shard 0 by convention) the data-key version it seals
-- under per tenant, so `keys retire` can tell when no server writes under a version any more.

CREATE TABLE key_ring_reports (
    process_id VARCHAR(191) NOT NULL,
    description VARCHAR(512) NOT NULL,
    active_versions TEXT NOT NULL,
    active_since_ms BIGINT NOT NULL,
    settle_ms BIGINT NOT NULL,
    reported_at_ms BIGINT NOT NULL,
    PRIMARY KEY (process_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
