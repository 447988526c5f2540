"""The SQLite backend: one database file in WAL mode, searched with FTS5.

It uses the standard ``sqlite3`` module on one writing connection, driven by the event
loop while commits are quick and by the store's worker thread when they are not
(``?writer=auto``, the default; ``thread`` and ``loop`` fix the choice), and a read-only one for
reads on the event loop; transactions are issued explicitly (``BEGIN IMMEDIATE`` for
writes). Records are rows (see ``sql/sqlite_schema.sql``); how a :class:`SessionFilter`
and a search become SQL lives in :mod:`chatkeep.stores.sqlite_query`; messages reach
the search index in batches (:mod:`chatkeep.stores.sqlite_index`).
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Container, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from chatkeep.core.codec import to_micros
from chatkeep.core.models import JSON, Message, Session
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionSort
from chatkeep.errors import (
    SessionExistsError,
    SessionNotFoundError,
    StoreUnavailableError,
)
from chatkeep.stores import sqlite_query as q
from chatkeep.stores.backend import Backend, Counts
from chatkeep.stores.sqlite_cache import Entry, RecordCache, Tracker
from chatkeep.stores.sqlite_index import COUNT_QUEUED, MessageIndex
from chatkeep.stores.sqlite_rows import (
    decode_message,
    decode_session,
    index_text,
    match_expression,
    message_row,
    session_row,
    session_row_after,
)
from chatkeep.stores.sqlite_setup import CHECKPOINT_CHANGES, SqliteOptions, connect, prepare

logger = logging.getLogger("chatkeep.stores.sqlite")

QUICK_CHECK_MAX_BYTES = 256 * 1024 * 1024
"""``check`` runs ``PRAGMA quick_check`` (which reads the whole file) only below this size."""


P = ParamSpec("P")
R = TypeVar("R")


class _Seen(NamedTuple):
    """A session row as this transaction last read or wrote it (a cache
    :class:`~chatkeep.stores.sqlite_cache.Entry` serves as one too)."""

    pk: int
    row: tuple[object, ...]
    session: Session


def _guarded(
    method: Callable[Concatenate[SqliteBackend, P], R],
) -> Callable[Concatenate[SqliteBackend, P], R]:
    """Turn sqlite3 errors raised by ``method`` into :class:`StoreUnavailableError`."""

    @functools.wraps(method)
    def run(self: SqliteBackend, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite database {self.path}: {exc}") from exc

    return run


class SqliteBackend(Backend):
    """Sessions and messages in one SQLite file."""

    name = "sqlite"

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        options: SqliteOptions,
        *,
        cache: RecordCache | None = None,
        read_only: bool = False,
    ) -> None:
        self._conn = conn
        self._read_only = read_only
        self._records = Tracker(
            cache or RecordCache(options.cache_sessions, options.cache_messages)
        )
        self.path = path
        self.options = options
        self.writer = options.writer
        self._seen: dict[str, _Seen | Entry] = {}
        self._index = None if read_only else MessageIndex(conn)
        self._alone_since: int | None = None
        """``PRAGMA data_version`` when this (writing) connection last began an epoch of
        the record cache: while it stays the same, no other connection has committed."""
        self._checkpointed = conn.total_changes
        """``total_changes`` of the connection at its last checkpoint."""
        self._probes: list[object] = []
        self._closed = False
        conn.create_function("chatkeep_equal", 3, functools.partial(q.metadata_equal, self._probes))

    @classmethod
    def open(cls, path: str, options: Mapping[str, str]) -> SqliteBackend:
        """Open (creating it if needed) the database at ``path``."""
        settings = SqliteOptions.parse(options)
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create the directory of SQLite database {path}: {exc}"
            ) from exc
        try:
            conn = connect(path, settings)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot open SQLite database {path}: {exc}") from exc
        try:
            prepare(conn, path, settings)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailableError(f"cannot open SQLite database {path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, settings)

    def reader(self) -> SqliteBackend:
        """A read-only connection to the same file, for reads on the event loop.

        It runs each statement on its own snapshot (no ``BEGIN``): an operation's later
        statement may see a later commit than its first, as if it ran a moment later.
        The record cache stays exact: an entry is only ever used under the change key
        it was stored with, and a later commit changes the session's key.
        """
        try:
            conn = connect(self.path, self.options)
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot open SQLite database {self.path}: {exc}") from exc
        return SqliteBackend(
            conn, self.path, self.options, cache=self._records.cache, read_only=True
        )

    # -- transactions -------------------------------------------------------
    @_guarded
    def begin(self, write: bool) -> None:
        if self._conn.in_transaction:
            raise RuntimeError("expected no open transaction, got one")
        self._seen.clear()
        self._records.begin(write)
        if self._index is not None:
            self._index.begin()
        if not self._read_only:
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    @_guarded
    def commit(self) -> None:
        if self._conn.in_transaction:
            self._write_queue()
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                self._alone_since = None  # whether it committed or not, trust no entry
                raise
        if self._index is not None:
            self._index.committed()
        self._records.committed()

    @_guarded
    def rollback(self) -> None:
        """Undo every write since ``begin``; does nothing when no transaction is open."""
        self._seen.clear()
        self._records.reset()
        if self._index is not None:
            self._index.rolled_back()
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    @_guarded
    def close(self) -> None:
        """Roll back what is open and close the file; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if not self._read_only:
                self._conn.execute("PRAGMA optimize")
        finally:
            self._conn.close()

    # -- sessions -----------------------------------------------------------
    def _session(self, row: Sequence[Any]) -> Session:
        """Decode a row of ``pk`` + :data:`sqlite_query.SESSION_COLUMNS`, noting what it held."""
        session = decode_session(row[1:])
        self._seen[row[1]] = _Seen(row[0], tuple(row[1:]), session)
        return session

    @_guarded
    def get_session(self, session_id: str) -> Session | None:
        cached = self._records.cached(session_id)
        if cached is not None:
            if self._records.current(cached) and self._alone():
                self._seen[session_id] = cached
                return self._records.confirmed(cached)
            key = self._conn.execute(q.SESSION_KEY, (session_id,)).fetchone()
            if key is None:
                return None
            if key == cached.key:
                self._seen[session_id] = cached
                return self._records.confirmed(cached)
        row = self._conn.execute(q.GET_SESSION, (session_id,)).fetchone()
        if row is None:
            return None
        session = self._session(row)
        self._records.decoded(row[0], tuple(row[1:]), session)
        return session

    def _alone(self) -> bool:
        """Whether no other connection has committed since the record cache's epoch
        began; if one has, a new epoch begins (no entry published before is trusted).

        Only inside a write transaction, where the write lock keeps others out."""
        if self._index is None or not self._conn.in_transaction:
            return False
        version = self._index.version()
        if version == self._alone_since:
            return True
        self._records.cache.epoch += 1
        self._alone_since = version
        return False

    @_guarded
    def put_session(self, session: Session, *, new: bool) -> None:
        seen = None if new else self._seen.get(session.id)
        if seen is not None:
            row, candidates = session_row_after(seen.session, seen.row, session)
        else:
            row = session_row(session)
        if new:
            pk = self._insert_session(row)
            changed: Container[int] = range(len(row))
        elif seen is None:
            found = self._conn.execute(q.UPDATE_SESSION, (*row[1:], session.id)).fetchall()
            if not found:
                raise SessionNotFoundError(session.id)
            pk = found[0][0]
            changed = range(len(row))
        else:
            pk = seen.pk
            before = seen.row
            changed = [i for i in candidates if before[i] != row[i]]
            if changed:
                self._conn.execute(
                    q.update_columns(tuple(changed)), [*[row[i] for i in changed], pk]
                )
        self._seen[session.id] = _Seen(pk, row, session)
        self._records.wrote(pk, row, session)
        if q.METADATA in changed:
            self._index_session(pk, session, replace=not new)
        if q.TAGS in changed:
            if not new:
                self._conn.execute(q.DELETE_TAGS, (session.id,))
            self._conn.executemany(q.INSERT_TAG, [(session.id, t) for t in sorted(session.tags)])

    def _insert_session(self, row: tuple[object, ...]) -> int:
        try:
            pk = self._conn.execute(q.INSERT_SESSION, row).lastrowid
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname != "SQLITE_CONSTRAINT_UNIQUE":
                raise
            raise SessionExistsError(str(row[0])) from exc
        assert pk is not None
        return pk

    def _index_session(self, pk: int, session: Session, *, replace: bool) -> None:
        if replace:
            self._conn.execute(q.UNINDEX_SESSION, (pk,))
        text = index_text(session.metadata)
        if text:
            self._conn.execute(q.INDEX_SESSION, (pk, text))

    def _write_queue(self) -> None:
        """Write the queued messages' rows before a statement that may delete messages
        (their triggers take their rows out of the queue), and before the commit."""
        if self._index is not None:
            self._index.write_queue()

    @_guarded
    def delete_session(self, session_id: str) -> None:
        self._write_queue()
        self._seen.pop(session_id, None)
        self._conn.execute(q.DELETE_SESSION, (session_id,))
        self._records.deleted(session_id)

    @_guarded
    def query_sessions(
        self,
        flt: SessionFilter,
        sort: SessionSort,
        limit: int,
        cursor: Cursor | None,
        now: datetime,
    ) -> list[Session]:
        sql, params, probes = q.select_sessions(flt, sort, cursor, to_micros(now), limit)
        self._probes[:] = probes
        try:
            rows = self._conn.execute(sql, params).fetchall()
        finally:
            self._probes.clear()
        return [self._session(row) for row in rows]

    @_guarded
    def expired_ids(self, cutoff: datetime) -> list[str]:
        rows = self._conn.execute(q.EXPIRED_IDS, {"now": to_micros(cutoff)}).fetchall()
        return [row[0] for row in rows]

    @_guarded
    def search(
        self,
        terms: Sequence[str],
        owner: str | None,
        include_expired: bool,
        limit: int,
        now: datetime,
    ) -> list[SearchHit]:
        if self._index is not None:
            self._index.catch_up()
        params = {
            "match": match_expression(terms),
            "owner": owner,
            "all": include_expired,
            "now": to_micros(now),
            "limit": limit,
            "per_hit": q.MESSAGES_PER_HIT,
        }
        hits: dict[str, SearchHit] = {}
        for row in self._conn.execute(q.SEARCH, params):
            session_id = row[1]
            hit = hits.get(session_id)
            if hit is None:
                hit = hits[session_id] = SearchHit(self._session(row[: q.SESSION_WIDTH]), [])
            if row[q.SESSION_WIDTH] is not None:
                hit.messages.append(decode_message(session_id, row[q.SESSION_WIDTH :]))
        return list(hits.values())

    # -- messages -----------------------------------------------------------
    @_guarded
    def find_messages(self, session_id: str, ids: Sequence[str]) -> dict[str, Message]:
        rows = self._conn.execute(q.FIND_MESSAGES, (json.dumps(list(ids)), session_id))
        return {row[1]: decode_message(session_id, row) for row in rows}

    @_guarded
    def insert_messages(self, session_id: str, messages: Sequence[Message]) -> None:
        """Insert the messages and queue them for the search index (see
        :mod:`chatkeep.stores.sqlite_index`)."""
        if self._index is None:
            raise RuntimeError("expected a writing connection, got a read-only one")
        execute = self._conn.execute
        first = doc = self._index.reserve(len(messages))
        for message in messages:
            execute(q.INSERT_MESSAGE, message_row(session_id, message, doc))
            doc += 1
        self._index.enqueue(session_id, messages, first)
        self._records.inserted(session_id, messages)

    @_guarded
    def drop_oldest(self, session_id: str, count: int) -> None:
        self._write_queue()
        self._conn.execute(q.DROP_OLDEST, (session_id, session_id, count))
        self._records.dropped_oldest(session_id)

    @_guarded
    def read_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]:
        whole = newest and after_seq is None and before_seq is None
        if whole:
            cached = self._records.newest(session_id, limit)
            if cached is not None:
                return cached
        params = (
            session_id,
            q.SEQ_MIN if after_seq is None else after_seq,
            q.SEQ_MAX if before_seq is None else before_seq,
            -1 if limit is None else limit,
        )
        rows = self._conn.execute(q.READ_NEWEST if newest else q.READ_OLDEST, params).fetchall()
        if newest:
            rows.reverse()
        messages = [decode_message(session_id, row) for row in rows]
        if whole:
            self._records.read_newest(session_id, messages)
        return messages

    @_guarded
    def delete_message(self, session_id: str, seq: int) -> None:
        self._write_queue()
        self._conn.execute(q.DELETE_MESSAGE, (session_id, seq))
        self._records.removed(session_id, seq)

    @_guarded
    def clear_messages(self, session_id: str) -> None:
        self._write_queue()
        self._conn.execute(q.CLEAR_MESSAGES, (session_id,))
        self._records.cleared(session_id)

    # -- maintenance --------------------------------------------------------
    @_guarded
    def counts(self, now: datetime) -> Counts:
        total, expired, messages = self._conn.execute(q.COUNTS, (to_micros(now),)).fetchone()
        owners = dict(self._conn.execute(q.COUNT_BY_OWNER).fetchall())
        return Counts(total, expired, messages, owners)

    @_guarded
    def optimize(self) -> list[str]:
        """Merge the search indexes, ANALYZE, VACUUM and truncate the WAL.

        VACUUM cannot run inside a transaction: an open (empty) one is committed
        first and opened again afterwards.
        """
        reopen = self._conn.in_transaction
        if self._index is not None:
            self._index.catch_up()
        if reopen:
            self._conn.execute("COMMIT")
        try:
            for table in ("message_search", "session_search"):
                self._conn.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")
            self._conn.execute("ANALYZE")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            if reopen:
                self._conn.execute("BEGIN IMMEDIATE")
                if self._index is not None:
                    self._index.forget_version()
        return [
            "merged the full-text search indexes",
            "analysed tables and indexes (ANALYZE)",
            "rebuilt the database file (VACUUM)",
            "checkpointed and truncated the write-ahead log",
        ]

    def housekeeping_due(self) -> bool:
        if self._index is None:
            return False
        return self._index.due() or self._checkpoint_due()

    def _checkpoint_due(self) -> bool:
        return self._conn.total_changes - self._checkpointed >= CHECKPOINT_CHANGES

    def housekeeping(self) -> None:
        """Index the queued messages once enough are queued, and checkpoint the WAL once
        enough has been written since the last checkpoint."""
        if self._index is not None and self._index.due():
            self._index_queued(self._index)
        if self._checkpoint_due():
            self._checkpoint()

    def _index_queued(self, index: MessageIndex) -> None:
        """Index every queued message, in a transaction of its own.

        If it fails, the messages stay queued (and found by the next search, which
        indexes them first); it is tried again once as many more are queued."""
        try:
            self.begin(True)
            try:
                index.catch_up()
                self.commit()
            except BaseException:
                self.rollback()
                raise
        except (sqlite3.Error, StoreUnavailableError) as exc:
            index.queued = 0
            logger.warning("SQLite database %s: indexing for search failed (%s)", self.path, exc)

    def _checkpoint(self) -> None:
        """A passive checkpoint: copy the WAL's committed pages into the file, waiting
        for no one (the pages that a reader still needs are copied by a later one).

        Nothing is lost if it fails: the pages stay in the WAL, where reads find them,
        and the next checkpoint copies them. The failure is logged."""
        self._checkpointed = self._conn.total_changes
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            logger.warning("SQLite database %s: checkpoint failed (%s)", self.path, exc)

    @_guarded
    def check(self) -> tuple[list[str], dict[str, JSON]]:
        self._write_queue()
        pragma = self._conn.execute
        mode = pragma("PRAGMA journal_mode").fetchone()[0]
        level = pragma("PRAGMA synchronous").fetchone()[0]
        sizes = {name: _file_size(self.path + suffix) for name, suffix in _FILES}
        details: dict[str, JSON] = {
            "path": self.path,
            "journal_mode": mode,
            "synchronous": _SYNCHRONOUS_NAMES.get(level, str(level)),
            "schema_version": pragma("PRAGMA user_version").fetchone()[0],
            "unindexed_messages": pragma(COUNT_QUEUED).fetchone()[0],
            "sqlite_version": sqlite3.sqlite_version,
            **sizes,
        }
        issues = [] if mode == "wal" else [f"journal_mode is {mode!r}, expected 'wal'"]
        if sizes["file_bytes"] <= QUICK_CHECK_MAX_BYTES:
            found = [row[0] for row in pragma("PRAGMA quick_check").fetchall()]
            issues.extend(f"quick_check: {line}" for line in found if line != "ok")
            details["quick_check"] = "ok" if found == ["ok"] else "failed"
        else:
            details["quick_check"] = "skipped: the file is larger than QUICK_CHECK_MAX_BYTES"
        return issues, details


_FILES = (("file_bytes", ""), ("wal_bytes", "-wal"))
_SYNCHRONOUS_NAMES = {0: "off", 1: "normal", 2: "full", 3: "extra"}


def _file_size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0
