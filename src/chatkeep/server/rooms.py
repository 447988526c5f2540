"""Rooms: which WebSocket connections have joined which session, and what they are told.

A :class:`Rooms` hub listens to its manager's events, so whatever stores a message (a
WebSocket ``message:send``, a REST append, the library) reaches every member of the
session's room. Each message is serialised once and handed to each member, which filters
out what it has seen already (by ``seq``). The member whose send stored the message is
left out: it gets a ``message:ack`` instead. ``session:deleted`` and ``session:expired``
go to the room's members, and the room is closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal, Protocol

from chatkeep.manager import Event, EventType, SessionManager
from chatkeep.server.ws_wire import SessionEnded, received_frame, text

_ENDINGS: dict[EventType, Literal["session:deleted", "session:expired"]] = {
    EventType.SESSION_DELETED: "session:deleted",
    EventType.SESSION_EXPIRED: "session:expired",
}


class Member(Protocol):
    """A connection in one or more rooms. Both methods are called from the event loop
    while an event is published: they must not block."""

    def deliver(self, session_id: str, seq: int | None, frame: str) -> None:
        """A message (``message:received`` as text) with its ``seq``; ``None`` for one
        relayed without being stored."""

    def session_ended(self, session_id: str, frame: str) -> None:
        """The session is gone (``session:deleted`` / ``session:expired`` as text); the
        member is no longer in its room."""


_origin: ContextVar[Member | None] = ContextVar("chatkeep_ws_origin", default=None)


class Rooms:
    """The rooms of one server process over one manager."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self._rooms: dict[str, set[Member]] = {}
        self._connections: set[Member] = set()
        manager.events.subscribe(self._on_event)

    @classmethod
    def of(cls, holder: object, manager: SessionManager) -> Rooms:
        """The hub kept on ``holder`` (an app's ``state``) for ``manager``, made on first
        use: a hub serves the manager whose events it listens to."""
        hub = getattr(holder, "rooms", None)
        if not isinstance(hub, Rooms) or hub.manager is not manager:
            hub = cls(manager)
            setattr(holder, "rooms", hub)  # noqa: B010
        return hub

    def close(self) -> None:
        self.manager.events.unsubscribe(self._on_event)
        self._rooms.clear()

    # -- membership ---------------------------------------------------------
    @property
    def connections(self) -> int:
        return len(self._connections)

    def connect(self, member: Member) -> None:
        self._connections.add(member)

    def disconnect(self, member: Member) -> None:
        """Take ``member`` out of every room and of the connection count."""
        self._connections.discard(member)
        for session_id in [sid for sid, room in self._rooms.items() if member in room]:
            self.leave(session_id, member)

    def join(self, session_id: str, member: Member) -> None:
        self._rooms.setdefault(session_id, set()).add(member)

    def leave(self, session_id: str, member: Member) -> None:
        room = self._rooms.get(session_id)
        if room is None:
            return
        room.discard(member)
        if not room:
            del self._rooms[session_id]

    def members(self, session_id: str) -> frozenset[Member]:
        return frozenset(self._rooms.get(session_id, ()))

    @contextmanager
    def sending(self, member: Member) -> Iterator[None]:
        """Messages stored inside this block (in this task) are not delivered back to
        ``member``."""
        token = _origin.set(member)
        try:
            yield
        finally:
            _origin.reset(token)

    def relay(self, session_id: str, frame: str, origin: Member) -> None:
        """Hand a message that is not stored (``frame``) to every member but ``origin``."""
        for member in list(self._rooms.get(session_id, ())):
            if member is not origin:
                member.deliver(session_id, None, frame)

    # -- events -------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        room = self._rooms.get(event.session_id)
        if not room:
            return
        if event.type is EventType.MESSAGE_APPENDED:
            origin = _origin.get()
            for message in event.messages:
                frame = received_frame(message)
                for member in list(room):
                    if member is not origin:
                        member.deliver(event.session_id, message.seq, frame)
        elif event.type in _ENDINGS:
            ended = text(SessionEnded(type=_ENDINGS[event.type], session_id=event.session_id))
            del self._rooms[event.session_id]
            for member in room:
                member.session_ended(event.session_id, ended)
