-- Moderation and the server API (issue 18, parts 3 and 4).
--
-- Room bans and mutes: one row per (room, user, kind). `until` NULL means "until lifted". A row
-- whose `until` has passed is expired: every check compares it with now(), so an expired mute
-- needs no sweep to stop applying. Written only through the room's object (src/room/moderation.ts).
CREATE TABLE IF NOT EXISTS room_restrictions (
  tenant     text        NOT NULL,
  room_id    text        NOT NULL,
  user_id    text        NOT NULL,
  kind       text        NOT NULL CHECK (kind IN ('ban', 'mute')),
  until      timestamptz,
  reason     text,
  created_by text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, room_id, user_id, kind),
  FOREIGN KEY (tenant, room_id) REFERENCES rooms (tenant, room_id) ON DELETE CASCADE
);

-- Tenant bans: the user may not connect, read or send in any room of the tenant.
CREATE TABLE IF NOT EXISTS tenant_bans (
  tenant     text        NOT NULL,
  user_id    text        NOT NULL,
  until      timestamptz,
  reason     text,
  created_by text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, user_id)
);

-- Reports: a user flags a message or a user in a room. Not in the room's stream (every reader
-- of the room would see who reported whom); the server API lists them.
CREATE TABLE IF NOT EXISTS reports (
  id         text        PRIMARY KEY,
  tenant     text        NOT NULL,
  room_id    text        NOT NULL,
  reporter   text        NOT NULL,
  subject    text,
  seq        bigint,
  reason     text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS reports_by_tenant ON reports (tenant, created_at, id);

-- Tenant API keys for the server API. Only a SHA-256 of the secret is stored (the secret is 32
-- random bytes, so a fast hash is enough: there is nothing to brute-force); the key's id is
-- public and looks the row up. Revoked keys keep their row (who used what, when).
CREATE TABLE IF NOT EXISTS api_keys (
  id          text        PRIMARY KEY,
  tenant      text        NOT NULL,
  name        text        NOT NULL,
  secret_hash text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant, created_at);

-- Erasing or exporting a user reads their messages across rooms.
CREATE INDEX IF NOT EXISTS messages_by_user ON messages (tenant, user_id, room_id, seq);
