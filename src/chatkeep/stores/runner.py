"""Where a backend's synchronous operations run: inline, or on one worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

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
