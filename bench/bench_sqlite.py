"""SQLite store against raw sqlite3: append one message per call, and read the last 20.

    python bench/bench_sqlite.py [--sessions N] [--messages M] [--synchronous full|normal]
                                 [--options cache_sessions=0] [--quick]

Measured in one run, on fresh databases in a temporary directory, 3 times (the median
is printed):

- raw append: ``BEGIN; INSERT; COMMIT`` per message into a plain messages table, WAL
  mode, the same ``synchronous`` setting, the same 200-byte content, sessions taken
  round-robin;
- store append: ``await store.append_messages(id, NewMessage(...))`` per message on
  ``sqlite:///...`` (validation, seq, rolling window, expiry, search index included);
- raw read: ``SELECT ... ORDER BY seq DESC LIMIT 20`` per session, rows fetched;
- store read: ``await store.get_messages(id, last=20)`` per session (5 rounds).

Raw and store work alternate in rounds (one message to every session, or one read of
every session) so that both see the same disk: timings on a shared machine drift.
The "raw, worker thread" column runs the same raw statements through a one-thread
executor, as an asyncio application must run sqlite3 without blocking its loop; the
store writes that way too, and reads on the event loop from a second connection.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import chatkeep

READ_LAST = 20
READ_ROUNDS = 5
REPEAT = 3
CONTENT = ("Could you summarise what we decided about the release? " * 4)[:200]

RAW_SCHEMA = """
CREATE TABLE messages (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
"""
RAW_INSERT = "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)"
RAW_READ = (
    "SELECT seq, id, role, content, created_at FROM messages "
    "WHERE session_id = ? ORDER BY seq DESC LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class Plan:
    sessions: int
    messages: int
    synchronous: str
    options: str = ""


@dataclass(slots=True)
class Timings:
    """Seconds spent by each contender on appends and on reads."""

    append: dict[str, float]
    read: dict[str, float]


class Raw:
    """Plain sqlite3 on one table; ``seq`` kept per session by the caller."""

    def __init__(self, path: Path, plan: Plan) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(f"PRAGMA synchronous = {plan.synchronous}")
        self.conn.executescript(RAW_SCHEMA)

    def append(self, session_id: str, seq: int) -> None:
        self.conn.execute("BEGIN")
        row = (session_id, seq, f"{session_id}-{seq}", "user", CONTENT, time.time_ns() // 1000)
        self.conn.execute(RAW_INSERT, row)
        self.conn.execute("COMMIT")

    def read(self, session_id: str) -> int:
        rows = self.conn.execute(RAW_READ, (session_id, READ_LAST)).fetchall()
        rows.reverse()
        return len(rows)


class Stopwatch:
    """Total seconds per contender."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def _add(self, name: str, started: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def run(self, name: str, fn: Callable[..., object], *args: object) -> None:
        started = time.perf_counter()
        fn(*args)
        self._add(name, started)

    async def run_async(
        self, name: str, fn: Callable[..., Awaitable[object]], *args: object
    ) -> None:
        started = time.perf_counter()
        await fn(*args)
        self._add(name, started)


async def repetition(directory: Path, plan: Plan) -> Timings:
    raw = Raw(directory / "raw.db", plan)
    threaded = Raw(directory / "raw-threaded.db", plan)
    pool = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    appends, reads = Stopwatch(), Stopwatch()
    options = f"&{plan.options}" if plan.options else ""
    url = f"sqlite:///{directory / 'store.db'}?synchronous={plan.synchronous}{options}"
    async with chatkeep.open_store(url) as store:
        ids = [(await store.create_session(owner="bench")).id for _ in range(plan.sessions)]
        message = chatkeep.NewMessage(role="user", content=CONTENT)

        def raw_round(seq: int) -> None:
            for sid in ids:
                raw.append(sid, seq)

        async def threaded_round(seq: int) -> None:
            for sid in ids:
                await loop.run_in_executor(pool, threaded.append, sid, seq)

        async def store_round() -> None:
            for sid in ids:
                await store.append_messages(sid, message)

        async def threaded_read(sid: str) -> None:
            await loop.run_in_executor(pool, threaded.read, sid)

        async def store_read(sid: str) -> None:
            await store.get_messages(sid, last=READ_LAST)

        for seq in range(1, plan.messages + 1):
            appends.run("raw", raw_round, seq)
            await appends.run_async("threaded", threaded_round, seq)
            await appends.run_async("store", store_round)
        for _ in range(READ_ROUNDS):
            for sid in ids:
                reads.run("raw", raw.read, sid)
                await reads.run_async("threaded", threaded_read, sid)
                await reads.run_async("store", store_read, sid)
        expected = min(READ_LAST, plan.messages)
        assert len(await store.get_messages(ids[0], last=READ_LAST)) == expected
        assert raw.read(ids[0]) == threaded.read(ids[0]) == expected
    pool.shutdown()
    raw.conn.close()
    threaded.conn.close()
    return Timings(appends.seconds, reads.seconds)


def measure(plan: Plan) -> list[Timings]:
    runs = []
    for _ in range(REPEAT):
        with tempfile.TemporaryDirectory(prefix="chatkeep-bench-") as tmp:
            runs.append(asyncio.run(repetition(Path(tmp), plan)))
    return runs


def report(plan: Plan, runs: list[Timings]) -> None:
    print(
        f"SQLite {sqlite3.sqlite_version}, WAL, synchronous={plan.synchronous}, "
        f"{plan.sessions} sessions x {plan.messages} messages of {len(CONTENT)} bytes; "
        f"median of {REPEAT} runs{'; store options: ' + plan.options if plan.options else ''}"
    )
    print(
        f"{'':28}{'raw sqlite3':>14}{'raw, worker thread':>20}{'chatkeep':>12}"
        f"{'store/raw':>11}{'store/thread':>14}"
    )
    for label, unit, count, pick in (
        ("append, 1 message per call", "msg/s", plan.sessions * plan.messages, "append"),
        (f"read last {READ_LAST}", "reads/s", plan.sessions * READ_ROUNDS, "read"),
    ):
        rate = {
            name: statistics.median(count / getattr(run, pick)[name] for run in runs)
            for name in ("raw", "threaded", "store")
        }
        ratio, thread_ratio = (
            statistics.median(
                getattr(run, pick)[base] / getattr(run, pick)["store"] for run in runs
            )
            for base in ("raw", "threaded")
        )
        print(
            f"{label:28}{rate['raw']:>14,.0f}{rate['threaded']:>20,.0f}{rate['store']:>12,.0f}"
            f"{ratio:>11.2f}{thread_ratio:>14.2f}   ({unit})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--messages", type=int, default=40, help="messages per session")
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    parser.add_argument(
        "--options", default="", help="more store URL options, e.g. cache_sessions=0 (cold reads)"
    )
    parser.add_argument("--quick", action="store_true", help="10 sessions x 10 messages")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.messages = 10, 10
    plan = Plan(args.sessions, args.messages, args.synchronous, args.options)
    report(plan, measure(plan))


if __name__ == "__main__":
    main()
