"""How long one append keeps a caller, and the event loop, waiting: the SQLite store
against raw sqlite3 on the event loop, in the same run.

    python bench/bench_sqlite_stalls.py [--sessions N] [--messages M]
                                        [--synchronous full|normal] [--repeat R]

Each contender appends one message per call to ``--sessions`` sessions in turn while a
timer task asks the loop to wake it every 0.5 ms; how late it wakes is how long something
else held the loop. Raw sqlite3 commits, and checkpoints its write-ahead log when it is
full, on the loop; the store (``writer=auto``) commits on the loop while commits are
quick and checkpoints (and indexes messages for search) on its thread. Printed:
per-append p50/p99/max, the timer's p99/max lateness, and the total of its lateness in
stalls over 2 ms (the time the loop was held by something slower than a commit), pooled
over ``--repeat`` runs in which the contenders alternate.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import chatkeep

TICK = 0.0005
HELD = 0.002
CONTENT = ("Could you summarise what we decided about the release? " * 4)[:200]


async def timer(late: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(TICK)
        late.append(time.perf_counter() - started - TICK)


async def timed_appends(
    append: Callable[[str], Awaitable[None] | None], ids: list[str], messages: int
) -> tuple[list[float], list[float]]:
    """Per-append seconds and timer lateness while ``append`` runs for every message."""
    late: list[float] = []
    stop = asyncio.Event()
    ticking = asyncio.create_task(timer(late, stop))
    await asyncio.sleep(TICK * 2)
    calls: list[float] = []
    for _ in range(messages):
        for sid in ids:
            started = time.perf_counter()
            done = append(sid)
            if done is not None:
                await done
            calls.append(time.perf_counter() - started)
            await asyncio.sleep(0)  # the timer's turn, between calls for every contender
    stop.set()
    await ticking
    return calls, late


async def run_raw(
    directory: Path, ids: list[str], args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    conn = sqlite3.connect(directory / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {args.synchronous}")
    conn.execute(
        "CREATE TABLE messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "content TEXT NOT NULL, created_at INTEGER NOT NULL, "
        "PRIMARY KEY (session_id, seq)) WITHOUT ROWID"
    )
    seqs = dict.fromkeys(ids, 0)

    def append(sid: str) -> None:
        seqs[sid] += 1
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?)",
            (sid, seqs[sid], CONTENT, time.time_ns() // 1000),
        )
        conn.execute("COMMIT")

    try:
        return await timed_appends(append, ids, args.messages)
    finally:
        conn.close()


async def run_store(
    directory: Path, ids: list[str], args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    url = f"sqlite:///{directory / 'store.db'}?synchronous={args.synchronous}"
    async with chatkeep.open_store(url) as store:
        for sid in ids:
            await store.create_session(id=sid, max_messages=args.messages)
        message = chatkeep.NewMessage(role="user", content=CONTENT)

        async def append(sid: str) -> None:
            await store.append_messages(sid, message)

        calls, late = await timed_appends(append, ids, args.messages)
        for sid in ids:
            stored = await store.get_messages(sid)
            assert [m.seq for m in stored] == list(range(1, args.messages + 1)), "lost"
        return calls, late


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def held(late: list[float]) -> float:
    """Seconds the loop was held in stalls of over 2 ms (one commit takes far less)."""
    return sum(seconds for seconds in late if seconds > HELD)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--messages", type=int, default=40, help="messages per session")
    parser.add_argument("--synchronous", choices=("full", "normal"), default="normal")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ids = [f"session-{n}" for n in range(args.sessions)]
    pooled: dict[str, tuple[list[float], list[float]]] = {"raw": ([], []), "store": ([], [])}
    for _ in range(args.repeat):
        for name, run in (("raw", run_raw), ("store", run_store)):
            with tempfile.TemporaryDirectory(prefix="chatkeep-stalls-") as tmp:
                calls, late = asyncio.run(run(Path(tmp), ids, args))
            pooled[name][0].extend(calls)
            pooled[name][1].extend(late)
    print(
        f"SQLite {sqlite3.sqlite_version}, synchronous={args.synchronous}, {args.sessions} "
        f"sessions x {args.messages} messages, {args.repeat} runs pooled (milliseconds)"
    )
    widths = (12, 8, 8, 15, 8, 16)
    print(
        f"{'':10}{'append p50':>12}{'p99':>8}{'max':>8}{'loop late p99':>15}{'max':>8}"
        f"{'held > 2 ms':>16}"
    )
    for name, (calls, late) in pooled.items():
        cells = [quantile(calls, 0.5), quantile(calls, 0.99), max(calls)]
        cells += [quantile(late, 0.99), max(late), held(late)]
        print(
            f"{name:10}"
            + "".join(f"{c * 1000:>{w}.2f}" for c, w in zip(cells, widths, strict=True))
        )
    raw, store = pooled["raw"], pooled["store"]
    print(
        f"store/raw: append p99 {quantile(store[0], 0.99) / quantile(raw[0], 0.99):.2f}, "
        f"loop held > 2 ms {held(store[1]) / held(raw[1]):.2f} (lower is better)"
    )


if __name__ == "__main__":
    main()
