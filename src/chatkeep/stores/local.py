"""``LocalStore``: the Store protocol over an in-process :class:`Backend`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from chatkeep.core import rules
from chatkeep.core.clock import Clock
from chatkeep.core.validation import Limits
from chatkeep.stores import calls, ops
from chatkeep.stores.backend import Backend
from chatkeep.stores.base import OptimizeReport
from chatkeep.stores.group_commit import GroupCommit
from chatkeep.stores.runner import Placement, Runner
from chatkeep.stores.surface import Operations, StoreSurface


class Transaction(Operations):
    """Operations inside ``store.transaction()``; they commit together when the block ends."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._open = True

    async def _call(self, op: ops.Operation, *args: object, write: bool) -> Any:
        if not self._open:
            raise RuntimeError("expected an open transaction, got one that has ended")
        work = op(self._store._context(), *args)
        return await self._store._runner.run(partial(calls.run, self._store._backend, work))


class LocalStore(StoreSurface):
    """A store whose data lives in this process or on a local disk."""

    def __init__(
        self,
        backend: Backend,
        runner: Runner,
        *,
        clock: Clock | None = None,
        defaults: rules.SessionDefaults | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(backend.name, clock=clock, defaults=defaults, limits=limits)
        self._backend = backend
        self._runner = runner
        self._lock = asyncio.Lock()
        self._reader = backend.reader()
        self._group = GroupCommit(
            backend, runner, self._lock, self._context, Placement(backend.writer)
        )

    def _atomic(
        self,
        backend: Backend,
        op: ops.Operation,
        ctx: ops.Context,
        args: tuple[object, ...],
        write: bool,
    ) -> Any:
        backend.begin(write)
        try:
            result = calls.run(backend, op(ctx, *args))
            backend.commit()
        except BaseException:
            backend.rollback()
            raise
        return result

    async def _call(self, op: ops.Operation, *args: object, write: bool) -> Any:
        self._check_open()
        if op is ops.search:
            # The backend may have messages to add to its search index first.
            write = True
        elif not write and self._reader is not None:
            return self._atomic(self._reader, op, self._context(), args, write)
        return await self._group.submit(op, args, write)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        self._check_open()
        async with self._lock:
            await self._runner.run(partial(self._backend.begin, True))
            tx = Transaction(self)
            try:
                yield tx
            except BaseException:
                tx._open = False
                await self._runner.run(self._backend.rollback)
                raise
            tx._open = False
            try:
                await self._runner.run(self._backend.commit)
            except BaseException:
                await self._runner.run(self._backend.rollback)
                raise
            if self._backend.housekeeping_due():
                await self._runner.run(self._backend.housekeeping)

    async def optimize(self) -> OptimizeReport:
        done = await self._call(ops.optimize, write=True)
        return OptimizeReport(self.backend, list(done))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            try:
                if self._reader is not None:
                    self._reader.close()
                await self._runner.run(self._backend.close)
            finally:
                self._runner.shutdown()
