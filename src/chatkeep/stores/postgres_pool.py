"""The PostgreSQL backend's connections: an asyncpg pool, and a few of its connections
kept checked out between operations.

Taking a connection from an asyncpg pool and giving it back costs several turns of the
event loop (the release runs as a shielded task), as much as a quarter of a short
statement's round trip. An operation that ends cleanly therefore leaves its connection
here instead, for the next operation to take at once; at most ``keep`` of them (the
pool's ``pool_min``, the connections it would hold open anyway). Every other release
goes through the pool, which decides what becomes of the connection: after an error, a
cancellation or a lost connection, and once the store is closing. While a task waits
for the pool (every connection is in use), connections go back to the pool too, so that
the waiting task gets one: held connections never starve it (with ``pool_min`` equal to
``pool_max``, the pool would otherwise never see a connection again).
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]

from chatkeep.errors import StoreUnavailableError
from chatkeep.stores.postgres_errors import DRIVER_ERRORS, translated


class Connections:
    """The connections of ``pool`` (an asyncpg pool), ``keep`` of them held between
    operations. ``where`` is the URL (password masked) that errors name."""

    __slots__ = ("_closing", "_idle", "_keep", "_waiting", "pool", "where")

    def __init__(self, pool: Any, keep: int, where: str) -> None:
        self.pool = pool
        self.where = where
        self._keep = keep
        self._idle: list[Any] = []
        self._closing = False
        self._waiting = 0
        """Tasks taking a connection from the pool."""

    async def acquire(self) -> Any:
        """A connection: one held since the last operation, if it is still open, else
        one from the pool."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if _ready(conn):
                return conn
            await self._give_back(conn)
        self._waiting += 1
        try:
            return await self.pool.acquire()
        except DRIVER_ERRORS as exc:
            raise StoreUnavailableError(f"PostgreSQL {self.where}: {exc}") from exc
        finally:
            self._waiting -= 1

    async def release(self, conn: Any, clean: bool) -> None:
        """Take back ``conn``; ``clean``: the work on it ended without an error, so that
        it can be held for the next operation if it is open and outside a transaction,
        and no task waits for the pool."""
        held = len(self._idle) < self._keep and not self._waiting
        if clean and held and not self._closing and _ready(conn):
            self._idle.append(conn)
            return
        await self._give_back(conn)

    async def _give_back(self, conn: Any) -> None:
        try:
            await self.pool.release(conn)
        except DRIVER_ERRORS as exc:
            raise translated(exc, self.where) from exc

    async def close(self) -> None:
        """Give the held connections back, then close the pool (which waits for the
        connections still in use)."""
        self._closing = True
        idle, self._idle = self._idle, []
        try:
            for conn in idle:
                await self._give_back(conn)
        finally:
            try:
                await self.pool.close()
            except DRIVER_ERRORS as exc:
                raise translated(exc, self.where) from exc


def _ready(conn: Any) -> bool:
    """Whether ``conn`` is open and outside a transaction. A connection that closed has
    gone back to the pool by itself: its proxy then raises ``InterfaceError``, and
    releasing it again does nothing."""
    try:
        return not conn.is_closed() and not conn.is_in_transaction()
    except asyncpg.InterfaceError:
        return False
