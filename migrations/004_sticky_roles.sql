-- Roles that stick: leaving a room (or being removed) keeps the row with `left_at` set, so a
-- viewer who leaves and re-joins a public room is a viewer again, never a member. A membership
-- is a row with left_at IS NULL.
ALTER TABLE room_members ADD COLUMN IF NOT EXISTS left_at timestamptz;
