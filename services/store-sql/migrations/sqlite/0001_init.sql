-- Order Center shard schema, SQLite (single-node mode). Same tables, columns and keys as
-- migrations/mysql: the conformance suite holds both adapters to the same behaviour.

CREATE TABLE orders (
    tenant TEXT NOT NULL,
    id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    buyer_id TEXT NOT NULL,
    merchant_id TEXT NULL,
    business_identity TEXT NOT NULL,
    order_type TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    currency TEXT NOT NULL,
    goods_total INTEGER NOT NULL,
    discount_total INTEGER NOT NULL,
    freight INTEGER NOT NULL,
    payable INTEGER NOT NULL,
    external_ref TEXT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    pay_deadline_ms INTEGER NULL,
    body TEXT NOT NULL,
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
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX idx_orders_buyer ON orders (tenant, buyer_id, id);
CREATE INDEX idx_orders_bucket ON orders (bucket, id);
CREATE INDEX idx_orders_deadline ON orders (tenant, status, pay_deadline_ms);
CREATE UNIQUE INDEX uk_orders_external_ref ON orders (tenant, external_ref);

CREATE TABLE order_lines (
    tenant TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    sku TEXT NOT NULL,
    product_name TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price INTEGER NOT NULL,
    unit_weight_grams INTEGER NULL,
    promotion_type TEXT NULL,
    payable INTEGER NOT NULL,
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
) WITHOUT ROWID;

CREATE TABLE order_identifiers (
    tenant TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    domain TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    id_key TEXT NOT NULL,
    id_value TEXT NOT NULL,
    PRIMARY KEY (tenant, order_id, domain, line_no, id_key)
) WITHOUT ROWID;
CREATE INDEX idx_identifiers_lookup ON order_identifiers (tenant, domain, id_key, id_value);

CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    published_at_ms INTEGER NULL
);
CREATE INDEX idx_outbox_pending ON outbox (published_at_ms, seq);

CREATE TABLE idempotency (
    tenant TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, buyer_id, idem_key)
) WITHOUT ROWID;
CREATE INDEX idx_idempotency_age ON idempotency (created_at_ms);
