"""One repetition of the workload on one backend: every contender, rounds interleaved.

The contenders of a backend take turns round by round (one message to every session,
or one read of every session), in an order that rotates each round, so that all of them
see the same machine at the same time; timings on a shared machine drift.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bench.compare.contender import Backend, Contender
from bench.compare.verify import check_tail, problems
from bench.compare.workload import Workload, message_text

T = TypeVar("T")

MAX_PROBLEMS = 10
"""Problems kept per contender and repetition; the count says how many there were."""


@dataclass(slots=True)
class Run:
    """What one contender did in one repetition: seconds per call, per phase."""

    append: list[float] = field(default_factory=list)
    read: list[float] = field(default_factory=list)
    concurrent: list[float] = field(default_factory=list)
    concurrent_wall: float = 0.0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    skipped: str | None = None
    """Why the contender could not be used at all (its package is missing)."""
    error: str | None = None
    """Why it stopped part way."""

    def flag(self, line: str | None) -> None:
        if line is None:
            return
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(line)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]


async def timed(calls: list[float], work: Awaitable[T]) -> T:
    started = time.perf_counter()
    result = await work
    calls.append(time.perf_counter() - started)
    return result


def rotated(items: list[T], turn: int) -> list[T]:
    if not items:
        return items
    turn %= len(items)
    return items[turn:] + items[:turn]


class Repetition:
    def __init__(self, backend: Backend, workload: Workload) -> None:
        self.backend = backend
        self.workload = workload
        self.runs: dict[str, Run] = {}
        self.live: dict[str, Contender] = {}

    async def run(self) -> dict[str, Run]:
        async with self.backend.place() as place:
            try:
                await self.open_all(place)
                await self.phases()
            finally:
                for contender in self.live.values():
                    try:
                        await contender.close()
                    except Exception as exc:  # a failed close must not hide the results
                        print(f"  closing failed: {describe(exc)}")
        return self.runs

    async def open_all(self, place: object) -> None:
        keys = self.workload.keys() + self.workload.task_keys()
        for entry in self.backend.entries:
            run = self.runs[entry.name] = Run()
            try:
                contender = await entry.open(place)
            except ImportError as exc:
                run.skipped = f"{entry.package} is not installed or fails to import ({exc})"
                continue
            except Exception as exc:
                run.error = f"could not open: {describe(exc)}"
                continue
            self.live[entry.name] = contender
            await self.guard(entry.name, contender.prepare(keys), "prepare")

    async def guard(self, name: str, work: Awaitable[object], phase: str) -> None:
        """Run ``work``; a contender that raises is reported and leaves the race."""
        try:
            await work
        except Exception as exc:
            self.runs[name].error = f"{phase}: {describe(exc)}"
            contender = self.live.pop(name)
            try:
                await contender.close()
            except Exception as close_exc:
                print(f"  {name}: closing failed: {describe(close_exc)}")

    async def each(
        self, phase: str, turn: int, work: Callable[[str, Contender, Run], Awaitable[None]]
    ) -> None:
        for name in rotated(list(self.live), turn):
            await self.guard(name, work(name, self.live[name], self.runs[name]), phase)

    async def phases(self) -> None:
        w = self.workload
        keys = w.keys()
        expected = w.expected()
        for seq in range(1, w.messages + 1):

            async def appends(_: str, c: Contender, run: Run, seq: int = seq) -> None:
                for key in keys:
                    await timed(run.append, c.append(key, message_text(key, seq, w.size)))

            await self.each("append", seq, appends)
        for turn in range(w.read_rounds):

            async def reads(_: str, c: Contender, run: Run) -> None:
                for key in keys:
                    got = await timed(run.read, c.read(key, w.read_last))
                    run.flag(check_tail(key, expected[key], got, w.read_last))

            await self.each("read", turn, reads)

        async def concurrent(_: str, c: Contender, run: Run) -> None:
            async def task(key: str) -> None:
                for seq in range(1, w.task_messages + 1):
                    await timed(run.concurrent, c.append(key, message_text(key, seq, w.size)))

            started = time.perf_counter()
            await asyncio.gather(*(task(key) for key in w.task_keys()))
            run.concurrent_wall = time.perf_counter() - started

        await self.each("concurrent append", 0, concurrent)

        async def verify(_: str, c: Contender, run: Run) -> None:
            found = {key: await c.stored(key) for key in expected}
            for line in problems(expected, found):
                run.flag(line)

        await self.each("verify", 0, verify)


async def repeat(backend: Backend, workload: Workload) -> list[dict[str, Run]]:
    runs = []
    for number in range(1, workload.repeat + 1):
        print(f"  {backend.title}: repetition {number} of {workload.repeat}", flush=True)
        runs.append(await Repetition(backend, workload).run())
    return runs
