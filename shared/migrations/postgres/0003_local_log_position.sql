-- How far the embedded (in-process) event log has been projected, written in the same transaction as
-- the projection. Unused when the events come from Kafka (the projector's group offsets say it).
CREATE TABLE local_log_position (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    next_offset BIGINT NOT NULL
);
