"""Rooms: which WebSocket connections have joined which session, and what they are told.

A :class:`Rooms` hub listens to its manager's events, so whatever stores a message (a
WebSocket ``message:send``, a REST append, the library) reaches every member of the
session's room. Each message is serialised once and handed to each member, which filters
out what it has seen already (by ``seq``). The member whose send stored the message is
left out: it gets a ``message:ack`` instead. ``session:deleted`` and ``session:expired``
go to the room's members, and the room is closed.

Connections that watch the lobby get ``session:created|deleted|expired`` for every
session their caller may see (a member of the room that also watches gets each frame
once).

With a :class:`Channel` (another server instance's events, see
:mod:`chatkeep.server.fanout`), every change stored here is also published to it, and
what the other instances publish is handed to the members here the same way.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from chatkeep.errors import ChatkeepError
from chatkeep.manager import Event, EventType, SessionManager
from chatkeep.server.auth import Caller
from chatkeep.server.ws_wire import SessionEnded, received_frame, session_frame, text

logger = logging.getLogger("chatkeep.server.rooms")

Ending = Literal["session:deleted", "session:expired"]
LobbyKind = Literal["session:created", Ending]
Item = tuple[int | None, str]
"""A message frame (``message:received`` as text) and its ``seq`` (``None``: relayed
without being stored)."""

_ENDINGS: dict[EventType, Ending] = {
    EventType.SESSION_DELETED: "session:deleted",
    EventType.SESSION_EXPIRED: "session:expired",
}
RECENTLY_ENDED: Final = 4096
"""Ended sessions remembered so that an ending told twice (by two instances sweeping the
same store) reaches each connection once."""


class Member(Protocol):
    """A connection in rooms and perhaps in the lobby. The methods are called from the
    event loop while an event is handled: they must not block."""

    def deliver(self, session_id: str, seq: int | None, frame: str) -> None:
        """A message (``message:received`` as text) with its ``seq``; ``None`` for one
        relayed without being stored."""

    def session_ended(self, session_id: str, frame: str) -> bool:
        """The session is gone (``session:deleted`` / ``session:expired`` as text); the
        member is no longer in its room. True if the member was told."""

    def notify(self, frame: str) -> None:
        """A lobby frame."""

    def last_seq(self, session_id: str) -> int | None:
        """The newest ``seq`` the member has of a joined session; ``None`` while it is
        joining or when it has not joined."""


@dataclass(frozen=True, slots=True)
class LobbyChange:
    """A session created or ended, as the lobby is told. ``owner_known`` is False when
    the ending's session record was not at hand: then only callers that see every
    session (authentication off) are told."""

    kind: LobbyKind
    session_id: str
    owner: str | None
    owner_known: bool
    frame: str

    def visible_to(self, caller: Caller) -> bool:
        return not caller.authenticated or (self.owner_known and caller.may_see(self.owner))


class Channel(Protocol):
    """Where the changes of every server instance meet (see :mod:`chatkeep.server.fanout`)."""

    @property
    def up(self) -> bool:
        """Connected: the other instances hear of this one's changes, and it of theirs."""

    async def follow(self, session_id: str) -> None:
        """Hand the session's messages from other instances to the hub from now on;
        returns once that holds, or at once while the channel is down."""

    def unfollow(self, session_id: str) -> None:
        """No member here any more: stop getting the session's messages."""

    def publish_messages(self, session_id: str, items: Sequence[Item]) -> None:
        """Tell the other instances (never waits)."""

    def publish_lobby(self, change: LobbyChange) -> None:
        """Tell the other instances (never waits)."""


_origin: ContextVar[Member | None] = ContextVar("chatkeep_ws_origin", default=None)


class Rooms:
    """The rooms and the lobby of one server process over one manager."""

    def __init__(self, manager: SessionManager, channel: Channel | None = None) -> None:
        self.manager = manager
        self.channel = channel
        self._rooms: dict[str, set[Member]] = {}
        self._connections: set[Member] = set()
        self._watchers: dict[Member, Caller] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._holding: dict[str, list[tuple[int | None, str, Member | None]]] = {}
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
        self._watchers.clear()

    # -- membership ---------------------------------------------------------
    @property
    def connections(self) -> int:
        return len(self._connections)

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def connect(self, member: Member) -> None:
        self._connections.add(member)

    def disconnect(self, member: Member) -> None:
        """Take ``member`` out of every room, the lobby and the connection count."""
        self._connections.discard(member)
        self._watchers.pop(member, None)
        for session_id in [sid for sid, room in self._rooms.items() if member in room]:
            self.leave(session_id, member)

    async def join(self, session_id: str, member: Member) -> None:
        """Put ``member`` in the room; returns once messages stored on other instances
        reach it too."""
        self._rooms.setdefault(session_id, set()).add(member)
        if self.channel is not None:
            await self.channel.follow(session_id)

    def leave(self, session_id: str, member: Member) -> None:
        room = self._rooms.get(session_id)
        if room is None:
            return
        room.discard(member)
        if not room:
            del self._rooms[session_id]
            if self.channel is not None:
                self.channel.unfollow(session_id)

    def members(self, session_id: str) -> frozenset[Member]:
        return frozenset(self._rooms.get(session_id, ()))

    def sessions(self) -> list[str]:
        """The sessions that have members here."""
        return list(self._rooms)

    def watch(self, member: Member, caller: Caller) -> None:
        """Tell ``member`` of the sessions ``caller`` may see as they are created or end."""
        self._watchers[member] = caller

    def unwatch(self, member: Member) -> None:
        self._watchers.pop(member, None)

    @contextmanager
    def sending(self, member: Member) -> Iterator[None]:
        """Messages stored (and sessions created) inside this block, in this task, are
        not told back to ``member``: it gets an answer of its own."""
        token = _origin.set(member)
        try:
            yield
        finally:
            _origin.reset(token)

    def relay(self, session_id: str, frame: str, origin: Member) -> None:
        """Hand a message that is not stored (``frame``) to every member but ``origin``,
        here and on the other instances."""
        items: list[Item] = [(None, frame)]
        self._deliver(session_id, items, origin)
        if self.channel is not None:
            self.channel.publish_messages(session_id, items)

    # -- what happened here -------------------------------------------------
    def _on_event(self, event: Event) -> None:
        sid = event.session_id
        if event.type is EventType.MESSAGE_APPENDED:
            self._ended.pop(sid, None)
            if not event.messages or (sid not in self._rooms and self.channel is None):
                return
            items: list[Item] = [(m.seq, received_frame(m)) for m in event.messages]
            self._deliver(sid, items, _origin.get())
            if self.channel is not None:
                self.channel.publish_messages(sid, items)
            return
        change = _lobby_change(event)
        told = change is not None and self._announce(change, _origin.get())
        if told and change is not None and self.channel is not None:
            self.channel.publish_lobby(change)

    # -- what happened on another instance ----------------------------------
    def remote_messages(self, session_id: str, items: Iterable[Item]) -> None:
        self._deliver(session_id, list(items), None)

    def remote_lobby(self, change: LobbyChange) -> None:
        self._announce(change, None)

    async def catch_up(self, session_ids: Iterable[str]) -> None:
        """Hand each room's members the stored messages they may have missed (while the
        channel was down); what arrives meanwhile waits, so each member's ``seq`` order
        holds."""
        mine = [sid for sid in session_ids if sid in self._rooms and sid not in self._holding]
        for sid in mine:
            self._holding[sid] = []
        try:
            for sid in mine:
                await self._catch_up(sid)
                self._release(sid)
        finally:
            for sid in mine:
                if sid in self._holding:
                    self._release(sid)

    async def _catch_up(self, sid: str) -> None:
        seen = [s for m in self._rooms.get(sid, ()) if (s := m.last_seq(sid)) is not None]
        if not seen:
            return
        try:
            missed = await self.manager.get_messages(sid, after_seq=min(seen))
        except ChatkeepError as exc:
            logger.warning("catching up session %s failed: %s", sid, exc)
            return
        self._hand(sid, [(m.seq, received_frame(m)) for m in missed], None)

    def _release(self, sid: str) -> None:
        for seq, frame, origin in self._holding.pop(sid):
            self._hand(sid, [(seq, frame)], origin)

    # -- telling ------------------------------------------------------------
    def _deliver(self, session_id: str, items: Sequence[Item], origin: Member | None) -> None:
        held = self._holding.get(session_id)
        if held is not None:
            held.extend((seq, frame, origin) for seq, frame in items)
            return
        self._hand(session_id, items, origin)

    def _hand(self, session_id: str, items: Sequence[Item], origin: Member | None) -> None:
        room = self._rooms.get(session_id)
        if not room:
            return
        for seq, frame in items:
            for member in list(room):
                if member is not origin:
                    member.deliver(session_id, seq, frame)

    def _announce(self, change: LobbyChange, origin: Member | None) -> bool:
        """Tell the room (for an ending) and the lobby; False if this ending was told
        already."""
        sid = change.session_id
        told: set[Member] = set()
        if change.kind == "session:created":
            self._ended.pop(sid, None)
        else:
            if sid in self._ended:
                return False
            self._ended[sid] = None
            while len(self._ended) > RECENTLY_ENDED:
                self._ended.popitem(last=False)
            room = self._rooms.pop(sid, set())
            told = {m for m in room if m.session_ended(sid, change.frame)}
            if room and self.channel is not None:
                self.channel.unfollow(sid)
        for watcher, caller in list(self._watchers.items()):
            if watcher is not origin and watcher not in told and change.visible_to(caller):
                watcher.notify(change.frame)
        return True


def _lobby_change(event: Event) -> LobbyChange | None:
    session = event.session
    if event.type is EventType.SESSION_CREATED and session is not None:
        frame = session_frame(session, created=True)
        return LobbyChange("session:created", event.session_id, session.owner, True, frame)
    kind = _ENDINGS.get(event.type)
    if kind is None:
        return None
    frame = text(SessionEnded(type=kind, session_id=event.session_id))
    owner = None if session is None else session.owner
    return LobbyChange(kind, event.session_id, owner, session is not None, frame)
