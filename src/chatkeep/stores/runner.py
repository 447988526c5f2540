"""Where a backend's synchronous operations run: inline, or on one worker thread; and
where a store's write batches run (:class:`Placement`)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol, TypeVar

from chatkeep.errors import ConfigurationError

T = TypeVar("T")


class Runner(Protocol):
    async def run(self, fn: Callable[[], T]) -> T: ...

    def shutdown(self) -> None: ...


class InlineRunner:
    """Runs on the event loop: for backends whose operations never block (memory)."""

    async def run(self, fn: Callable[[], T]) -> T:
        return fn()

    def shutdown(self) -> None:
        return None


class ThreadRunner:
    """Runs every operation on one dedicated thread, so a backend connection is never
    shared between threads and the event loop never waits on disk."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[[], T]) -> T:
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The worker finishes what it started; wait for it so that the caller's lock
            # is not released while the backend is still in the middle of an operation.
            await asyncio.wait([future])
            raise

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


Writer = Literal["thread", "loop", "auto"]
WRITERS: tuple[Writer, ...] = ("thread", "loop", "auto")


def writer_option(options: Mapping[str, str]) -> Writer:
    """The ``writer`` option of a local store's URL (default ``auto``)."""
    text = options.get("writer", "auto")
    for writer in WRITERS:
        if writer == text.lower():
            return writer
    raise ConfigurationError("writer", f"{text!r} is not one of: {', '.join(WRITERS)}")


QUICK_BATCH = 0.001
"""With ``writer="auto"``, batches run on the event loop while most recent ones waited
(on the disk) less than this (seconds), and on the store's thread otherwise."""
RECENT = 16
"""How many of the last batches that decision looks at."""


class Placement:
    """Where a store's write batches run: on its thread, on the event loop, or (``auto``)
    on the loop while they are quick.

    Handing a batch to a thread and back costs two thread wake-ups (70-400 µs on a busy
    machine), often more than a small commit takes. ``auto`` runs batches on the loop
    while no more than half of the last :data:`RECENT` waited :data:`QUICK_BATCH` or
    longer (their median is quick), and moves them to the thread, so that the loop does
    not wait on a slow disk, when more did; batches timed on the thread bring them back
    when the disk is quick again. A rare slow commit (a disk hiccup) does not move them.

    What counts is the time a batch spent waiting (its time less the CPU time of the
    thread that ran it), not its whole time: a large batch of quick operations is work
    for the interpreter, which holds the loop wherever it runs (a thread needs the
    interpreter's lock for it), and on a thread it also pays for every switch of that
    lock between the two threads.
    """

    def __init__(self, writer: Writer) -> None:
        if writer not in WRITERS:
            raise ValueError(f"expected one of {', '.join(WRITERS)}, got {writer!r}")
        self.writer = writer
        self.recent: deque[bool] = deque([False] * RECENT, maxlen=RECENT)
        """Whether each of the last batches was slow, oldest first (a new store counts
        as having had quick ones)."""
        self._slow = 0
        """How many of :attr:`recent` were."""

    def on_loop(self) -> bool:
        """Whether the next batch runs on the event loop."""
        if self.writer == "auto":
            return 2 * self._slow <= RECENT
        return self.writer == "loop"

    def took(self, seconds: float) -> None:
        """Note that a batch waited ``seconds`` (see :func:`waiting`)."""
        recent = self.recent
        self._slow -= recent[0]
        slow = seconds >= QUICK_BATCH
        recent.append(slow)
        self._slow += slow


def waiting(fn: Callable[..., object], *args: object) -> float:
    """Run ``fn(*args)``; how long it waited, in seconds: the time it took less the CPU
    time the running thread spent on it (what is left is time spent on the disk, or
    waiting for the CPU)."""
    start, cpu = time.perf_counter(), time.thread_time()
    fn(*args)
    return max(0.0, (time.perf_counter() - start) - (time.thread_time() - cpu))
