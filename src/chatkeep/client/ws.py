"""``WebSocketSession``: a connection to the server's ``/ws``, on ``websockets``.

``join`` answers the session's history, ``send`` the server's ``message:ack``; every
other frame (``message:received``, ``session:deleted``...) is kept, in order, for
``async for frame in ws``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chatkeep.client import decode
from chatkeep.client.errors import (
    ClientAuthError,
    ServerError,
    ServerUnreachableError,
    error_for,
)
from chatkeep.client.transport import auth_headers
from chatkeep.core.models import Message, Role
from chatkeep.errors import ChatkeepError

Frame = dict[str, Any]


def ws_url(base_url: str) -> str:
    """``http://h:p`` -> ``ws://h:p/ws`` (``https`` -> ``wss``)."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


class WebSocketSession:
    """``async with WebSocketSession.connect(base_url, token=...) as ws:``."""

    def __init__(self, connection: ClientConnection) -> None:
        self._ws = connection
        self._kept: deque[Frame] = deque()

    @classmethod
    async def open(cls, base_url: str, *, token: str | None = None) -> WebSocketSession:
        try:
            connection = await connect(ws_url(base_url), additional_headers=auth_headers(token))
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise ClientAuthError("unauthorized", f"handshake refused ({status})") from exc
            raise ServerError(status, "handshake_refused", str(exc)) from exc
        except OSError as exc:
            raise ServerUnreachableError(f"{base_url}: {exc}") from exc
        return cls(connection)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._ws.close()

    async def join(self, session_id: str, last_seq: int | None = None) -> list[Message]:
        """Join the session; its messages (only those after ``last_seq`` when given)."""
        frame: Frame = {"type": "session:join", "sessionId": session_id}
        if last_seq is not None:
            frame["lastSeq"] = last_seq
        await self._write(frame)
        found = await self._answer(
            lambda f: f["type"] == "messages:history" and f["sessionId"] == session_id,
            lambda f: f.get("sessionId") == session_id,
            session_id,
        )
        return decode.messages(found["messages"])

    async def leave(self, session_id: str) -> None:
        await self._write({"type": "session:leave", "sessionId": session_id})

    async def send(
        self, session_id: str, content: Any, role: Role = Role.USER, client_id: str | None = None
    ) -> Frame:
        """Send a message; the server's ``message:ack`` (``{clientId, id, seq}``) once
        it is stored."""
        frame: Frame = {
            "type": "message:send",
            "sessionId": session_id,
            "content": content,
            "role": Role(role).value,
        }
        if client_id is not None:
            frame["clientId"] = client_id
        await self._write(frame)
        return await self._answer(
            lambda f: f["type"] == "message:ack" and f.get("clientId") == client_id,
            lambda f: f.get("clientId") == client_id and f.get("sessionId") in (None, session_id),
            session_id,
        )

    async def ping(self) -> None:
        await self._write({"type": "ping"})
        await self._answer(lambda f: f["type"] == "pong", lambda f: True, "")

    async def receive(self) -> Frame:
        """The next frame not yet answered by ``join``/``send``/``ping``."""
        if self._kept:
            return self._kept.popleft()
        return await self._read()

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        while True:
            try:
                yield await self.receive()
            except ConnectionClosed:
                return

    async def _write(self, frame: Frame) -> None:
        await self._ws.send(json.dumps(frame))

    async def _read(self) -> Frame:
        frame: Frame = json.loads(await self._ws.recv())
        return frame

    async def _answer(
        self, wanted: Callable[[Frame], bool], mine: Callable[[Frame], bool], session_id: str
    ) -> Frame:
        """Read until the answer; an ``error`` frame about this request is raised, other
        frames are kept for :meth:`receive`."""
        while True:
            try:
                frame = await self._read()
            except ConnectionClosed as exc:
                raise _closed(exc, session_id) from exc
            if wanted(frame):
                return frame
            if frame["type"] == "error" and mine(frame):
                raise error_for(0, frame["code"], frame["message"], session_id)
            self._kept.append(frame)


CLOSE_CODES = {4401: "unauthorized", 4403: "forbidden", 4404: "session_not_found"}


def _closed(exc: ConnectionClosed, session_id: str) -> ChatkeepError:
    code = exc.rcvd.code if exc.rcvd is not None else 1006
    reason = exc.rcvd.reason if exc.rcvd is not None else "the connection was lost"
    return error_for(code, CLOSE_CODES.get(code, "connection_closed"), reason, session_id)
