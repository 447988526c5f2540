"""camelCase JSON of the server, decoded into the library's own records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chatkeep.core.models import Message, Persistence, Role, Session, SessionLock
from chatkeep.core.query import SearchHit, SessionPage
from chatkeep.stores.base import ImportReport


@dataclass(frozen=True, slots=True)
class Loaded:
    """A session loaded (its activity recorded) with its conversation history."""

    session: Session
    history: list[Message]
    history_on_client: bool


@dataclass(frozen=True, slots=True)
class Stored:
    """The answer to an append: each message as stored, how many of them are new."""

    messages: list[Message]
    added: int
    message_count: int
    last_seq: int


def timestamp(text: str) -> datetime:
    """An ISO 8601 time of the server as a timezone-aware datetime."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"the time {text!r} has no zone")
    return value


def optional_timestamp(text: str | None) -> datetime | None:
    return None if text is None else timestamp(text)


def lock(data: dict[str, Any] | None) -> SessionLock | None:
    if data is None:
        return None
    return SessionLock(
        agent=data["agent"],
        locked_at=timestamp(data["lockedAt"]),
        expires_at=optional_timestamp(data["expiresAt"]),
    )


def session(data: dict[str, Any]) -> Session:
    ttl = data["ttl"]
    return Session(
        id=data["id"],
        owner=data["owner"],
        device_id=data["deviceId"],
        persistence=Persistence(data["persistence"]),
        created_at=timestamp(data["createdAt"]),
        updated_at=timestamp(data["updatedAt"]),
        last_activity_at=timestamp(data["lastActivity"]),
        expires_at=optional_timestamp(data["expiresAt"]),
        ttl=None if ttl is None else timedelta(seconds=ttl),
        max_messages=data["maxMessages"],
        metadata=dict(data["metadata"]),
        tags=frozenset(data["tags"]),
        version=data["version"],
        message_count=data["messageCount"],
        last_seq=data["lastSeq"],
        lock=lock(data["lock"]),
    )


def message(data: dict[str, Any]) -> Message:
    return Message(
        id=data["id"],
        session_id=data["sessionId"],
        seq=data["seq"],
        role=Role(data["role"]),
        content=data["content"],
        user_id=data["userId"],
        created_at=timestamp(data["createdAt"]),
        metadata=dict(data["metadata"]),
    )


def messages(items: list[dict[str, Any]]) -> list[Message]:
    return [message(item) for item in items]


def page(data: dict[str, Any]) -> SessionPage:
    return SessionPage(
        sessions=[session(s) for s in data["sessions"]], next_cursor=data["nextCursor"]
    )


def loaded(data: dict[str, Any]) -> Loaded:
    return Loaded(
        session=session(data["session"]),
        history=messages(data["conversationHistory"]),
        history_on_client=data["historyOnClient"],
    )


def stored(data: dict[str, Any]) -> Stored:
    return Stored(
        messages=messages(data["messages"]),
        added=data["added"],
        message_count=data["messageCount"],
        last_seq=data["lastSeq"],
    )


def hits(data: dict[str, Any]) -> list[SearchHit]:
    return [
        SearchHit(session=session(hit["session"]), messages=messages(hit["messages"]))
        for hit in data["results"]
    ]


def import_report(data: dict[str, Any]) -> ImportReport:
    return ImportReport(
        restored=data["restored"],
        skipped=data["skipped"],
        failed=data["failed"],
        dry_run=data["dryRun"],
        errors=list(data["errors"]),
    )
