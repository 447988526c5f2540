"""The JSON wire format: camelCase models, the response envelope, and record conversion.

Times are ISO 8601 in UTC; durations (``ttl``) are seconds. Every success is
``{"success": true, "data": ...}``; every failure ``{"success": false, "error": ...}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

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


def lock_out(lock: SessionLock | None) -> LockOut | None:
    if lock is None:
        return None
    return LockOut(agent=lock.agent, locked_at=lock.locked_at, expires_at=lock.expires_at)


def session_out(s: Session) -> SessionOut:
    return SessionOut(
        id=s.id,
        owner=s.owner,
        device_id=s.device_id,
        persistence=s.persistence,
        created_at=s.created_at,
        updated_at=s.updated_at,
        last_activity=s.last_activity_at,
        expires_at=s.expires_at,
        ttl=None if s.ttl is None else s.ttl.total_seconds(),
        max_messages=s.max_messages,
        metadata=dict(s.metadata),
        tags=sorted(s.tags),
        version=s.version,
        message_count=s.message_count,
        last_seq=s.last_seq,
        lock=lock_out(s.lock),
    )


def message_out(m: Message) -> MessageOut:
    return MessageOut(
        id=m.id,
        session_id=m.session_id,
        seq=m.seq,
        role=m.role,
        content=m.content,
        user_id=m.user_id,
        created_at=m.created_at,
        metadata=dict(m.metadata),
    )


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
