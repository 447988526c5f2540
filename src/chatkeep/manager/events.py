"""Session events: what changed, told to callbacks and to async listeners.

Publishing never waits for a consumer. Callbacks run inline, in subscription order, and
one that raises is logged and skipped. Each listener has a bounded queue: when a slow
listener's queue is full the oldest event is dropped and counted in ``dropped``.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from chatkeep.core.models import Message, Session
from chatkeep.errors import InvalidInputError

logger = logging.getLogger("chatkeep.manager.events")


class EventType(enum.StrEnum):
    SESSION_CREATED = "session:created"
    SESSION_UPDATED = "session:updated"
    SESSION_DELETED = "session:deleted"
    SESSION_EXPIRED = "session:expired"
    MESSAGE_APPENDED = "message:appended"


@dataclass(frozen=True, slots=True)
class Event:
    """One change. ``session`` is the record after the change when it is known (for
    ``session:deleted`` and ``session:expired``: the last record this manager saw, if any);
    ``messages`` are the newly stored messages of a ``message:appended``."""

    type: EventType
    session_id: str
    session: Session | None = None
    messages: tuple[Message, ...] = ()


Callback = Callable[[Event], None]


class Listener:
    """An async iterator over the events published after it was created.

    ``async with bus.listen() as events: async for event in events: ...``; leaving the
    block (or :meth:`close`) unregisters it. Iteration ends once the listener or its bus
    is closed and the queued events have been read.
    """

    def __init__(self, bus: EventBus, maxsize: int, types: frozenset[EventType] | None) -> None:
        self._bus = bus
        self._queue: deque[Event] = deque(maxlen=maxsize)
        self._types = types
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0
        """How many events were dropped because this listener fell behind."""

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, event: Event) -> None:
        if self._closed or (self._types is not None and event.type not in self._types):
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(event)
        self._ready.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus.remove_listener(self)
            self._ready.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventBus:
    """Where a manager publishes its events."""

    def __init__(self, listener_queue_size: int = 1000) -> None:
        self._callbacks: list[Callback] = []
        self._listeners: set[Listener] = set()
        self._queue_size = listener_queue_size
        self._closed = False
        self.callback_errors = 0
        """How many times a callback raised (each one is logged)."""

    def subscribe(self, callback: Callback) -> Callback:
        """Call ``callback(event)`` for every event from now on; returns ``callback``.

        Callbacks must be plain functions that return quickly; an ``async def``
        consumer should iterate :meth:`listen` instead.
        """
        if not callable(callback):
            raise InvalidInputError("callback", "must be callable")
        if inspect.iscoroutinefunction(callback):
            raise InvalidInputError(
                "callback",
                "must be a plain function; iterate events.listen() to consume events in async code",
            )
        self._callbacks.append(callback)
        return callback

    def unsubscribe(self, callback: Callback) -> bool:
        """Stop calling ``callback``; False if it was not subscribed."""
        try:
            self._callbacks.remove(callback)
        except ValueError:
            return False
        return True

    def listen(
        self, *, types: Iterable[EventType | str] | None = None, maxsize: int | None = None
    ) -> Listener:
        """A new listener (optionally only for some event types), registered at once."""
        size = self._queue_size if maxsize is None else maxsize
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidInputError("maxsize", "must be a positive integer")
        wanted = None if types is None else frozenset(_event_type(t) for t in types)
        listener = Listener(self, size, wanted)
        if self._closed:
            listener.close()
        else:
            self._listeners.add(listener)
        return listener

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    def publish(self, event: Event) -> None:
        """Tell every callback and listener about ``event``; never raises, never waits."""
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                self.callback_errors += 1
                logger.exception("event callback %r failed on %s", callback, event.type.value)
        for listener in list(self._listeners):
            listener.offer(event)

    def close(self) -> None:
        """End every listener (after it drains its queue); later listeners end at once."""
        self._closed = True
        for listener in list(self._listeners):
            listener.close()


def _event_type(value: EventType | str) -> EventType:
    try:
        return EventType(value)
    except ValueError:
        choices = ", ".join(t.value for t in EventType)
        raise InvalidInputError("types", f"{value!r} is not one of: {choices}") from None
