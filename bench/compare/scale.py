"""Listing and reading latency as the number of sessions grows (10k, 100k, 1M).

A thousand sessions of two messages each are made through the store's own API (in
transactions of a hundred); the store is closed and those rows are then copied in bulk,
in SQL, up to each size: every copy is one of the store's own rows with a new id and
times moved later, so that the indexes see distinct keys. The store is then reopened
(its caches empty), ``optimize`` refreshes the planner's statistics, and these calls are
timed:

- ``list_first``: ``list_sessions(limit=50)``, the first page;
- ``list_deep``: the next pages, each from the previous page's cursor (keyset paging);
- ``last20``: ``get_messages(id, last=20)`` of sessions picked at random among all.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.compare import on_postgres, on_sqlite
from bench.compare.ours import with_option
from bench.compare.summary import percentile

import chatkeep

TEMPLATE = 1000
"""Sessions made through the store's API; the rest are copies of them."""
BATCH = 100
CALLS = 200
PAGES = 20
SESSION_TIMES = ("created_at", "updated_at", "last_activity_at", "expires_at")


def copy_id(index: int, round_: int) -> str:
    return f"t{index:05d}" if round_ == 0 else f"t{index:05d}.{round_}"


async def make_template(url: str) -> None:
    async with chatkeep.open_store(url) as store:
        for start in range(0, TEMPLATE, BATCH):
            async with store.transaction() as tx:
                for i in range(start, start + BATCH):
                    session = await tx.create_session(id=copy_id(i, 0), owner="bench")
                    await tx.append_messages(
                        session.id,
                        [
                            chatkeep.NewMessage(role="user", content=f"question {i} " * 10),
                            chatkeep.NewMessage(role="assistant", content=f"answer {i} " * 20),
                        ],
                    )


def select_list(columns: Sequence[str], changed: dict[str, str]) -> str:
    """The column list of a copying SELECT: ``changed`` expressions, the rest as they are."""
    return ", ".join(changed.get(c, f"t.{c}") for c in columns)


def session_changes(concat: str) -> dict[str, str]:
    """New id and later times for the copy made in round ``r`` (``concat`` joins strings)."""
    changed = {"id": concat.format("t.id", "'.'", "r")}
    for column in SESSION_TIMES:
        changed[column] = f"t.{column} + r * {TEMPLATE}"
    return changed


def clone_sqlite(path: Path, rounds: range) -> None:
    """Copy the template sessions and messages, one copy per round, into the store's file."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        names = {
            table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            for table in ("sessions", "messages")
        }
        series = (
            f"WITH RECURSIVE g(r) AS (SELECT {rounds.start} UNION ALL "
            f"SELECT r + 1 FROM g WHERE r < {rounds.stop - 1})"
        )
        concat = "{0} || {1} || {2}"
        changed = session_changes(concat) | {"pk": "NULL"}
        template = "t.id NOT LIKE '%.%'"
        conn.execute("BEGIN")
        conn.execute(
            f"{series} INSERT INTO sessions ({', '.join(names['sessions'])}) "
            f"SELECT {select_list(names['sessions'], changed)} FROM g, sessions t "
            f"WHERE {template} ORDER BY r, t.id"
        )
        msg = {"session_id": concat.format("t.session_id", "'.'", "r"), "doc": "NULL"}
        conn.execute(
            f"{series} INSERT INTO messages ({', '.join(names['messages'])}) "
            f"SELECT {select_list(names['messages'], msg)} FROM g, messages t "
            f"WHERE t.session_id NOT LIKE '%.%' ORDER BY r, t.session_id, t.seq"
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def clone_postgres(place: on_postgres.Schema, rounds: range) -> None:
    import asyncpg

    conn = await asyncpg.connect(place.url, server_settings={"search_path": place.name})
    try:
        names = {}
        for table in ("sessions", "messages"):
            rows = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
                "AND table_name = $2 AND is_generated = 'NEVER' ORDER BY ordinal_position",
                place.name,
                table,
            )
            names[table] = [row[0] for row in rows]
        concat = "{0} || {1} || {2}::text"
        series = f"generate_series({rounds.start}, {rounds.stop - 1}) AS g(r)"
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute(
                f"INSERT INTO sessions ({', '.join(names['sessions'])}) "
                f"SELECT {select_list(names['sessions'], session_changes(concat))} "
                f"FROM {series}, sessions t WHERE position('.' in t.id) = 0"
            )
            msg = {"session_id": concat.format("t.session_id", "'.'", "r")}
            await conn.execute(
                f"INSERT INTO messages ({', '.join(names['messages'])}) "
                f"SELECT {select_list(names['messages'], msg)} "
                f"FROM {series}, messages t WHERE position('.' in t.session_id) = 0"
            )
    finally:
        await conn.close()


async def timed_calls(calls: int, work: Callable[[int], Awaitable[object]]) -> dict[str, float]:
    seconds = []
    for n in range(calls):
        started = time.perf_counter()
        await work(n)
        seconds.append(time.perf_counter() - started)
    return {
        "p50_us": percentile(seconds, 0.5) * 1e6,
        "p99_us": percentile(seconds, 0.99) * 1e6,
        "calls": float(calls),
    }


async def measure(url: str, sessions: int) -> dict[str, Any]:
    rounds = sessions // TEMPLATE
    rng = random.Random(sessions)
    picks = [copy_id(rng.randrange(TEMPLATE), rng.randrange(rounds)) for _ in range(CALLS)]
    async with chatkeep.open_store(url) as store:
        await store.optimize()
        first = await timed_calls(CALLS, lambda _: store.list_sessions(limit=50))
        cursor: list[str | None] = [None]

        async def next_page(_: int) -> None:
            page = await store.list_sessions(limit=50, cursor=cursor[0])
            cursor[0] = page.next_cursor

        deep = await timed_calls(PAGES, next_page)

        async def last20(n: int) -> None:
            found = await store.get_messages(picks[n], last=20)
            if len(found) != 2:
                raise RuntimeError(f"session {picks[n]} holds {len(found)} messages, not 2")

        read = await timed_calls(CALLS, last20)
        total = (await store.stats()).total_sessions
        if total != sessions:
            raise RuntimeError(f"the store holds {total} sessions, not {sessions}")
    return {"sessions": sessions, "list_first": first, "list_deep": deep, "last20": read}


@asynccontextmanager
async def sqlite_place() -> AsyncIterator[tuple[str, Callable[[range], Awaitable[None]]]]:
    async with on_sqlite.directory() as directory:
        path = directory / "scale.db"

        async def clone(rounds: range) -> None:
            clone_sqlite(path, rounds)

        yield f"sqlite:///{path}", clone


@asynccontextmanager
async def postgres_place() -> AsyncIterator[tuple[str, Callable[[range], Awaitable[None]]]]:
    async with on_postgres.schema() as place:

        async def clone(rounds: range) -> None:
            await clone_postgres(place, rounds)

        yield with_option(place.url, "schema", place.name), clone


PLACES = {"SQLite": sqlite_place, "PostgreSQL": postgres_place}


async def grow(title: str, sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Latencies at each size (a multiple of :data:`TEMPLATE`), smallest first."""
    points = []
    async with PLACES[title]() as (url, clone):
        started = time.perf_counter()
        await make_template(url)
        made = 1
        for size in sorted(sizes):
            await clone(range(made, size // TEMPLATE))
            made = size // TEMPLATE
            populated = time.perf_counter() - started
            print(f"  {title}: {size:,} sessions made in {populated:.0f} s", flush=True)
            point = await measure(url, size)
            point["populate_s"] = populated
            points.append(point)
            started = time.perf_counter()
    return points
