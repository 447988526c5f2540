"""asyncpg's errors as chatkeep's: a lost race is a conflict, anything else from the
driver or the network makes the store unavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import wraps
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import asyncpg  # type: ignore[import-untyped]

from chatkeep.errors import ChatkeepError, StoreUnavailableError, TransactionConflictError

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

    async def before_read(self) -> None:
        """Called before a method that reads sees the data."""


T = TypeVar("T", bound=Statements)
P = ParamSpec("P")
R = TypeVar("R")
Method = Callable[Concatenate[T, P], Coroutine[Any, Any, R]]


def _driver_call(reads: bool) -> Callable[[Method[T, P, R]], Method[T, P, R]]:
    def decorate(method: Method[T, P, R]) -> Method[T, P, R]:
        @wraps(method)
        async def run(self: T, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                if reads:
                    await self.before_read()
                return await method(self, *args, **kwargs)
            except ChatkeepError:
                raise
            except DRIVER_ERRORS as exc:
                raise translated(exc, self.where) from exc

        return run

    return decorate


reading = _driver_call(reads=True)
"""Driver errors of the method become chatkeep errors; ``before_read`` runs first."""
writing = _driver_call(reads=False)
"""Driver errors of the method become chatkeep errors."""


@asynccontextmanager
async def driver_errors(where: str) -> AsyncIterator[None]:
    """Driver errors raised in the block become chatkeep errors naming ``where``."""
    try:
        yield
    except ChatkeepError:
        raise
    except DRIVER_ERRORS as exc:
        raise translated(exc, where) from exc
