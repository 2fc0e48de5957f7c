-- `GET /api/rooms` pages through rooms in creation order (keyset: after a room's created_at and id).
CREATE INDEX rooms_by_creation ON rooms (created_at, id);
