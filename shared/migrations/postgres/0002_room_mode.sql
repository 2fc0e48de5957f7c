-- The room's fetch mode as last announced by the hot-room scheduler, so that an SSE client that
-- subscribes while a room is hot learns it at once.
ALTER TABLE rooms ADD COLUMN mode TEXT NOT NULL DEFAULT 'normal';
