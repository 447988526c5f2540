-- chatkeep PostgreSQL schema, version 2: the indexes of sessions by owner, device, tags,
-- metadata and metadata words hold only the sessions that have one. Every write of a
-- session row (each append renews its activity and expiry, which are indexed) adds an
-- entry to each index the row is in; a session without these now skips those indexes.
-- "owner = x", "device_id = x" and "words @@ q" imply the conditions; a filter on tags
-- or metadata states its index's condition (see postgres_query.py).

DROP INDEX sessions_owner;
DROP INDEX sessions_device;
DROP INDEX sessions_tags;
DROP INDEX sessions_meta;
DROP INDEX sessions_words;

CREATE INDEX sessions_owner ON sessions (owner, last_activity_at, id) WHERE owner IS NOT NULL;
CREATE INDEX sessions_device ON sessions (device_id, last_activity_at, id)
    WHERE device_id IS NOT NULL;
CREATE INDEX sessions_tags ON sessions USING GIN (tags) WHERE tags <> '{}';
CREATE INDEX sessions_meta ON sessions USING GIN (meta jsonb_path_ops) WHERE meta <> '{}';
CREATE INDEX sessions_words ON sessions USING GIN (words) WHERE words IS NOT NULL;
