"""The PostgreSQL backend: an asyncpg pool, one schema per store, versioned migrations.

``postgresql://user:password@host:port/db?schema=chat&pool_max=20`` opens a store kept in
schema ``chat`` (created if missing; every pooled connection's ``search_path``). The
SQL lives in :mod:`chatkeep.stores.postgres_query`, the rows in
:mod:`chatkeep.stores.postgres_rows`, the schema in ``sql/postgres/``.

A write transaction locks each session it reads (``SELECT ... FOR UPDATE``), so
writers to one session, in any number of processes, take turns: seq assignment is
race-free. A read runs each statement on its own (no ``BEGIN``): under PostgreSQL's
READ COMMITTED each statement sees the last commit either way, and it saves two round
trips.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg  # type: ignore[import-untyped]

from chatkeep.core.codec import to_micros
from chatkeep.core.models import JSON, Message, Session
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionSort
from chatkeep.errors import (
    ChatkeepError,
    SessionExistsError,
    SessionNotFoundError,
    StoreUnavailableError,
    TransactionConflictError,
)
from chatkeep.stores import postgres_query as q
from chatkeep.stores.backend import Counts
from chatkeep.stores.postgres_options import PostgresOptions, driver_dsn
from chatkeep.stores.postgres_rows import (
    decode_message,
    decode_session,
    message_columns,
    session_row,
    tokens,
    tsquery,
)
from chatkeep.stores.remote_backend import AsyncBackend, AsyncTxn
from chatkeep.stores.sql.postgres import latest, migrate, quote_ident
from chatkeep.stores.urls import masked

CONNECT_ATTEMPTS = 3
RETRY_DELAY = 0.2
"""Seconds before the second attempt to connect; doubled for each further one."""

DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
_CONFLICTS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)

P = ParamSpec("P")
R = TypeVar("R")


def _driver_call(
    flush: bool,
) -> Callable[
    [Callable[Concatenate[PostgresTxn, P], Coroutine[Any, Any, R]]],
    Callable[Concatenate[PostgresTxn, P], Coroutine[Any, Any, R]],
]:
    """Turn driver errors raised by a method into chatkeep errors; with ``flush``, first
    insert the messages the transaction holds back."""

    def decorate(
        method: Callable[Concatenate[PostgresTxn, P], Coroutine[Any, Any, R]],
    ) -> Callable[Concatenate[PostgresTxn, P], Coroutine[Any, Any, R]]:
        @wraps(method)
        async def run(self: PostgresTxn, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                if flush and self._pending is not None:
                    await self._flush()
                return await method(self, *args, **kwargs)
            except ChatkeepError:
                raise
            except _CONFLICTS as exc:
                raise TransactionConflictError(f"PostgreSQL {self.where}: {exc}") from exc
            except DRIVER_ERRORS as exc:
                raise StoreUnavailableError(f"PostgreSQL {self.where}: {exc}") from exc

        return run

    return decorate


_guarded = _driver_call(flush=True)
_holding = _driver_call(flush=False)


class PostgresTxn(AsyncTxn):
    """One pooled connection, in a transaction when ``write``. ``where`` is the URL
    (password masked) that errors name."""

    def __init__(self, conn: Any, write: bool, where: str) -> None:
        self._conn = conn
        self._write = write
        self.where = where
        self._seen: dict[str, tuple[object, ...]] = {}
        """Each session's row as this transaction last read or wrote it."""
        self._pending: tuple[str, list[list[object]]] | None = None
        """Messages to insert (session id, columns), held back so that the update of
        their session that follows inserts them in the same statement."""

    async def _flush(self) -> None:
        if self._pending is not None:
            session_id, columns = self._pending
            self._pending = None
            await self._conn.execute(q.INSERT_MESSAGES, session_id, *columns)

    @_holding
    async def finish(self) -> None:
        """Write what is held back; called before the transaction commits."""
        await self._flush()

    def _session(self, row: Sequence[Any]) -> Session:
        self._seen[row[0]] = tuple(row[: q.SESSION_WIDTH])
        return decode_session(row)

    # -- sessions -----------------------------------------------------------
    @_guarded
    async def get_session(self, session_id: str) -> Session | None:
        row = await self._conn.fetchrow(
            q.LOCK_SESSION if self._write else q.GET_SESSION, session_id
        )
        return None if row is None else self._session(row)

    @_holding
    async def put_session(self, session: Session, *, new: bool) -> None:
        row = session_row(session)
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

    @_guarded
    async def delete_session(self, session_id: str) -> None:
        self._seen.pop(session_id, None)
        await self._conn.execute(q.DELETE_SESSION, session_id)

    @_guarded
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

    @_guarded
    async def expired_ids(self, cutoff: datetime) -> list[str]:
        rows = await self._conn.fetch(q.EXPIRED_IDS, to_micros(cutoff))
        return [row[0] for row in rows]

    @_guarded
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
    @_guarded
    async def find_messages(self, session_id: str, ids: Sequence[str]) -> dict[str, Message]:
        rows = await self._conn.fetch(q.FIND_MESSAGES, session_id, list(ids))
        return {row[1]: decode_message(session_id, row) for row in rows}

    @_guarded
    async def insert_messages(self, session_id: str, messages: Sequence[Message]) -> None:
        """Held back until the next call (or the commit): most often the update of the
        session, which then inserts them in the same statement."""
        if messages:
            self._pending = (session_id, message_columns(messages))

    @_guarded
    async def drop_oldest(self, session_id: str, count: int) -> None:
        await self._conn.execute(q.DROP_OLDEST, session_id, count)

    @_guarded
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

    @_guarded
    async def delete_message(self, session_id: str, seq: int) -> None:
        await self._conn.execute(q.DELETE_MESSAGE, session_id, seq)

    @_guarded
    async def clear_messages(self, session_id: str) -> None:
        await self._conn.execute(q.CLEAR_MESSAGES, session_id)

    # -- maintenance --------------------------------------------------------
    @_guarded
    async def counts(self, now: datetime) -> Counts:
        total, expired, messages = await self._conn.fetchrow(q.COUNTS, to_micros(now))
        owners = {row[0]: row[1] for row in await self._conn.fetch(q.COUNT_BY_OWNER)}
        return Counts(total, expired, messages, owners)

    @_guarded
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


async def _no_reset(conn: Any) -> None:
    """Pooled connections need no reset: every transaction ends before release, and
    the only setting (``search_path``) is a startup parameter."""


class PostgresBackend(AsyncBackend):
    """Sessions and messages in one schema of a PostgreSQL database."""

    name = "postgresql"

    def __init__(self, pool: Any, where: str, options: PostgresOptions) -> None:
        self._pool = pool
        self.where = where
        self.options = options

    @classmethod
    async def open(cls, url: str, options: Mapping[str, str]) -> PostgresBackend:
        settings = PostgresOptions.parse(options)
        where = masked(url)
        pool = await _create_pool(driver_dsn(url), settings, where)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, settings.schema)
        except ChatkeepError:
            await pool.close()
            raise
        except DRIVER_ERRORS as exc:
            await pool.close()
            raise StoreUnavailableError(
                f"PostgreSQL {where}: cannot prepare schema {settings.schema!r} ({exc})"
            ) from exc
        except BaseException:
            await pool.close()
            raise
        return cls(pool, where, settings)

    @asynccontextmanager
    async def transaction(self, write: bool) -> AsyncIterator[AsyncTxn]:
        try:
            conn = await self._pool.acquire()
        except DRIVER_ERRORS as exc:
            raise StoreUnavailableError(f"PostgreSQL {self.where}: {exc}") from exc
        try:
            if not write:
                yield PostgresTxn(conn, False, self.where)
                return
            async with _driver_errors(self.where):
                tx = conn.transaction()
                await tx.start()
            txn = PostgresTxn(conn, True, self.where)
            try:
                yield txn
                await txn.finish()
            except BaseException:
                if _usable(conn):
                    async with _driver_errors(self.where):
                        await tx.rollback()
                raise
            async with _driver_errors(self.where):
                await tx.commit()
        finally:
            async with _driver_errors(self.where):
                await self._pool.release(conn)

    async def optimize(self) -> list[str]:
        async with _driver_errors(self.where), self._pool.acquire() as conn:
            await conn.execute("VACUUM (ANALYZE) sessions, messages, schema_version")
        return ["vacuumed and analysed the tables (VACUUM ANALYZE)"]

    async def close(self) -> None:
        async with _driver_errors(self.where):
            await self._pool.close()


def _usable(conn: Any) -> bool:
    """False once the connection is lost (its pool has then taken it back already)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


@asynccontextmanager
async def _driver_errors(where: str) -> AsyncIterator[None]:
    try:
        yield
    except ChatkeepError:
        raise
    except _CONFLICTS as exc:
        raise TransactionConflictError(f"PostgreSQL {where}: {exc}") from exc
    except DRIVER_ERRORS as exc:
        raise StoreUnavailableError(f"PostgreSQL {where}: {exc}") from exc


async def _create_pool(dsn: str, settings: PostgresOptions, where: str) -> Any:
    """A pool with its first connections open, after at most :data:`CONNECT_ATTEMPTS`."""
    delay = RETRY_DELAY
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=settings.pool_min,
                max_size=settings.pool_max,
                timeout=settings.connect_timeout,
                reset=_no_reset,
                server_settings={"search_path": quote_ident(settings.schema)},
            )
        except DRIVER_ERRORS as exc:
            if attempt == CONNECT_ATTEMPTS or isinstance(exc, _FINAL):
                raise StoreUnavailableError(
                    f"cannot connect to PostgreSQL at {where} "
                    f"({attempt} attempt{'s' if attempt > 1 else ''}): {exc}"
                ) from exc
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


_FINAL = (
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)
"""Errors that another attempt would not change."""
