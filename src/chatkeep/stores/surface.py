"""The async surface of a store, written once over ``_call`` (run one operation).

:class:`Operations` is what a store and a transaction both offer; :class:`StoreSurface`
adds what only a store does (export, import, stats, health). Engines differ in how they
run an operation: :class:`~chatkeep.stores.local.LocalStore` on an in-process backend,
:class:`~chatkeep.stores.remote.RemoteStore` on a networked one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self, cast

from chatkeep.core import rules
from chatkeep.core.clock import Clock, SystemClock
from chatkeep.core.codec import to_micros
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
from chatkeep.core.query import Cursor, SearchHit, SessionFilter, SessionPage, SessionSort
from chatkeep.core.validation import Limits
from chatkeep.errors import (
    ChatkeepError,
    InvalidInputError,
    StoreClosedError,
    StoreUnavailableError,
)
from chatkeep.stores import ops, transfer
from chatkeep.stores.base import (
    Appended,
    HealthReport,
    ImportReport,
    MergeStrategy,
    OptimizeReport,
    StoreStats,
)

_EXPORT_PAGE = 100


class Operations:
    """The async surface shared by a store and its transactions; ``_call`` runs an op."""

    async def _call(self, op: ops.Operation, *args: object, write: bool) -> Any:
        """Run ``op(context, *args)`` in a transaction (``write``: one that changes data)."""
        raise NotImplementedError

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
        fields = {
            "id": id,
            "owner": owner,
            "device_id": device_id,
            "persistence": persistence,
            "ttl": ttl,
            "max_messages": max_messages,
            "metadata": metadata,
            "tags": tags,
        }
        return cast(Session, await self._call(ops.create, fields, write=True))

    async def get_session(self, session_id: str) -> Session:
        return cast(Session, await self._call(ops.get, session_id, write=False))

    async def update_session(
        self,
        session_id: str,
        changes: SessionUpdate | Mapping[str, object],
        expected_version: int | None = None,
    ) -> Session:
        result = await self._call(ops.update, session_id, changes, expected_version, write=True)
        return cast(Session, result)

    async def delete_session(self, session_id: str) -> bool:
        return cast(bool, await self._call(ops.delete, session_id, write=True))

    async def list_sessions(
        self,
        filter: SessionFilter | None = None,
        sort: SessionSort | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        result = await self._call(ops.list_sessions, filter, sort, limit, cursor, write=False)
        return cast(SessionPage, result)

    async def search_sessions(
        self,
        query: str,
        *,
        owner: str | None = None,
        limit: int = 20,
        include_expired: bool = False,
    ) -> list[SearchHit]:
        result = await self._call(ops.search, query, owner, limit, include_expired, write=False)
        return cast(list[SearchHit], result)

    async def append(
        self, session_id: str, messages: Sequence[NewMessage] | NewMessage
    ) -> Appended:
        return cast(Appended, await self._call(ops.append, session_id, messages, write=True))

    async def append_messages(
        self, session_id: str, messages: Sequence[NewMessage] | NewMessage
    ) -> list[Message]:
        # ``append``'s body rather than a call to it: one coroutine less on a hot path
        appended = await self._call(ops.append, session_id, messages, write=True)
        return cast(Appended, appended).messages

    async def get_messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        result = await self._call(
            ops.read, session_id, last, after_seq, before_seq, limit, write=False
        )
        return cast(list[Message], result)

    async def pop_message(self, session_id: str) -> Message | None:
        return cast("Message | None", await self._call(ops.pop, session_id, write=True))

    async def clear_messages(self, session_id: str) -> int:
        return cast(int, await self._call(ops.clear, session_id, write=True))

    async def touch(self, session_id: str) -> Session:
        return cast(Session, await self._call(ops.touch, session_id, write=True))

    async def set_expiration(self, session_id: str, at: datetime | None) -> Session:
        return cast(Session, await self._call(ops.set_expiration, session_id, at, write=True))

    async def extend_expiration(self, session_id: str, by: timedelta) -> Session:
        return cast(Session, await self._call(ops.extend_expiration, session_id, by, write=True))

    async def get_session_lock(self, session_id: str) -> SessionLock | None:
        return cast("SessionLock | None", await self._call(ops.get_lock, session_id, write=False))

    async def set_session_lock(
        self,
        session_id: str,
        agent: str,
        ttl: timedelta | float | None = rules.DEFAULT_LOCK_TTL,
    ) -> SessionLock:
        return cast(SessionLock, await self._call(ops.set_lock, session_id, agent, ttl, write=True))

    async def clear_session_lock(self, session_id: str) -> bool:
        return cast(bool, await self._call(ops.clear_lock, session_id, write=True))

    async def bulk_update(
        self, filter: SessionFilter, changes: SessionUpdate | Mapping[str, object]
    ) -> int:
        return cast(int, await self._call(ops.bulk_update, filter, changes, write=True))

    async def expire_sessions(self) -> list[str]:
        return cast(list[str], await self._call(ops.expired_ids, write=False))

    async def cleanup_expired_sessions(
        self, older_than: timedelta = timedelta(0), *, expired_before: datetime | None = None
    ) -> int:
        return cast(int, await self._call(ops.cleanup, older_than, expired_before, write=True))


class StoreSurface(Operations):
    """The parts of a store that every engine shares."""

    backend: str

    def __init__(
        self,
        backend: str,
        *,
        clock: Clock | None = None,
        defaults: rules.SessionDefaults | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.backend = backend
        self._clock = clock or SystemClock()
        self._defaults = defaults or rules.SessionDefaults()
        self._limits = limits or Limits()
        self._closed = False

    def _context(self) -> ops.Context:
        return ops.Context(self._clock.now(), self._limits, self._defaults)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError()

    def transaction(self) -> AbstractAsyncContextManager[Operations]:
        raise NotImplementedError

    async def optimize(self) -> OptimizeReport:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def export_sessions(self, filter: SessionFilter | None = None) -> AsyncIterator[str]:
        self._check_open()
        yield transfer.header_line(to_micros(self._clock.now()))
        mark: Cursor | None = None
        order = SessionSort.parse("created_at")
        while True:
            page = await self._call(ops.export_page, filter, mark, _EXPORT_PAGE, write=False)
            for session, messages in page:
                yield transfer.session_line(session, messages)
            if len(page) < _EXPORT_PAGE:
                return
            last: Session = page[-1][0]
            mark = Cursor(order, last.created_at, last.id)

    async def import_sessions(
        self,
        lines: Iterable[str] | AsyncIterable[str],
        *,
        strategy: MergeStrategy | str = MergeStrategy.SKIP_EXISTING,
        dry_run: bool = False,
    ) -> ImportReport:
        self._check_open()
        try:
            chosen = MergeStrategy(strategy)
        except ValueError:
            choices = ", ".join(s.value for s in MergeStrategy)
            raise InvalidInputError("strategy", f"{strategy!r} is not one of: {choices}") from None
        report = ImportReport(dry_run=bool(dry_run))
        dry_restored: dict[str, Session] = {}
        async for number, line in transfer.numbered(lines):
            try:
                parsed = transfer.parse_line(line, self._limits)
                if parsed is None:
                    continue
                session = parsed[0]
                done = await self._call(
                    ops.import_one,
                    *parsed,
                    chosen.value,
                    bool(dry_run),
                    dry_restored.get(session.id),
                    write=not dry_run,
                )
                if done and dry_run:
                    dry_restored[session.id] = session
            except (ChatkeepError, ValueError) as exc:
                if isinstance(exc, StoreUnavailableError | StoreClosedError):
                    raise
                report.failed += 1
                report.errors.append(f"line {number}: {exc}")
                continue
            if done:
                report.restored += 1
            else:
                report.skipped += 1
        return report

    async def stats(self) -> StoreStats:
        counts = await self._call(ops.counts, write=False)
        return StoreStats(
            backend=self.backend,
            total_sessions=counts.total_sessions,
            active_sessions=counts.total_sessions - counts.expired_sessions,
            expired_sessions=counts.expired_sessions,
            total_messages=counts.total_messages,
            sessions_by_owner=dict(counts.sessions_by_owner),
        )

    async def health(self) -> HealthReport:
        started = time.perf_counter()
        try:
            issues, details = await self._call(ops.check, write=False)
        except (StoreUnavailableError, StoreClosedError) as exc:
            issues, details = [str(exc)], {}
        latency = (time.perf_counter() - started) * 1000
        return HealthReport(self.backend, not issues, latency, list(issues), dict(details))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
