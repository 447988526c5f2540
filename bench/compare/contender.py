"""What a contender is: one library (or a raw driver) storing the workload's messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["raw", "chatkeep", "peer"]


class Contender(Protocol):
    """One way of keeping chat messages, opened in a backend's private place."""

    async def prepare(self, keys: Sequence[str]) -> None:
        """Make (or look up) every session the workload will write; not timed."""

    async def append(self, key: str, text: str) -> None:
        """Store one user message at the end of session ``key``."""

    async def read(self, key: str, last: int) -> list[str]:
        """The texts of the ``last`` newest messages of ``key``, oldest first."""

    async def stored(self, key: str) -> list[str]:
        """Every stored text of ``key``, oldest first."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """A contender as listed in a backend: how to open it in that backend's place."""

    name: str
    kind: Kind
    package: str
    """The distribution whose version is reported (and whose absence skips it)."""
    open: Callable[[Any], Awaitable[Contender]]
    note: str = ""
    """How this contender does the work, when it differs from the others."""


@dataclass(frozen=True, slots=True)
class Backend:
    """A storage engine and the contenders that run on it."""

    name: str
    title: str
    place: Callable[[], AbstractAsyncContextManager[Any]]
    """A fresh private place (a directory, a schema, a key prefix), removed at exit."""
    entries: tuple[Entry, ...]
    version: Callable[[], Awaitable[str]]
