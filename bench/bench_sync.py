"""Write-behind: how fast the sync worker drains the outbox, and how far the durable
store lags under a steady append load.

    python bench/bench_sync.py [--durable sqlite|postgresql] [--seconds S] [--writers W]
                               [--interval I]

Redis: ``CHATKEEP_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/0); PostgreSQL:
``CHATKEEP_TEST_POSTGRES_URL``. Each phase uses a fresh key prefix (and a fresh SQLite
file or PostgreSQL schema), removed afterwards. In one run:

0. **Redis alone**: the same appends on the Redis store without write-behind, to show
   what writing the outbox in the same MULTI/EXEC costs;
1. **append rate** R: W writers append one message per call to their own session as
   fast as they can for S seconds, with the worker idle (the baseline of the run);
2. **drain**: the worker then syncs the whole backlog: messages/s drained, and the ratio
   to R (>= 1: the worker keeps up with Redis at full speed);
3. **steady load** at 50% and 90% of R for S seconds each, the worker syncing every
   ``--interval`` seconds (default 1, the default setting): the age of the oldest
   unsynced change sampled every 20 ms (p50, p99, max), the outbox's longest length, and
   the time to drain what is left when the load stops. Bounded lag means the p99 stays
   near the interval and does not grow with time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis

import chatkeep
from chatkeep import NewMessage
from chatkeep.stores.redis_keys import Keys
from chatkeep.stores.tiered import TieredStore

REDIS = os.environ.get("CHATKEEP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES = os.environ.get("CHATKEEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CONTENT = "x" * 200
SAMPLE_EVERY = 0.02


@asynccontextmanager
async def tier(durable: str, interval: float) -> AsyncIterator[TieredStore]:
    """A tier in fresh namespaces, removed when the block ends."""
    name = f"bench_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as directory:
        if durable == "sqlite":
            durable_url = f"sqlite:///{directory}/behind.db"
        else:
            durable_url = f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}schema={name}"
        url = f"{REDIS}{'&' if '?' in REDIS else '?'}prefix={name}"
        url += f"&write_behind={quote(durable_url, safe='')}&sync_interval={interval}"
        try:
            async with chatkeep.open_store(url) as store:
                assert isinstance(store, TieredStore)
                await store.worker.first_sync.wait()
                yield store
        finally:
            await drop(name, durable)


async def drop(name: str, durable: str) -> None:
    client = aioredis.Redis.from_url(urlunsplit(urlsplit(REDIS)._replace(query="")))
    try:
        keys = [k async for k in client.scan_iter(match=Keys(name).pattern(), count=1000)]
        for start in range(0, len(keys), 500):
            await client.unlink(*keys[start : start + 500])
    finally:
        await client.aclose()
    if durable == "postgresql":
        conn = await asyncpg.connect(POSTGRES.split("?")[0])
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()


async def sessions(store: TieredStore, writers: int) -> list[str]:
    return [
        (await store.create_session(ttl=None, max_messages=1_000_000)).id for _ in range(writers)
    ]


async def flat_out(store: chatkeep.Store, ids: list[str], seconds: float) -> int:
    """Append as fast as possible; the number of messages appended."""
    deadline = time.perf_counter() + seconds

    async def one(sid: str) -> int:
        sent = 0
        while time.perf_counter() < deadline:
            await store.append_messages(sid, NewMessage(role="user", content=CONTENT))
            sent += 1
        return sent

    return sum(await asyncio.gather(*(one(sid) for sid in ids)))


async def paced(store: TieredStore, ids: list[str], rate: float, seconds: float) -> int:
    """Append ``rate`` messages/s in total, evenly spread over the writers."""
    each = rate / len(ids)
    start = time.perf_counter()

    async def one(sid: str, offset: float) -> int:
        sent = 0
        while True:
            due = start + offset + sent / each
            if due - start > seconds:
                return sent
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await store.append_messages(sid, NewMessage(role="user", content=CONTENT))
            sent += 1

    offsets = [i / each / len(ids) for i in range(len(ids))]
    return sum(await asyncio.gather(*(one(sid, o) for sid, o in zip(ids, offsets, strict=True))))


async def sample_lag(store: TieredStore, stop: asyncio.Event) -> tuple[list[float], int]:
    ages: list[float] = []
    longest = 0
    while not stop.is_set():
        lag = await store.lag()
        ages.append(lag.oldest_age)
        longest = max(longest, lag.length)
        await asyncio.sleep(SAMPLE_EVERY)
    return ages, longest


async def durable_count(store: TieredStore, ids: list[str]) -> int:
    """Messages in the durable copy (checked to be gap-free per session)."""
    total = 0
    for sid in ids:
        seqs = [m.seq for m in await store.durable.get_messages(sid)]
        assert seqs == list(range(1, len(seqs) + 1)), sid
        total += len(seqs)
    return total


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def plain_redis_rate(args: argparse.Namespace) -> float:
    """Phase 0: the same appends on the Redis store without write-behind."""
    name = f"bench_{secrets.token_hex(4)}"
    try:
        async with chatkeep.open_store(
            f"{REDIS}{'&' if '?' in REDIS else '?'}prefix={name}"
        ) as store:
            ids = [(await store.create_session(ttl=None)).id for _ in range(args.writers)]
            started = time.perf_counter()
            appended = await flat_out(store, ids, args.seconds)
            return appended / (time.perf_counter() - started)
    finally:
        await drop(name, "sqlite")


async def baseline(args: argparse.Namespace) -> tuple[float, float]:
    """Phases 1 and 2: the append rate with the worker idle, then the drain rate."""
    async with tier(args.durable, 3600) as store:
        ids = await sessions(store, args.writers)
        await store.sync_now()
        started = time.perf_counter()
        appended = await flat_out(store, ids, args.seconds)
        append_rate = appended / (time.perf_counter() - started)
        backlog = (await store.lag()).length
        started = time.perf_counter()
        synced = await store.sync_now()
        drain_seconds = time.perf_counter() - started
        assert synced == backlog, (synced, backlog)
        assert await durable_count(store, ids) == appended
    return append_rate, appended / drain_seconds


async def steady(args: argparse.Namespace, rate: float) -> dict[str, float]:
    async with tier(args.durable, args.interval) as store:
        ids = await sessions(store, args.writers)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_lag(store, stop))
        started = time.perf_counter()
        sent = await paced(store, ids, rate, args.seconds)
        achieved = sent / (time.perf_counter() - started)
        stop.set()
        ages, longest = await sampler
        started = time.perf_counter()
        left = (await store.lag()).length
        while True:
            if (await store.lag()).length == 0:
                break
            await asyncio.sleep(0.01)
        drained_in = time.perf_counter() - started
        assert await durable_count(store, ids) == sent
    return {
        "achieved": achieved,
        "p50": pct(ages, 50),
        "p99": pct(ages, 99),
        "max": max(ages),
        "mean": statistics.fmean(ages),
        "longest": float(longest),
        "left": float(left),
        "drained_in": drained_in,
    }


async def main(args: argparse.Namespace) -> None:
    plain = await plain_redis_rate(args)
    append_rate, drain_rate = await baseline(args)
    print(f"durable store: {args.durable}; {args.writers} writers; {args.seconds:g} s per phase")
    print(f"append rate, Redis alone:      {plain:8.0f} messages/s")
    cost = append_rate / plain
    print(f"  with the outbox:             {append_rate:8.0f} messages/s  ({cost:.2f} x)")
    print("    (the worker idle: R, the baseline of the phases below)")
    ratio = drain_rate / append_rate
    print(f"drain rate:                    {drain_rate:8.0f} messages/s  ({ratio:.2f} x R)")
    print(f"\nsteady load, sync every {args.interval:g} s; age of the oldest unsynced change:")
    print("load      achieved/s   p50 s   p99 s   max s   longest outbox   drain after stop")
    for share in (0.5, 0.9):
        row = await steady(args, share * append_rate)
        print(
            f"{share:4.0%} R   {row['achieved']:10.0f}  {row['p50']:6.2f}  {row['p99']:6.2f}"
            f"  {row['max']:6.2f}  {row['longest']:15.0f}"
            f"  {row['left']:6.0f} in {row['drained_in']:.2f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durable", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--interval", type=float, default=1.0)
    asyncio.run(main(parser.parse_args()))
