"""The Python cost of one store call, with no I/O: the rules, validation and codecs that
every backend shares, measured over ``memory://``.

    python bench/bench_core.py                    # this tree: microseconds per call
    python bench/bench_core.py --against HEAD     # and a git revision, in the same run
    python bench/bench_core.py --profile          # cProfile's top functions (this tree)
    python bench/bench_core.py --quick            # a smaller workload, a few seconds

Measured, as CPU time of the process per call (the machine may be shared; CPU time does
not count the time spent waiting for a core):

- append: ``await store.append_messages(id, NewMessage(role, 200-byte text))``, one
  message per call, sessions taken round-robin;
- read: ``await store.get_messages(id, last=20)``, every session, several rounds;
- encode: what a durable backend makes of one appended message, without writing it:
  the SQLite row and search text, the PostgreSQL row and search tokens, the Redis record;
- decode: 20 stored messages back into records, from SQLite rows and Redis records.

With ``--against REF`` the revision's ``src/`` is extracted (``git archive``) into a
temporary directory, and the two trees run alternately, each in a fresh process, 3 times;
the medians and the ratio (``REF / this tree``: above 1 means this tree is faster) are
printed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPEAT = 3
CHUNKS = 5
READ_LAST = 20
CONTENT = ("Could you summarise what we decided about the release? " * 4)[:200]
ROOT = Path(__file__).resolve().parent.parent
PHASES = ("append", "read", "encode", "decode")


PROFILER: cProfile.Profile | None = None
"""With ``--profile``: records the timed calls (and only them)."""


async def _timed(calls: int, step: Callable[[int], Awaitable[object]]) -> float:
    """Microseconds of process CPU time per call of ``step(i)``: the least of
    :data:`CHUNKS` runs of ``calls // CHUNKS`` calls (other work on the machine only
    ever makes a run slower)."""
    size = max(1, calls // CHUNKS)
    best = math.inf
    for chunk in range(CHUNKS):
        gc.collect()
        if PROFILER is not None:
            PROFILER.enable()
        started = time.process_time()
        for i in range(chunk * size, (chunk + 1) * size):
            await step(i)
        best = min(best, time.process_time() - started)
        if PROFILER is not None:
            PROFILER.disable()
    return best * 1e6 / size


def _as_async(step: Callable[[int], object]) -> Callable[[int], Awaitable[object]]:
    async def call(i: int) -> object:
        return step(i)

    return call


async def measure(sessions: int, messages: int, rounds: int) -> dict[str, float]:
    """One measurement of every phase on the chatkeep importable here."""
    import chatkeep
    from chatkeep.stores import postgres_rows, redis_rows, sqlite_rows

    roles = ("user", "assistant")
    async with chatkeep.open_store("memory://") as store:
        ids = [(await store.create_session()).id for _ in range(sessions)]

        async def append(i: int) -> object:
            message = chatkeep.NewMessage(role=roles[i % 2], content=CONTENT)
            return await store.append_messages(ids[i % sessions], message)

        async def read(i: int) -> object:
            return await store.get_messages(ids[i % sessions], last=READ_LAST)

        await _timed(sessions, append)  # warm up
        result = {
            "append": await _timed(sessions * messages, append),
            "read": await _timed(sessions * rounds, read),
        }
        stored = await store.get_messages(ids[0], last=READ_LAST)

    def encode(i: int) -> object:
        m = stored[i % len(stored)]
        return (
            sqlite_rows.message_row(m.session_id, m, i),
            sqlite_rows.index_text(m.content, m.metadata),
            postgres_rows.message_columns([m]),
            redis_rows.encode_message(m),
        )

    sqlite_rows_20 = [sqlite_rows.message_row(m.session_id, m, 1)[1:9] for m in stored]
    redis_raw_20 = [redis_rows.encode_message(m) for m in stored]
    sid = stored[0].session_id

    def decode(i: int) -> object:
        return (
            [sqlite_rows.decode_message(sid, row) for row in sqlite_rows_20],
            redis_rows.decode_messages(sid, redis_raw_20),
        )

    calls = sessions * messages
    result["encode"] = await _timed(calls, _as_async(encode))
    result["decode"] = await _timed(calls // 4, _as_async(decode))
    return result


def _profile(sessions: int, messages: int, rounds: int, top: int) -> None:
    global PROFILER
    PROFILER = cProfile.Profile()
    asyncio.run(measure(sessions, messages, rounds))
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(PROFILER, stream=out).sort_stats(order).print_stats(top)
        print(f"--- top {top} by {order}\n{out.getvalue()}")


def _extract(ref: str, into: Path) -> Path:
    """The ``src/`` directory of git revision ``ref``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _run_worker(src: Path, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [
        sys.executable, __file__, "--worker",
        "--sessions", str(args.sessions), "--messages", str(args.messages),
        "--rounds", str(args.rounds),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def _compare(args: argparse.Namespace) -> None:
    trees = {"this tree": ROOT / "src"}
    with tempfile.TemporaryDirectory(prefix="bench-core-") as tmp:
        if args.against:
            trees[args.against] = _extract(args.against, Path(tmp))
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for i in range(args.repeat):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                runs[name].append(_run_worker(trees[name], args))
    medians = {
        name: {phase: statistics.median(r[phase] for r in results) for phase in PHASES}
        for name, results in runs.items()
    }
    print(
        f"{args.sessions} sessions x {args.messages} messages, {args.rounds} read rounds, "
        f"median of {args.repeat}; CPU microseconds per call"
    )
    header = f"{'phase':<8}" + "".join(f"{name:>14}" for name in trees)
    if args.against:
        header += f"{'ratio':>10}"
    print(header)
    for phase in PHASES:
        line = f"{phase:<8}" + "".join(f"{medians[name][phase]:>14.1f}" for name in trees)
        if args.against:
            ratio = medians[args.against][phase] / medians["this tree"][phase]
            line += f"{ratio:>9.2f}x"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--messages", type=int, default=100, help="appended per session")
    parser.add_argument("--rounds", type=int, default=20, help="reads of every session")
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--against", metavar="REF", help="also run this git revision")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top list")
    parser.add_argument("--top", type=int, default=30, help="functions in the top list")
    parser.add_argument("--quick", action="store_true", help="10 sessions x 40 messages")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.messages, args.rounds = 10, 40, 10
    if args.worker:
        print(json.dumps(asyncio.run(measure(args.sessions, args.messages, args.rounds))))
    elif args.profile:
        sys.path.insert(0, str(ROOT / "src"))
        _profile(args.sessions, args.messages, args.rounds, args.top)
    else:
        _compare(args)


if __name__ == "__main__":
    main()
