"""The ``Store`` protocol every backend implements, and the reports its methods return."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from chatkeep.core.models import (
    JSON,
    UNSET,
    Message,
    NewMessage,
    Persistence,
    Session,
    SessionLock,
    SessionUpdate,
    Unset,
)
from chatkeep.core.query import SearchHit, SessionFilter, SessionPage, SessionSort
from chatkeep.core.rules import DEFAULT_LOCK_TTL


class MergeStrategy(enum.StrEnum):
    """What an import does with a session whose id the store holds already."""

    SKIP_EXISTING = "skip_existing"
    OVERWRITE = "overwrite"
    UPDATE_NEWER = "update_newer"
    """Replace the stored session only if the imported one was updated later."""


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of an append: the session after it, every message as stored (in the
    order given), and which of them are new (the others were stored already)."""

    session: Session
    messages: list[Message]
    added: list[Message]


@dataclass(slots=True)
class ImportReport:
    restored: int = 0
    skipped: int = 0
    failed: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)
    """One line per failed record: ``"line 7: <reason>"``."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    backend: str
    total_sessions: int
    active_sessions: int
    expired_sessions: int
    total_messages: int
    sessions_by_owner: Mapping[str, int] = field(default_factory=dict)
    details: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthReport:
    backend: str
    healthy: bool
    latency_ms: float
    issues: list[str] = field(default_factory=list)
    details: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OptimizeReport:
    backend: str
    operations: list[str]


class Operations(Protocol):
    """What can be done to sessions and messages: on a store, or inside a transaction."""

    async def create_session(
        self,
        *,
        id: str | None = None,
        owner: str | None = None,
        device_id: str | None = None,
        persistence: Persistence | str | Unset = UNSET,
        ttl: timedelta | float | Unset | None = UNSET,
        max_messages: int | Unset = UNSET,
        metadata: Mapping[str, JSON] | None = None,
        tags: Iterable[str] | None = None,
    ) -> Session:
        """Create a session; ``SessionExistsError`` if ``id`` is taken."""
        ...

    async def get_session(self, session_id: str) -> Session:
        """The session; ``SessionNotFoundError`` or ``SessionExpiredError`` otherwise."""
        ...

    async def update_session(
        self,
        session_id: str,
        changes: SessionUpdate | Mapping[str, object],
        expected_version: int | None = None,
    ) -> Session:
        """Apply changes; ``VersionConflictError`` if ``expected_version`` is stale."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """Delete the session and its messages; False if there was none."""
        ...

    async def list_sessions(
        self,
        filter: SessionFilter | None = None,
        sort: SessionSort | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        """One page of matching sessions; pass ``page.next_cursor`` to get the next."""
        ...

    async def search_sessions(
        self,
        query: str,
        *,
        owner: str | None = None,
        limit: int = 20,
        include_expired: bool = False,
    ) -> list[SearchHit]:
        """Sessions with a message (or metadata) holding every word of ``query``,
        most recently active first."""
        ...

    async def append_messages(
        self, session_id: str, messages: Sequence[NewMessage] | NewMessage
    ) -> list[Message]:
        """Store messages; one whose ``id`` is stored already is returned as stored."""
        ...

    async def append(
        self, session_id: str, messages: Sequence[NewMessage] | NewMessage
    ) -> Appended:
        """:meth:`append_messages`, also telling the session after it and which messages
        are new."""
        ...

    async def get_messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """Messages in ``seq`` order: the ``last`` N, or the first ``limit`` after/before a seq."""
        ...

    async def pop_message(self, session_id: str) -> Message | None:
        """Remove and return the newest message (its seq is not given again)."""
        ...

    async def clear_messages(self, session_id: str) -> int:
        """Remove every message; returns how many were removed."""
        ...

    async def touch(self, session_id: str) -> Session:
        """Record activity: pushes ``expires_at`` to now + ttl."""
        ...

    async def set_expiration(self, session_id: str, at: datetime | None) -> Session:
        """Set ``expires_at`` (``None``: never); works on expired sessions too."""
        ...

    async def extend_expiration(self, session_id: str, by: timedelta) -> Session:
        """Move ``expires_at`` later by ``by``; works on expired sessions too."""
        ...

    async def get_session_lock(self, session_id: str) -> SessionLock | None: ...

    async def set_session_lock(
        self,
        session_id: str,
        agent: str,
        ttl: timedelta | float | None = DEFAULT_LOCK_TTL,
    ) -> SessionLock: ...

    async def clear_session_lock(self, session_id: str) -> bool: ...

    async def bulk_update(
        self, filter: SessionFilter, changes: SessionUpdate | Mapping[str, object]
    ) -> int:
        """Apply the same changes to every matching session, all or none; returns the count."""
        ...

    async def expire_sessions(self) -> list[str]:
        """Ids of the sessions that have expired and are not yet cleaned up."""
        ...

    async def cleanup_expired_sessions(
        self, older_than: timedelta = timedelta(0), *, expired_before: datetime | None = None
    ) -> int:
        """Delete sessions expired for at least ``older_than``; returns how many.

        With ``expired_before``, only sessions that had expired by then (and for at least
        ``older_than`` before it) are deleted: whatever expired later is kept, even if the
        call runs after the clock has moved on."""
        ...


@runtime_checkable
class Store(Operations, Protocol):
    """An async session store. Open one with :func:`chatkeep.open_store`."""

    backend: str

    def transaction(self) -> AbstractAsyncContextManager[Operations]:
        """``async with store.transaction() as tx``: all of it commits, or none."""
        ...

    def export_sessions(self, filter: SessionFilter | None = None) -> AsyncIterator[str]:
        """JSONL lines (each ending in a newline): a header, then one session per line."""
        ...

    async def import_sessions(
        self,
        lines: Iterable[str] | AsyncIterable[str],
        *,
        strategy: MergeStrategy | str = MergeStrategy.SKIP_EXISTING,
        dry_run: bool = False,
    ) -> ImportReport: ...

    async def optimize(self) -> OptimizeReport: ...

    async def stats(self) -> StoreStats: ...

    async def health(self) -> HealthReport: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
