-- The read model: a projection of the event topic, rebuildable by replaying it.

CREATE TABLE rooms (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    created_by  UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE messages (
    id          UUID PRIMARY KEY,
    room_id     UUID NOT NULL,
    user_id     UUID NOT NULL,
    user_name   TEXT NOT NULL,
    text        TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    -- The event's offset in its partition. A room lives on one partition, so this orders its messages
    -- exactly as the log does, and a replay writes the same value again.
    seq         BIGINT NOT NULL
);
CREATE INDEX messages_room_seq ON messages (room_id, seq);

-- Who reacted with what: a set, so a duplicate add or a remove of nothing changes no count.
CREATE TABLE reactions (
    message_id  UUID NOT NULL,
    emoji       TEXT NOT NULL,
    user_id     UUID NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- Events already projected: a redelivered or replayed event is recognised and skipped.
CREATE TABLE applied_events (
    event_id    UUID PRIMARY KEY
);
