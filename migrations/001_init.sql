-- Rooms: one row per (tenant, room). `last_seq` is the room's committed high-water mark and
-- `writer_epoch` fences stale Durable Object instances (see docs/architecture.md, "Fencing").
CREATE TABLE IF NOT EXISTS rooms (
  tenant       text        NOT NULL,
  room_id      text        NOT NULL,
  last_seq     bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
  writer_epoch bigint      NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, room_id)
);

-- Messages: the durable record. (tenant, room_id, seq) is the order and forbids a seq being
-- used twice; (tenant, room_id, user_id, client_msg_id) makes a resent message a no-op.
CREATE TABLE IF NOT EXISTS messages (
  tenant        text        NOT NULL,
  room_id       text        NOT NULL,
  seq           bigint      NOT NULL CHECK (seq > 0),
  id            text        NOT NULL,
  user_id       text        NOT NULL,
  client_msg_id text        NOT NULL,
  text          text        NOT NULL,
  created_at    timestamptz NOT NULL,
  PRIMARY KEY (tenant, room_id, seq),
  UNIQUE (tenant, room_id, user_id, client_msg_id),
  FOREIGN KEY (tenant, room_id) REFERENCES rooms (tenant, room_id) ON DELETE CASCADE
);
