-- Order Center shard schema, MySQL/MariaDB. Identical on every shard.
-- Times are Unix milliseconds (BIGINT) so that both dialects store them the same way.
-- Money columns are BIGINT minor units. ext_01..ext_20 hold the tagged JSON of a typed
-- (or sealed) extension value; their meaning comes from tenant config.

CREATE TABLE orders (
    tenant VARCHAR(32) NOT NULL,
    id BIGINT NOT NULL,
    bucket SMALLINT NOT NULL,
    buyer_id VARCHAR(128) NOT NULL,
    merchant_id VARCHAR(128) NULL,
    business_identity VARCHAR(64) NOT NULL,
    order_type VARCHAR(64) NOT NULL,
    status VARCHAR(64) NOT NULL,
    version BIGINT NOT NULL,
    currency CHAR(3) NOT NULL,
    goods_total BIGINT NOT NULL,
    discount_total BIGINT NOT NULL,
    freight BIGINT NOT NULL,
    payable BIGINT NOT NULL,
    external_ref VARCHAR(128) NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    pay_deadline_ms BIGINT NULL,
    body MEDIUMTEXT NOT NULL,
    ext_01 TEXT NULL,
    ext_02 TEXT NULL,
    ext_03 TEXT NULL,
    ext_04 TEXT NULL,
    ext_05 TEXT NULL,
    ext_06 TEXT NULL,
    ext_07 TEXT NULL,
    ext_08 TEXT NULL,
    ext_09 TEXT NULL,
    ext_10 TEXT NULL,
    ext_11 TEXT NULL,
    ext_12 TEXT NULL,
    ext_13 TEXT NULL,
    ext_14 TEXT NULL,
    ext_15 TEXT NULL,
    ext_16 TEXT NULL,
    ext_17 TEXT NULL,
    ext_18 TEXT NULL,
    ext_19 TEXT NULL,
    ext_20 TEXT NULL,
    PRIMARY KEY (tenant, id),
    KEY idx_orders_buyer (tenant, buyer_id, id),
    KEY idx_orders_bucket (bucket, id),
    KEY idx_orders_deadline (tenant, status, pay_deadline_ms),
    UNIQUE KEY uk_orders_external_ref (tenant, external_ref)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE order_lines (
    tenant VARCHAR(32) NOT NULL,
    order_id BIGINT NOT NULL,
    line_no INT NOT NULL,
    sku VARCHAR(128) NOT NULL,
    product_name VARCHAR(512) NOT NULL,
    quantity INT NOT NULL,
    unit_price BIGINT NOT NULL,
    unit_weight_grams INT NULL,
    promotion_type VARCHAR(64) NULL,
    payable BIGINT NOT NULL,
    ext_01 TEXT NULL,
    ext_02 TEXT NULL,
    ext_03 TEXT NULL,
    ext_04 TEXT NULL,
    ext_05 TEXT NULL,
    ext_06 TEXT NULL,
    ext_07 TEXT NULL,
    ext_08 TEXT NULL,
    ext_09 TEXT NULL,
    ext_10 TEXT NULL,
    ext_11 TEXT NULL,
    ext_12 TEXT NULL,
    ext_13 TEXT NULL,
    ext_14 TEXT NULL,
    ext_15 TEXT NULL,
    ext_16 TEXT NULL,
    ext_17 TEXT NULL,
    ext_18 TEXT NULL,
    ext_19 TEXT NULL,
    ext_20 TEXT NULL,
    PRIMARY KEY (tenant, order_id, line_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE order_identifiers (
    tenant VARCHAR(32) NOT NULL,
    order_id BIGINT NOT NULL,
    domain VARCHAR(16) NOT NULL,
    line_no INT NOT NULL,
    id_key VARCHAR(64) NOT NULL,
    id_value VARCHAR(512) NOT NULL,
    PRIMARY KEY (tenant, order_id, domain, line_no, id_key),
    KEY idx_identifiers_lookup (tenant, domain, id_key, id_value(64))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE outbox (
    seq BIGINT NOT NULL AUTO_INCREMENT,
    tenant VARCHAR(32) NOT NULL,
    order_id BIGINT NOT NULL,
    version BIGINT NOT NULL,
    payload TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    published_at_ms BIGINT NULL,
    PRIMARY KEY (seq),
    KEY idx_outbox_pending (published_at_ms, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE idempotency (
    tenant VARCHAR(32) NOT NULL,
    buyer_id VARCHAR(128) NOT NULL,
    idem_key VARCHAR(128) NOT NULL,
    request_hash CHAR(64) NOT NULL,
    order_id BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, buyer_id, idem_key),
    KEY idx_idempotency_age (created_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
