-- chatkeep SQLite schema, version 3. Every statement is idempotent.
-- Times are integer microseconds since the Unix epoch; JSON values are stored as text.

CREATE TABLE IF NOT EXISTS sessions (
    pk INTEGER PRIMARY KEY,           -- rowid of the session's row in session_search
    id TEXT NOT NULL UNIQUE,
    owner TEXT,
    device_id TEXT,
    persistence TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL,
    expires_at INTEGER,               -- NULL: never expires
    ttl INTEGER,                      -- microseconds; NULL: never expires
    max_messages INTEGER NOT NULL,
    metadata TEXT NOT NULL,           -- JSON object
    tags TEXT NOT NULL,               -- JSON array, sorted; also in session_tags
    version INTEGER NOT NULL,
    message_count INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    lock_agent TEXT,
    lock_at INTEGER,
    lock_expires INTEGER,
    expiry_bucket INTEGER             -- expires_at's minute (see sessions_expiry below)
);

CREATE INDEX IF NOT EXISTS sessions_owner ON sessions (owner, id);
CREATE INDEX IF NOT EXISTS sessions_device ON sessions (device_id, id);
CREATE INDEX IF NOT EXISTS sessions_created ON sessions (created_at, id);
CREATE INDEX IF NOT EXISTS sessions_active ON sessions (last_activity_at, id);

-- Every write moves last_activity_at, updated_at and expires_at, and each index entry
-- that moves costs the commit a page or two. Since version 3 only sessions_active moves
-- with every write:
-- * A write sets updated_at = last_activity_at (only setting an expiry, and imports,
--   make them differ). This index holds the sessions where they differ; a listing in
--   updated_at order reads the others from sessions_active (see sqlite_query).
CREATE INDEX IF NOT EXISTS sessions_updated ON sessions (updated_at, id)
WHERE updated_at != last_activity_at;

-- * Expiry is found by the minute: expires_at <= now implies expiry_bucket <= now's
--   minute. The bucket, and its index entry, change only when expires_at moves to
--   another minute.
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expiry_bucket);

CREATE TRIGGER IF NOT EXISTS sessions_expiry_new AFTER INSERT ON sessions
WHEN new.expires_at IS NOT NULL BEGIN
    UPDATE sessions SET expiry_bucket = new.expires_at / 60000000 WHERE pk = new.pk;
END;

CREATE TRIGGER IF NOT EXISTS sessions_expiry_moved AFTER UPDATE OF expires_at ON sessions
WHEN new.expiry_bucket IS NOT new.expires_at / 60000000 BEGIN
    UPDATE sessions SET expiry_bucket = new.expires_at / 60000000 WHERE pk = new.pk;
END;

CREATE TABLE IF NOT EXISTS session_tags (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (session_id, tag)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS session_tags_tag ON session_tags (tag, session_id);

CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,            -- the text, or JSON text when content_is_json
    content_is_json INTEGER NOT NULL,
    user_id TEXT,
    created_at INTEGER NOT NULL,
    metadata TEXT NOT NULL,           -- JSON object
    doc INTEGER,                      -- rowid in message_search (or in the queue below);
                                      -- NULL: no words (written by version 1)
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;

CREATE UNIQUE INDEX IF NOT EXISTS messages_id ON messages (session_id, id);

-- The words of each message (content and metadata) and of each session's metadata, one
-- token per word (see SqliteBackend). Rows are written by the backend; deletes follow
-- the deleted rows through these triggers, including ON DELETE CASCADE.
CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5 (
    words, session_id UNINDEXED, seq UNINDEXED,
    tokenize = "unicode61 remove_diacritics 0", detail = none, columnsize = 0
);

CREATE VIRTUAL TABLE IF NOT EXISTS session_search USING fts5 (
    words, tokenize = "unicode61 remove_diacritics 0", detail = none, columnsize = 0
);

CREATE TRIGGER IF NOT EXISTS messages_unindex AFTER DELETE ON messages
WHEN old.doc IS NOT NULL BEGIN
    DELETE FROM message_search WHERE rowid = old.doc;
END;

CREATE TRIGGER IF NOT EXISTS sessions_unindex AFTER DELETE ON sessions BEGIN
    DELETE FROM session_search WHERE rowid = old.pk;
END;

-- Since version 2, a message's words are indexed after its transaction, in batches (and
-- always before a search): an appended message gets its `doc` number at once and waits
-- here until its row (without words if it has none) is written to message_search. A
-- queued message that is deleted leaves the queue with it.
CREATE TABLE IF NOT EXISTS message_search_queue (
    doc INTEGER PRIMARY KEY,          -- the message's rowid-to-be in message_search
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL
);

CREATE TRIGGER IF NOT EXISTS messages_unqueue AFTER DELETE ON messages
WHEN old.doc IS NOT NULL BEGIN
    DELETE FROM message_search_queue WHERE doc = old.doc;
END;
