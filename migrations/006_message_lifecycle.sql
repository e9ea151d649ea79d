-- Message lifecycle (docs/protocol.md, "Changing messages"): edits, deletes, reactions, replies
-- and system events are entries of the one stream (their own seq, their own row in `messages`);
-- the message they change is also updated in place, in the same transaction, so every read serves
-- its current form.
--
-- Columns of every entry:
--   target    the seq of the message an edit, delete or reaction changes
--   reply_to  for a reply: the seq of its thread's parent
--   data      what the kind adds to the envelope (edit: version; delete: redacts; reaction:
--             emoji, remove, count; system: event, subject, role, changes), as JSON
-- Columns of a message's current form:
--   edited_at, version         set by edits (version = number of edits)
--   deleted                    a tombstone: text is '' (and every edit of it has text '')
--   reply_count, last_reply_seq  for a thread's parent
--   updated_seq                the seq of the last change applied (lifecycle.ts: convergence)
ALTER TABLE messages ADD COLUMN IF NOT EXISTS target bigint;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS reply_to bigint;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS data jsonb;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS edited_at timestamptz;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS deleted boolean NOT NULL DEFAULT false;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS reply_count integer NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS last_reply_seq bigint;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS updated_seq bigint;

-- A thread is paged by its parent; a delete finds the edits whose text it must remove.
CREATE INDEX IF NOT EXISTS messages_by_thread ON messages (tenant, room_id, reply_to, seq) WHERE reply_to IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_target ON messages (tenant, room_id, target) WHERE target IS NOT NULL;

-- The current reactions: one row per (message, emoji, user), so a reaction is idempotent per
-- user and the counts are exact (a count is the number of rows).
CREATE TABLE IF NOT EXISTS reactions (
  tenant     text        NOT NULL,
  room_id    text        NOT NULL,
  target_seq bigint      NOT NULL,
  emoji      text        NOT NULL,
  user_id    text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, room_id, target_seq, emoji, user_id),
  FOREIGN KEY (tenant, room_id) REFERENCES rooms (tenant, room_id) ON DELETE CASCADE
);
