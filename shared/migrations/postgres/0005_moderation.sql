-- Live-event operations: a room's owner and slow mode, edited and deleted messages, moderators and
-- bans. All of it is projected from the log (room.created, room.updated, message.edited,
-- message.deleted, moderator.added/removed, user.banned/unbanned), so a rebuild fills these too.

-- The owner is the room's creator (created_by); their name as it was when they created it.
ALTER TABLE rooms ADD COLUMN owner_name TEXT NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN slow_mode_secs INTEGER NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN edited_at TIMESTAMPTZ;
-- A deleted message stays as a tombstone: history leaves it out, but a page cursor naming it still
-- resolves, and a late reaction on it is recognised and dropped.
ALTER TABLE messages ADD COLUMN deleted_at TIMESTAMPTZ;

CREATE TABLE moderators (
    room_id     UUID NOT NULL,
    user_id     UUID NOT NULL,
    since       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- One row per banned user and room; a later ban replaces it, an unban deletes it. An expired ban
-- stays until then but no longer counts (`until` is compared with the clock when it is read).
CREATE TABLE bans (
    room_id     UUID NOT NULL,
    user_id     UUID NOT NULL,
    -- NULL: until lifted.
    until       TIMESTAMPTZ,
    reason      TEXT NOT NULL,
    by_id       UUID NOT NULL,
    by_name     TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
