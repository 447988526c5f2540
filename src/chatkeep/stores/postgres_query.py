"""The SQL of the PostgreSQL backend: fixed statements, and listing filters as SQL.

A :class:`SessionFilter` becomes one ``SELECT`` whose answer equals
:func:`chatkeep.core.query.matches`, but for metadata equality, which follows Python's
``==`` on decoded JSON (``1 == 1.0 == True``, objects equal whatever their key order).
SQL narrows the rows down with ``jsonb`` tests that never drop an equal value (and are
exact for text, null, booleans and integers up to 2**53); :func:`metadata_matches`
then decides on the decoded rows.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from chatkeep.core.codec import dumps, to_micros
from chatkeep.core.models import JSON, Session
from chatkeep.core.query import Cursor, SessionFilter, SessionSort

MESSAGES_PER_HIT = 3
SEQ_MIN = -(2**63)
SEQ_MAX = 2**63 - 1
_EXACT_FLOAT = 2**53

SESSION_COLUMNS = (
    "id", "owner", "device_id", "persistence", "created_at", "updated_at",
    "last_activity_at", "expires_at", "ttl", "max_messages", "metadata", "tags",
    "version", "message_count", "last_seq", "lock_agent", "lock_at", "lock_expires",
)  # fmt: skip
METADATA = SESSION_COLUMNS.index("metadata")
SESSION_WIDTH = len(SESSION_COLUMNS)

_S = ", ".join(f"s.{c}" for c in SESSION_COLUMNS)
_M = "seq, id, role, content, content_kind, user_id, created_at, metadata"
_MM = ", ".join(f"m.{c}" for c in _M.split(", "))
_LEXEMES = "array_to_tsvector(${}::text[])"

GET_SESSION = f"SELECT {_S} FROM sessions AS s WHERE s.id = $1"
LOCK_SESSION = f"{GET_SESSION} FOR UPDATE"
INSERT_SESSION = (
    f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}, words) "
    f"VALUES ({', '.join(f'${i + 1}' for i in range(SESSION_WIDTH))}, "
    f"{_LEXEMES.format(SESSION_WIDTH + 1)}) ON CONFLICT (id) DO NOTHING"
)


def _insert_messages(first: int) -> str:
    """``INSERT`` of the messages of session ``$1`` from nine column arrays, the first
    of them parameter ``first``."""
    arrays = ", ".join(
        f"${first + n}::{kind}[]"
        for n, kind in enumerate(
            ("bigint", "text", "text", "text", "smallint", "text", "bigint", "text", "text")
        )
    )
    return (
        "INSERT INTO messages (session_id, seq, id, role, content, content_kind, user_id, "
        "created_at, metadata, words) "
        "SELECT $1, t.seq, t.id, t.role, t.content, t.kind, t.user_id, t.created_at, "
        "t.metadata, array_to_tsvector(string_to_array(t.words, ' ')) "
        f"FROM unnest({arrays}) "
        "AS t (seq, id, role, content, kind, user_id, created_at, metadata, words)"
    )


def _insert_message(first: int) -> str:
    """``INSERT`` of one message of session ``$1`` from nine values, the first of them
    parameter ``first``: the columns of :func:`_insert_messages` without the arrays
    to encode and unnest."""
    values = ", ".join(
        f"${first + n}::{kind}"
        for n, kind in enumerate(("bigint", "text", "text", "text", "smallint", "text", "bigint"))
    )
    return (
        "INSERT INTO messages (session_id, seq, id, role, content, content_kind, user_id, "
        "created_at, metadata, words) "
        f"SELECT $1, {values}, ${first + 7}::text, "
        f"array_to_tsvector(string_to_array(${first + 8}::text, ' '))"
    )


INSERT_MESSAGES = _insert_messages(2)
_INSERT_WIDTH = 10
"""The parameters of :data:`INSERT_MESSAGES`: the session id and nine columns."""
_IF_CHANGED = "WHERE EXISTS (SELECT FROM changed)"


@functools.lru_cache(maxsize=128)
def update_columns(columns: tuple[int, ...], with_messages: bool = False) -> str:
    """``UPDATE`` of the given :data:`SESSION_COLUMNS` (by position) of the session
    ``$1``; when the metadata is among them, its words follow as the last parameter.

    ``with_messages``: the same statement also runs :data:`INSERT_MESSAGES`, whose
    parameters come first (one round trip for an append), if the update finds the row
    (with no columns, it writes the row unchanged). Its status then counts the messages
    inserted: none means no session. No message is ever inserted but by a statement
    that writes its session row (see :data:`DELETE_KEYED_SESSION`)."""
    first = _INSERT_WIDTH + 1 if with_messages else 2
    if not columns and not with_messages:
        raise ValueError("expected columns to update, got none")
    sets = [f"{SESSION_COLUMNS[i]} = ${first + n}" for n, i in enumerate(columns)]
    if METADATA in columns:
        sets.append(f"words = {_LEXEMES.format(first + len(columns))}")
    update = f"UPDATE sessions SET {', '.join(sets or ['version = version'])} WHERE id = $1"
    if not with_messages:
        return update
    return f"WITH changed AS ({update} RETURNING 1) {INSERT_MESSAGES} {_IF_CHANGED}"


LOCK_SESSION_ROW = "SELECT FROM sessions WHERE id = $1 FOR UPDATE"
DELETE_SESSION = (
    "WITH gone AS (DELETE FROM sessions WHERE id = $1) DELETE FROM messages WHERE session_id = $1"
)
"""Delete session ``$1`` and its messages; run only while the transaction holds the row
lock (:data:`LOCK_SESSION_ROW`), so that the messages it sees are all there are: a
message is inserted only by a statement that writes the session row, which waits for
the lock and then finds no row."""
EXPIRED_IDS = "SELECT id FROM sessions WHERE expires_at <= $1 ORDER BY expires_at, id"

FIND_MESSAGES = f"SELECT {_M} FROM messages WHERE session_id = $1 AND id = ANY($2::text[])"
DROP_OLDEST = (
    "DELETE FROM messages WHERE session_id = $1 AND seq IN "
    "(SELECT seq FROM messages WHERE session_id = $1 ORDER BY seq LIMIT $2)"
)
_READ = f"SELECT {_M} FROM messages WHERE session_id = $1 AND seq > $2 AND seq < $3 ORDER BY seq"
READ_OLDEST = f"{_READ} LIMIT $4"
READ_NEWEST = f"{_READ} DESC LIMIT $4"
DELETE_MESSAGE = "DELETE FROM messages WHERE session_id = $1 AND seq = $2"
CLEAR_MESSAGES = "DELETE FROM messages WHERE session_id = $1"

# -- statements that name the row version they expect (see record_cache) -------------
GET_KEYED_SESSION = f"SELECT {_S}, s.xmin FROM sessions AS s WHERE s.id = $1"
"""The session and, last, its row version."""
SESSION_VERSION = "SELECT xmin FROM sessions WHERE id = $1"
INSERT_KEYED_SESSION = f"{INSERT_SESSION} RETURNING xmin"
"""The new row's version; no row if the id is taken."""
DELETE_KEYED_SESSION = (
    "WITH gone AS (DELETE FROM sessions WHERE id = $1 AND xmin = $2::xid RETURNING 1), "
    "cleared AS (DELETE FROM messages WHERE session_id = $1 AND EXISTS (SELECT FROM gone)) "
    "SELECT count(*) FROM gone"
)
"""Delete session ``$1`` and its messages if its row version is still ``$2``; 1 if it
did, else 0 (and nothing changed). Without a lock and in one snapshot, yet no message
survives its session: a message is inserted only by a statement that writes its
session row in the same transaction. One that committed before the snapshot is seen
and deleted; one that commits after it made a new row version, so the delete, which
then rechecks the newest version, finds ``xmin`` changed and deletes nothing; one that
runs after the delete finds no row to write and inserts nothing."""
_KEYED_READ = (
    f"SELECT {_MM} FROM sessions AS s LEFT JOIN LATERAL ({_READ} {{0}} LIMIT $4) AS m ON TRUE "
    "WHERE s.id = $1 AND s.xmin = $5::xid ORDER BY m.seq {0}"
)
READ_KEYED_OLDEST = _KEYED_READ.format("")
READ_KEYED_NEWEST = _KEYED_READ.format("DESC")
""":data:`READ_OLDEST` and :data:`READ_NEWEST` of session ``$1`` if its row version is
still ``$5``: no row if it is not; one row of nulls if it is and holds no message."""

MESSAGE_WRITES = {"insert": 9, "insert_one": 9, "drop": 1, "delete": 1, "clear": 0}
"""The writes of messages :func:`keyed_write` makes, and the parameters each takes:
``insert`` takes nine arrays (:func:`~chatkeep.stores.postgres_rows.message_columns`),
``insert_one`` the nine values of one message
(:func:`~chatkeep.stores.postgres_rows.message_row`)."""
_MESSAGE_WRITE = {
    "drop": "DELETE FROM messages WHERE session_id = $1 AND seq IN "
    "(SELECT seq FROM messages WHERE session_id = $1 ORDER BY seq LIMIT ${0})",
    "delete": "DELETE FROM messages WHERE session_id = $1 AND seq = ${0}",
    "clear": "DELETE FROM messages WHERE session_id = $1",
}


@functools.lru_cache(maxsize=256)
def keyed_write(columns: tuple[int, ...], writes: tuple[str, ...]) -> str:
    """One statement that updates the given :data:`SESSION_COLUMNS` of session ``$1``
    if its row version is still ``$2``, and only then makes the ``writes`` of its
    messages (:data:`MESSAGE_WRITES`). It returns the row's new version, or no row
    (and changes nothing) if the session has changed or is gone.

    Parameters: ``$1``, ``$2``, the columns' values (then the metadata's words when
    the metadata is among them), then each write's. Every part sees the rows as they
    were before the statement: a drop or a delete never meets the inserted messages.
    """
    if not columns:
        raise ValueError("expected columns to update, got none")
    n = 3
    sets = []
    for i in columns:
        sets.append(f"{SESSION_COLUMNS[i]} = ${n}")
        n += 1
    if METADATA in columns:
        sets.append(f"words = {_LEXEMES.format(n)}")
        n += 1
    parts = [
        f"changed AS (UPDATE sessions SET {', '.join(sets)} "
        "WHERE id = $1 AND xmin = $2::xid RETURNING xmin)"
    ]
    for k, write in enumerate(writes):
        if write == "insert":
            sql, glue = _insert_messages(n), " WHERE"
        elif write == "insert_one":
            sql, glue = _insert_message(n), " WHERE"
        else:
            sql, glue = _MESSAGE_WRITE[write].format(n), " AND"
        parts.append(f"w{k} AS ({sql}{glue} EXISTS (SELECT FROM changed))")
        n += MESSAGE_WRITES[write]
    return f"WITH {', '.join(parts)} SELECT xmin FROM changed"


COUNTS = (
    "SELECT count(*), count(*) FILTER (WHERE expires_at <= $1), "
    "coalesce(sum(message_count), 0)::bigint FROM sessions"
)
COUNT_BY_OWNER = "SELECT owner, count(*) FROM sessions WHERE owner IS NOT NULL GROUP BY owner"
SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_version"
SIZES = (
    "SELECT pg_total_relation_size('sessions'::regclass), "
    "pg_total_relation_size('messages'::regclass)"
)

SEARCH = f"""
WITH hits (session_id, seq) AS MATERIALIZED (
    SELECT session_id, seq FROM messages WHERE words @@ $1::tsquery
    UNION ALL
    SELECT id, NULL FROM sessions WHERE words @@ $1::tsquery
),
chosen AS (
    SELECT {_S} FROM sessions AS s
    WHERE s.id IN (SELECT session_id FROM hits)
      AND ($2::text IS NULL OR s.owner = $2)
      AND ($3 OR s.expires_at IS NULL OR s.expires_at > $4)
    ORDER BY s.last_activity_at DESC, s.id DESC
    LIMIT $5
),
ranked AS (
    SELECT session_id, seq, row_number() OVER (PARTITION BY session_id ORDER BY seq DESC) AS n
    FROM hits
    WHERE seq IS NOT NULL AND session_id IN (SELECT id FROM chosen)
)
SELECT {_S}, {_MM}
FROM chosen AS s
LEFT JOIN ranked AS r ON r.session_id = s.id AND r.n <= {MESSAGES_PER_HIT}
LEFT JOIN messages AS m ON m.session_id = r.session_id AND m.seq = r.seq
ORDER BY s.last_activity_at DESC, s.id DESC, m.seq DESC
"""
"""Sessions with a message, or metadata, holding every lexeme of ``$1``; up to
:data:`MESSAGES_PER_HIT` matching messages each, newest first."""


def metadata_matches(session: Session, wanted: Mapping[str, JSON]) -> bool:
    """The metadata part of :func:`chatkeep.core.query.matches`."""
    stored = session.metadata
    return all(key in stored and stored[key] == value for key, value in wanted.items())


class _Params:
    def __init__(self) -> None:
        self.values: list[object] = []

    def __call__(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _exact_number(value: object) -> int | None:
    """``value`` as an integer when comparing it as a SQL numeric is exact."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and abs(value) <= _EXACT_FLOAT:
        return value
    return None


def _metadata_condition(key: object, value: JSON, p: _Params) -> str:
    """A condition that every session whose metadata has ``key`` == ``value`` meets. A
    containment test also states the condition of the partial index it can use."""
    if not isinstance(key, str):
        return "FALSE"
    if value is None or isinstance(value, str):
        probe = dumps({key: value}).replace("\\u0000", "\\ufffd")
        return f"s.meta @> {p(probe)}::jsonb AND s.meta <> '{{}}'"
    item = f"(s.meta -> {p(key.replace(chr(0), chr(0xFFFD)))}::text)"
    if isinstance(value, dict | list):
        return f"jsonb_typeof{item} = '{'object' if isinstance(value, dict) else 'array'}'"
    number = _exact_number(value)
    if number is None:
        return f"jsonb_typeof{item} IN ('number', 'boolean')"
    return (
        f"(CASE jsonb_typeof{item} WHEN 'number' THEN ({item} #>> '{{}}')::numeric "
        f"WHEN 'boolean' THEN ({item} = 'true'::jsonb)::int END) = {p(number)}::numeric"
    )


def _storable(value: object) -> bool:
    """Whether ``value`` can be a text parameter: text without U+0000. Stored names and
    tags have no control characters, so any other value matches none of them."""
    return isinstance(value, str) and "\x00" not in value


def _after(column: str, descending: bool, cursor: Cursor, p: _Params) -> str:
    """Rows after ``cursor``. A cursor id holding U+0000 (no stored id does) compares
    with stored ids as its text before the first U+0000 would, with ``<=`` for ``<``."""
    session_id, nul, _ = cursor.session_id.partition("\x00")
    op = ("<=" if nul else "<") if descending else ">"
    mark = f'({p(to_micros(cursor.value))}::bigint, {p(session_id)}::text COLLATE "C")'
    return f"({column}, s.id) {op} {mark}"


def select_sessions(
    flt: SessionFilter, sort: SessionSort, cursor: Cursor | None, now: int, limit: int
) -> tuple[str, list[object]]:
    """SQL selecting up to ``limit`` sessions that match ``flt`` after ``cursor`` in
    ``sort`` order, and its parameters. When ``flt`` names metadata, the rows are
    candidates: :func:`metadata_matches` has the last word."""
    p = _Params()
    where: list[str] = []
    if not flt.include_expired:
        where.append(f"(s.expires_at IS NULL OR s.expires_at > {p(now)})")
    for column, wanted in (("owner", flt.owner), ("device_id", flt.device_id)):
        if wanted is not None:
            where.append(f"s.{column} = {p(wanted)}" if _storable(wanted) else "FALSE")
    if flt.tags:
        tags = sorted(flt.tags) if all(map(_storable, flt.tags)) else None
        where.append(
            "FALSE" if tags is None else f"s.tags @> {p(tags)}::text[] AND s.tags <> '{{}}'"
        )
    for key, value in flt.metadata.items():
        where.append(_metadata_condition(key, value, p))
    for condition, when in (
        ("s.created_at >", flt.created_after),
        ("s.created_at <", flt.created_before),
        ("s.last_activity_at >", flt.active_after),
        ("s.last_activity_at <", flt.active_before),
    ):
        if when is not None:
            where.append(f"{condition} {p(to_micros(when))}")
    if flt.has_messages is not None:
        where.append("s.message_count > 0" if flt.has_messages else "s.message_count = 0")
    column = f"s.{sort.field.value}"
    order = "DESC" if sort.descending else "ASC"
    if cursor is not None:
        where.append(_after(column, sort.descending, cursor, p))
    sql = f"SELECT {_S} FROM sessions AS s"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {column} {order}, s.id {order} LIMIT {p(limit)}"
    return sql, p.values
