-- Live-event operations: the same tables and columns as PostgreSQL's 0005_moderation.sql.

ALTER TABLE rooms ADD COLUMN owner_name TEXT NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN slow_mode_secs INTEGER NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN edited_at TEXT;
ALTER TABLE messages ADD COLUMN deleted_at TEXT;

CREATE TABLE moderators (
    room_id     BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    since       TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE bans (
    room_id     BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    until       TEXT,
    reason      TEXT NOT NULL,
    by_id       BLOB NOT NULL,
    by_name     TEXT NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
