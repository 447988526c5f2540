"""SQLite store against raw sqlite3: append one message per call, read the last 20, and
append from 32 concurrent tasks.

    python bench/bench_sqlite.py [--sessions N] [--messages M] [--synchronous full|normal]
                                 [--tasks T] [--writers auto,thread]
                                 [--options cache_sessions=0] [--quick]
                                 [--sql-without search,id-index]

Measured in one run, on fresh databases in a temporary directory, 3 times (the median
is printed):

- raw append: ``BEGIN; INSERT; COMMIT`` per message into a plain messages table, WAL
  mode, the same ``synchronous`` setting, the same 200-byte content, sessions taken
  round-robin;
- store append: ``await store.append_messages(id, NewMessage(...))`` per message on
  ``sqlite:///...`` (validation, seq, rolling window, expiry, search index included),
  once with the default writer (``auto``: the event loop while commits are quick) and
  once with ``writer=thread`` (every write handed to the store's thread);
- raw read: ``SELECT ... ORDER BY seq DESC LIMIT 20`` per session, rows fetched;
- store read: ``await store.get_messages(id, last=20)`` per session (5 rounds);
- the store's SQL alone: the statements of a store append (``BEGIN IMMEDIATE``, ``PRAGMA
  data_version``, the message's ``INSERT``, the session's ``UPDATE``, the search-queue
  ``INSERT``, ``COMMIT``, the store's own SQL text) sent from a bare sqlite3 connection
  to a file of the store's schema, with its checkpoints and search indexing, and none
  of the store's Python: what any implementation of these tables would pay, the
  ceiling of the store's ratio to raw;
- concurrent append: ``--tasks`` (32) tasks, each appending to a session of its own one
  message per call, 5 messages per round, against raw sqlite3 doing the same messages
  one transaction each (and the store's SQL alone with one transaction per round of
  ``--tasks`` messages, the most group commit can share); every session is then read
  back and checked (all messages, in order). The store lets appends that arrive during
  a commit share the next one.

Raw and store work alternate in rounds (one message to every session, or one read of
every session) so that all see the same disk: timings on a shared machine drift.
The "raw, worker thread" column runs the same raw statements through a one-thread
executor, as an asyncio application must run sqlite3 without blocking its loop; the
store writes that way with ``writer=thread``, and reads on the event loop from a
second connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import chatkeep
from chatkeep.stores import sqlite_index
from chatkeep.stores import sqlite_query as q
from chatkeep.stores.sqlite_setup import CHECKPOINT_CHANGES, SqliteOptions, connect, prepare

READ_LAST = 20
CONCURRENT_CHUNK = 5
"""Messages each concurrent task appends per round (the contenders alternate rounds)."""
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
    tasks: int = 32
    options: str = ""
    writers: tuple[str, ...] = ("auto", "thread")
    sql_without: frozenset[str] = frozenset()
    """Parts of :data:`SQL_PARTS` the store's SQL alone leaves out."""


@dataclass(slots=True)
class Timings:
    """Seconds spent by each contender on appends and on reads."""

    append: dict[str, float]
    read: dict[str, float]
    concurrent: dict[str, float]


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


SQL_PARTS = {
    "search": "the search queue and indexing (and the triggers that keep them)",
    "id-index": "the index of message ids, which idempotent appends look up",
}
"""What ``--sql-without`` can take out of the store's SQL alone, to see what each costs."""

MOVED = tuple(
    q.SESSION_COLUMNS.index(column)
    for column in (
        "updated_at", "last_activity_at", "expires_at", "version", "message_count", "last_seq"
    )
)  # fmt: skip
"""The session columns a store append changes (here, with no rolling window reached)."""


class StoreSql:
    """The store's statements for an append, without the store: on a file the store
    made (its schema, page size and sessions), from a bare connection set up as the
    store sets up its own."""

    def __init__(self, path: Path, plan: Plan) -> None:
        options = SqliteOptions(synchronous=plan.synchronous)
        self.conn = connect(str(path), options)
        prepare(self.conn, str(path), options)
        self.search = "search" not in plan.sql_without
        if not self.search:
            self.conn.execute("DROP TRIGGER messages_unqueue")
            self.conn.execute("DROP TRIGGER messages_unindex")
        if "id-index" in plan.sql_without:
            self.conn.execute("DROP INDEX messages_id")
        self.sessions = {row[0]: list(row[1:]) for row in self.conn.execute(SESSIONS).fetchall()}
        """Each session's pk, version, message count, last seq and TTL, kept here as the
        store's record cache keeps them (it does not read them for an append)."""
        self.index = sqlite_index.MessageIndex(self.conn)
        self.doc = int(self.conn.execute(sqlite_index.LAST_DOC).fetchone()[0])
        self.checkpointed = self.conn.total_changes
        self.update = q.update_columns(MOVED)

    def append(self, sessions: list[str]) -> None:
        """One message to each of ``sessions``, in one transaction."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("PRAGMA data_version").fetchone()
        queue = []
        for sid in sessions:
            known = self.sessions[sid]
            pk, version, count, seq, ttl = known
            seq += 1
            self.doc += 1
            now = time.time_ns() // 1000
            row = (sid, seq, f"m{seq:025d}", "user", CONTENT, 0, None, now, "{}", self.doc)
            conn.execute(q.INSERT_MESSAGE, row)
            conn.execute(self.update, (now, now, now + ttl, version + 1, count + 1, seq, pk))
            known[1:4] = version + 1, count + 1, seq
            queue.append((self.doc, sid, seq))
        if self.search:
            conn.executemany(sqlite_index.QUEUE, queue)
            self.index.queued += len(sessions)
        conn.execute("COMMIT")
        self.housekeeping()

    def housekeeping(self) -> None:
        """What the store does between batches: index the queue, checkpoint the WAL."""
        if self.index.due():
            self.conn.execute("BEGIN IMMEDIATE")
            self.index.catch_up()
            self.conn.execute("COMMIT")
        if self.conn.total_changes - self.checkpointed >= CHECKPOINT_CHANGES:
            self.checkpointed = self.conn.total_changes
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def seqs(self, session_id: str) -> list[int]:
        """The seq of every message of the session, oldest first."""
        rows = self.conn.execute(q.READ_OLDEST, (session_id, q.SEQ_MIN, q.SEQ_MAX, -1))
        return [row[0] for row in rows]


SESSIONS = "SELECT id, pk, version, message_count, last_seq, ttl FROM sessions"


class Stopwatch:
    """Total seconds per contender."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def _add(self, name: str, started: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    async def take_turns(self, turns: list[tuple[str, Callable[[], object]]], seed: int) -> None:
        """Time each contender's turn, in an order shuffled each round (``seed`` seeds
        it): the turn after another contender's thread hop pays for that hop's wake-ups."""
        order = list(turns)
        random.Random(seed).shuffle(order)
        for name, fn in order:
            started = time.perf_counter()
            done = fn()
            if inspect.isawaitable(done):
                await done
            self._add(name, started)


WRITERS = {"store": "auto", "thread": "thread"}
"""The chatkeep contenders: the default store (``writer=auto``), and the same with
``writer=thread``."""


async def repetition(directory: Path, plan: Plan) -> Timings:
    raw = Raw(directory / "raw.db", plan)
    threaded = Raw(directory / "raw-threaded.db", plan)
    pool = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    appends, reads = Stopwatch(), Stopwatch()
    options = f"&{plan.options}" if plan.options else ""
    async with contextlib.AsyncExitStack() as stack:
        stores: dict[str, chatkeep.Store] = {}
        for name, writer in WRITERS.items():
            if writer not in plan.writers:
                continue
            extra = "" if writer == "auto" else f"&writer={writer}"
            url = f"sqlite:///{directory / name}.db?synchronous={plan.synchronous}{options}{extra}"
            stores[name] = await stack.enter_async_context(chatkeep.open_store(url))
        first = next(iter(stores.values()))
        ids = [(await first.create_session(owner="bench")).id for _ in range(plan.sessions)]
        for other in list(stores.values())[1:]:
            for sid in ids:
                await other.create_session(id=sid, owner="bench")
        sql = await store_sql(directory / "sql.db", plan, [*ids, *concurrent_ids(plan)])
        message = chatkeep.NewMessage(role="user", content=CONTENT)

        def raw_round(seq: int) -> None:
            for sid in ids:
                raw.append(sid, seq)

        def sql_round() -> None:
            for sid in ids:
                sql.append([sid])

        async def threaded_round(seq: int) -> None:
            for sid in ids:
                await loop.run_in_executor(pool, threaded.append, sid, seq)

        async def store_round(store: chatkeep.Store) -> None:
            for sid in ids:
                await store.append_messages(sid, message)

        async def threaded_read(sid: str) -> None:
            await loop.run_in_executor(pool, threaded.read, sid)

        async def store_read(store: chatkeep.Store, sid: str) -> None:
            await store.get_messages(sid, last=READ_LAST)

        for seq in range(1, plan.messages + 1):
            turns = [
                ("raw", partial(raw_round, seq)),
                ("threaded", partial(threaded_round, seq)),
                ("sql", sql_round),
                *((name, partial(store_round, store)) for name, store in stores.items()),
            ]
            await appends.take_turns(turns, seq)
        for round_ in range(READ_ROUNDS):
            for i, sid in enumerate(ids):
                turns = [
                    ("raw", partial(raw.read, sid)),
                    ("threaded", partial(threaded_read, sid)),
                    *((name, partial(store_read, store, sid)) for name, store in stores.items()),
                ]
                await reads.take_turns(turns, round_ * len(ids) + i)
        expected = min(READ_LAST, plan.messages)
        for store in stores.values():
            assert len(await store.get_messages(ids[0], last=READ_LAST)) == expected
        assert raw.read(ids[0]) == threaded.read(ids[0]) == expected
        assert sql.seqs(ids[0]) == list(range(1, plan.messages + 1))
        concurrent = await concurrent_appends(stores, raw, sql, plan)
    pool.shutdown()
    sql.conn.close()
    raw.conn.close()
    threaded.conn.close()
    return Timings(appends.seconds, reads.seconds, concurrent)


async def store_sql(path: Path, plan: Plan, ids: list[str]) -> StoreSql:
    """The store's SQL alone, on a file the store made with the sessions ``ids``."""
    async with chatkeep.open_store(f"sqlite:///{path}") as store:
        for sid in ids:
            await store.create_session(id=sid, owner="bench")
    return StoreSql(path, plan)


def concurrent_ids(plan: Plan) -> list[str]:
    return [f"concurrent-{t}" for t in range(plan.tasks)]


async def concurrent_appends(
    stores: dict[str, chatkeep.Store], raw: Raw, sql: StoreSql, plan: Plan
) -> dict[str, float]:
    """``plan.tasks`` tasks appending at once, each to its own session; raw sqlite3 does
    the same messages one transaction each, the store's SQL alone one transaction per
    message of every task. Checks that every message is stored in order."""
    ids = concurrent_ids(plan)
    for store in stores.values():
        for sid in ids:
            await store.create_session(id=sid, owner="bench")
    watch = Stopwatch()

    def raw_round(first: int) -> None:
        for seq in range(first, first + CONCURRENT_CHUNK):
            for sid in ids:
                raw.append(sid, seq)

    async def task(store: chatkeep.Store, sid: str) -> None:
        for _ in range(CONCURRENT_CHUNK):
            await store.append_messages(sid, chatkeep.NewMessage(role="user", content=CONTENT))

    async def store_round(store: chatkeep.Store) -> None:
        await asyncio.gather(*(task(store, sid) for sid in ids))

    def sql_round() -> None:
        for _ in range(CONCURRENT_CHUNK):
            sql.append(ids)

    for round_, first in enumerate(range(1, plan.messages + 1, CONCURRENT_CHUNK)):
        turns = [
            ("raw", partial(raw_round, first)),
            ("sql", sql_round),
            *((name, partial(store_round, store)) for name, store in stores.items()),
        ]
        await watch.take_turns(turns, round_)
    total = -(-plan.messages // CONCURRENT_CHUNK) * CONCURRENT_CHUNK
    for store in stores.values():
        for sid in ids:
            stored = await store.get_messages(sid)
            assert [m.seq for m in stored] == list(range(1, total + 1)), "lost or reordered"
    for sid in ids:
        assert sql.seqs(sid) == list(range(1, total + 1)), "lost or reordered"
    return watch.seconds


def measure(plan: Plan) -> list[Timings]:
    runs = []
    for _ in range(REPEAT):
        with tempfile.TemporaryDirectory(prefix="chatkeep-bench-") as tmp:
            runs.append(asyncio.run(repetition(Path(tmp), plan)))
    return runs


COLUMNS = (
    ("raw sqlite3", "raw", None),
    ("raw, worker thread", "threaded", None),
    ("chatkeep", "store", None),
    ("writer=thread", "thread", None),
    ("store's SQL", "sql", None),
    ("store/raw", "store", "raw"),
    ("thread/raw", "thread", "raw"),
    ("store/raw thread", "store", "threaded"),
    ("SQL/raw", "sql", "raw"),
    ("store/SQL", "store", "sql"),
)


def report(plan: Plan, runs: list[Timings]) -> None:
    parts = ", ".join(sorted(plan.sql_without))
    without = f"; the store's SQL without: {parts}" if parts else ""
    print(
        f"SQLite {sqlite3.sqlite_version}, WAL, synchronous={plan.synchronous} for every "
        f"contender, {plan.sessions} sessions x {plan.messages} messages of {len(CONTENT)} "
        f"bytes; median of {REPEAT} runs"
        f"{'; store options: ' + plan.options if plan.options else ''}"
        f"{without}"
    )
    print(f"{'':28}" + "".join(f"{title:>{len(title) + 2}}" for title, _, _ in COLUMNS))
    rounds = -(-plan.messages // CONCURRENT_CHUNK) * CONCURRENT_CHUNK
    for label, unit, count, pick in (
        ("append, 1 message per call", "msg/s", plan.sessions * plan.messages, "append"),
        (f"read last {READ_LAST}", "reads/s", plan.sessions * READ_ROUNDS, "read"),
        (f"append, {plan.tasks} tasks at once", "msg/s", plan.tasks * rounds, "concurrent"),
    ):
        cells = []
        for title, name, base in COLUMNS:
            seconds = [getattr(run, pick) for run in runs]
            if name not in seconds[0] or (base is not None and base not in seconds[0]):
                cells.append(f"{'-':>{len(title) + 2}}")
            elif base is None:
                rate = statistics.median(count / s[name] for s in seconds)
                cells.append(f"{rate:>{len(title) + 2},.0f}")
            else:
                ratio = statistics.median(s[base] / s[name] for s in seconds)
                cells.append(f"{ratio:>{len(title) + 2}.2f}")
        print(f"{label:28}{''.join(cells)}   ({unit})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--messages", type=int, default=40, help="messages per session")
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    parser.add_argument("--tasks", type=int, default=32, help="concurrent appending tasks")
    parser.add_argument(
        "--writers",
        default="auto,thread",
        help="the store's writer options to measure, comma-separated (auto: the default)",
    )
    parser.add_argument(
        "--options", default="", help="more store URL options, e.g. cache_sessions=0 (cold reads)"
    )
    parser.add_argument(
        "--sql-without",
        default="",
        help="leave parts out of the store's SQL alone, comma-separated: "
        + "; ".join(f"{name}: {what}" for name, what in SQL_PARTS.items()),
    )
    parser.add_argument("--quick", action="store_true", help="10 sessions x 10 messages")
    args = parser.parse_args()
    without = frozenset(part.strip() for part in args.sql_without.split(",") if part.strip())
    if not without <= SQL_PARTS.keys():
        parser.error(f"--sql-without takes {', '.join(SQL_PARTS)}; got {args.sql_without!r}")
    if args.quick:
        args.sessions, args.messages = 10, 10
    writers = tuple(w.strip() for w in args.writers.split(",") if w.strip())
    plan = Plan(
        args.sessions, args.messages, args.synchronous, args.tasks, args.options, writers, without
    )
    report(plan, measure(plan))


if __name__ == "__main__":
    main()
