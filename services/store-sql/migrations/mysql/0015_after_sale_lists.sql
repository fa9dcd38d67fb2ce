-- After-sale lists (issue #20 item 6): when the search index is unavailable, a list is
-- answered by every shard, newest first (`created_at_ms DESC, id DESC`) past a keyset cursor;
-- this index serves that order and the creation-time filter without sorting the tenant's rows.
CREATE INDEX idx_after_sales_created ON after_sales (tenant, created_at_ms, id);
