"""Group commit: operations that arrive while a commit is in flight share the next one.

A :class:`~chatkeep.stores.local.LocalStore` sends each write to a :class:`GroupCommit`.
The first caller finds nothing in flight and runs its operation at once; callers that
arrive while a batch is being committed queue up, and the whole queue then runs as one
batch: one hop to the store's thread, one transaction, one commit. A caller is answered
only after the commit that holds its operation has succeeded.

A backend may ask for its batches to run on the event loop (``writer`` ``loop``, or
``auto`` while they are quick, see :class:`~chatkeep.stores.runner.Placement`): no hop,
but the loop waits for each batch. Nothing else can run (and queue) while a batch runs
there, so the first caller waits one turn of the loop before it starts, and the callers
that are ready by then join its batch. A backend's housekeeping (SQLite indexing
messages for search and copying its WAL into the file) runs between batches, on the
thread, wherever the batches run.

One failing operation does not fail the others. An operation makes every check before
its first write, so one that fails a check before writing (bad input, a missing session,
a version conflict) changed nothing: it gets its error and the batch goes on. If one
fails otherwise (after it has written, or with a storage error), the whole transaction
is rolled back and every operation of the batch runs again in a transaction of its own.
If the commit itself fails, every operation of the batch gets that error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from chatkeep.errors import ChatkeepError, StoreUnavailableError
from chatkeep.stores import calls, ops
from chatkeep.stores.backend import Backend
from chatkeep.stores.runner import Placement, Runner, waiting

MAX_BATCH = 256
"""The most operations one transaction carries; more wait for the next."""

LONG = frozenset((ops.apply_changes, ops.bulk_update, ops.cleanup, ops.optimize, ops.search))
"""Operations whose work grows with the data (many sessions, or a whole file): they
always run on the store's thread, so that the event loop never waits for them."""


@dataclass(slots=True, eq=False)
class Job:
    """One operation waiting for, or carried by, a batch."""

    op: ops.Operation
    args: tuple[object, ...]
    write: bool
    long: bool
    """Whether ``op`` is one of :data:`LONG`."""
    future: asyncio.Future[Any] | None = None
    """How the outcome reaches a caller that waits for another caller's batch; ``None``
    for the caller that runs the batch itself, which reads the outcome from the job."""
    done: bool = False
    value: Any = None
    error: BaseException | None = field(default=None, repr=False)

    def succeed(self, value: Any) -> None:
        self.done, self.value, self.error = True, value, None

    def fail(self, error: BaseException) -> None:
        self.done, self.value, self.error = True, None, error

    def wanted(self) -> bool:
        """Whether its caller still waits (one that has left cancelled its future)."""
        return self.future is None or not self.future.done()

    def outcome(self) -> Any:
        """The operation's result, or its error raised."""
        if self.error is not None:
            raise self.error
        return self.value


def _alone(backend: Backend, ctx: ops.Context, job: Job) -> None:
    backend.begin(job.write)
    try:
        value = calls.run(backend, job.op(ctx, *job.args))
        backend.commit()
    except Exception as exc:
        backend.rollback()
        job.fail(exc)
    except BaseException:
        backend.rollback()
        raise
    else:
        job.succeed(value)


class _Poisoned(Exception):
    """An operation failed after writing: the shared transaction must be undone."""


def _changed_nothing(error: Exception, made: list[str]) -> bool:
    """Whether an operation that raised ``error`` after the calls ``made`` left the
    transaction as it found it: it only read, and failed a check (a storage error may
    have undone the transaction, and an unexpected one proves nothing)."""
    checked = isinstance(error, ChatkeepError) and not isinstance(error, StoreUnavailableError)
    return checked and calls.READS.issuperset(made)


def _together(backend: Backend, ctx: ops.Context, jobs: list[Job]) -> bool:
    """Run ``jobs`` in one transaction; False if it had to be rolled back (nothing of it
    was kept and no outcome recorded)."""
    backend.begin(any(job.write for job in jobs))
    try:
        for job in jobs:
            made: list[str] = []
            try:
                value = calls.run(backend, job.op(ctx, *job.args), made)
            except Exception as exc:
                if not _changed_nothing(exc, made):
                    raise _Poisoned from exc
                job.error = exc
            else:
                job.value = value
    except _Poisoned:
        backend.rollback()
        for job in jobs:
            job.value = job.error = None
        return False
    except BaseException:
        backend.rollback()
        raise
    try:
        backend.commit()
    except Exception as exc:
        backend.rollback()
        for job in jobs:
            if job.error is None:
                job.value, job.error = None, exc
    except BaseException:
        backend.rollback()
        raise
    for job in jobs:
        job.done = True
    return True


def run_batch(backend: Backend, ctx: ops.Context, jobs: list[Job]) -> None:
    """Carry ``jobs`` out (on the backend's thread), recording each one's outcome."""
    if len(jobs) > 1 and _together(backend, ctx, jobs):
        return
    for job in jobs:
        _alone(backend, ctx, job)


class GroupCommit:
    """Runs operations on a backend, batching those that arrive during a commit."""

    def __init__(
        self,
        backend: Backend,
        runner: Runner,
        lock: asyncio.Lock,
        context: Callable[[], ops.Context],
        placement: Placement,
    ) -> None:
        self._backend = backend
        self._runner = runner
        self.placement = placement
        self._lock = lock
        self._context = context
        self._pending: list[Job] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, op: ops.Operation, args: tuple[object, ...], write: bool) -> Any:
        """Run ``op(ctx, *args)`` in a batch; its result once the batch has committed."""
        job = Job(op, args, write, op in LONG)
        self._pending.append(job)
        if self._draining:
            return await self._wait(job, asyncio.get_running_loop().create_future())
        self._draining = True
        try:
            if not job.long and self.placement.on_loop():
                # Nothing else runs while a batch runs on the loop: let the callers that
                # are ready queue up first, so that they share this commit.
                await asyncio.sleep(0)
            # Nothing was pending (or being drained): this job is the first of the batch.
            while not job.done:
                await self._next_batch()
        except asyncio.CancelledError:
            if job in self._pending:
                self._pending.remove(job)
            raise
        finally:
            self._draining = False
            if self._pending:
                self._start_drainer()
        return job.outcome()

    async def _wait(self, job: Job, future: asyncio.Future[Any]) -> Any:
        job.future = future
        try:
            return await future
        except asyncio.CancelledError:
            if job in self._pending:
                self._pending.remove(job)
            raise

    def _start_drainer(self) -> None:
        self._draining = True
        self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while True:
                # Let the callers answered by the last batch run first: those that call
                # again at once then join the next batch instead of starting one alone.
                await asyncio.sleep(0)
                if not self._pending:
                    break
                await self._next_batch()
        finally:
            self._draining = False
            self._drainer = None
            if self._pending:
                self._start_drainer()

    async def _next_batch(self) -> None:
        async with self._lock:
            jobs = [job for job in self._pending[:MAX_BATCH] if job.wanted()]
            del self._pending[:MAX_BATCH]
            if not jobs:
                return
            ctx = self._context()
            long = any(job.long for job in jobs)
            try:
                if not long and self.placement.on_loop():
                    waited = waiting(run_batch, self._backend, ctx, jobs)
                else:
                    batch = partial(waiting, run_batch, self._backend, ctx, jobs)
                    waited = await self._runner.run(batch)
                if not long:  # how long those take says nothing of the disk's speed
                    self.placement.took(waited)
            finally:
                _answer(jobs)
            if self._backend.housekeeping_due():
                # Its callers have their answers; the next batch waits for the lock.
                await self._runner.run(self._backend.housekeeping)


def _answer(jobs: list[Job]) -> None:
    """Hand each job's outcome to the caller waiting for it (a job left without one was
    interrupted)."""
    for job in jobs:
        future = job.future
        if future is None or future.done():
            continue
        if not job.done:
            future.cancel()
        elif job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.value)
