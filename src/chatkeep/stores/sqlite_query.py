"""The SQL of the SQLite backend: fixed statements, and listing filters translated to SQL.

A :class:`SessionFilter` becomes one ``SELECT`` whose answer equals
:func:`chatkeep.core.query.matches` on every session. Metadata equality follows Python's
``==`` on the decoded JSON (``1 == 1.0 == True``, ``1 != "1"``, objects equal whatever
their key order): strings, null, booleans and 64-bit integers are compared in SQL; any
other value is compared in Python by the ``chatkeep_equal`` function the backend
registers, on the rows SQL has already narrowed down.
"""

from __future__ import annotations

import functools
import json

from chatkeep.core.codec import to_micros
from chatkeep.core.models import JSON
from chatkeep.core.query import Cursor, SessionFilter, SessionSort, SortField

MESSAGES_PER_HIT = 3
SEQ_MIN = -(2**63)
SEQ_MAX = 2**63 - 1

SESSION_COLUMNS = (
    "id", "owner", "device_id", "persistence", "created_at", "updated_at",
    "last_activity_at", "expires_at", "ttl", "max_messages", "metadata", "tags",
    "version", "message_count", "last_seq", "lock_agent", "lock_at", "lock_expires",
)  # fmt: skip
METADATA = SESSION_COLUMNS.index("metadata")
TAGS = SESSION_COLUMNS.index("tags")
SESSION_WIDTH = 1 + len(SESSION_COLUMNS)
"""Columns of a session read: ``pk``, then :data:`SESSION_COLUMNS`."""

_S = ", ".join(f"s.{c}" for c in ("pk", *SESSION_COLUMNS))
_M = "seq, id, role, content, content_is_json, user_id, created_at, metadata"
_MM = ", ".join(f"m.{c}" for c in _M.split(", "))
_MESSAGE_ROW = (
    "session_id, seq, id, role, content, content_is_json, user_id, created_at, metadata, doc"
)

GET_SESSION = f"SELECT {_S} FROM sessions AS s WHERE s.id = ?"
SESSION_KEY = (
    "SELECT pk, version, created_at, updated_at, last_seq, message_count FROM sessions WHERE id = ?"
)
INSERT_SESSION = (
    f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in SESSION_COLUMNS)})"
)
UPDATE_SESSION = (
    f"UPDATE sessions SET {', '.join(f'{c} = ?' for c in SESSION_COLUMNS[1:])} "
    "WHERE id = ? RETURNING pk"
)


@functools.lru_cache(maxsize=64)
def update_columns(columns: tuple[int, ...]) -> str:
    """``UPDATE`` of the given :data:`SESSION_COLUMNS` (by position) of the row ``pk = ?``."""
    assignments = ", ".join(f"{SESSION_COLUMNS[i]} = ?" for i in columns)
    return f"UPDATE sessions SET {assignments} WHERE pk = ?"


DELETE_SESSION = "DELETE FROM sessions WHERE id = ?"
INDEX_SESSION = "INSERT INTO session_search (rowid, words) VALUES (?, ?)"
UNINDEX_SESSION = "DELETE FROM session_search WHERE rowid = ?"
INSERT_TAG = "INSERT INTO session_tags (session_id, tag) VALUES (?, ?)"
DELETE_TAGS = "DELETE FROM session_tags WHERE session_id = ?"
EXPIRED_IDS = (
    "SELECT id FROM sessions WHERE expiry_bucket <= :now / 60000000 AND expires_at <= :now "
    "ORDER BY expires_at, id"
)
"""The sessions expired at ``:now``: the index finds those whose expiry is in or before
its minute (``sessions_expiry`` in ``sql/sqlite_schema.sql``), the rest of the condition
keeps the expired ones."""

FIND_MESSAGES = (
    f"SELECT {_MM} FROM json_each(?) AS k CROSS JOIN messages AS m "
    "ON m.session_id = ? AND m.id = k.value"
)
INSERT_MESSAGE = f"INSERT INTO messages ({_MESSAGE_ROW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
DROP_OLDEST = (
    "DELETE FROM messages WHERE session_id = ? AND seq IN "
    "(SELECT seq FROM messages WHERE session_id = ? ORDER BY seq LIMIT ?)"
)
_READ = f"SELECT {_M} FROM messages WHERE session_id = ? AND seq > ? AND seq < ? ORDER BY seq"
READ_OLDEST = f"{_READ} LIMIT ?"
READ_NEWEST = f"{_READ} DESC LIMIT ?"
DELETE_MESSAGE = "DELETE FROM messages WHERE session_id = ? AND seq = ?"
CLEAR_MESSAGES = "DELETE FROM messages WHERE session_id = ?"

COUNTS = (
    "SELECT count(*), coalesce(sum(expires_at <= ?), 0), coalesce(sum(message_count), 0) "
    "FROM sessions"
)
COUNT_BY_OWNER = "SELECT owner, count(*) FROM sessions WHERE owner IS NOT NULL GROUP BY owner"

PROBE = {
    "sessions": f"SELECT {_S} FROM sessions AS s LIMIT 0",
    "session_tags": "SELECT session_id, tag FROM session_tags LIMIT 0",
    "messages": f"SELECT {_MESSAGE_ROW} FROM messages LIMIT 0",
    "message_search": "SELECT words, session_id, seq FROM message_search LIMIT 0",
    "session_search": "SELECT words FROM session_search LIMIT 0",
}
"""One statement per table that fails unless the table has the columns the backend uses."""

SCHEMA_OBJECTS = frozenset(
    {*PROBE, "messages_id", "messages_unindex", "sessions_unindex", "session_tags_tag"}
    | {"message_search_content", "message_search_queue", "messages_unqueue"}
    | {"sessions_expiry_new", "sessions_expiry_moved"}
    | {f"sessions_{n}" for n in ("owner", "device", "created", "updated", "active", "expiry")}
)
"""The tables, indexes and triggers of ``sql/sqlite_schema.sql``."""

SEARCH = f"""
WITH hits (session_id, seq) AS MATERIALIZED (
    SELECT session_id, seq FROM message_search WHERE message_search MATCH :match
    UNION ALL
    SELECT s.id, NULL FROM session_search JOIN sessions AS s ON s.pk = session_search.rowid
    WHERE session_search MATCH :match
),
chosen AS (
    SELECT s.pk FROM sessions AS s
    WHERE s.id IN (SELECT session_id FROM hits)
      AND (:owner IS NULL OR s.owner = :owner)
      AND (:all OR s.expires_at IS NULL OR s.expires_at > :now)
    ORDER BY s.last_activity_at DESC, s.id DESC
    LIMIT :limit
),
ranked AS (
    SELECT session_id, seq, row_number() OVER (PARTITION BY session_id ORDER BY seq DESC) AS n
    FROM hits
    WHERE seq IS NOT NULL
      AND session_id IN (SELECT s.id FROM chosen JOIN sessions AS s ON s.pk = chosen.pk)
)
SELECT {_S}, {_MM}
FROM chosen JOIN sessions AS s ON s.pk = chosen.pk
LEFT JOIN ranked AS r ON r.session_id = s.id AND r.n <= :per_hit
LEFT JOIN messages AS m ON m.session_id = r.session_id AND m.seq = r.seq
ORDER BY s.last_activity_at DESC, s.id DESC, r.seq DESC
"""
"""Sessions with a message, or metadata, holding every term; up to ``per_hit`` matching
messages each, newest first. ``:match`` is the quoted terms separated by spaces."""

_NUMERIC = "'integer', 'real', 'true', 'false'"
_HAS_KEY = "EXISTS (SELECT 1 FROM json_each(s.metadata) AS j WHERE j.key = ?"
_INT64 = range(SEQ_MIN, SEQ_MAX + 1)


def metadata_equal(probes: list[object], metadata: str, key: str, index: int) -> bool:
    """SQL ``chatkeep_equal(s.metadata, key, index)``: the stored value == ``probes[index]``."""
    stored: dict[str, JSON] = json.loads(metadata)
    return key in stored and bool(stored[key] == probes[index])


def _metadata_condition(
    key: object, value: object, params: list[object], probes: list[object]
) -> str:
    if not isinstance(key, str):
        return "0"
    params.append(key)
    if value is None:
        return f"{_HAS_KEY} AND j.type = 'null')"
    if isinstance(value, str):
        params.append(value)
        return f"{_HAS_KEY} AND j.type = 'text' AND j.value = ?)"
    if isinstance(value, bool) or (isinstance(value, int) and value in _INT64):
        params.append(int(value))
        return f"{_HAS_KEY} AND j.type IN ({_NUMERIC}) AND j.value = ?)"
    if isinstance(value, dict):
        kinds = " AND j.type = 'object'"
    elif isinstance(value, list):
        kinds = " AND j.type = 'array'"
    elif isinstance(value, int | float):
        kinds = f" AND j.type IN ({_NUMERIC})"
    else:
        kinds = ""
    params.extend((key, len(probes)))
    probes.append(value)
    return f"{_HAS_KEY}{kinds}) AND chatkeep_equal(s.metadata, ?, ?)"


def select_sessions(
    flt: SessionFilter, sort: SessionSort, cursor: Cursor | None, now: int, limit: int
) -> tuple[str, list[object], list[object]]:
    """SQL selecting the first ``limit`` sessions that match ``flt`` after ``cursor`` in
    ``sort`` order, its parameters, and the values that ``chatkeep_equal`` compares."""
    where: list[str] = []
    params: list[object] = []
    probes: list[object] = []
    if not flt.include_expired:
        where.append("(s.expires_at IS NULL OR s.expires_at > ?)")
        params.append(now)
    for column, wanted in (("owner", flt.owner), ("device_id", flt.device_id)):
        if wanted is not None:
            where.append(f"s.{column} = ?")
            params.append(wanted)
    for tag in sorted(flt.tags):
        where.append(
            "EXISTS (SELECT 1 FROM session_tags AS t WHERE t.session_id = s.id AND t.tag = ?)"
        )
        params.append(tag)
    for key, value in flt.metadata.items():
        where.append(_metadata_condition(key, value, params, probes))
    for condition, when in (
        ("s.created_at > ?", flt.created_after),
        ("s.created_at < ?", flt.created_before),
        ("s.last_activity_at > ?", flt.active_after),
        ("s.last_activity_at < ?", flt.active_before),
    ):
        if when is not None:
            where.append(condition)
            params.append(to_micros(when))
    if flt.has_messages is not None:
        where.append("s.message_count > 0" if flt.has_messages else "s.message_count = 0")
    if cursor is not None:
        params.extend((to_micros(cursor.value), cursor.session_id))
    if sort.field is not SortField.UPDATED_AT:
        sql = _ordered(where, f"s.{sort.field.value}", sort.descending, cursor is not None)
        return sql, [*params, limit], probes
    # In updated_at order: the sessions whose updated_at is their last_activity_at in
    # sessions_active's order, merged with the others (sessions_updated holds those).
    same = _ordered(
        [*where, "s.updated_at = s.last_activity_at"],
        "s.last_activity_at",
        sort.descending,
        cursor is not None,
    )
    other = _ordered(
        [*where, "s.updated_at != s.last_activity_at"],
        "s.updated_at",
        sort.descending,
        cursor is not None,
    )
    order = "DESC" if sort.descending else "ASC"
    sql = (
        f"SELECT * FROM ({same}) UNION ALL SELECT * FROM ({other}) "
        f"ORDER BY updated_at {order}, id {order} LIMIT ?"
    )
    return sql, [*params, limit, *params, limit, limit], probes


def _ordered(where: list[str], column: str, descending: bool, after_cursor: bool) -> str:
    """``SELECT`` of the sessions matching ``where`` in ``column`` order (then id), after
    the cursor's value and id (the last two parameters) if ``after_cursor``, up to a
    ``LIMIT`` parameter."""
    order = "DESC" if descending else "ASC"
    if after_cursor:
        where = [*where, f"({column}, s.id) {'<' if descending else '>'} (?, ?)"]
    sql = f"SELECT {_S} FROM sessions AS s"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return f"{sql} ORDER BY {column} {order}, s.id {order} LIMIT ?"
