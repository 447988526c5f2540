"""``RemoteStore``: the Store protocol over a networked :class:`AsyncBackend`.

Operations run concurrently, each in its own backend transaction (a pooled connection,
or a Redis optimistic transaction). A backend that detects a lost race raises
:class:`~chatkeep.errors.TransactionConflictError`; a single operation is then run again
from the start. Its first run goes through :meth:`AsyncBackend.operation`, the next ones
through :meth:`AsyncBackend.transaction`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from chatkeep.core import rules
from chatkeep.core.clock import Clock
from chatkeep.core.validation import Limits
from chatkeep.errors import StoreUnavailableError, TransactionConflictError
from chatkeep.stores import calls, ops
from chatkeep.stores.base import OptimizeReport
from chatkeep.stores.remote_backend import AsyncBackend, AsyncTxn
from chatkeep.stores.surface import Operations, StoreSurface

MAX_ATTEMPTS = 64


class RemoteTransaction(Operations):
    """Operations inside ``store.transaction()``; they commit together when the block ends."""

    def __init__(self, store: RemoteStore, txn: AsyncTxn) -> None:
        self._store = store
        self._txn = txn
        self._open = True

    async def _call(self, op: ops.Operation, *args: object, write: bool) -> Any:
        if not self._open:
            raise RuntimeError("expected an open transaction, got one that has ended")
        return await calls.run_async(self._txn, op(self._store._context(), *args))


class RemoteStore(StoreSurface):
    """A store on a database server (PostgreSQL) or a cache server (Redis)."""

    def __init__(
        self,
        backend: AsyncBackend,
        *,
        clock: Clock | None = None,
        defaults: rules.SessionDefaults | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(backend.name, clock=clock, defaults=defaults, limits=limits)
        self._backend = backend

    async def _call(self, op: ops.Operation, *args: object, write: bool) -> Any:
        self._check_open()
        for attempt in range(MAX_ATTEMPTS):
            backend = self._backend
            try:
                async with (backend.transaction if attempt else backend.operation)(write) as txn:
                    return await calls.run_async(txn, op(self._context(), *args))
            except TransactionConflictError:
                continue
        raise StoreUnavailableError(
            f"{self.backend}: gave up after {MAX_ATTEMPTS} conflicting attempts"
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[RemoteTransaction]:
        self._check_open()
        async with self._backend.transaction(True) as txn:
            tx = RemoteTransaction(self, txn)
            try:
                yield tx
            finally:
                tx._open = False

    async def optimize(self) -> OptimizeReport:
        self._check_open()
        return OptimizeReport(self.backend, await self._backend.optimize())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._backend.close()
