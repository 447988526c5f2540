"""Background work: a job repeated at an interval, and the expiry sweep it runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from chatkeep.core.clock import Clock, SystemClock
from chatkeep.errors import ChatkeepError
from chatkeep.stores.base import Store

logger = logging.getLogger("chatkeep.manager.sweeper")


class Periodic:
    """Runs ``job`` every ``interval`` in a task, from :meth:`start` until :meth:`stop`.

    A run that raises is logged; the next run still happens. The first run comes one
    interval after the start. Stopping lets a run in progress finish (a backup is not
    left half done) and cancels the wait for the next one.
    """

    def __init__(
        self, name: str, interval: timedelta, job: Callable[[], Awaitable[object]]
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError(f"expected a positive interval, got {interval}")
        self.name = name
        self.interval = interval
        self._job = job
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._stopping = False
        self.runs = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"expected {self.name} to be stopped, got it running")
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=f"chatkeep-{self.name}")

    async def stop(self) -> None:
        """End the task once a run in progress (if any) has finished."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        if not self._busy:
            task.cancel()
        await asyncio.wait([task])

    async def _loop(self) -> None:
        delay = self.interval.total_seconds()
        while not self._stopping:
            await asyncio.sleep(delay)
            self._busy = True
            try:
                await self._job()
            except Exception:
                self.failures += 1
                logger.exception("%s failed; retrying in %s", self.name, self.interval)
            finally:
                self._busy = False
            self.runs += 1


@dataclass(frozen=True, slots=True)
class SweepReport:
    expired: list[str] = field(default_factory=list)
    """Sessions seen expired for the first time in this sweep."""
    cleaned: int = 0
    """Expired sessions deleted (those expired for longer than the retention)."""
    errors: list[str] = field(default_factory=list)
    """One line per store that failed; the other stores were still swept."""


class Sweeper:
    """Finds expired sessions, reports each one once, and deletes them after ``retention``.

    A session is reported again only if it was revived (see :meth:`forget`) and then
    expired again. A sweep deletes only sessions that had expired when it looked for
    expired ones, so none is deleted before it is reported.
    """

    def __init__(
        self,
        stores: Callable[[], Sequence[tuple[str, Store]]],
        retention: timedelta,
        on_expired: Callable[[str], None],
        clock: Clock | None = None,
    ) -> None:
        self._stores = stores
        self._clock = clock or SystemClock()
        self._retention = retention
        self._on_expired = on_expired
        self._reported: dict[str, set[str]] = {}
        self._lock = asyncio.Lock()

    def forget(self, session_id: str) -> None:
        """The session was revived or deleted: if it expires again, report it again."""
        for reported in self._reported.values():
            reported.discard(session_id)

    async def sweep(self) -> SweepReport:
        async with self._lock:
            fresh: list[str] = []
            cleaned = 0
            errors: list[str] = []
            for name, store in self._stores():
                reported = self._reported.get(name, set())
                looked_at = self._clock.now()
                try:
                    expired = await store.expire_sessions()
                except ChatkeepError as exc:
                    errors.append(self._failed(name, "finding expired sessions", exc))
                    continue
                fresh.extend(sid for sid in expired if sid not in reported)
                self._reported[name] = set(expired)
                try:
                    # What expired after the look above is not reported yet: keep it.
                    cleaned += await store.cleanup_expired_sessions(
                        older_than=self._retention, expired_before=looked_at
                    )
                except ChatkeepError as exc:
                    errors.append(self._failed(name, "deleting expired sessions", exc))
            for session_id in fresh:
                self._on_expired(session_id)
            return SweepReport(expired=fresh, cleaned=cleaned, errors=errors)

    @staticmethod
    def _failed(name: str, step: str, exc: ChatkeepError) -> str:
        logger.warning("%s in the %s store failed: %s", step, name, exc)
        return f"{name}: {step} failed: {exc}"
