-- After-sales (issue #20): applications against an order, in the order's shard (the
-- after-sale id carries the order's bucket), keyed by tenant like every table.
CREATE TABLE after_sales (
    tenant TEXT NOT NULL,
    id INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    applicant TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    appealed INTEGER NOT NULL,
    reason TEXT,
    currency TEXT NOT NULL,
    refund_amount INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    CONSTRAINT chk_after_sales_kind CHECK (kind IN ('refund_only', 'return_and_refund', 'exchange', 'repair')),
    CONSTRAINT chk_after_sales_channel CHECK (channel IN ('user', 'merchant', 'customer_service')),
    CONSTRAINT chk_after_sales_reviewer CHECK (reviewer IN ('none', 'merchant', 'customer_service')),
    CONSTRAINT chk_after_sales_appealed CHECK (appealed IN (0, 1)),
    CONSTRAINT chk_after_sales_amount CHECK (refund_amount >= 0)
) WITHOUT ROWID;
CREATE INDEX idx_after_sales_order ON after_sales (tenant, order_id);

-- The units of one order line an after-sale covers, and what they were paid (from the
-- order's split, fixed when the after-sale was applied).
CREATE TABLE after_sale_lines (
    tenant TEXT NOT NULL,
    after_sale_id INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    sku TEXT NOT NULL,
    promotion_type TEXT,
    unit_price INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (tenant, after_sale_id, line_no),
    CONSTRAINT chk_after_sale_lines CHECK (quantity > 0 AND amount >= 0)
) WITHOUT ROWID;

CREATE TABLE after_sale_history (
    tenant TEXT NOT NULL,
    after_sale_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    event TEXT NOT NULL,
    channel TEXT NOT NULL,
    operator TEXT NOT NULL,
    reason TEXT,
    occurred_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, after_sale_id, version)
) WITHOUT ROWID;

-- Units under after-sale, per order line (issue #20 item 2): what was bought and what its
-- units refund together (copied from the order line's stored payable the first time the
-- line is applied for), the units and amount held by live after-sales and those returned
-- for good. An application holds its units by an update that only matches while
-- `held + returned + asked <= bought`, in its own transaction; the CHECKs hold the same rule
-- whoever writes, so concurrent applications from any channel cannot take one unit twice.
CREATE TABLE after_sale_units (
    tenant TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    bought INTEGER NOT NULL,
    currency TEXT NOT NULL,
    refundable INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    held_amount INTEGER NOT NULL DEFAULT 0,
    returned INTEGER NOT NULL DEFAULT 0,
    returned_amount INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, order_id, line_no),
    CONSTRAINT chk_after_sale_units_count CHECK (held >= 0 AND returned >= 0 AND held + returned <= bought),
    CONSTRAINT chk_after_sale_units_amount CHECK (held_amount >= 0 AND returned_amount >= 0 AND held_amount + returned_amount <= refundable)
) WITHOUT ROWID;

-- The refund an after-sale issued: at most one per after-sale, by its primary key (seed 000
-- used a lock per after-sale; a unique key cannot expire).
CREATE TABLE after_sale_refunds (
    tenant TEXT NOT NULL,
    after_sale_id INTEGER NOT NULL,
    refund_id INTEGER NOT NULL,
    payment_id INTEGER NOT NULL,
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, after_sale_id),
    CONSTRAINT chk_after_sale_refunds CHECK (amount >= 0)
) WITHOUT ROWID;
