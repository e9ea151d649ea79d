-- Attachments (issue #17; docs/architecture.md, "Attachments"). The bytes live in R2 under
-- t/<tenant>/r/<room_id>/<id>; this table is the record of what was uploaded, by whom, and which
-- message (if any) uses it. A row is written after its object is stored, so a row without an
-- object means the object was lost later (sends check for that, see src/room/attachments.ts).
CREATE TABLE IF NOT EXISTS attachments (
  tenant     text        NOT NULL,
  room_id    text        NOT NULL,
  id         text        NOT NULL,
  user_id    text        NOT NULL,
  name       text        NOT NULL,
  type       text        NOT NULL,
  size       bigint      NOT NULL CHECK (size > 0),
  sha256     text        NOT NULL,
  width      integer,
  height     integer,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- The seq of the message that uses it, set by the room's commit statement in the same
  -- transaction as the message; NULL until then. An upload is bound at most once.
  bound_seq  bigint,
  PRIMARY KEY (tenant, room_id, id),
  -- A purge of the room removes its rows (the room object deletes the objects first).
  FOREIGN KEY (tenant, room_id) REFERENCES rooms (tenant, room_id) ON DELETE CASCADE
);

-- The sweep of uploads never bound (oldest first, across tenants), and a user's pending quota.
CREATE INDEX IF NOT EXISTS attachments_unbound ON attachments (created_at) WHERE bound_seq IS NULL;
CREATE INDEX IF NOT EXISTS attachments_pending_by_user ON attachments (tenant, room_id, user_id) WHERE bound_seq IS NULL;
-- A deleted message's attachments.
CREATE INDEX IF NOT EXISTS attachments_by_seq ON attachments (tenant, room_id, bound_seq) WHERE bound_seq IS NOT NULL;

-- A multipart message keeps its parts (JSON array) beside its summary `text`; NULL for plain text.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS parts jsonb;
