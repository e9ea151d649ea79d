-- The room's one stream: every seq is an entry with a kind (src/protocol/frames.ts EntryKind).
-- Rows written before kinds existed are messages. The table keeps its name: consumers and
-- operators query `messages`, and a message is still the common case.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'message';
