"""The Redis backend (``redis://host:port/db?prefix=...``), on redis-py's asyncio client.

Plain Redis 7, no modules. Each session is a JSON record, a sorted set of messages
scored by seq and a hash from message id to seq; sorted sets per sort field (global
and per owner) serve listings, one more the expiry scan. The layout is in
:mod:`chatkeep.stores.redis_keys`; every key starts with ``<prefix>:``.

Transactions are optimistic, queued by advisory per-session locks
(:mod:`chatkeep.stores.redis_txn`): a lost race raises ``TransactionConflictError``, on
which :class:`~chatkeep.stores.remote.RemoteStore` runs a single operation again; a
``store.transaction()`` block that loses one raises it to the caller (nothing of the
block was written). Expiry follows the store's clock; native TTL only collects garbage
(:mod:`chatkeep.stores.redis_writes`).

Costs, in round trips: a single operation on one session runs first without a
transaction (:mod:`chatkeep.stores.redis_optimistic`): its session comes from a cache of
records checked byte for byte by the server, its writes go out as one Lua script that
checks the record first. Reading the last messages is one round trip (the record's
``GET`` with the messages; those the cache holds by their bytes are not decoded again,
while the messages themselves are always read, so damaged ones are found); an append
is one (the script), one more when it drops old messages out of the window or carries
idempotency keys, and one more when the session is not in the cache. When the check
fails the operation runs again in a transaction: reading messages is then two round
trips (the record, then the messages) and an append two (lock + watch + read of the
record in one, then the MULTI/EXEC). Listing reads the records of the sessions it walks
(see :mod:`chatkeep.stores.redis_scan`); search reads every message of the sessions it
scans: O(messages of the owner's sessions, or of all sessions when no owner is given).

URL options: ``prefix`` (default ``chatkeep``), ``max_connections`` (default 64),
``socket_timeout`` (seconds, default 10).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool
from redis.exceptions import RedisError

from chatkeep.errors import (
    ChatkeepError,
    ConfigurationError,
    StoreUnavailableError,
    TransactionConflictError,
)
from chatkeep.stores.deadlines import Deadlines
from chatkeep.stores.record_cache import SessionCache
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.redis_link import Link
from chatkeep.stores.redis_maintenance import prune
from chatkeep.stores.redis_optimistic import OptimisticRedisTxn
from chatkeep.stores.redis_options import number_option
from chatkeep.stores.redis_pool import ConnectionCache
from chatkeep.stores.redis_txn import RedisTxn
from chatkeep.stores.remote_backend import AsyncBackend, AsyncTxn
from chatkeep.stores.urls import masked

CONNECT_ATTEMPTS = 3
"""How many times opening the store tries to reach the server (0.2 s, then 0.4 s apart)."""

_KNOWN = ("prefix", "max_connections", "socket_timeout")
_PREFIX, _MAX_CONNECTIONS, _SOCKET_TIMEOUT = "chatkeep", 64, 10.0
CACHE_SESSIONS, CACHE_MESSAGES = 1024, 50
"""How many session records a store keeps, and newest messages of each (see
:mod:`chatkeep.stores.redis_optimistic`)."""
_FINAL_ERRORS = (TransactionConflictError, StoreUnavailableError)
"""Errors that the current session would not change."""


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """The URL query options of ``redis://...``."""

    prefix: str = _PREFIX
    max_connections: int = _MAX_CONNECTIONS
    socket_timeout: float = _SOCKET_TIMEOUT

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> RedisOptions:
        unknown = sorted(set(options) - set(_KNOWN))
        if unknown:
            raise ConfigurationError(
                unknown[0], f"is not an option of redis:// (known: {', '.join(_KNOWN)})"
            )
        prefix = options.get("prefix", _PREFIX)
        if not prefix or not prefix.isprintable() or any(c.isspace() for c in prefix):
            raise ConfigurationError(
                "prefix", f"{prefix!r} is not a key prefix (printable, no spaces)"
            )
        return cls(
            prefix,
            int(number_option(options, "max_connections", _MAX_CONNECTIONS, int, "a number >= 1")),
            number_option(
                options, "socket_timeout", _SOCKET_TIMEOUT, float, "a number of seconds > 0"
            ),
        )


class RedisBackend(AsyncBackend):
    """Sessions and messages in one Redis database, under a key prefix."""

    name = "redis"

    def __init__(self, pool: BlockingConnectionPool, options: RedisOptions, where: str) -> None:
        self._pool = pool
        self._conns = ConnectionCache(pool, options.socket_timeout)
        self._deadlines = Deadlines(options.socket_timeout)
        """Bounds every round trip (a timer shared by all, cheaper than one each)."""
        self.options = options
        self.keys = Keys(options.prefix)
        self.where = where
        self.log_changes = False
        """Write transactions put their changes in the write-behind outbox."""
        self.idle_millis: int | None = None
        """The longest a session's keys stay in Redis without a write (None: no cap)."""
        self._cache = SessionCache(CACHE_SESSIONS, CACHE_MESSAGES)

    @classmethod
    async def open(cls, url: str, options: Mapping[str, str]) -> RedisBackend:
        settings = RedisOptions.parse(options)
        base = urlunsplit(urlsplit(url)._replace(query=""))
        where = masked(base)
        try:
            pool = BlockingConnectionPool.from_url(
                base,
                max_connections=settings.max_connections,
                timeout=settings.socket_timeout,
                # Each call has a deadline of its own (Link, ConnectionCache).
                socket_timeout=None,
                socket_connect_timeout=settings.socket_timeout,
                protocol=2,
            )
        except ValueError as exc:
            raise ConfigurationError("store URL", f"{where}: {exc}") from None
        backend = cls(pool, settings, where)
        await backend._ping()
        return backend

    async def _ping(self) -> None:
        """Reach the server, trying :data:`CONNECT_ATTEMPTS` times."""
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                async with self._link() as link:
                    await link.run(("PING",))
                return
            except StoreUnavailableError as exc:
                if attempt + 1 == CONNECT_ATTEMPTS:
                    await self._conns.close()
                    raise StoreUnavailableError(
                        f"cannot reach Redis at {self.where} "
                        f"after {CONNECT_ATTEMPTS} attempts: {exc.__cause__ or exc}"
                    ) from exc
            await asyncio.sleep(0.2 * 2**attempt)

    def connection(self) -> AbstractAsyncContextManager[Link]:
        """A connection of the pool for the block."""
        return self._link()

    @asynccontextmanager
    async def _link(self) -> AsyncIterator[Link]:
        """A connection of the pool for the block."""
        link = await self._take()
        try:
            yield link
        finally:
            await self._conns.give_back(link.conn)

    async def _take(self) -> Link:
        """A connection for one block, to give back to ``self._conns``."""
        try:
            conn = await self._conns.take()
        except TimeoutError as exc:
            raise StoreUnavailableError(
                f"Redis at {self.where}: no connection within {self.options.socket_timeout:g} s"
            ) from exc
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"Redis at {self.where}: {exc}") from exc
        return Link(conn, self.where, self._deadlines)

    @asynccontextmanager
    async def transaction(self, write: bool, *, log: bool = True) -> AsyncIterator[RedisTxn]:
        """A transaction; ``log=False`` keeps its writes out of the outbox (a copy that
        is in the durable store already)."""
        async with self._link() as link:
            txn = RedisTxn(
                link,
                self.keys,
                write,
                log=log and self.log_changes,
                # A logged write keeps the session's own TTL until the sync starts the
                # idle one (redis_outbox.ack): nothing leaves Redis before it is synced.
                idle_millis=None if log and self.log_changes else self.idle_millis,
            )
            try:
                yield txn
                await txn.commit()
            except BaseException:
                await txn.abort()
                raise

    def operation(self, write: bool) -> AbstractAsyncContextManager[AsyncTxn]:
        """One operation, run without a transaction (see
        :mod:`chatkeep.stores.redis_optimistic`)."""
        return _Operation(self, write)

    async def optimize(self) -> list[str]:
        async with self._link() as link:
            removed = await prune(link, self.keys)
        return [f"removed {removed} listing entries of sessions that Redis expired natively"]

    async def close(self) -> None:
        self._deadlines.close()
        await self._conns.close()


class _Operation:
    """The block of one operation (see :meth:`RedisBackend.operation`): a connection
    and an :class:`OptimisticRedisTxn` on it, whose writes go out when the block ends.

    An error the operation raised from a record read from the cache, not yet checked,
    becomes a conflict: the store then runs the operation again in a transaction, which
    decides on the current record. (A class rather than a generator-based context
    manager: this runs once per operation.)
    """

    __slots__ = ("_backend", "_link", "_txn", "_write")

    def __init__(self, backend: RedisBackend, write: bool) -> None:
        self._backend = backend
        self._write = write

    async def __aenter__(self) -> OptimisticRedisTxn:
        backend = self._backend
        self._link = link = await backend._take()
        self._txn = OptimisticRedisTxn(
            link,
            backend.keys,
            self._write,
            backend._cache,
            log=backend.log_changes,
            idle_millis=None if backend.log_changes else backend.idle_millis,
        )
        return self._txn

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        txn = self._txn
        try:
            if exc is None:
                await txn.finish()
            elif (
                isinstance(exc, ChatkeepError)
                and not isinstance(exc, _FINAL_ERRORS)
                and txn.used_cache
            ):
                txn.forget()
                raise TransactionConflictError(
                    f"Redis at {self._backend.where}: to be decided on the current session ({exc})"
                ) from exc
        finally:
            await self._backend._conns.give_back(self._link.conn)
