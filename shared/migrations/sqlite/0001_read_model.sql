-- The read model in SQLite (the embedded mode): the same tables as in PostgreSQL. Ids are 16-byte
-- UUID blobs, times RFC 3339 text.

CREATE TABLE rooms (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    created_by  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    mode        TEXT NOT NULL DEFAULT 'normal'
);

CREATE TABLE messages (
    id          BLOB PRIMARY KEY,
    room_id     BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    user_name   TEXT NOT NULL,
    text        TEXT NOT NULL,
    at          TEXT NOT NULL,
    seq         INTEGER NOT NULL
);
CREATE INDEX messages_room_seq ON messages (room_id, seq);

CREATE TABLE reactions (
    message_id  BLOB NOT NULL,
    emoji       TEXT NOT NULL,
    user_id     BLOB NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

CREATE TABLE applied_events (
    event_id    BLOB PRIMARY KEY
);

CREATE TABLE local_log_position (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    next_offset INTEGER NOT NULL
);
