-- chatkeep PostgreSQL schema, version 1: sessions, messages, and their search words.
-- Applied by PostgresBackend inside one transaction, with search_path set to the store's
-- schema. Times are integer microseconds since the Unix epoch, like the SQLite backend.

CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY,      -- byte order: the order Python gives str
    owner TEXT,
    device_id TEXT,
    persistence TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    expires_at BIGINT,                    -- NULL: never expires
    ttl BIGINT,                           -- microseconds; NULL: never expires
    max_messages INTEGER NOT NULL,
    metadata TEXT NOT NULL,               -- the JSON object exactly as written
    tags TEXT[] NOT NULL,                 -- sorted
    version BIGINT NOT NULL,
    message_count INTEGER NOT NULL,
    last_seq BIGINT NOT NULL,
    lock_agent TEXT,
    lock_at BIGINT,
    lock_expires BIGINT,
    words TSVECTOR,                       -- search tokens of the metadata; NULL: none
    -- The metadata for filtering (jsonb cannot hold U+0000, which becomes U+FFFD here;
    -- the backend compares such values again in Python).
    meta JSONB GENERATED ALWAYS AS (replace(metadata, '\u0000', '\ufffd')::jsonb) STORED
);

CREATE INDEX sessions_owner ON sessions (owner, last_activity_at, id);
CREATE INDEX sessions_device ON sessions (device_id, last_activity_at, id);
CREATE INDEX sessions_created ON sessions (created_at, id);
CREATE INDEX sessions_updated ON sessions (updated_at, id);
CREATE INDEX sessions_active ON sessions (last_activity_at, id);
CREATE INDEX sessions_expires ON sessions (expires_at, id);
CREATE INDEX sessions_tags ON sessions USING GIN (tags);
CREATE INDEX sessions_meta ON sessions USING GIN (meta jsonb_path_ops);
CREATE INDEX sessions_words ON sessions USING GIN (words);

CREATE TABLE messages (
    session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,                -- see content_kind
    content_kind SMALLINT NOT NULL,       -- 0: text; 1: JSON object or array;
                                          -- 2: text holding U+0000, as a JSON string
    user_id TEXT,
    created_at BIGINT NOT NULL,
    metadata TEXT NOT NULL,               -- JSON object
    words TSVECTOR,                       -- search tokens of content and metadata
    PRIMARY KEY (session_id, seq),
    UNIQUE (session_id, id)
);

CREATE INDEX messages_words ON messages USING GIN (words);
