-- Combined return pickup (issue #20 item 5): the buyer's earliest pickup time of an
-- after-sale that sends goods back, the pickup that collects them and its waybill.
ALTER TABLE after_sales ADD COLUMN pickup_at_ms BIGINT NULL;
ALTER TABLE after_sales ADD COLUMN pickup_id BIGINT NULL;
ALTER TABLE after_sales ADD COLUMN waybill_no VARCHAR(64) NULL;
-- The worker's scan: approved after-sales without a pickup whose pickup time is near, by an
-- equality on status and pickup (NULL) and a range on the time.
CREATE INDEX idx_after_sales_pickup ON after_sales (status, pickup_id, pickup_at_ms);

-- One pickup per order and round (`seq`: 1, 2, … unique per order), written with the
-- after-sales it takes in one transaction. The carrier's idempotency key is derived from
-- (tenant, order_id, seq), so every call for a pickup sends the same key. No personal data
-- here: the buyer's contact is opened from the order at each call.
CREATE TABLE return_pickups (
    tenant VARCHAR(32) NOT NULL,
    id BIGINT NOT NULL,
    order_id BIGINT NOT NULL,
    seq INT NOT NULL,
    status VARCHAR(16) NOT NULL,
    pickup_at_ms BIGINT NOT NULL,
    items TEXT NOT NULL,
    total_weight_grams BIGINT NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NULL,
    waybill_no VARCHAR(64) NULL,
    carrier VARCHAR(64) NULL,
    last_error VARCHAR(512) NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE KEY uk_return_pickups_seq (tenant, order_id, seq),
    KEY idx_return_pickups_due (status, next_attempt_at_ms),
    CONSTRAINT chk_return_pickups_status CHECK (status IN ('pending', 'booked', 'skipped')),
    CONSTRAINT chk_return_pickups_counts CHECK (seq > 0 AND attempts >= 0 AND total_weight_grams >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
