"""The JSON wire format: camelCase models, the response envelope, and record conversion.

Times are ISO 8601 in UTC; durations (``ttl``) are seconds. Every success is
``{"success": true, "data": ...}``; every failure ``{"success": false, "error": ...}``.

The models describe the wire (and the OpenAPI document). Records leave as camelCase
dictionaries (:func:`session_json`, :func:`message_json`): the routes that answer most
often encode those straight to JSON (:func:`answer`), the bytes the models would give,
without validating again what the stores already checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel
from pydantic_core import to_json
from starlette.responses import Response

from chatkeep.core.models import Message, NewMessage, Persistence, Role, Session, SessionLock

T = TypeVar("T")

MAX_INT = 2**63 - 1
"""The largest number a store keeps (a signed 64-bit integer)."""

WireContent = str | dict[str, JsonValue] | list[JsonValue]


class Wire(BaseModel):
    """camelCase on the wire; unknown fields in a request body are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Envelope(Wire, Generic[T]):
    success: Literal[True] = True
    data: T


class ErrorDetail(Wire):
    code: str = Field(description="A stable, machine-readable error code.")
    message: str = Field(description="What went wrong, for people.")
    details: JsonValue = Field(default=None, description="More about it, where there is more.")


class ErrorEnvelope(Wire):
    success: Literal[False] = False
    error: ErrorDetail


# -- records -------------------------------------------------------------------------


class LockOut(Wire):
    agent: str
    locked_at: datetime
    expires_at: datetime | None


class SessionOut(Wire):
    id: str
    owner: str | None
    device_id: str | None
    persistence: Persistence
    created_at: datetime
    updated_at: datetime
    last_activity: datetime
    expires_at: datetime | None
    ttl: float | None = Field(description="Seconds of inactivity before it expires.")
    max_messages: int
    metadata: dict[str, JsonValue]
    tags: list[str]
    version: int
    message_count: int
    last_seq: int
    lock: LockOut | None


class MessageOut(Wire):
    id: str
    session_id: str
    seq: int
    role: Role
    content: WireContent
    user_id: str | None
    created_at: datetime
    metadata: dict[str, JsonValue]


WireJSON = dict[str, object]
"""A record as its wire model has it (camelCase names), its values ready for JSON
(enumerations by value: encoding a value is cheaper than encoding its member)."""


def lock_json(lock: SessionLock | None) -> WireJSON | None:
    if lock is None:
        return None
    return {"agent": lock.agent, "lockedAt": lock.locked_at, "expiresAt": lock.expires_at}


def session_json(s: Session) -> WireJSON:
    """The :class:`SessionOut` of ``s``, as a dictionary."""
    return {
        "id": s.id,
        "owner": s.owner,
        "deviceId": s.device_id,
        "persistence": s.persistence.value,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
        "lastActivity": s.last_activity_at,
        "expiresAt": s.expires_at,
        "ttl": None if s.ttl is None else s.ttl.total_seconds(),
        "maxMessages": s.max_messages,
        "metadata": s.metadata,
        "tags": sorted(s.tags),
        "version": s.version,
        "messageCount": s.message_count,
        "lastSeq": s.last_seq,
        "lock": lock_json(s.lock),
    }


def message_json(m: Message) -> WireJSON:
    """The :class:`MessageOut` of ``m``, as a dictionary."""
    return {
        "id": m.id,
        "sessionId": m.session_id,
        "seq": m.seq,
        "role": m.role.value,
        "content": m.content,
        "userId": m.user_id,
        "createdAt": m.created_at,
        "metadata": m.metadata,
    }


def lock_out(lock: SessionLock | None) -> LockOut | None:
    found = lock_json(lock)
    return None if found is None else LockOut.model_validate(found)


def session_out(s: Session) -> SessionOut:
    return SessionOut.model_validate(session_json(s))


def message_out(m: Message) -> MessageOut:
    return MessageOut.model_validate(message_json(m))


# -- answers -------------------------------------------------------------------------

JSON_MEDIA_TYPE: Final = "application/json"


def envelope_json(data: Mapping[str, object]) -> bytes:
    """``{"success": true, "data": data}`` in JSON, encoded as the models encode it
    (times in ISO 8601 with ``Z``, modes and roles by value, a non-finite number as
    ``null``)."""
    return to_json({"success": True, "data": data}, inf_nan_mode="null")


def answer(data: Mapping[str, object], status_code: int = 200) -> Response:
    """The success envelope of ``data`` (a dictionary shaped like the route's model)."""
    return Response(envelope_json(data), status_code=status_code, media_type=JSON_MEDIA_TYPE)


# -- request bodies ------------------------------------------------------------------


class MessageIn(Wire):
    role: Role
    content: WireContent
    client_id: str | None = Field(
        default=None, description="An idempotency key: the same clientId is stored once."
    )
    user_id: str | None = None
    metadata: dict[str, JsonValue] | None = None

    def new_message(self) -> NewMessage:
        return NewMessage(
            role=self.role,
            content=self.content,
            id=self.client_id,
            user_id=self.user_id,
            metadata=self.metadata,
        )
