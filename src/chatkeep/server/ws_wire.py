"""The WebSocket frames: JSON text objects with a ``type``, camelCase like the REST API.

A client sends ``session:join``, ``session:leave``, ``message:send``, ``ping``, and
``sessions:watch`` / ``sessions:unwatch`` (the lobby: its owner's session list); the server
answers with the frames below. :func:`parse_client_frame` turns a text frame into
one of the client models or raises :class:`FrameError` with the error code to answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import Field, TypeAdapter, ValidationError

from chatkeep.core.models import Message, Role, Session
from chatkeep.server.wire import (
    MAX_INT,
    MessageOut,
    SessionOut,
    Wire,
    WireContent,
    message_out,
    session_out,
)


class FrameCode:
    """The error codes of problems that only a WebSocket has (the others come from the
    server's error table, ``chatkeep.server.errors.ERRORS``)."""

    INVALID_JSON: Final = "invalid_json"
    VALIDATION_ERROR: Final = "validation_error"
    NOT_JOINED: Final = "not_joined"
    TOO_MANY_SESSIONS: Final = "too_many_sessions"
    RATE_LIMITED: Final = "rate_limited"


class FrameError(Exception):
    """A frame the server cannot act on; answered with an ``error`` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- client -> server ----------------------------------------------------------------


class Join(Wire):
    type: Literal["session:join"]
    session_id: str
    last_seq: int | None = Field(default=None, ge=0, le=MAX_INT)
    create: bool = False


class Leave(Wire):
    type: Literal["session:leave"]
    session_id: str


class Send(Wire):
    type: Literal["message:send"]
    session_id: str
    content: WireContent
    role: Role = Role.USER
    client_id: str | None = None


class Ping(Wire):
    type: Literal["ping"]


class Watch(Wire):
    """Start (``sessions:watch``) or stop (``sessions:unwatch``) getting the lobby frames:
    ``session:created|deleted|expired`` of every session the connection's owner may see."""

    type: Literal["sessions:watch", "sessions:unwatch"]


AnyClientFrame = Join | Leave | Send | Ping | Watch
ClientFrame = Annotated[AnyClientFrame, Field(discriminator="type")]
_CLIENT_FRAME: TypeAdapter[AnyClientFrame] = TypeAdapter(ClientFrame)


def parse_client_frame(text: str) -> AnyClientFrame:
    try:
        return _CLIENT_FRAME.validate_json(text)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        if any(p["type"] == "json_invalid" for p in problems):
            raise FrameError(FrameCode.INVALID_JSON, "the frame is not valid JSON") from exc
        first = problems[0]
        field = ".".join(str(part) for part in first["loc"]) or "frame"
        raise FrameError(FrameCode.VALIDATION_ERROR, f"{field}: {first['msg']}") from exc


# -- server -> client ----------------------------------------------------------------


class SessionFrame(Wire):
    """``session:created`` or ``session:loaded``, to the client that joined."""

    type: Literal["session:created", "session:loaded"]
    session_id: str
    session: SessionOut


class SessionEnded(Wire):
    """``session:deleted`` or ``session:expired``, to every member of the session and to
    the connections watching the lobby that may see it."""

    type: Literal["session:deleted", "session:expired"]
    session_id: str


class History(Wire):
    type: Literal["messages:history"] = "messages:history"
    session_id: str
    messages: list[MessageOut]
    history_on_client: bool = False


class Ack(Wire):
    type: Literal["message:ack"] = "message:ack"
    session_id: str
    client_id: str | None
    id: str
    seq: int


class Received(Wire):
    type: Literal["message:received"] = "message:received"
    session_id: str
    message: MessageOut


class Pong(Wire):
    type: Literal["pong"] = "pong"


class ErrorFrame(Wire):
    type: Literal["error"] = "error"
    code: str
    message: str
    session_id: str | None = None
    client_id: str | None = None


def text(frame: Wire) -> str:
    return frame.model_dump_json(by_alias=True)


def session_frame(session: Session, *, created: bool) -> str:
    kind: Literal["session:created", "session:loaded"] = (
        "session:created" if created else "session:loaded"
    )
    return text(SessionFrame(type=kind, session_id=session.id, session=session_out(session)))


def history_frame(session: Session, messages: list[Message], *, on_client: bool) -> str:
    out = [message_out(m) for m in messages]
    return text(History(session_id=session.id, messages=out, history_on_client=on_client))


def received_frame(message: Message) -> str:
    return text(Received(session_id=message.session_id, message=message_out(message)))


RELAYED_SEQ: Final = 0
"""The ``seq`` of a message relayed without being stored (a client-mode session's):
stored messages start at 1."""


def relayed_frame(session_id: str, message_id: str, send: Send, at: datetime) -> str:
    message = MessageOut(
        id=message_id,
        session_id=session_id,
        seq=RELAYED_SEQ,
        role=send.role,
        content=send.content,
        user_id=None,
        created_at=at,
        metadata={},
    )
    return text(Received(session_id=session_id, message=message))


PONG: Final = text(Pong())
