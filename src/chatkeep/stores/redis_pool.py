"""The Redis backend's connections: redis-py's ``BlockingConnectionPool`` opens them and
bounds their number; the connections that operations give back are kept here, newest
first, and handed out again without going through the pool.

Taking a connection from redis-py's pool and giving it back costs a condition, a
timeout, a health check and two events per operation, several times what one round
trip to a local server costs in Python. A kept connection is only checked for what
the pool would check: that it is still open and has nothing unread (a server that
closed it, after a restart say); if not, it goes back to the pool, which opens it
again. While a task waits for the pool (every connection is in use), connections go
back to the pool so that the waiting task gets one: kept connections never starve it.

The connections read and write with no timeout of their own: each
:class:`~chatkeep.stores.redis_link.Link` call runs under one deadline, and so does
taking a connection from the pool here (its connect and handshake included).
"""

from __future__ import annotations

import asyncio

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

KEPT = 16
"""At most how many idle connections are kept out of the pool."""


class ConnectionCache:
    """Connections of ``pool`` for one operation each; ``timeout`` bounds taking one."""

    def __init__(self, pool: BlockingConnectionPool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self._idle: list[AbstractConnection] = []
        self._waiting = 0
        """Tasks waiting for the pool."""

    async def take(self) -> AbstractConnection:
        """A connection, open and with nothing unread (redis-py's errors propagate,
        and TimeoutError after ``timeout`` seconds)."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if await _usable(conn):
                return conn
            await self.pool.release(conn)
        self._waiting += 1
        try:
            async with asyncio.timeout(self.timeout):
                fresh: AbstractConnection = await self.pool.get_connection()  # type: ignore[no-untyped-call]
        finally:
            self._waiting -= 1
        return fresh

    async def give_back(self, conn: AbstractConnection) -> None:
        """Keep ``conn`` for the next operation, or return it to the pool."""
        if self._waiting or len(self._idle) >= KEPT or not conn.is_connected:
            await self.pool.release(conn)
        else:
            self._idle.append(conn)

    async def close(self) -> None:
        """Close every connection (the kept ones are the pool's, counted in use)."""
        self._idle.clear()
        await self.pool.disconnect()


async def _usable(conn: AbstractConnection) -> bool:
    """Whether ``conn`` is open with nothing unread (else the pool opens it again)."""
    if not conn.is_connected:
        return False
    try:
        return not await conn.can_read()
    except (RedisError, OSError):
        return False
