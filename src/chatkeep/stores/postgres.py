"""The PostgreSQL backend: an asyncpg pool, one schema per store, versioned migrations.

``postgresql://user:password@host:port/db?schema=chat&pool_max=20`` opens a store kept in
schema ``chat`` (created if missing; every pooled connection's ``search_path``). The
SQL lives in :mod:`chatkeep.stores.postgres_query`, the rows in
:mod:`chatkeep.stores.postgres_rows`, the schema in ``sql/postgres/``; the store keeps
``pool_min`` connections between operations (:mod:`chatkeep.stores.postgres_pool`).
A statement that gets no reply within ``command_timeout`` seconds (default 60) fails
its call and closes its connection: a server that stops answering fails calls rather
than hangs them.

A single operation runs first without a transaction, as one checked statement where it
can (:mod:`chatkeep.stores.postgres_optimistic`); run again, and in a
``store.transaction()`` block, it runs in a transaction that locks the rows it reads
(:mod:`chatkeep.stores.postgres_txn`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from chatkeep.errors import ChatkeepError, StoreUnavailableError, TransactionConflictError
from chatkeep.stores.deadlines import Deadlines
from chatkeep.stores.postgres_errors import DRIVER_ERRORS, driver_errors
from chatkeep.stores.postgres_optimistic import OptimisticTxn
from chatkeep.stores.postgres_options import PostgresOptions, driver_dsn
from chatkeep.stores.postgres_pool import Connections
from chatkeep.stores.postgres_txn import PostgresTxn
from chatkeep.stores.record_cache import SessionCache
from chatkeep.stores.remote_backend import AsyncBackend, AsyncTxn
from chatkeep.stores.sql.postgres import migrate, quote_ident
from chatkeep.stores.urls import masked

CONNECT_ATTEMPTS = 3
RETRY_DELAY = 0.2
"""Seconds before the second attempt to connect; doubled for each further one."""


async def _no_reset(conn: Any) -> None:
    """Pooled connections need no reset: every transaction ends before release, and
    the only setting (``search_path``) is a startup parameter."""


class PostgresBackend(AsyncBackend):
    """Sessions and messages in one schema of a PostgreSQL database."""

    name = "postgresql"

    def __init__(self, pool: Any, where: str, options: PostgresOptions) -> None:
        self._pool = pool
        self._connections = Connections(pool, options.pool_min, where)
        self.where = where
        self.options = options
        self._cache = SessionCache(options.cache_sessions, options.cache_messages)
        self._deadlines = Deadlines(options.command_timeout)
        """Bounds the statements of every operation (not ``optimize``'s ``VACUUM``)."""

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

    def operation(self, write: bool) -> AbstractAsyncContextManager[AsyncTxn]:
        """One operation, run without a transaction (see
        :mod:`chatkeep.stores.postgres_optimistic`)."""
        return _Operation(self, write)

    @asynccontextmanager
    async def transaction(self, write: bool) -> AsyncIterator[AsyncTxn]:
        connections = self._connections
        conn = await connections.acquire()
        clean = False
        try:
            if not write:
                yield PostgresTxn(conn, False, self.where, self._deadlines)
                clean = True
                return
            async with driver_errors(self.where, self._deadlines, conn):
                tx = conn.transaction()
                await tx.start()
            txn = PostgresTxn(conn, True, self.where, self._deadlines, self._cache)
            try:
                yield txn
                await txn.finish()
            except BaseException:
                if _usable(conn):
                    async with driver_errors(self.where, self._deadlines, conn):
                        await tx.rollback()
                raise
            async with driver_errors(self.where, self._deadlines, conn):
                await tx.commit()
            clean = True
        finally:
            await connections.release(conn, clean)

    async def optimize(self) -> list[str]:
        connections = self._connections
        conn = await connections.acquire()
        clean = False
        try:
            async with driver_errors(self.where):
                await conn.execute("VACUUM (ANALYZE) sessions, messages, schema_version")
            clean = True
        finally:
            await connections.release(conn, clean)
        return ["vacuumed and analysed the tables (VACUUM ANALYZE)"]

    async def close(self) -> None:
        self._deadlines.close()
        await self._connections.close()


class _Operation:
    """An :class:`OptimisticTxn` on a pooled connection, its writes sent when the block
    ends. An error the operation raised from a session read from the cache, not yet
    checked, becomes a conflict: the store then runs the operation again in a
    transaction, which decides on the current row."""

    __slots__ = ("_backend", "_conn", "_txn", "_write")

    def __init__(self, backend: PostgresBackend, write: bool) -> None:
        self._backend = backend
        self._write = write

    async def __aenter__(self) -> OptimisticTxn:
        backend = self._backend
        self._conn = await backend._connections.acquire()
        self._txn = OptimisticTxn(
            self._conn, self._write, backend.where, backend._deadlines, backend._cache
        )
        return self._txn

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        backend = self._backend
        clean = False
        try:
            if exc is None:
                await self._txn.finish()
                clean = True
            elif (
                isinstance(exc, ChatkeepError)
                and not isinstance(exc, _FINAL_ERRORS)
                and self._txn.used_cache
            ):
                self._txn.forget()
                raise TransactionConflictError(
                    f"PostgreSQL {backend.where}: to be decided on the current session ({exc})"
                ) from exc
        finally:
            await backend._connections.release(self._conn, clean)


_FINAL_ERRORS = (TransactionConflictError, StoreUnavailableError)
"""Errors that the current session would not change."""


def _usable(conn: Any) -> bool:
    """False once the connection is lost (its pool has then taken it back already)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


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
