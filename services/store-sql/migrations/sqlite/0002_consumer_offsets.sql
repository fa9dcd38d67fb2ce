-- Read-model consumers keep their bus positions here (shard 0 by convention), so a restarted
-- consumer resumes instead of replaying the whole topic.

CREATE TABLE consumer_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
) WITHOUT ROWID;
