"""A Redis store written behind to a durable store (SQLite, files or PostgreSQL).

Every write goes to Redis and, in the same MULTI/EXEC, to the outbox
(:mod:`chatkeep.stores.redis_outbox`); a :class:`~chatkeep.stores.sync_worker.SyncWorker`
drains the outbox into the durable store. Open one with a ``write_behind`` URL option
(:mod:`chatkeep.stores.tiered_options`)::

    redis://127.0.0.1:6379/0?prefix=chat&write_behind=postgresql%3A%2F%2Fdb%2Fchat

Two lifetimes apply to a session. Its own ``ttl`` decides when it expires, on both
tiers, exactly as in any store. The Redis idle TTL (``idle_ttl``) only decides how long
its keys stay in Redis without a write: a session that has left Redis still lives in the
durable store, and reading or writing it by id (get, messages, append, and every other
call that names a session) loads it back into Redis first. Leaving Redis never deletes
durable history; deleting a session, or cleaning it up once it has expired, does.

A session never leaves Redis with changes still waiting in the outbox: its keys keep
the session's own TTL while it has some, and the idle TTL starts once the last of them
is in the durable store. So a session absent from Redis is either deleted (its deletion
may still be on its way) or complete in the durable store.

Listing and search show the sessions of both (:mod:`chatkeep.stores.tiered_listing`),
and a bulk update loads the matching ones back into Redis first; counts and export see
the sessions present in Redis; a ``store.transaction()`` block works on Redis only (a
session that has left Redis is loaded back by any call that names it outside the block
first).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from chatkeep.core import rules
from chatkeep.core.clock import Clock
from chatkeep.core.ids import check_id
from chatkeep.core.query import MAX_PAGE, SessionFilter
from chatkeep.core.validation import Limits
from chatkeep.errors import (
    SessionNotFoundError,
    StoreClosedError,
    StoreUnavailableError,
    TransactionConflictError,
)
from chatkeep.stores import calls, ops
from chatkeep.stores import redis_outbox as outbox
from chatkeep.stores.base import HealthReport, OptimizeReport, StoreStats
from chatkeep.stores.outbox import Change, Verdict, coalesce
from chatkeep.stores.redis import RedisBackend
from chatkeep.stores.redis_link import Command
from chatkeep.stores.remote import RemoteStore
from chatkeep.stores.surface import Operations, StoreSurface
from chatkeep.stores.sync_worker import SyncWorker
from chatkeep.stores.tiered_listing import merged_page, merged_search
from chatkeep.stores.tiered_options import TierOptions


class _State(enum.Enum):
    HOT = "in Redis"
    COLD = "only in the durable store, complete"
    GONE = "deleted; the deletion not yet in the durable store"


_BY_ID = frozenset(
    {
        ops.get,
        ops.update,
        ops.delete,
        ops.append,
        ops.read,
        ops.pop,
        ops.clear,
        ops.touch,
        ops.set_expiration,
        ops.extend_expiration,
        ops.get_lock,
        ops.set_lock,
        ops.clear_lock,
    }
)
"""The operations on one session named by their first argument."""


class TieredStore(StoreSurface):
    """Redis in front, the durable store behind, the sync worker between them."""

    def __init__(
        self,
        redis: RedisBackend,
        durable: StoreSurface,
        options: TierOptions,
        *,
        clock: Clock | None = None,
        defaults: rules.SessionDefaults | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(f"redis+{durable.backend}", clock=clock, defaults=defaults, limits=limits)
        redis.log_changes = True
        redis.idle_millis = options.idle_millis
        self.options = options
        self.durable = durable
        self._redis = redis
        self._hot = RemoteStore(redis, clock=self._clock, defaults=self._defaults, limits=limits)
        self.worker = SyncWorker(
            redis,
            self._apply,
            interval=options.sync_interval,
            batch=options.batch,
            claim_idle=options.claim_idle,
            drain_timeout=options.drain_timeout,
        )

    # -- running operations ---------------------------------------------------------
    async def _call(self, op: ops.Operation, *args: object, write: bool) -> Any:
        self._check_open()
        if op in _BY_ID:
            return await self._by_id(op, args, write)
        if op is ops.create:
            fields: Mapping[str, object] = args[0]  # type: ignore[assignment]
            if fields.get("id") is not None:
                await self._warm(check_id(fields["id"], "id"))
        elif op is ops.import_one:
            await self._warm(args[0].id)  # type: ignore[attr-defined]
        elif op is ops.bulk_update and isinstance(args[0], SessionFilter):
            await self._warm_matching(args[0])
        elif op is ops.list_sessions:
            return await merged_page(self._hot, self.durable, self._only_durable, *args)  # type: ignore[arg-type]
        elif op is ops.search:
            return await merged_search(self._hot, self.durable, self._only_durable, *args)  # type: ignore[arg-type]
        elif op is ops.expired_ids:
            return await self._expired_ids()
        elif op is ops.cleanup:
            return await self._cleanup(args[0])
        return await self._hot._call(op, *args, write=write)

    async def _by_id(self, op: ops.Operation, args: Sequence[object], write: bool) -> Any:
        try:
            result = await self._hot._call(op, *args, write=write)
        except SessionNotFoundError:
            if not await self._warm(args[0]):
                raise
            return await self._hot._call(op, *args, write=write)
        if op is ops.delete and result is False and await self._warm(args[0]):
            return await self._hot._call(op, *args, write=write)
        return result

    async def _warm(self, session_id: object) -> bool:
        """Load the session from the durable store into Redis; False if it has none.

        A session already in Redis is left as it is."""
        if not isinstance(session_id, str):
            return False
        (state,) = await self._states([session_id])
        if state is not _State.COLD:
            return state is _State.HOT  # GONE: deleted, the deletion still on its way
        found = await self.durable._call(ops.load_session, session_id, write=False)
        if found is None:
            return False
        session, messages = found
        op = ops.import_one(self._context(), session, messages, "skip_existing", False, None)
        try:
            async with self._redis.transaction(True, log=False) as txn:
                await calls.run_async(txn, op)
        except TransactionConflictError:
            pass  # another call wrote the session meanwhile: Redis has it
        return True

    async def _states(self, ids: Sequence[str]) -> list[_State]:
        """Where each session's newest copy is."""
        keys = self._redis.keys
        commands: list[Command] = [("EXISTS", keys.session(i)) for i in ids]
        commands += [("HGET", keys.waiting, i) for i in ids]
        async with self._redis.connection() as link:
            replies = await link.run(*commands) if ids else []
        held, left = replies[: len(ids)], replies[len(ids) :]
        return [
            _State.HOT if h else _State.GONE if w is not None and int(w) > 0 else _State.COLD
            for h, w in zip(held, left, strict=True)
        ]

    async def _only_durable(self, ids: Sequence[str]) -> list[bool]:
        return [state is _State.COLD for state in await self._states(ids)]

    async def _warm_matching(self, flt: SessionFilter) -> None:
        """Load every session matching ``flt`` that is only in the durable store into
        Redis (a bulk update must reach them too)."""
        cursor: str | None = None
        while True:
            page = await self.durable.list_sessions(flt, "created_at", MAX_PAGE, cursor)
            ids = [s.id for s in page.sessions]
            for sid, state in zip(ids, await self._states(ids), strict=True):
                if state is _State.COLD:
                    await self._warm(sid)
            cursor = page.next_cursor
            if cursor is None:
                return

    async def _expired_ids(self) -> list[str]:
        hot: list[str] = await self._hot._call(ops.expired_ids, write=False)
        cold: list[str] = await self.durable._call(ops.expired_ids, write=False)
        states = await self._states(cold)
        only_cold = [sid for sid, st in zip(cold, states, strict=True) if st is _State.COLD]
        return list(dict.fromkeys([*hot, *only_cold]))

    async def _cleanup(self, older_than: object) -> int:
        """Load the expired sessions that are only in the durable store back into Redis,
        then delete every expired one there: the deletions reach the durable store
        through the outbox, like any other write."""
        if isinstance(older_than, timedelta):  # else the operation reports the bad input
            for sid in await self.durable._call(ops.expired_ids, write=False):
                await self._warm(sid)
        removed: int = await self._hot._call(ops.cleanup, older_than, write=True)
        return removed

    async def _apply(self, changes: Sequence[Change]) -> list[Verdict]:
        """Apply a batch in one durable transaction, each session's successive changes
        merged into one; a merged change the durable copy has in part (a batch delivered
        again) is applied change by change instead."""
        verdicts = [Verdict.WAIT] * len(changes)
        async with self.durable.transaction() as tx:
            for change, members in coalesce(changes):
                decided = await tx._call(ops.apply_change, change, write=True)
                if decided is Verdict.SKIP and len(members) > 1:
                    for i in members:
                        verdicts[i] = await tx._call(ops.apply_change, changes[i], write=True)
                else:
                    for i in members:
                        verdicts[i] = decided
        return verdicts

    # -- the rest of the surface ----------------------------------------------------
    def transaction(self) -> AbstractAsyncContextManager[Operations]:
        return self._hot.transaction()

    async def optimize(self) -> OptimizeReport:
        hot, cold = await self._hot.optimize(), await self.durable.optimize()
        return OptimizeReport(self.backend, [*hot.operations, *cold.operations])

    async def lag(self) -> outbox.Lag:
        """How far the durable store is behind."""
        self._check_open()
        async with self._redis.connection() as link:
            return await outbox.lag(link, self._redis.keys)

    async def _sync_details(self) -> dict[str, Any]:
        state = self.worker.state
        details: dict[str, Any] = {
            "durable": self.durable.backend,
            "sync_interval_seconds": self.options.sync_interval,
            "synced": state.synced,
            "sync_failures": state.failures,
            "last_sync_error": state.last_error,
            "set_aside": state.buried,
        }
        try:
            found = await self.lag()
        except (StoreUnavailableError, StoreClosedError) as exc:
            details["outbox_error"] = str(exc)
            return details
        details.update(
            outbox_length=found.length, sync_lag_seconds=found.oldest_age, outbox_dead=found.dead
        )
        return details

    async def stats(self) -> StoreStats:
        counted = await super().stats()
        return dataclasses.replace(counted, details=await self._sync_details())

    async def health(self) -> HealthReport:
        hot, cold = await super().health(), await self.durable.health()
        issues = [*hot.issues, *(f"{cold.backend}: {issue}" for issue in cold.issues)]
        details = {**hot.details, **(await self._sync_details())}
        if self.worker.state.last_error is not None:
            issues.append(f"write-behind to {cold.backend} failing: {self.worker.state.last_error}")
        latency = max(hot.latency_ms, cold.latency_ms)
        return HealthReport(self.backend, not issues, latency, issues, details)

    async def sync_now(self) -> int:
        """Sync the outbox into the durable store now; the number of changes synced."""
        self._check_open()
        return await self.worker.sync_now()

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self.worker.stop()
        finally:
            self._closed = True
            try:
                await self._hot.close()
            finally:
                await self.durable.close()


async def open_tiered(
    url: str,
    options: TierOptions,
    redis_options: Mapping[str, str],
    **kwargs: Any,
) -> TieredStore:
    """Open Redis at ``url`` and the durable store, then start the sync worker."""
    from chatkeep.stores.registry import open_store

    redis = await RedisBackend.open(url, redis_options)
    try:
        durable = await open_store(options.durable_url, **kwargs)
    except BaseException:
        await redis.close()
        raise
    store = TieredStore(redis, durable, options, **kwargs)
    store.worker.start()
    return store
