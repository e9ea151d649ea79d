-- Read cursors and exact unread counts (docs/architecture.md, "Read cursors and unread counts").
--
-- rooms.message_count: how many entries of kind 'message' the room holds and not deleted; it
-- changes in the commit statement (and when a message is deleted). read_cursors.read_count: how
-- many of those have seq <= read_seq. A user's unread count is then
--   message_count - read_count
-- with no scan of messages: a user's own messages never count, because a send moves the
-- sender's cursor to it in the same statement (so they are always <= read_seq); entries of other
-- kinds never touch either counter.
ALTER TABLE rooms ADD COLUMN IF NOT EXISTS message_count bigint NOT NULL DEFAULT 0;
UPDATE rooms r SET message_count = (
  SELECT count(*) FROM messages m WHERE m.tenant = r.tenant AND m.room_id = r.room_id AND m.kind = 'message'
);

CREATE TABLE IF NOT EXISTS read_cursors (
  tenant     text        NOT NULL,
  room_id    text        NOT NULL,
  user_id    text        NOT NULL,
  read_seq   bigint      NOT NULL CHECK (read_seq >= 0),
  read_count bigint      NOT NULL CHECK (read_count >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, room_id, user_id),
  FOREIGN KEY (tenant, room_id) REFERENCES rooms (tenant, room_id) ON DELETE CASCADE
);

-- User profiles, per tenant: shown next to a user's messages, presence and receipts.
CREATE TABLE IF NOT EXISTS profiles (
  tenant     text        NOT NULL,
  user_id    text        NOT NULL,
  name       text,
  avatar_url text,
  data       jsonb       NOT NULL DEFAULT '{}'::jsonb,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, user_id)
);

-- Members of rooms that existed before cursors: their history counts as read (there is no
-- record of what they saw), so nobody starts with a wrong, huge unread count.
INSERT INTO read_cursors (tenant, room_id, user_id, read_seq, read_count)
SELECT m.tenant, m.room_id, m.user_id, r.last_seq, r.message_count
FROM room_members m JOIN rooms r ON r.tenant = m.tenant AND r.room_id = m.room_id
ON CONFLICT DO NOTHING;
