-- How far the projector has written each partition of the event log: every record before
-- next_offset is in the tables above. It is written in the same transaction as the records, so it
-- never claims more than is there; the live hub reads it to know whether a read of a message's
-- reactions is recent enough to seed its counts. (It replaces the embedded log's own position: the
-- embedded log keeps its consumer groups' positions itself now.)
DROP TABLE IF EXISTS local_log_position;

CREATE TABLE projected_positions (
    partition   INTEGER PRIMARY KEY,
    next_offset BIGINT NOT NULL
);
