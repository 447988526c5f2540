"""A transaction of the PostgreSQL backend: one pooled connection, and the statements
each backend call sends on it.

A write transaction locks each session it reads (``SELECT ... FOR UPDATE``), so
writers to one session, in any number of processes, take turns: seq assignment is
race-free. A read runs each statement on its own (no ``BEGIN``): under PostgreSQL's
READ COMMITTED each statement sees the last commit either way, and it saves two round
trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chatkeep.core.codec import to_micros
from chatkeep.core.models import JSON, Message, Session
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionSort
from chatkeep.errors import SessionExistsError, SessionNotFoundError
from chatkeep.stores import postgres_query as q
from chatkeep.stores.backend import Counts
from chatkeep.stores.deadlines import Deadlines
from chatkeep.stores.postgres_errors import reading, writing
from chatkeep.stores.postgres_rows import (
    decode_message,
    decode_session,
    message_columns,
    session_row,
    tokens,
    tsquery,
)
from chatkeep.stores.record_cache import SessionCache
from chatkeep.stores.remote_backend import AsyncTxn
from chatkeep.stores.sql.postgres import latest


class PostgresTxn(AsyncTxn):
    """One pooled connection, in a transaction when ``write``. ``where`` is the URL
    (password masked) that errors name."""

    def __init__(
        self,
        conn: Any,
        write: bool,
        where: str,
        deadlines: Deadlines,
        cache: SessionCache | None = None,
    ) -> None:
        self._conn = conn
        self._write = write
        self.where = where
        self.deadlines = deadlines
        self._cache = cache
        """Entries of the sessions this transaction writes are dropped from it."""
        self._seen: dict[str, tuple[object, ...]] = {}
        """Each session's row as this transaction last read or wrote it."""
        self._pending: tuple[str, list[list[object]]] | None = None
        """Messages to insert (session id, columns), held back so that the update of
        their session that follows inserts them in the same statement."""

    async def _flush(self) -> None:
        if self._pending is not None:
            session_id, columns = self._pending
            self._pending = None
            status = await self._conn.execute(q.update_columns((), True), session_id, *columns)
            if status.endswith(" 0"):
                raise SessionNotFoundError(session_id)

    async def before_read(self) -> None:
        """A read sees the messages held back: they are inserted first."""
        await self._flush()

    def abandon(self) -> None:
        self._conn.terminate()

    @writing
    async def finish(self) -> None:
        """Write what is held back; called before the transaction commits."""
        await self._flush()

    def _forget(self, session_id: str) -> None:
        if self._cache is not None:
            self._cache.drop(session_id)

    def _session(self, row: Sequence[Any]) -> Session:
        self._seen[row[0]] = tuple(row[: q.SESSION_WIDTH])
        return decode_session(row)

    # -- sessions -----------------------------------------------------------
    @reading
    async def get_session(self, session_id: str) -> Session | None:
        row = await self._conn.fetchrow(
            q.LOCK_SESSION if self._write else q.GET_SESSION, session_id
        )
        return None if row is None else self._session(row)

    @writing
    async def put_session(self, session: Session, *, new: bool) -> None:
        row = session_row(session)
        self._forget(session.id)
        pending = self._pending
        if pending is not None and (new or pending[0] != session.id):
            await self._flush()
            pending = None
        if new:
            status = await self._conn.execute(q.INSERT_SESSION, *row, tokens(session.metadata))
            if status.endswith(" 0"):
                raise SessionExistsError(session.id)
            self._seen[session.id] = row
            return
        seen = self._seen.get(session.id)
        if seen is None:
            changed: tuple[int, ...] = tuple(range(1, len(row)))
        else:
            changed = tuple(i for i, (a, b) in enumerate(zip(seen, row, strict=True)) if a != b)
        if seen is None or changed or pending is not None:
            params = [row[i] for i in changed]
            if q.METADATA in changed:
                params.append(tokens(session.metadata))
            added = [] if pending is None else pending[1]
            self._pending = None
            sql = q.update_columns(changed, pending is not None)
            status = await self._conn.execute(sql, session.id, *added, *params)
            if status.endswith(" 0"):
                raise SessionNotFoundError(session.id)
        self._seen[session.id] = row

    @reading
    async def delete_session(self, session_id: str) -> None:
        """The session and its messages. A session this write transaction has read
        (``FOR UPDATE``) or written is locked already; any other is locked first."""
        locked = self._write and self._seen.pop(session_id, None) is not None
        self._forget(session_id)
        if not locked:
            await self._conn.execute(q.LOCK_SESSION_ROW, session_id)
        await self._conn.execute(q.DELETE_SESSION, session_id)

    @reading
    async def query_sessions(
        self,
        flt: SessionFilter,
        sort: SessionSort,
        limit: int,
        cursor: Cursor | None,
        now: datetime,
    ) -> list[Session]:
        found: list[Session] = []
        while True:
            sql, params = q.select_sessions(flt, sort, cursor, to_micros(now), limit)
            if self._write:
                sql += " FOR UPDATE OF s"
            rows = await self._conn.fetch(sql, *params)
            sessions = [self._session(row) for row in rows]
            found.extend(s for s in sessions if q.metadata_matches(s, flt.metadata))
            if len(rows) < limit or len(found) >= limit:
                return found[:limit]
            last = sessions[-1]
            cursor = Cursor(sort, getattr(last, sort.field.value), last.id)

    @reading
    async def expired_ids(self, cutoff: datetime) -> list[str]:
        rows = await self._conn.fetch(q.EXPIRED_IDS, to_micros(cutoff))
        return [row[0] for row in rows]

    @reading
    async def search(
        self,
        terms: Sequence[str],
        owner: str | None,
        include_expired: bool,
        limit: int,
        now: datetime,
    ) -> list[SearchHit]:
        rows = await self._conn.fetch(
            q.SEARCH, tsquery(terms), owner, include_expired, to_micros(now), limit
        )
        hits: dict[str, SearchHit] = {}
        for row in rows:
            session_id = row[0]
            hit = hits.get(session_id)
            if hit is None:
                hit = hits[session_id] = SearchHit(decode_session(row), [])
            if row[q.SESSION_WIDTH] is not None:
                hit.messages.append(decode_message(session_id, row[q.SESSION_WIDTH :]))
        return list(hits.values())

    # -- messages -----------------------------------------------------------
    @reading
    async def find_messages(self, session_id: str, ids: Sequence[str]) -> dict[str, Message]:
        rows = await self._conn.fetch(q.FIND_MESSAGES, session_id, list(ids))
        return {row[1]: decode_message(session_id, row) for row in rows}

    @reading
    async def insert_messages(self, session_id: str, messages: Sequence[Message]) -> None:
        """Held back until the next call (or the commit): most often the update of the
        session, which then inserts them in the same statement."""
        if messages:
            self._pending = (session_id, message_columns(messages))

    @reading
    async def drop_oldest(self, session_id: str, count: int) -> None:
        await self._conn.execute(q.DROP_OLDEST, session_id, count)

    @reading
    async def read_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        newest: bool,
    ) -> list[Message]:
        rows = await self._conn.fetch(
            q.READ_NEWEST if newest else q.READ_OLDEST,
            session_id,
            q.SEQ_MIN if after_seq is None else after_seq,
            q.SEQ_MAX if before_seq is None else before_seq,
            limit,
        )
        if newest:
            rows.reverse()
        return [decode_message(session_id, row) for row in rows]

    @reading
    async def delete_message(self, session_id: str, seq: int) -> None:
        await self._conn.execute(q.DELETE_MESSAGE, session_id, seq)

    @reading
    async def clear_messages(self, session_id: str) -> None:
        await self._conn.execute(q.CLEAR_MESSAGES, session_id)

    # -- maintenance --------------------------------------------------------
    @reading
    async def counts(self, now: datetime) -> Counts:
        total, expired, messages = await self._conn.fetchrow(q.COUNTS, to_micros(now))
        owners = {row[0]: row[1] for row in await self._conn.fetch(q.COUNT_BY_OWNER)}
        return Counts(total, expired, messages, owners)

    @reading
    async def check(self) -> tuple[list[str], dict[str, JSON]]:
        version = await self._conn.fetchval(q.SCHEMA_VERSION)
        sessions_bytes, messages_bytes = await self._conn.fetchrow(q.SIZES)
        issues = []
        if version != latest():
            issues.append(f"schema version is {version}, expected {latest()}")
        details: dict[str, JSON] = {
            "url": self.where,
            "schema_version": version,
            "server_version": ".".join(map(str, self._conn.get_server_version()[:2])),
            "sessions_bytes": sessions_bytes,
            "messages_bytes": messages_bytes,
        }
        return issues, details
