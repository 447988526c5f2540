"""PostgreSQL and Redis stores against their raw drivers: append one message per call,
then read the last 20.

    python bench/bench_remote.py [--backend postgresql|redis|all] [--sessions N]
                                 [--messages M] [--quick] [--options K=V&...]

Servers: ``CHATKEEP_TEST_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test)
and ``CHATKEEP_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/0). Every repetition
works in a fresh private namespace (schema or key prefix ``bench_<random>``) that is
dropped when it ends, also on failure. Measured 3 times, the median printed:

- PostgreSQL raw: an asyncpg pool (no reset query on release, as the store's), one
  autocommitted ``INSERT`` per message into a plain table (session_id, seq, content)
  with a primary key; read ``SELECT ... ORDER BY seq DESC LIMIT 20``;
- Redis raw: redis-py asyncio, ``RPUSH + LTRIM + EXPIRE`` pipelined per message (window
  and TTL as the store's defaults); read ``LRANGE key -20 -1``;
- store: ``await store.append_messages(id, NewMessage(...))`` per message, then
  ``await store.get_messages(id, last=20)``.

Raw and store work alternate in rounds (one message to every session, or one read of
every session) so that both see the same machine state. Afterwards each contender's
messages are checked (count and order per session), and one more instrumented run
counts, per call, the round trips, the statements or commands and the time spent in the
driver's network calls, by statement (PostgreSQL) or by round trip (Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

import chatkeep
from chatkeep.core.rules import DEFAULT_MAX_MESSAGES, DEFAULT_TTL

READ_LAST = 20
READ_ROUNDS = 5
REPEAT = 3
SIZE = 200
PROFILE_MESSAGES = 10
URLS = {
    "postgresql": ("CHATKEEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "redis": ("CHATKEEP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}


def content(seq: int) -> str:
    """About 200 bytes that start with the message's number (to check the order)."""
    return (
        f"{seq:06d} " + ("Could you summarise what we decided about the release? " * 4)[: SIZE - 7]
    )


@dataclass(slots=True)
class Calls:
    """Per-call seconds of each contender."""

    times: dict[str, list[float]] = field(default_factory=dict)

    async def run(self, name: str, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        started = time.perf_counter()
        await fn(*args)
        self.times.setdefault(name, []).append(time.perf_counter() - started)


@dataclass(slots=True)
class Timings:
    append: Calls
    read: Calls


async def _no_reset(conn: Any) -> None:
    """No reset query when a connection goes back to the pool (as the store's pool):
    asyncpg's default costs a round trip per call."""


class RawPostgres:
    """asyncpg on one plain table; ``seq`` kept per session by the caller."""

    def __init__(self, pool: Any, table: str) -> None:
        self.pool = pool
        self.table = table
        self.insert = f"INSERT INTO {table} (session_id, seq, content) VALUES ($1, $2, $3)"
        self.read_sql = (
            f"SELECT seq, content FROM {table} WHERE session_id = $1 ORDER BY seq DESC LIMIT $2"
        )
        self.all_sql = f"SELECT content FROM {table} WHERE session_id = $1 ORDER BY seq"

    @classmethod
    async def open(cls, url: str, schema: str) -> RawPostgres:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=10, reset=_no_reset)
        table = f"{schema}.raw_messages"
        await pool.execute(
            f"CREATE TABLE {table} (session_id text NOT NULL, seq integer NOT NULL, "
            "content text NOT NULL, PRIMARY KEY (session_id, seq))"
        )
        return cls(pool, table)

    async def append(self, session_id: str, seq: int) -> None:
        await self.pool.execute(self.insert, session_id, seq, content(seq))

    async def read(self, session_id: str) -> int:
        rows = await self.pool.fetch(self.read_sql, session_id, READ_LAST)
        rows.reverse()
        return len(rows)

    async def stored(self, session_id: str) -> list[str]:
        return [row[0] for row in await self.pool.fetch(self.all_sql, session_id)]

    async def close(self) -> None:
        await self.pool.close()


class RawRedis:
    """redis-py asyncio, one list per session."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = int(DEFAULT_TTL.total_seconds())

    async def append(self, session_id: str, seq: int) -> None:
        key = f"{self.prefix}{session_id}"
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, content(seq))
        pipe.ltrim(key, -DEFAULT_MAX_MESSAGES, -1)
        pipe.expire(key, self.ttl)
        await pipe.execute()

    async def read(self, session_id: str) -> int:
        return len(await self.client.lrange(f"{self.prefix}{session_id}", -READ_LAST, -1))

    async def stored(self, session_id: str) -> list[str]:
        items = await self.client.lrange(f"{self.prefix}{session_id}", 0, -1)
        return [item.decode() if isinstance(item, bytes) else item for item in items]

    async def close(self) -> None:
        await self.client.aclose()


@asynccontextmanager
async def namespace(backend: str, base: str, options: str = "") -> AsyncIterator[tuple[str, Any]]:
    """A fresh store URL (with more ``options``) and a raw contender in one private
    namespace, dropped at exit."""
    name = f"bench_{secrets.token_hex(6)}"
    sep = "&" if "?" in base else "?"
    options = f"&{options}" if options else ""
    if backend == "postgresql":
        admin = await asyncpg.connect(base)
        raw: Any = None
        try:
            await admin.execute(f"CREATE SCHEMA {name}")
            raw = await RawPostgres.open(base, name)
            yield f"{base}{sep}schema={name}{options}", raw
        finally:
            if raw is not None:
                await raw.close()
            await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            await admin.close()
    else:
        client = aioredis.Redis.from_url(base)
        try:
            yield f"{base}{sep}prefix={name}{options}", RawRedis(client, f"{name}.raw:")
        finally:
            for pattern in (f"{name}:*", f"{name}.raw:*"):
                keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
                for start in range(0, len(keys), 1000):
                    await client.unlink(*keys[start : start + 1000])
            await client.aclose()


async def verify(store: Any, raw: Any, ids: list[str], messages: int) -> None:
    """Every session of both contenders holds its messages, all of them, in order."""
    expected = [content(seq) for seq in range(1, messages + 1)][-DEFAULT_MAX_MESSAGES:]
    for sid in ids:
        kept = [m.content for m in await store.get_messages(sid)]
        if kept != expected:
            sys.exit(f"store: session {sid} holds {len(kept)} messages, not the ones sent")
        if await raw.stored(sid) != expected:
            sys.exit(f"raw: session {sid} does not hold the messages sent, in order")


async def store_append(store: chatkeep.Store, sid: str, seq: int) -> None:
    await store.append_messages(sid, chatkeep.NewMessage(role="user", content=content(seq)))


async def store_read(store: chatkeep.Store, sid: str, _: int = 0) -> None:
    await store.get_messages(sid, last=READ_LAST)


async def repetition(
    backend: str, base: str, sessions: int, messages: int, options: str
) -> Timings:
    appends, reads = Calls(), Calls()
    async with (
        namespace(backend, base, options) as (url, raw),
        chatkeep.open_store(url) as store,
    ):
        ids = [(await store.create_session(owner="bench")).id for _ in range(sessions)]
        for seq in range(1, messages + 1):
            for sid in ids:
                await appends.run("raw", raw.append, sid, seq)
            for sid in ids:
                await appends.run("store", store_append, store, sid, seq)
        for _ in range(READ_ROUNDS):
            for sid in ids:
                await reads.run("raw", raw.read, sid)
            for sid in ids:
                await reads.run("store", store_read, store, sid)
        await verify(store, raw, ids, messages)
    return Timings(appends, reads)


_RESP_NAME = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")


def _runs(names: list[str]) -> list[tuple[str, int]]:
    """``names`` with repeats next to each other counted: [("ZADD", 5), ...]."""
    runs: list[tuple[str, int]] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return runs


Profile = dict[str, tuple[float, ...]]
"""Per call: round trips, commands, µs in the driver's network calls, µs in all."""


class Trips:
    """Round trips and seconds spent waiting for the server, counted while active."""

    def __init__(self) -> None:
        self.trips = 0
        self.commands = 0
        self.waiting = 0.0
        self.label = ""
        self.ids: list[str] = []
        self.current = ""
        """The commands of the last round trip sent to Redis."""
        """What is being measured; statements are kept apart per label while it is set."""
        self.statements: dict[tuple[str, str], list[float]] = {}
        """(label, statement's first words): [count, seconds]."""

    def log_query(self, record: Any) -> None:
        self.trips += 1
        self.commands += 1
        self.waiting += record.elapsed
        self.count(" ".join(record.query.split()[:2]).rstrip(",;"), 1, record.elapsed)

    def count(self, statement: str, calls: int, seconds: float) -> None:
        if self.label:
            entry = self.statements.setdefault((self.label, statement), [0, 0.0])
            entry[0] += calls
            entry[1] += seconds

    @asynccontextmanager
    async def redis_patched(self) -> AsyncIterator[None]:
        """Count sends (round trips) and replies (commands) of every Redis connection."""
        conn_class: Any = AbstractConnection
        send, read = conn_class.send_packed_command, conn_class.read_response

        async def counted_send(conn: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
            self.trips += 1
            packed = command if isinstance(command, bytes) else b"".join(command)
            names = [name.decode().upper() for name in _RESP_NAME.findall(packed)]
            self.current = " ".join(name if n == 1 else f"{name}x{n}" for name, n in _runs(names))
            started = time.perf_counter()
            try:
                return await send(conn, command, *args, **kwargs)
            finally:
                self.waiting += time.perf_counter() - started
                self.count(self.current, 1, time.perf_counter() - started)

        async def counted_read(conn: Any, *args: Any, **kwargs: Any) -> Any:
            self.commands += 1
            started = time.perf_counter()
            try:
                return await read(conn, *args, **kwargs)
            finally:
                self.waiting += time.perf_counter() - started
                self.count(self.current, 0, time.perf_counter() - started)

        conn_class.send_packed_command, conn_class.read_response = counted_send, counted_read
        try:
            yield
        finally:
            conn_class.send_packed_command, conn_class.read_response = send, read


def pool_connections(pool: Any) -> list[Any]:
    return [holder._con for holder in pool._holders if holder._con is not None]


async def profile(backend: str, base: str, sessions: int, options: str) -> tuple[Profile, Trips]:
    """Per call: round trips, statements or commands, microseconds in the driver's
    network calls (waiting for the server included), microseconds in all."""
    found: dict[str, list[float]] = {}
    if backend == "postgresql":
        options = "&".join(filter(None, ("pool_min=1&pool_max=1", options)))
    async with AsyncExitStack() as stack:
        url, raw = await stack.enter_async_context(namespace(backend, base, options))
        store = await stack.enter_async_context(chatkeep.open_store(url))
        ids = [(await store.create_session(owner="bench")).id for _ in range(sessions)]
        trips = Trips()
        trips.ids = ids
        work: list[tuple[str, Callable[[str, int], Awaitable[object]]]] = []
        if backend == "postgresql":
            plain = RawPostgres(await asyncpg.create_pool(base, min_size=1, max_size=1), raw.table)
            stack.push_async_callback(plain.close)
            pools = (raw.pool, plain.pool, cast(Any, store)._backend._pool)
            for conn in [c for pool in pools for c in pool_connections(pool)]:
                conn.add_query_logger(trips.log_query)

            async def ping() -> None:
                await raw.pool.fetchval("SELECT 1")

            work.append(("raw, default pool", lambda sid, seq: plain.append(sid, seq + 1000)))
        else:

            async def ping() -> None:
                await raw.client.ping()

        work[:0] = [
            ("raw append", raw.append),
            ("store append", functools.partial(store_append, store)),
        ]
        work += [
            ("raw read", lambda sid, _: raw.read(sid)),
            ("store read", functools.partial(store_read, store)),
            ("empty round trip", lambda sid, _: ping()),
        ]
        async with trips.redis_patched() if backend == "redis" else _nothing():
            for label, fn in work:
                for seq in range(1, PROFILE_MESSAGES + 2):
                    trips.trips, trips.commands, trips.waiting = 0, 0, 0.0
                    trips.label = label if seq > 1 else ""
                    started = time.perf_counter()
                    for sid in ids:
                        await fn(sid, seq)
                    total = time.perf_counter() - started
                    if seq > 1:  # the first round fills the statement caches
                        row = (trips.trips, trips.commands, trips.waiting, total)
                        sums = found.setdefault(label, [0.0] * 4)
                        found[label] = [a + b for a, b in zip(sums, row, strict=True)]
    calls = PROFILE_MESSAGES * sessions
    rows: Profile = {
        k: (v[0] / calls, v[1] / calls, v[2] / calls * 1e6, v[3] / calls * 1e6)
        for k, v in found.items()
    }
    return rows, trips


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1e6


async def server_version(backend: str, base: str) -> str:
    if backend == "postgresql":
        conn = await asyncpg.connect(base)
        try:
            return f"PostgreSQL {await conn.fetchval('SHOW server_version')}"
        finally:
            await conn.close()
    client = aioredis.Redis.from_url(base)
    try:
        return f"Redis {(await client.info('server'))['redis_version']}"
    finally:
        await client.aclose()


def report(backend: str, version: str, sessions: int, messages: int, runs: list[Timings]) -> None:
    driver = (
        f"asyncpg {asyncpg.__version__}"
        if backend == "postgresql"
        else f"redis-py {redis.__version__}"
    )
    print(
        f"{version}, {driver}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"{sessions} sessions x {messages} messages of {SIZE} bytes; median of {REPEAT} runs"
    )
    print(
        f"{'':24}{'raw':>10}{'chatkeep':>10}{'store/raw':>11}"
        f"{'raw p50':>10}{'p99':>8}{'store p50':>11}{'p99':>8}"
    )
    for label, unit, pick in (
        ("append, 1 msg per call", "msg/s", "append"),
        (f"read last {READ_LAST}", "reads/s", "read"),
    ):
        calls = [getattr(run, pick).times for run in runs]
        rate = {
            n: statistics.median(len(c[n]) / sum(c[n]) for c in calls) for n in ("raw", "store")
        }
        ratio = statistics.median(sum(c["raw"]) / sum(c["store"]) for c in calls)
        p = {
            (n, q): statistics.median(pct(c[n], q) for c in calls)
            for n in ("raw", "store")
            for q in (0.5, 0.99)
        }
        print(
            f"{label:24}{rate['raw']:>10,.0f}{rate['store']:>10,.0f}{ratio:>11.2f}"
            f"{p['raw', 0.5]:>10,.0f}{p['raw', 0.99]:>8,.0f}"
            f"{p['store', 0.5]:>11,.0f}{p['store', 0.99]:>8,.0f}   ({unit}; µs per call)"
        )
    print(f"checked: both contenders hold all {messages} messages of every session, in order")


def report_profile(rows: Profile, tracer: Trips) -> None:
    print(f"per call, instrumented ({PROFILE_MESSAGES} rounds):")
    print(
        f"{'':20}{'round trips':>12}{'commands':>10}{'driver I/O µs':>15}"
        f"{'other µs':>10}{'total µs':>10}"
    )
    for label, (trips, commands, waiting, total) in rows.items():
        print(
            f"{label:20}{trips:>12.1f}{commands:>10.1f}{waiting:>15,.0f}"
            f"{total - waiting:>10,.0f}{total:>10,.0f}"
        )
    calls = PROFILE_MESSAGES * (len(tracer.ids) or 1)
    for label in ("store append", "store read"):
        found = [(k[1], v) for k, v in tracer.statements.items() if k[0] == label]
        if found:
            print(f"  {label}, per call x µs each: ", end="")
            print(", ".join(f"{s} {n / calls:.1f} x {t / n * 1e6:,.0f}" for s, (n, t) in found))


async def bench(backend: str, sessions: int, messages: int, options: str) -> None:
    env, default = URLS[backend]
    base = os.environ.get(env, default)
    version = await server_version(backend, base)
    runs = [await repetition(backend, base, sessions, messages, options) for _ in range(REPEAT)]
    report(backend, version, sessions, messages, runs)
    if options:
        print(f"store options: {options}")
    report_profile(*await profile(backend, base, min(sessions, 20), options))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=("postgresql", "redis", "all"), default="all")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--messages", type=int, default=40, help="messages per session")
    parser.add_argument("--quick", action="store_true", help="10 sessions x 10 messages")
    parser.add_argument(
        "--options", default="", help="more options of the store's URL, e.g. cache_sessions=0"
    )
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.messages = 10, 10
    failed = False
    for backend in ("postgresql", "redis") if args.backend == "all" else (args.backend,):
        try:
            asyncio.run(bench(backend, args.sessions, args.messages, args.options))
        except (OSError, asyncpg.PostgresError, redis.RedisError, chatkeep.ChatkeepError) as exc:
            print(f"{backend}: not measured: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
