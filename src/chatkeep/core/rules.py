"""Lifecycle rules: creation, activity renewal, expiry, the rolling window, locks.

Stores call these to decide what a change does; they only carry out the writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from chatkeep.core.ids import check_id, new_id
from chatkeep.core.models import (
    UNSET,
    Message,
    NewMessage,
    Persistence,
    Session,
    SessionLock,
    SessionUpdate,
    evolve,
)
from chatkeep.core.validation import (
    Limits,
    check_max_messages,
    check_metadata,
    check_name,
    check_optional_device_id,
    check_persistence,
    check_tags,
    check_ttl,
    merged_metadata,
)
from chatkeep.errors import (
    ImmutableSettingError,
    InvalidInputError,
    SessionExpiredError,
    SessionNotFoundError,
    VersionConflictError,
)

DEFAULT_TTL = timedelta(hours=24)
DEFAULT_MAX_MESSAGES = 1000
DEFAULT_LOCK_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class SessionDefaults:
    """What a new session gets when the caller does not say."""

    ttl: timedelta | None = DEFAULT_TTL
    max_messages: int = DEFAULT_MAX_MESSAGES
    persistence: Persistence = Persistence.DURABLE


def live(session: Session | None, session_id: str, now: datetime) -> Session:
    """The session if it exists and has not expired; else the matching error."""
    if session is None:
        raise SessionNotFoundError(session_id)
    if session.is_expired(now):
        raise SessionExpiredError(session_id)
    return session


def existing(session: Session | None, session_id: str) -> Session:
    if session is None:
        raise SessionNotFoundError(session_id)
    return session


def expiry_after(now: datetime, ttl: timedelta | None) -> datetime | None:
    return None if ttl is None else now + ttl


def new_session(
    *,
    now: datetime,
    defaults: SessionDefaults,
    limits: Limits,
    id: str | None,
    owner: object,
    device_id: object,
    persistence: object,
    ttl: object,
    max_messages: object,
    metadata: object,
    tags: object,
) -> Session:
    """Validate a creation request and build the new session record."""
    ttl_value = defaults.ttl if ttl is UNSET else check_ttl(ttl)
    return Session(
        id=new_id() if id is None else check_id(id, "id"),
        owner=check_name(owner, "owner", limits),
        device_id=check_optional_device_id(device_id),
        persistence=defaults.persistence
        if persistence is UNSET
        else check_persistence(persistence),
        created_at=now,
        updated_at=now,
        last_activity_at=now,
        expires_at=expiry_after(now, ttl_value),
        ttl=ttl_value,
        max_messages=(
            defaults.max_messages if max_messages is UNSET else check_max_messages(max_messages)
        ),
        metadata=check_metadata(metadata, "metadata", limits),
        tags=check_tags(tags, "tags", limits),
        version=1,
        message_count=0,
        last_seq=0,
    )


def renewed(session: Session, now: datetime, **changes: object) -> Session:
    """The session after a write at ``now``: activity moved, expiry pushed, version bumped."""
    ttl = changes.get("ttl", session.ttl)
    return evolve(
        session,
        updated_at=now,
        last_activity_at=now,
        expires_at=expiry_after(now, ttl),  # type: ignore[arg-type]
        version=session.version + 1,
        **changes,
    )


def check_version(session: Session, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != session.version:
        raise VersionConflictError(session.id, expected_version, session.version)


def updated(session: Session, update: SessionUpdate, limits: Limits, now: datetime) -> Session:
    """Apply ``update``; raises before anything changes if any part is invalid."""
    if not isinstance(update, SessionUpdate):
        raise InvalidInputError("changes", "must be a SessionUpdate or a mapping of its fields")
    changes: dict[str, object] = {}
    if update.persistence is not UNSET:
        wanted = check_persistence(update.persistence)
        if wanted != session.persistence:
            raise ImmutableSettingError(
                "persistence",
                f"persistence is fixed at creation: session {session.id!r} is "
                f"{session.persistence.value!r} and cannot become {wanted.value!r}",
            )
    if update.owner is not UNSET:
        changes["owner"] = check_name(update.owner, "owner", limits)
    if update.device_id is not UNSET:
        changes["device_id"] = check_optional_device_id(update.device_id)
    if update.ttl is not UNSET:
        changes["ttl"] = check_ttl(update.ttl)
    if update.max_messages is not UNSET:
        changes["max_messages"] = check_max_messages(update.max_messages)
    metadata = session.metadata
    if update.metadata is not UNSET:
        metadata = check_metadata(update.metadata, "metadata", limits)
    if update.merge_metadata is not UNSET:
        merge = check_metadata(update.merge_metadata, "merge_metadata", limits)
        metadata = check_metadata(merged_metadata(metadata, merge), "metadata", limits)
    if metadata is not session.metadata:
        changes["metadata"] = metadata
    tags = session.tags
    if update.tags is not UNSET:
        tags = check_tags(update.tags, "tags", limits)
    if update.add_tags is not UNSET:
        tags = check_tags(tags | check_tags(update.add_tags, "add_tags", limits), "tags", limits)
    if update.remove_tags is not UNSET:
        tags = tags - check_tags(update.remove_tags, "remove_tags", limits)
    if tags is not session.tags:
        changes["tags"] = tags
    window = changes.get("max_messages")
    if isinstance(window, int):
        changes["message_count"] = min(session.message_count, window)
    return renewed(session, now, **changes)


_UPDATE_FIELDS = frozenset(f.name for f in dataclasses.fields(SessionUpdate))


def as_update(changes: SessionUpdate | Mapping[str, object]) -> SessionUpdate:
    """Accept a :class:`SessionUpdate` or a plain mapping of its field names."""
    if isinstance(changes, SessionUpdate):
        return changes
    if not isinstance(changes, Mapping):
        raise InvalidInputError("changes", "must be a SessionUpdate or a mapping")
    unknown = sorted(set(changes) - _UPDATE_FIELDS)
    if unknown:
        raise InvalidInputError(
            "changes",
            f"unknown field(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(_UPDATE_FIELDS))}",
        )
    return SessionUpdate(**changes)  # type: ignore[arg-type]


class AppendPlan(NamedTuple):
    """What an append does: the rows to insert, how many old ones to drop, the new record.

    A named tuple: one is made for every append, in half a frozen dataclass's time.
    """

    session: Session
    insert: list[Message]
    results: list[Message]
    drop_oldest: int

    @property
    def changed(self) -> bool:
        return bool(self.insert)


def plan_append(
    session: Session,
    messages: Sequence[NewMessage],
    stored: Mapping[str, Message],
    now: datetime,
) -> AppendPlan:
    """Give seqs to the new messages; messages whose id is stored already are returned as stored.

    ``messages`` must have been validated (:func:`~chatkeep.core.validation.check_new_messages`):
    their role, content and metadata are stored as they are. ``stored`` maps the ids
    among them that the session holds already to the stored message.
    """
    seq = session.last_seq
    sid = session.id
    seen: dict[str, Message] = dict(stored)
    insert: list[Message] = []
    results: list[Message] = []
    for msg in messages:
        key = msg.id
        if key is not None and key in seen:
            results.append(seen[key])
            continue
        seq += 1
        stored_msg = Message(
            key or new_id(),
            sid,
            seq,
            msg.role,  # type: ignore[arg-type]  # validated: a Role
            msg.content,
            msg.user_id,
            now,
            msg.metadata,  # type: ignore[arg-type]  # validated: read-only, not None
        )
        seen[stored_msg.id] = stored_msg
        insert.append(stored_msg)
        results.append(stored_msg)
    if not insert:
        return AppendPlan(session, [], results, 0)
    total = session.message_count + len(insert)
    drop = max(0, total - session.max_messages)
    new_session = renewed(session, now, message_count=total - drop, last_seq=seq)
    return AppendPlan(new_session, insert, results, drop)


def lock_live(lock: SessionLock | None, now: datetime) -> SessionLock | None:
    """The lock unless it has expired."""
    if lock is None or (lock.expires_at is not None and lock.expires_at <= now):
        return None
    return lock


def new_lock(agent: object, ttl: object, limits: Limits, now: datetime) -> SessionLock:
    name = check_name(agent, "agent", limits, optional=False)
    assert name is not None
    lock_ttl = check_ttl(ttl, "ttl")
    return SessionLock(agent=name, locked_at=now, expires_at=expiry_after(now, lock_ttl))
