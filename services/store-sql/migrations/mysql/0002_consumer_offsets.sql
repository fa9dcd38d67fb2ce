-- Read-model consumers keep their bus positions here (shard 0 by convention), so a restarted
-- consumer resumes instead of replaying the whole topic.

CREATE TABLE consumer_offsets (
    group_id VARCHAR(128) NOT NULL,
    topic VARCHAR(255) NOT NULL,
    partition_id INT NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
