"""asyncpg's errors as chatkeep's: a lost race is a conflict, anything else from the
driver or the network makes the store unavailable, and so does a call that gets no
reply within the store's ``command_timeout`` (its connection is then closed at once)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import wraps
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import asyncpg  # type: ignore[import-untyped]

from chatkeep.errors import ChatkeepError, StoreUnavailableError, TransactionConflictError
from chatkeep.stores.deadlines import Deadlines

DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
CONFLICTS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


def translated(exc: BaseException, where: str) -> ChatkeepError:
    """The chatkeep error for a driver error met at ``where``."""
    if isinstance(exc, CONFLICTS):
        return TransactionConflictError(f"PostgreSQL {where}: {exc}")
    return StoreUnavailableError(f"PostgreSQL {where}: {exc}")


class Statements(Protocol):
    """A transaction whose methods send statements."""

    where: str
    """The URL (password masked) that errors name."""
    deadlines: Deadlines
    """Bounds each method's statements."""

    async def before_read(self) -> None:
        """Called before a method that reads sees the data."""

    def abandon(self) -> None:
        """Close the connection at once: a statement on it got no reply in time."""


T = TypeVar("T", bound=Statements)
P = ParamSpec("P")
R = TypeVar("R")
Method = Callable[Concatenate[T, P], Coroutine[Any, Any, R]]


def _driver_call(reads: bool) -> Callable[[Method[T, P, R]], Method[T, P, R]]:
    def decorate(method: Method[T, P, R]) -> Method[T, P, R]:
        @wraps(method)
        async def run(self: T, /, *args: P.args, **kwargs: P.kwargs) -> R:
            deadlines = self.deadlines
            call = deadlines.begin()
            try:
                try:
                    if reads:
                        await self.before_read()
                    return await method(self, *args, **kwargs)
                finally:
                    late = deadlines.end(call)
            except BaseException as exc:
                error = _failure(exc, late, self.where, deadlines, self.abandon)
                if error is None:
                    raise
                raise error from exc

        return run

    return decorate


def _failure(
    exc: BaseException,
    late: bool,
    where: str,
    deadlines: Deadlines | None,
    abandon: Callable[[], object] | None,
) -> Exception | None:
    """The chatkeep error that ``exc``, raised by a call to the server, becomes (None:
    ``exc`` goes on as it is). A call that got no reply in time (``late``) has its
    connection abandoned."""
    if isinstance(exc, ChatkeepError):
        return None
    if late and deadlines is not None:
        if abandon is not None:
            abandon()
        return StoreUnavailableError(f"PostgreSQL {where}: no reply within {deadlines.seconds:g} s")
    if isinstance(exc, DRIVER_ERRORS):
        return translated(exc, where)
    return None


reading = _driver_call(reads=True)
"""Driver errors of the method become chatkeep errors; ``before_read`` runs first."""
writing = _driver_call(reads=False)
"""Driver errors of the method become chatkeep errors."""


@asynccontextmanager
async def driver_errors(
    where: str, deadlines: Deadlines | None = None, conn: Any = None
) -> AsyncIterator[None]:
    """Driver errors raised in the block become chatkeep errors naming ``where``; with
    ``deadlines``, so does a block that gets no reply in time (``conn`` is then closed)."""
    call = None if deadlines is None else deadlines.begin()
    late = False
    try:
        try:
            yield
        finally:
            if deadlines is not None and call is not None:
                late = deadlines.end(call)
    except BaseException as exc:
        error = _failure(exc, late, where, deadlines, None if conn is None else conn.terminate)
        if error is None:
            raise
        raise error from exc
