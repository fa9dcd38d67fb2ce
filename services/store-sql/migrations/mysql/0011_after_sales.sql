-- After-sales (issue #20): applications against an order, in the order's shard (the
-- after-sale id carries the order's bucket), keyed by tenant like every table.
CREATE TABLE after_sales (
    tenant VARCHAR(32) NOT NULL,
    id BIGINT NOT NULL,
    order_id BIGINT NOT NULL,
    kind VARCHAR(32) NOT NULL,
    channel VARCHAR(32) NOT NULL,
    applicant VARCHAR(128) NOT NULL,
    reviewer VARCHAR(32) NOT NULL,
    status VARCHAR(64) NOT NULL,
    version BIGINT NOT NULL,
    appealed SMALLINT NOT NULL,
    reason VARCHAR(512) NULL,
    currency CHAR(3) NOT NULL,
    refund_amount BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    KEY idx_after_sales_order (tenant, order_id),
    CONSTRAINT chk_after_sales_kind CHECK (kind IN ('refund_only', 'return_and_refund', 'exchange', 'repair')),
    CONSTRAINT chk_after_sales_channel CHECK (channel IN ('user', 'merchant', 'customer_service')),
    CONSTRAINT chk_after_sales_reviewer CHECK (reviewer IN ('none', 'merchant', 'customer_service')),
    CONSTRAINT chk_after_sales_appealed CHECK (appealed IN (0, 1)),
    CONSTRAINT chk_after_sales_amount CHECK (refund_amount >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The units of one order line an after-sale covers, and what they were paid (from the
-- order's split, fixed when the after-sale was applied).
CREATE TABLE after_sale_lines (
    tenant VARCHAR(32) NOT NULL,
    after_sale_id BIGINT NOT NULL,
    line_no INT NOT NULL,
    sku VARCHAR(64) NOT NULL,
    promotion_type VARCHAR(64) NULL,
    unit_price BIGINT NOT NULL,
    quantity INT NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (tenant, after_sale_id, line_no),
    CONSTRAINT chk_after_sale_lines CHECK (quantity > 0 AND amount >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE after_sale_history (
    tenant VARCHAR(32) NOT NULL,
    after_sale_id BIGINT NOT NULL,
    version BIGINT NOT NULL,
    from_status VARCHAR(64) NULL,
    to_status VARCHAR(64) NOT NULL,
    event VARCHAR(64) NOT NULL,
    channel VARCHAR(32) NOT NULL,
    operator VARCHAR(128) NOT NULL,
    reason VARCHAR(512) NULL,
    occurred_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, after_sale_id, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Units under after-sale, per order line (issue #20 item 2): what was bought and what its
-- units refund together (copied from the order line's stored payable the first time the
-- line is applied for), the units and amount held by live after-sales and those returned
-- for good. An application holds its units by an update that only matches while
-- `held + returned + asked <= bought`, in its own transaction; the CHECKs hold the same rule
-- whoever writes, so concurrent applications from any channel cannot take one unit twice.
CREATE TABLE after_sale_units (
    tenant VARCHAR(32) NOT NULL,
    order_id BIGINT NOT NULL,
    line_no INT NOT NULL,
    bought INT NOT NULL,
    currency CHAR(3) NOT NULL,
    refundable BIGINT NOT NULL,
    held INT NOT NULL DEFAULT 0,
    held_amount BIGINT NOT NULL DEFAULT 0,
    returned INT NOT NULL DEFAULT 0,
    returned_amount BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, order_id, line_no),
    CONSTRAINT chk_after_sale_units_count CHECK (held >= 0 AND returned >= 0 AND held + returned <= bought),
    CONSTRAINT chk_after_sale_units_amount CHECK (held_amount >= 0 AND returned_amount >= 0 AND held_amount + returned_amount <= refundable)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The refund an after-sale issued: at most one per after-sale, by its primary key (seed 000
-- used a lock per after-sale; a unique key cannot expire).
CREATE TABLE after_sale_refunds (
    tenant VARCHAR(32) NOT NULL,
    after_sale_id BIGINT NOT NULL,
    refund_id BIGINT NOT NULL,
    payment_id BIGINT NOT NULL,
    currency CHAR(3) NOT NULL,
    amount BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, after_sale_id),
    CONSTRAINT chk_after_sale_refunds CHECK (amount >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
