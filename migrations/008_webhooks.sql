-- Webhooks (issue #18; docs/webhooks.md). Delivery state lives in each room object's storage
-- (a watermark per endpoint, like the mirror's); Postgres keeps only what was given up on: an
-- event whose endpoint failed WEBHOOK_MAX_ATTEMPTS times in a row. The endpoint then moves past
-- it (later events must not wait forever), so this table is the record of every gap an endpoint
-- sees; a receiver detects the gap itself from `prevSeq`. No foreign key to rooms: a purged
-- room's dead letters stay for the operator.
CREATE TABLE IF NOT EXISTS webhook_dead_letters (
  tenant      text        NOT NULL,
  room_id     text        NOT NULL,
  endpoint_id text        NOT NULL,
  event_id    text        NOT NULL,
  event_type  text        NOT NULL,
  seq         bigint,
  event       jsonb       NOT NULL,
  attempts    integer     NOT NULL,
  last_error  text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, endpoint_id, event_id)
);

CREATE INDEX IF NOT EXISTS webhook_dead_letters_by_room ON webhook_dead_letters (tenant, room_id, seq);
