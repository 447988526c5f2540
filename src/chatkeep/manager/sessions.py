"""Session and message operations, each routed to the store that holds the session.

Every change is stored before its event is published; a failing call publishes nothing.
``touch`` and reads publish nothing. ``bulk_update`` publishes no per-session events.

Client-mode sessions keep their history on the client: the server keeps only the
session record. Appending to one stores nothing: it records activity (like ``touch``)
and returns no messages; ``clear_messages`` likewise records activity and returns 0.
Reading its history (``get_messages``, ``pop_message``) raises ``InvalidInputError``,
since the server has no history to give.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypedDict, TypeVar, Unpack

from chatkeep.core.ids import check_id
from chatkeep.core.models import (
    JSON,
    UNSET,
    Message,
    NewMessage,
    Persistence,
    Session,
    SessionLock,
    SessionUpdate,
)
from chatkeep.core.query import SearchHit, SessionFilter, SessionPage, SessionSort
from chatkeep.core.rules import DEFAULT_LOCK_TTL
from chatkeep.errors import InvalidInputError, SessionNotFoundError
from chatkeep.manager.cache import SessionCache
from chatkeep.manager.events import Event, EventBus, EventType
from chatkeep.manager.listing import list_across, search_across
from chatkeep.manager.routing import Route, Router
from chatkeep.manager.sweeper import Sweeper
from chatkeep.stores.base import Appended, Store

T = TypeVar("T")

CLIENT_HISTORY = "client-mode sessions keep their history on the client, not on the server"


class SessionOptions(TypedDict, total=False):
    """What a new session may be given (see ``Store.create_session``).

    ``persistence`` left out or ``None``: the manager's default mode at the time.
    """

    id: str | None
    owner: str | None
    device_id: str | None
    persistence: Persistence | str | None
    ttl: timedelta | float | None
    max_messages: int
    metadata: Mapping[str, JSON] | None
    tags: Iterable[str] | None


class SessionOperations:
    """The per-session API of :class:`~chatkeep.manager.SessionManager`, which adds the
    configuration, the background jobs and backups on top."""

    def __init__(
        self, router: Router, cache: SessionCache, events: EventBus, sweeper: Sweeper
    ) -> None:
        self._router = router
        self._cache = cache
        self.events = events
        self._sweeper = sweeper
        self._naming = asyncio.Lock()
        """Held while a caller-chosen id is checked in every store and then created."""

    def _publish(
        self,
        kind: EventType,
        session_id: str,
        session: Session | None = None,
        messages: Sequence[Message] = (),
    ) -> None:
        self.events.publish(Event(kind, session_id, session, tuple(messages)))

    async def _on(
        self, session_id: str, op: Callable[[Store], Awaitable[T]], *, history: bool = False
    ) -> tuple[Route, T]:
        """Run ``op`` on the store holding the session (``history``: ``op`` needs the
        messages, so a client-mode session is refused)."""
        route = await self._router.locate(check_id(session_id, "session_id"))
        if history and _mode(route) is Persistence.CLIENT:
            raise InvalidInputError("persistence", CLIENT_HISTORY)
        return route, await self._at(route, session_id, op)

    async def _at(self, route: Route, session_id: str, op: Callable[[Store], Awaitable[T]]) -> T:
        """Run ``op`` on the store of ``route``; a session found gone is forgotten."""
        try:
            return await op(route.store)
        except SessionNotFoundError:
            self._cache.pop(session_id)
            raise

    async def _session_op(
        self, session_id: str, op: Callable[[Store], Awaitable[Session]], kind: EventType | None
    ) -> Session:
        route, session = await self._on(session_id, op)
        self._router.remember(route.mode, session)
        if kind is not None:
            self._publish(kind, session_id, session)
        return session

    # -- sessions -----------------------------------------------------------
    async def create_session(self, **options: Unpack[SessionOptions]) -> Session:
        """Create a session in the store of its mode; ``SessionExistsError`` if any store
        holds its id; ``ConfigurationError`` if its mode has no store."""
        mode, store = self._router.store_for(options.get("persistence"))
        session_id = options.get("id")
        if session_id is None:
            session = await _create(store, mode, options)
        else:
            async with self._naming:
                await self._router.ensure_free(check_id(session_id, "id"), store)
                session = await _create(store, mode, options)
        self._router.remember(mode, session)
        self._sweeper.forget(session.id)
        self._publish(EventType.SESSION_CREATED, session.id, session)
        return session

    async def get_session(self, session_id: str) -> Session:
        return await self._session_op(session_id, lambda s: s.get_session(session_id), None)

    async def update_session(
        self,
        session_id: str,
        changes: SessionUpdate | Mapping[str, object],
        expected_version: int | None = None,
    ) -> Session:
        """Change the session; ``persistence`` cannot change (``ImmutableSettingError``)."""
        return await self._session_op(
            session_id,
            lambda s: s.update_session(session_id, changes, expected_version),
            EventType.SESSION_UPDATED,
        )

    async def delete_session(self, session_id: str) -> bool:
        """Delete the session and its messages; False if no store holds it."""
        try:
            _route, deleted = await self._on(session_id, lambda s: s.delete_session(session_id))
        except SessionNotFoundError:
            return False
        entry = self._cache.pop(session_id)
        self._sweeper.forget(session_id)
        if deleted:
            self._publish(
                EventType.SESSION_DELETED, session_id, None if entry is None else entry.session
            )
        return deleted

    async def touch(self, session_id: str) -> Session:
        return await self._session_op(session_id, lambda s: s.touch(session_id), None)

    async def set_expiration(self, session_id: str, at: datetime | None) -> Session:
        self._sweeper.forget(session_id)
        return await self._session_op(
            session_id, lambda s: s.set_expiration(session_id, at), EventType.SESSION_UPDATED
        )

    async def extend_expiration(self, session_id: str, by: timedelta) -> Session:
        self._sweeper.forget(session_id)
        return await self._session_op(
            session_id, lambda s: s.extend_expiration(session_id, by), EventType.SESSION_UPDATED
        )

    async def list_sessions(
        self,
        filter: SessionFilter | None = None,
        sort: SessionSort | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        """One page of the sessions of every mode, merged in one order."""
        stores = [store for _mode, store in self._router.distinct]
        return await list_across(stores, filter, sort, limit, cursor)

    async def search_sessions(
        self,
        query: str,
        *,
        owner: str | None = None,
        limit: int = 20,
        include_expired: bool = False,
    ) -> list[SearchHit]:
        stores = [store for _mode, store in self._router.distinct]
        return await search_across(
            stores, query, owner=owner, limit=limit, include_expired=include_expired
        )

    async def bulk_update(
        self, filter: SessionFilter, changes: SessionUpdate | Mapping[str, object]
    ) -> int:
        """Apply ``changes`` in every store (all or none per store); returns the count."""
        total = 0
        try:
            for _mode, store in self._router.distinct:
                total += await store.bulk_update(filter, changes)
        finally:
            self._cache.clear()
        return total

    # -- messages -----------------------------------------------------------
    async def append(
        self, session_id: str, messages: Sequence[NewMessage] | NewMessage
    ) -> Appended:
        """Store messages and tell which are new; publishes ``message:appended`` for those."""
        route = await self._router.locate(check_id(session_id, "session_id"))

        async def run(store: Store) -> Appended:
            # The mode is fixed at creation: the record the route holds tells it, and
            # only a route without one (the session was found expired) reads it.
            known = route.session
            session = await store.get_session(session_id) if known is None else known
            if session.persistence is Persistence.CLIENT:
                return Appended(await store.touch(session_id), [], [])
            return await store.append(session_id, messages)

        result = await self._at(route, session_id, run)
        self._router.remember(route.mode, result.session)
        if result.added:
            self._publish(EventType.MESSAGE_APPENDED, session_id, result.session, result.added)
        return result

    async def append_messages(
        self, session_id: str, messages: Sequence[NewMessage] | NewMessage
    ) -> list[Message]:
        """Like ``Store.append_messages``; a client-mode session stores none (returns [])."""
        return (await self.append(session_id, messages)).messages

    async def get_messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        async def run(store: Store) -> list[Message]:
            return await store.get_messages(
                session_id, last=last, after_seq=after_seq, before_seq=before_seq, limit=limit
            )

        return (await self._on(session_id, run, history=True))[1]

    async def pop_message(self, session_id: str) -> Message | None:
        _route, message = await self._on(
            session_id, lambda s: s.pop_message(session_id), history=True
        )
        if message is not None:
            self._publish(EventType.SESSION_UPDATED, session_id)
        return message

    async def clear_messages(self, session_id: str) -> int:
        route = await self._router.locate(check_id(session_id, "session_id"))
        if _mode(route) is Persistence.CLIENT:
            await self.touch(session_id)
            return 0
        _route, removed = await self._on(session_id, lambda s: s.clear_messages(session_id))
        if removed:
            self._publish(EventType.SESSION_UPDATED, session_id)
        return removed

    # -- the device lock ----------------------------------------------------
    async def get_session_lock(self, session_id: str) -> SessionLock | None:
        return (await self._on(session_id, lambda s: s.get_session_lock(session_id)))[1]

    async def set_session_lock(
        self, session_id: str, agent: str, ttl: timedelta | float | None = DEFAULT_LOCK_TTL
    ) -> SessionLock:
        _route, lock = await self._on(
            session_id, lambda s: s.set_session_lock(session_id, agent, ttl)
        )
        self._publish(EventType.SESSION_UPDATED, session_id)
        return lock

    async def clear_session_lock(self, session_id: str) -> bool:
        _route, cleared = await self._on(session_id, lambda s: s.clear_session_lock(session_id))
        if cleared:
            self._publish(EventType.SESSION_UPDATED, session_id)
        return cleared


async def _create(store: Store, mode: Persistence, options: SessionOptions) -> Session:
    return await store.create_session(
        id=options.get("id"),
        owner=options.get("owner"),
        device_id=options.get("device_id"),
        persistence=mode,
        ttl=options.get("ttl", UNSET),
        max_messages=options.get("max_messages", UNSET),
        metadata=options.get("metadata"),
        tags=options.get("tags"),
    )


def _mode(route: Route) -> Persistence:
    """The session's mode (the route's when the record was not read)."""
    return route.mode if route.session is None else route.session.persistence
