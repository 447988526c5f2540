"""Opening an SQLite store: its URL options, the connection settings, and the schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from chatkeep.errors import ConfigurationError, StoreUnavailableError
from chatkeep.stores import sqlite_query as q
from chatkeep.stores.runner import Writer, writer_option
from chatkeep.stores.sql import load

SCHEMA_VERSION = 3
PAGE_SIZE = 2048
"""The page size of a new file. Every commit writes each page it changed to the WAL:
smaller pages make an append's commit write fewer bytes (about 12% quicker than 4096)."""

UPGRADE_TO_3 = """
ALTER TABLE sessions ADD COLUMN expiry_bucket INTEGER;
UPDATE sessions SET expiry_bucket = expires_at / 60000000;
"""
"""Before version 3's schema script, on a file of version 1 or 2: the expiry minute of
each session (its index and the partial ``sessions_updated`` replace two indexes)."""
CHECKPOINT_CHANGES = 400
"""Rows changed on the writing connection after which the store checkpoints the WAL
(copies it into the database file) on its thread: about 1,200 pages, as many as
SQLite's own automatic checkpoint would let gather (see :func:`prepare`)."""
BACKSTOP_PAGES = 8000
"""WAL pages after which a commit checkpoints by itself (SQLite's automatic checkpoint),
in case the rows changed undercount the pages written (a few very large messages)."""
_SYNCHRONOUS = ("full", "normal")


@dataclass(frozen=True, slots=True)
class SqliteOptions:
    """The URL query options of ``sqlite:///path.db?...``."""

    synchronous: str = "full"
    busy_timeout_ms: int = 5000
    cache_sessions: int = 1024
    cache_messages: int = 100
    writer: Writer = "auto"
    """Where writes run: ``thread`` (the store's thread; the event loop never waits on
    the disk), ``loop`` (the event loop itself: no thread hop, but the loop is blocked
    while each transaction runs and commits) or ``auto`` (the loop while commits are
    quick, the thread when they are not: :class:`~chatkeep.stores.runner.Placement`)."""

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> SqliteOptions:
        known = ("synchronous", "busy_timeout", "cache_sessions", "cache_messages", "writer")
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigurationError(
                unknown[0], f"is not an option of sqlite:// (known: {', '.join(known)})"
            )
        synchronous = options.get("synchronous", "full").lower()
        if synchronous not in _SYNCHRONOUS:
            raise ConfigurationError(
                "synchronous", f"{options['synchronous']!r} is not one of: full, normal"
            )
        return cls(
            synchronous,
            _count(options, "busy_timeout", 5000, "a number of milliseconds"),
            _count(options, "cache_sessions", 1024, "a number of sessions"),
            _count(options, "cache_messages", 100, "a number of messages"),
            writer_option(options),
        )


def _count(options: Mapping[str, str], name: str, default: int, what: str) -> int:
    text = options.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise ConfigurationError(name, f"{text!r} is not {what}")
    return int(text)


def connect(path: str, options: SqliteOptions) -> sqlite3.Connection:
    """A connection that issues its own BEGIN/COMMIT and may move between threads
    (each one is used by one thread at a time)."""
    return sqlite3.connect(
        path,
        timeout=options.busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
    )


def prepare(conn: sqlite3.Connection, path: str, options: SqliteOptions) -> None:
    """Set the connection up and bring the schema to :data:`SCHEMA_VERSION`."""
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only a new file takes it
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal" and path != ":memory:":
        raise StoreUnavailableError(f"SQLite database {path}: cannot use WAL mode (got {mode!r})")
    conn.execute(f"PRAGMA synchronous = {options.synchronous.upper()}")
    # A checkpoint writes the pages to the file and syncs it: milliseconds, tens of them
    # on a busy disk. SQLite runs it inside the commit that fills the WAL, which would
    # hold up the event loop; the store runs it on its thread instead
    # (SqliteBackend.housekeeping).
    conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
    conn.execute("PRAGMA foreign_keys = ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreUnavailableError(
            f"SQLite database {path} has schema version {version}; this chatkeep knows "
            f"versions up to {SCHEMA_VERSION} (upgrade chatkeep to open it)"
        )
    if version < SCHEMA_VERSION:
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE; {_upgrade(conn, version)}{load('sqlite_schema.sql')}"
                f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreUnavailableError(
                f"SQLite database {path}: cannot create the chatkeep schema ({exc})"
            ) from exc
    _check_schema(conn, path)


def _upgrade(conn: sqlite3.Connection, version: int) -> str:
    """The statements that make a file of an older ``version`` ready for the schema
    script (which only creates what is missing)."""
    if version == 0:
        return ""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
    steps = "" if "expiry_bucket" in columns else UPGRADE_TO_3
    return steps + "DROP INDEX IF EXISTS sessions_expires; DROP INDEX IF EXISTS sessions_updated;"


def _check_schema(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a file whose tables, indexes or triggers are not the ones the backend uses."""
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    problem = ", ".join(sorted(q.SCHEMA_OBJECTS - names))
    if problem:
        problem = f"missing {problem}"
    for table, probe in q.PROBE.items():
        try:
            conn.execute(probe).fetchall()
        except sqlite3.OperationalError as exc:
            problem = problem or f"table {table}: {exc}"
    if problem:
        raise StoreUnavailableError(
            f"SQLite database {path} does not have the chatkeep schema ({problem})"
        )
