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
and a bulk update loads the matching ones back into Redis first; counts and export
cover both, each session once (:mod:`chatkeep.stores.tiered_totals`). Inside a
``store.transaction()`` block, a session the block names is loaded back first, as by a
single call (:class:`TieredTransaction`).

A reload holds the session's lock and watches its record while it checks the outbox
and reads the durable copy (:meth:`TieredStore._reload`), so a deletion racing with it
is never undone.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from chatkeep.core import rules
from chatkeep.core.clock import Clock
from chatkeep.core.codec import to_micros
from chatkeep.core.ids import check_id
from chatkeep.core.query import MAX_PAGE, SessionFilter
from chatkeep.core.validation import Limits
from chatkeep.errors import (
    InvalidInputError,
    SessionNotFoundError,
    StoreClosedError,
    StoreUnavailableError,
    TransactionConflictError,
)
from chatkeep.stores import calls, ops, transfer
from chatkeep.stores import redis_outbox as outbox
from chatkeep.stores import tiered_totals as totals
from chatkeep.stores.backend import Counts
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

_RELOAD_ATTEMPTS = 16


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
        return await self._run(self._hot, op, args, write, frozenset())

    async def _run(
        self,
        hot: Operations,
        op: ops.Operation,
        args: Sequence[object],
        write: bool,
        named: Collection[str],
        loaded: set[str] | None = None,
    ) -> Any:
        """Run ``op`` on ``hot`` (Redis, or a transaction on it) once the sessions it
        names are back in Redis, or merged with the durable store's; the sessions in
        ``named`` are left as they are (the transaction holds them already), those
        loaded back are added to ``loaded``."""
        sid = _named(op, args)
        if sid is not None:
            if sid not in named:
                await self._warm(sid, loaded)
        elif op is ops.bulk_update and isinstance(args[0], SessionFilter):
            await self._warm_matching(args[0], named)
        elif op is ops.list_sessions:
            return await merged_page(hot, self.durable, self._only_durable, *args)  # type: ignore[arg-type]
        elif op is ops.search:
            return await merged_search(hot, self.durable, self._only_durable, *args)  # type: ignore[arg-type]
        elif op is ops.expired_ids:
            return await self._expired_ids(hot)
        elif op is ops.counts:
            found: Counts = await hot._call(op, *args, write=write)
            return await totals.counts(found, self.durable, self._only_durable, self._clock.now())
        elif op is ops.cleanup and isinstance(args[0], timedelta):
            # the expired sessions only in the durable store are deleted in Redis too:
            # the deletions reach the durable store through the outbox, like any write
            for expired in await self.durable._call(ops.expired_ids, write=False):
                if expired not in named:
                    await self._warm(expired)
        return await hot._call(op, *args, write=write)

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

    async def _warm(self, session_id: object, loaded: set[str] | None = None) -> bool:
        """Load the session from the durable store into Redis; False if it has none.

        A session already in Redis is left as it is; one loaded is added to ``loaded``."""
        try:
            sid = check_id(session_id, "session_id")
        except InvalidInputError:
            return False  # the operation itself reports the bad id
        for _ in range(_RELOAD_ATTEMPTS):
            (state,) = await self._states([sid])
            if state is not _State.COLD:
                return state is _State.HOT  # GONE: deleted, the deletion still on its way
            try:
                found = await self._reload(sid)
            except TransactionConflictError:
                continue  # another call wrote the session meanwhile: look again
            if found and loaded is not None:
                loaded.add(sid)
            return found
        raise StoreUnavailableError(
            f"{self.backend}: session {sid!r} kept changing while it was loaded back"
        )

    async def _reload(self, session_id: str) -> bool:
        """Copy the durable copy into Redis, holding the session's lock and watching its
        record from before the outbox is checked until the copy is written: a deletion
        either commits first (then it is waiting in the outbox, or synced and gone from
        the durable store, and nothing is loaded) or conflicts with the copy."""
        async with self._redis.transaction(True, log=False) as txn:
            if await txn.get_session(session_id) is not None:
                return True
            if await outbox.waiting(txn.link, self._redis.keys, session_id) > 0:
                return False
            found = await self.durable._call(ops.load_session, session_id, write=False)
            if found is None:
                return False
            session, messages = found
            op = ops.import_one(self._context(), session, messages, "skip_existing", False, None)
            return bool(await calls.run_async(txn, op))

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

    async def _warm_matching(self, flt: SessionFilter, named: Collection[str]) -> None:
        """Load every session matching ``flt`` that is only in the durable store into
        Redis (a bulk update must reach them too)."""
        cursor: str | None = None
        while True:
            page = await self.durable.list_sessions(flt, "created_at", MAX_PAGE, cursor)
            ids = [s.id for s in page.sessions]
            for sid, state in zip(ids, await self._states(ids), strict=True):
                if state is _State.COLD and sid not in named:
                    await self._warm(sid)
            cursor = page.next_cursor
            if cursor is None:
                return

    async def _expired_ids(self, hot: Operations) -> list[str]:
        """The expired sessions of Redis, then those only in the durable store that it
        still lists after their absence from Redis was checked (so a deletion synced
        meanwhile is not listed)."""
        hot_ids: list[str] = await hot._call(ops.expired_ids, write=False)
        cold: list[str] = await self.durable._call(ops.expired_ids, write=False)
        only = [sid for sid, flag in zip(cold, await self._only_durable(cold), strict=True) if flag]
        if only:
            still = set(await self.durable._call(ops.expired_ids, write=False))
            only = [sid for sid in only if sid in still]
        return list(dict.fromkeys([*hot_ids, *only]))

    async def _apply(self, changes: Sequence[Change]) -> list[Verdict]:
        """Apply a batch as one durable operation (one transaction, and for a local
        durable store one trip to its thread), each session's successive changes merged
        into one; a merged change the durable copy has in part (a batch delivered again)
        is applied change by change instead."""
        groups = coalesce(changes)
        decided = await self.durable._call(
            ops.apply_changes,
            [(change, [changes[i] for i in members]) for change, members in groups],
            write=True,
        )
        verdicts = [Verdict.WAIT] * len(changes)
        for (_, members), each in zip(groups, decided, strict=True):
            for i, verdict in zip(members, each, strict=True):
                verdicts[i] = verdict
        return verdicts

    # -- the rest of the surface ----------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Operations]:
        self._check_open()
        async with self._hot.transaction() as inner:
            tx = TieredTransaction(self, inner)
            try:
                yield tx
            finally:
                tx.open = False

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
        """Counts of the sessions in Redis and of those only in the durable store (see
        :mod:`chatkeep.stores.tiered_totals`), with the sync's lag."""
        counted = await super().stats()
        return dataclasses.replace(counted, details=await self._sync_details())

    async def export_sessions(self, filter: SessionFilter | None = None) -> AsyncIterator[str]:
        """The sessions in Redis and those only in the durable store, each once."""
        self._check_open()
        yield transfer.header_line(to_micros(self._clock.now()))
        rows = totals.export_rows(self._hot, self.durable, self._only_durable, filter)
        async for session, messages in rows:
            yield transfer.session_line(session, messages)

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


class TieredTransaction(Operations):
    """The operations of a ``store.transaction()`` block: a session the block names
    (by id, by a bulk update's filter, or expired for a cleanup) that has left Redis is
    loaded back first, outside the block, as by a single call; listings and searches
    merge the durable store's sessions, as outside a block."""

    def __init__(self, store: TieredStore, inner: Operations) -> None:
        self._store = store
        self._inner = inner
        self._named: set[str] = set()
        """Sessions this block has named: it may hold their locks."""
        self.open = True

    async def _call(self, op: ops.Operation, *args: object, write: bool) -> Any:
        if not self.open:
            raise RuntimeError("expected an open transaction, got one that has ended")
        sid, loaded = _named(op, args), set[str]()
        try:
            result = await self._store._run(self._inner, op, args, write, self._named, loaded)
        except SessionNotFoundError as exc:
            if loaded:
                raise _late(loaded) from exc
            raise
        finally:
            if sid is not None:
                self._named.add(sid)
        if op is ops.delete and result is False and loaded:
            raise _late(loaded)
        if op is ops.create:
            self._named.add(result.id)
        return result


def _late(loaded: set[str]) -> TransactionConflictError:
    """The error for a session loaded back after a block had found it absent from Redis
    (a listing walked it): the block's transaction watched its record, so it cannot
    commit; run again, it finds the session in Redis."""
    names = ", ".join(repr(sid) for sid in sorted(loaded))
    return TransactionConflictError(
        f"session {names} was loaded back into Redis from the durable store after this"
        " transaction had found it absent there; nothing of the transaction will be"
        " written: run it again"
    )


def _named(op: ops.Operation, args: Sequence[object]) -> str | None:
    """The id of the one session ``op`` names, if it names one."""
    if op in _BY_ID:
        found = args[0]
    elif op is ops.create:
        fields: Mapping[str, object] = args[0]  # type: ignore[assignment]
        found = fields.get("id")
    elif op is ops.import_one:
        found = getattr(args[0], "id", None)
    else:
        return None
    return found if isinstance(found, str) else None


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
