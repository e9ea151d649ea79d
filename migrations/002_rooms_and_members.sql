-- Rooms become explicit (created through the API, or on first use where a tenant opts in),
-- with a visibility, a name, custom metadata, and members with roles.
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS visibility text NOT NULL DEFAULT 'public'
  CHECK (visibility IN ('public', 'private'));
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS name text;
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS created_by text;
-- Set when a room is deleted with its history kept: the room is gone for every API, the
-- messages stay for the operator.
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS deleted_at timestamptz;

CREATE TABLE IF NOT EXISTS room_members (
  tenant    text        NOT NULL,
  room_id   text        NOT NULL,
  user_id   text        NOT NULL,
  role      text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
  joined_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, room_id, user_id),
  FOREIGN KEY (tenant, room_id) REFERENCES rooms (tenant, room_id) ON DELETE CASCADE
);

-- "The rooms a user belongs to" is a per-user lookup.
CREATE INDEX IF NOT EXISTS room_members_by_user ON room_members (tenant, user_id);
