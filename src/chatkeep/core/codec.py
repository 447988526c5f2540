"""Serialisation written once: timestamps as integer microseconds, records as JSON dicts.

The dict forms are the export (JSONL) format and the filesystem store's log format.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson

from chatkeep.core.frozen import EMPTY, freeze, freeze_object
from chatkeep.core.models import (
    JSON,
    ROLES,
    JSONObject,
    Message,
    Persistence,
    Role,
    Session,
    SessionLock,
)
from chatkeep.errors import CorruptDataError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(when: datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(0, 0, micros)  # (days, seconds, microseconds): the fastest form


def opt_micros(when: datetime | None) -> int | None:
    return None if when is None else to_micros(when)


def opt_datetime(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def ttl_seconds(ttl: timedelta | None) -> float | None:
    return None if ttl is None else ttl.total_seconds()


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""What orjson refuses (integers beyond 64 bits, text with lone surrogates) is encoded
by the standard library, as compact and as unescaped."""


def dumps(value: JSON) -> str:
    """Compact JSON text, non-ASCII characters kept as they are."""
    if value is EMPTY:
        return "{}"
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _ENCODER.encode(value)


def dumpb(value: JSON) -> bytes:
    """:func:`dumps` as UTF-8 (UnicodeEncodeError for text with lone surrogates)."""
    if value is EMPTY:
        return b"{}"
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _ENCODER.encode(value).encode()


def session_to_dict(s: Session) -> JSONObject:
    updated_at = to_micros(s.updated_at)
    return {
        "id": s.id,
        "owner": s.owner,
        "device_id": s.device_id,
        "persistence": s.persistence.value,
        "created_at": to_micros(s.created_at),
        "updated_at": updated_at,
        # the same time after every write: converted once
        "last_activity_at": updated_at
        if s.last_activity_at is s.updated_at
        else to_micros(s.last_activity_at),
        "expires_at": opt_micros(s.expires_at),
        "ttl": ttl_seconds(s.ttl),
        "max_messages": s.max_messages,
        "metadata": s.metadata,
        "tags": cast("list[JSON]", sorted(s.tags)),
        "version": s.version,
        "message_count": s.message_count,
        "last_seq": s.last_seq,
        "lock": None
        if s.lock is None
        else {
            "agent": s.lock.agent,
            "locked_at": to_micros(s.lock.locked_at),
            "expires_at": opt_micros(s.lock.expires_at),
        },
    }


def session_from_dict(d: Any, where: str = "session") -> Session:
    try:
        lock = d.get("lock")
        ttl = d["ttl"]
        return Session(
            id=str(d["id"]),
            owner=d["owner"],
            device_id=d["device_id"],
            persistence=Persistence(d["persistence"]),
            created_at=from_micros(int(d["created_at"])),
            updated_at=from_micros(int(d["updated_at"])),
            last_activity_at=from_micros(int(d["last_activity_at"])),
            expires_at=opt_datetime(d["expires_at"]),
            ttl=None if ttl is None else timedelta(seconds=float(ttl)),
            max_messages=int(d["max_messages"]),
            metadata=freeze_object(d["metadata"]),
            tags=frozenset(d["tags"]),
            version=int(d["version"]),
            message_count=int(d["message_count"]),
            last_seq=int(d["last_seq"]),
            lock=None
            if lock is None
            else SessionLock(
                agent=str(lock["agent"]),
                locked_at=from_micros(int(lock["locked_at"])),
                expires_at=opt_datetime(lock["expires_at"]),
            ),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptDataError(where, f"bad session record ({exc!r})") from None


def message_to_dict(m: Message) -> JSONObject:
    return {
        "id": m.id,
        "seq": m.seq,
        "role": m.role.value,
        "content": m.content,
        "user_id": m.user_id,
        "created_at": to_micros(m.created_at),
        "metadata": m.metadata,
    }


def _role(value: Any) -> Role:
    """``Role(value)``, found at once for a stored value (one of the roles' names)."""
    found = ROLES.get(value) if isinstance(value, str) else None
    return Role(value) if found is None else found


def message_from_dict(d: Any, session_id: str, where: str = "message") -> Message:
    try:
        content = d["content"]
        if not isinstance(content, str | dict | list):
            raise TypeError("content must be text, an object or an array")
        return Message(
            str(d["id"]),
            session_id,
            int(d["seq"]),
            _role(d["role"]),
            freeze(content),  # type: ignore[arg-type]
            d["user_id"],
            from_micros(int(d["created_at"])),
            freeze_object(d.get("metadata") or EMPTY),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptDataError(where, f"bad message record ({exc!r})") from None
