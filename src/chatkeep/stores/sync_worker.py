"""The write-behind sync worker: drains the Redis outbox into the durable store.

Every ``interval`` seconds it takes over the changes a silent worker left pending
(XAUTOCLAIM), then reads its own pending changes and the new ones in batches; each batch
is applied in one durable transaction and acknowledged only after that transaction
commits, so a process killed at any point loses nothing acknowledged: its unacknowledged
changes are delivered again, and applying a change twice is a no-op (see
:mod:`chatkeep.stores.outbox`). A failing sync is retried with exponential backoff and
jitter. A change the durable store refuses as bad data (not as unavailable) is moved to
``<prefix>:outbox:dead`` with the reason, so that one bad change never blocks the others;
so is one that keeps waiting for an earlier change for longer than ``give_up`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from chatkeep.errors import ChatkeepError, StoreClosedError, StoreUnavailableError
from chatkeep.stores import redis_outbox as outbox
from chatkeep.stores.outbox import Change, Verdict
from chatkeep.stores.redis import RedisBackend
from chatkeep.stores.redis_link import Link

Apply = Callable[[Sequence[Change]], Awaitable[list[Verdict]]]
"""Applies changes, in order, in one durable transaction; returns each one's verdict."""

FORGET_AFTER = 86400.0
"""Seconds after which a consumer with nothing pending (a process long gone) is removed
from the group, when a worker starts."""
BACKOFF_BASE = 0.2
BACKOFF_CAP = 30.0
_log = logging.getLogger("chatkeep.sync")


@dataclass(slots=True)
class SyncState:
    """What the worker has done since it started."""

    synced: int = 0
    """Changes acknowledged (applied, or found in the durable store already)."""
    buried: int = 0
    failures: int = 0
    """Consecutive failed syncs (0 after a sync succeeds)."""
    last_error: str | None = None
    last_success: float | None = None
    """``time.time()`` of the last sync that succeeded."""


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures: doubling, capped, jittered."""
    doubled: float = BACKOFF_BASE * 2.0 ** min(failures - 1, 16)
    return min(BACKOFF_CAP, doubled) * (0.5 + random.random())


class SyncWorker:
    def __init__(
        self,
        redis: RedisBackend,
        apply: Apply,
        *,
        interval: float,
        batch: int,
        claim_idle: float,
        drain_timeout: float,
        give_up: float | None = None,
    ) -> None:
        self._redis = redis
        self._apply = apply
        self.interval = interval
        self.batch = batch
        self.claim_idle = claim_idle
        self.drain_timeout = drain_timeout
        self.give_up = give_up if give_up is not None else max(300.0, 10 * claim_idle)
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.state = SyncState()
        self._waiting: dict[bytes, float] = {}
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._group_ready = False
        self.first_sync = asyncio.Event()
        """Set once the sync the worker starts with has ended (whether it succeeded)."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("expected a stopped sync worker, got a started one")
        self._task = asyncio.create_task(self._run(), name=f"chatkeep-sync-{self.consumer}")

    async def stop(self) -> None:
        """Stop, after syncing what can be synced within ``drain_timeout`` seconds."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        await task

    async def _run(self) -> None:
        delay = 0.0
        clock = asyncio.get_running_loop().time
        while not await self._stopped_within(delay):
            started = clock()
            try:
                await self.sync_now()
                # Syncs start every ``interval`` (a long one is followed at once by the
                # next): a change waits at most about one interval plus one sync.
                delay = max(0.0, self.interval - (clock() - started))
            except Exception as exc:  # the worker must outlive any one failure
                delay = self._failed(exc)
            self.first_sync.set()
        try:
            async with asyncio.timeout(self.drain_timeout):
                await self.sync_now()
        except Exception as exc:  # the changes stay in the outbox, for the next start
            _log.warning("write-behind: stopped with changes left in the outbox: %s", exc)

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        return self._stop.is_set()

    def _failed(self, exc: Exception) -> float:
        self.state.failures += 1
        self.state.last_error = str(exc) or type(exc).__name__
        level = logging.WARNING if isinstance(exc, ChatkeepError) else logging.ERROR
        _log.log(level, "write-behind: sync failed (%s), retrying", exc, exc_info=level > 30)
        return backoff(self.state.failures)

    async def sync_now(self) -> int:
        """Sync everything the outbox holds now; the number of changes acknowledged.

        Raises (nothing acknowledged for the failed batch) if Redis or the durable store
        fails."""
        async with self._lock, self._redis.connection() as link:
            try:
                done = await self._drain(link)
            except StoreUnavailableError as exc:
                if "NOGROUP" in str(exc):  # the outbox was deleted by hand: make it again
                    self._group_ready = False
                raise
        self.state.failures = 0
        self.state.last_error = None
        self.state.last_success = time.time()
        return done

    async def _drain(self, link: Link) -> int:
        """Take over what silent workers left, then sync this worker's pending changes,
        then the new ones."""
        keys = self._redis.keys
        if not self._group_ready:
            await outbox.ensure_group(link, keys)
            idle_ms = int(max(FORGET_AFTER, self.give_up) * 1000)
            await outbox.forget_consumers(link, keys, idle_ms, self.consumer)
            self._group_ready = True
        claim_ms = max(int(self.claim_idle * 1000), 1)
        await outbox.claim(link, keys, self.consumer, claim_ms, self.batch)
        done, after = 0, b"0"
        while entries := await outbox.read(link, keys, self.consumer, after, self.batch):
            done += await self._process(link, entries)
            after = entries[-1].id
        while entries := await outbox.read(link, keys, self.consumer, outbox.NEW, self.batch):
            done += await self._process(link, entries)
        return done

    async def _process(self, link: Link, entries: list[outbox.Entry]) -> int:
        keys = self._redis.keys
        readable: list[tuple[outbox.Entry, Change]] = []
        settled: list[outbox.Entry] = []
        for entry in entries:
            if entry.raw is None or entry.session_id is None:
                settled.append(entry)  # removed from the stream by hand: nothing to sync
                continue
            try:
                readable.append((entry, Change.decode(entry.session_id, entry.raw)))
            except ChatkeepError as exc:
                await self._bury(link, entry, str(exc))
        verdicts = await self._verdicts(link, readable)
        now = time.monotonic()
        for (entry, _), verdict in zip(readable, verdicts, strict=True):
            if verdict is None:
                continue
            if verdict is not Verdict.WAIT:
                settled.append(entry)
                self._waiting.pop(entry.id, None)
            elif now - self._waiting.setdefault(entry.id, now) > self.give_up:
                await self._bury(link, entry, "an earlier change of the session never arrived")
        done = await outbox.ack(link, keys, settled, self._redis.idle_millis)
        self.state.synced += done
        return done

    async def _verdicts(
        self, link: Link, readable: list[tuple[outbox.Entry, Change]]
    ) -> list[Verdict | None]:
        """Apply the batch in one transaction; if the durable store refuses it as bad
        data, apply the changes one by one and bury those it refuses (verdict None)."""
        if not readable:
            return []
        try:
            return list(await self._apply([change for _, change in readable]))
        except (StoreUnavailableError, StoreClosedError):
            raise
        except ChatkeepError as exc:
            _log.warning("write-behind: a batch was refused (%s); syncing it change by change", exc)
        out: list[Verdict | None] = []
        for entry, change in readable:
            try:
                out.append((await self._apply([change]))[0])
            except (StoreUnavailableError, StoreClosedError):
                raise
            except ChatkeepError as exc:
                await self._bury(link, entry, str(exc))
                out.append(None)
        return out

    async def _bury(self, link: Link, entry: outbox.Entry, reason: str) -> None:
        _log.error(
            "write-behind: change %s of session %r set aside: %s",
            entry.id,
            entry.session_id,
            reason,
        )
        await outbox.bury(link, self._redis.keys, entry, reason, self._redis.idle_millis)
        self._waiting.pop(entry.id, None)
        self.state.buried += 1
