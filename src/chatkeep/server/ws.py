"""The WebSocket endpoint (``/ws`` and ``/ws/chat/?session=…``) and its connections.

A :class:`Connection` is a state machine (:class:`State`): ``CONNECTING`` until accepted,
``OPEN`` while frames flow, ``CLOSING`` once either side ends it, ``CLOSED``. One task
reads and handles the client's frames in order; another writes every outgoing frame from
one queue, so the frames a client gets keep the order in which they were decided.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import anyio
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from chatkeep.config import ServerConfig
from chatkeep.core.ids import check_id, new_id
from chatkeep.core.models import NewMessage, Persistence, Session
from chatkeep.errors import ChatkeepError, SessionExistsError, SessionNotFoundError
from chatkeep.manager import SessionManager
from chatkeep.server.auth import Caller
from chatkeep.server.deps import guard
from chatkeep.server.errors import INTERNAL_MESSAGE, CloseCode, spec_for
from chatkeep.server.gate import caller_in
from chatkeep.server.rooms import Rooms
from chatkeep.server.ws_wire import (
    PONG,
    RELAYED_SEQ,
    Ack,
    ErrorFrame,
    FrameCode,
    FrameError,
    Join,
    Leave,
    Ping,
    Send,
    Watch,
    history_frame,
    parse_client_frame,
    relayed_frame,
    session_frame,
    text,
)

logger = logging.getLogger("chatkeep.server.ws")

MAX_PENDING: Final = 1000
"""Outgoing frames a connection may have waiting; a client that falls further behind is
closed with ``TRY_AGAIN_LATER`` (it can join again with ``lastSeq``)."""

MAX_AHEAD: Final = 1024
"""Messages a connection may have been told out of ``seq`` order before the gap below
them is given up."""

router = APIRouter()


class State(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class TokenBucket:
    """``rate`` frames a second on average, ``burst`` at once."""

    rate: float
    burst: float
    at: datetime
    tokens: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: datetime) -> bool:
        elapsed = max((now - self.at).total_seconds(), 0.0)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.at = max(now, self.at)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(slots=True)
class Membership:
    """One joined session: while ``joining``, delivered messages wait in ``held``;
    afterwards each stored message goes out once. ``seen``: every ``seq`` up to it is
    done with; ``ahead``: the ones above it that are (sent by this connection, which got
    a ``message:ack`` instead, or told out of order: two instances may publish in
    another order than they stored)."""

    joining: bool = True
    seen: int = 0
    held: list[tuple[int | None, str]] = field(default_factory=list)
    ahead: set[int] = field(default_factory=set)

    def take(self, seq: int) -> bool:
        """True if the message ``seq`` is new to this connection (it is now done with)."""
        if seq <= self.seen or seq in self.ahead:
            return False
        self.done(seq)
        return True

    def done(self, seq: int) -> None:
        if seq <= self.seen:
            return
        self.ahead.add(seq)
        if len(self.ahead) > MAX_AHEAD:  # a gap that will not fill: give it up
            self.seen = min(self.ahead) - 1
        while self.seen + 1 in self.ahead:
            self.seen += 1
            self.ahead.remove(self.seen)


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


_GONE: Final = _Close(0, "the client went away")


class Connection:
    """One client's WebSocket: its caller, its joined sessions, its send budget, its
    outgoing queue. It can join only the sessions its caller may see."""

    def __init__(
        self, websocket: WebSocket, manager: SessionManager, limits: ServerConfig, caller: Caller
    ):
        self.state = State.CONNECTING
        self._ws = websocket
        self._caller = caller
        self._manager = manager
        self._rooms = Rooms.of(websocket.app.state, manager)
        self._limits = limits
        self._bucket = TokenBucket(limits.ws_send_rate, limits.ws_send_burst, manager.clock.now())
        self._joined: dict[str, Membership] = {}
        self._outbox: deque[str | _Close] = deque()
        self._ready = asyncio.Event()

    def _move(self, expected: State, to: State) -> None:
        if self.state is not expected:
            raise RuntimeError(
                f"expected a {expected.value} connection, got a {self.state.value} one"
            )
        self.state = to

    # -- lifecycle ----------------------------------------------------------
    async def run(self, first: Join | FrameError | None = None) -> None:
        """Accept, serve until either side closes, then leave every room."""
        await self._ws.accept()
        self._move(State.CONNECTING, State.OPEN)
        self._rooms.connect(self)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._read, first)
                await self._write()
                tasks.cancel_scope.cancel()
        finally:
            self._rooms.disconnect(self)
            self.state = State.CLOSED

    def close(self, code: int, reason: str) -> None:
        """End the connection with ``code``; frames already queued go out first unless
        the client is too far behind."""
        self._end(_Close(code, reason), drop_queued=code == CloseCode.TRY_AGAIN_LATER)

    def _end(self, last: _Close, *, drop_queued: bool) -> None:
        if self.state is not State.OPEN:
            return
        self._move(State.OPEN, State.CLOSING)
        if drop_queued:
            self._outbox.clear()
        self._outbox.append(last)
        self._ready.set()

    def _push(self, frame: str) -> None:
        if self.state is not State.OPEN:
            return
        if len(self._outbox) >= MAX_PENDING:
            self.close(CloseCode.TRY_AGAIN_LATER, "too many frames waiting: join again")
            return
        self._outbox.append(frame)
        self._ready.set()

    async def _write(self) -> None:
        while True:
            while not self._outbox:
                self._ready.clear()
                await self._ready.wait()
            item = self._outbox.popleft()
            try:
                if item is _GONE:
                    return
                if isinstance(item, _Close):
                    await self._ws.close(item.code, item.reason)
                    return
                await self._ws.send_text(item)
            except WebSocketDisconnect:
                return

    async def _read(self, first: Join | FrameError | None) -> None:
        if isinstance(first, FrameError):
            self._error(first.code, first.message)
        elif first is not None:
            await self._handle(first)
        idle = self._limits.ws_idle_timeout.total_seconds()
        while self.state is State.OPEN:
            try:
                async with asyncio.timeout(idle):
                    message = await self._ws.receive()
            except TimeoutError:
                self.close(CloseCode.REQUEST_TIMEOUT, f"nothing received for {idle:g}s")
                return
            if message["type"] == "websocket.disconnect":
                self._end(_GONE, drop_queued=True)
                return
            await self._receive(message.get("text"), message.get("bytes"))

    async def _receive(self, frame: str | None, data: bytes | None) -> None:
        size = len(data or b"") if frame is None else len(frame.encode())
        if size > self._limits.ws_max_frame_bytes:
            limit = self._limits.ws_max_frame_bytes
            self.close(CloseCode.MESSAGE_TOO_BIG, f"frames are limited to {limit} bytes")
        elif not self._bucket.take(self._manager.clock.now()):
            rate, burst = self._limits.ws_send_rate, self._limits.ws_send_burst
            message = f"more than {rate} frames a second (bursts of {burst}): frame dropped"
            self._error(FrameCode.RATE_LIMITED, message)
        elif frame is None:
            self._error(FrameCode.VALIDATION_ERROR, "frames are JSON text, not binary")
        else:
            try:
                parsed = parse_client_frame(frame)
            except FrameError as exc:
                self._error(exc.code, exc.message)
                return
            await self._handle(parsed)

    # -- frames -------------------------------------------------------------
    async def _handle(self, frame: Join | Leave | Send | Ping | Watch) -> None:
        session_id = None if isinstance(frame, Ping | Watch) else frame.session_id
        client_id = frame.client_id if isinstance(frame, Send) else None
        try:
            if isinstance(frame, Join):
                await self._join(frame)
            elif isinstance(frame, Leave):
                self._membership(frame.session_id)
                del self._joined[frame.session_id]
                self._rooms.leave(frame.session_id, self)
            elif isinstance(frame, Send):
                await self._send(frame)
            elif isinstance(frame, Watch):
                self._watch(frame)
            else:
                self._push(PONG)
        except FrameError as exc:
            self._error(exc.code, exc.message, session_id, client_id)
        except ChatkeepError as exc:
            spec = spec_for(exc)
            if spec.status >= 500:
                logger.warning("%s on session %s: %s", type(frame).__name__, session_id, exc)
            shown = str(exc) if spec.status < 500 or spec.status == 503 else INTERNAL_MESSAGE
            self._error(spec.code, shown, session_id, client_id)
        except Exception:
            logger.exception("a WebSocket %s failed", type(frame).__name__)
            self.close(CloseCode.INTERNAL_ERROR, INTERNAL_MESSAGE)

    def _error(
        self, code: str, message: str, session_id: str | None = None, client_id: str | None = None
    ) -> None:
        frame = ErrorFrame(code=code, message=message, session_id=session_id, client_id=client_id)
        self._push(text(frame))

    def _membership(self, session_id: str) -> Membership:
        found = self._joined.get(session_id)
        if found is None:
            raise FrameError(FrameCode.NOT_JOINED, f"session {session_id!r} is not joined here")
        return found

    async def _join(self, frame: Join) -> None:
        sid = frame.session_id
        before = self._joined.get(sid)
        if before is None and len(self._joined) >= self._limits.ws_max_sessions:
            limit = self._limits.ws_max_sessions
            raise FrameError(
                FrameCode.TOO_MANY_SESSIONS, f"at most {limit} sessions per connection"
            )
        joining = self._joined[sid] = Membership()
        try:
            await self._rooms.join(sid, self)
            with self._rooms.sending(self):
                session, created = await self._open(sid, create=frame.create)
            on_client = session.persistence is Persistence.CLIENT
            after = frame.last_seq
            history = [] if on_client else await self._manager.get_messages(sid, after_seq=after)
        except BaseException:
            if before is None:
                self._joined.pop(sid, None)
                self._rooms.leave(sid, self)
            else:
                self._joined[sid] = before
            raise
        self._push(session_frame(session, created=created))
        self._push(history_frame(session, history, on_client=on_client))
        joining.seen = max([m.seq for m in history], default=frame.last_seq or 0)
        if not on_client:
            joining.seen = max(joining.seen, session.last_seq)
        joining.joining = False
        held, joining.held = joining.held, []
        for seq, received in held:
            self.deliver(sid, seq, received)

    async def _open(self, session_id: str, *, create: bool) -> tuple[Session, bool]:
        """The session, touched (a join is activity); created first if asked and missing.
        Another owner's session is "not found", created or not."""
        try:
            await guard(self._manager, self._caller, session_id)
            return await self._manager.touch(session_id), False
        except SessionNotFoundError:
            if not create:
                raise
        try:
            owner = self._caller.owner
            return await self._manager.create_session(id=session_id, owner=owner), True
        except SessionExistsError:
            await guard(self._manager, self._caller, session_id)
            return await self._manager.touch(session_id), False

    async def _send(self, frame: Send) -> None:
        self._membership(frame.session_id)
        new = NewMessage(role=frame.role, content=frame.content, id=frame.client_id)
        with self._rooms.sending(self):
            result = await self._manager.append(frame.session_id, new)
        if not result.messages:
            self._relay(frame)
            return
        stored = result.messages[0]
        joined = self._joined.get(frame.session_id)
        if joined is not None:
            joined.done(stored.seq)
        ack = Ack(
            session_id=stored.session_id, client_id=frame.client_id, id=stored.id, seq=stored.seq
        )
        self._push(text(ack))

    def _watch(self, frame: Watch) -> None:
        if frame.type == "sessions:watch":
            self._rooms.watch(self, self._caller)
        else:
            self._rooms.unwatch(self)

    def _relay(self, frame: Send) -> None:
        """A client-mode session's message: handed to the other members, not stored."""
        message_id = new_id() if frame.client_id is None else check_id(frame.client_id, "clientId")
        now = self._manager.clock.now()
        self._rooms.relay(
            frame.session_id, relayed_frame(frame.session_id, message_id, frame, now), self
        )
        ack = Ack(
            session_id=frame.session_id, client_id=frame.client_id, id=message_id, seq=RELAYED_SEQ
        )
        self._push(text(ack))

    # -- the rooms' Member protocol ---------------------------------------------
    def deliver(self, session_id: str, seq: int | None, frame: str) -> None:
        membership = self._joined.get(session_id)
        if membership is None:
            return
        if membership.joining:
            membership.held.append((seq, frame))
        elif seq is None or membership.take(seq):
            self._push(frame)

    def session_ended(self, session_id: str, frame: str) -> bool:
        if self._joined.pop(session_id, None) is None:
            return False
        self._push(frame)
        return True

    def notify(self, frame: str) -> None:
        self._push(frame)

    def last_seq(self, session_id: str) -> int | None:
        membership = self._joined.get(session_id)
        if membership is None or membership.joining:
            return None
        return membership.seen


def _manager(websocket: WebSocket) -> SessionManager:
    manager = getattr(websocket.app.state, "manager", None)
    if not isinstance(manager, SessionManager):
        raise RuntimeError("expected a running app with a session manager, got none")
    return manager


def _limits(websocket: WebSocket) -> ServerConfig:
    config = websocket.app.state.config
    limits: ServerConfig = config.server
    return limits


def _connection(websocket: WebSocket) -> Connection:
    return Connection(
        websocket, _manager(websocket), _limits(websocket), caller_in(websocket.scope)
    )


@router.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    """Join sessions, send messages, get them live: see docs/server.md."""
    await _connection(websocket).run()


@router.websocket("/ws/chat/")
async def ws_chat(websocket: WebSocket) -> None:
    """Like ``/ws``, joined at once to ``?session=<id>`` (created if missing), from
    ``&lastSeq=<n>`` when given."""
    connection = _connection(websocket)
    session_id = websocket.query_params.get("session")
    first: Join | FrameError | None = None
    if session_id:
        query = {"type": "session:join", "sessionId": session_id, "create": True}
        last_seq = websocket.query_params.get("lastSeq")
        try:
            first = Join.model_validate(
                query if last_seq is None else {**query, "lastSeq": last_seq}
            )
        except ValidationError as exc:
            first = FrameError(FrameCode.VALIDATION_ERROR, f"lastSeq: {exc.errors()[0]['msg']}")
    await connection.run(first)
