-- Combined return pickup (issue #20 item 5): the buyer's earliest pickup time of an
-- after-sale that sends goods back, the pickup that collects them and its waybill.
ALTER TABLE after_sales ADD COLUMN pickup_at_ms INTEGER;
ALTER TABLE after_sales ADD COLUMN pickup_id INTEGER;
ALTER TABLE after_sales ADD COLUMN waybill_no TEXT;
-- The worker's scan: approved after-sales without a pickup whose pickup time is near, by an
-- equality on status and pickup (NULL) and a range on the time.
CREATE INDEX idx_after_sales_pickup ON after_sales (status, pickup_id, pickup_at_ms);

-- One pickup per order and round (`seq`: 1, 2, … unique per order), written with the
-- after-sales it takes in one transaction. The carrier's idempotency key is derived from
-- (tenant, order_id, seq), so every call for a pickup sends the same key. No personal data
-- here: the buyer's contact is opened from the order at each call.
CREATE TABLE return_pickups (
    tenant TEXT NOT NULL,
    id INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    pickup_at_ms INTEGER NOT NULL,
    items TEXT NOT NULL,
    total_weight_grams INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER,
    waybill_no TEXT,
    carrier TEXT,
    last_error TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    CONSTRAINT chk_return_pickups_status CHECK (status IN ('pending', 'booked', 'skipped')),
    CONSTRAINT chk_return_pickups_counts CHECK (seq > 0 AND attempts >= 0 AND total_weight_grams >= 0)
) WITHOUT ROWID;
CREATE UNIQUE INDEX uk_return_pickups_seq ON return_pickups (tenant, order_id, seq);
CREATE INDEX idx_return_pickups_due ON return_pickups (status, next_attempt_at_ms);
