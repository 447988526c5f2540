"""The data model: sessions, messages, and what callers give to create or change them."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias, TypeVar

from chatkeep.core.frozen import EMPTY

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None
"""Any value that survives a round trip through JSON."""

JSONObject: TypeAlias = dict[str, JSON]
Content: TypeAlias = str | dict[str, JSON] | list[JSON]
"""A message's content: text, or a JSON object or array (tool calls, structured parts)."""


class Persistence(enum.StrEnum):
    """Where a session's history lives; fixed when the session is created."""

    NONE = "none"
    CLIENT = "client"
    REDIS = "redis"
    DURABLE = "durable"


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "not given", as distinct from ``None``."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET

ROLES: Final[Mapping[str, Role]] = {role.value: role for role in Role}
"""Each role by its value: a dict lookup, much quicker than ``Role(value)``."""

R = TypeVar("R")


_Setter: TypeAlias = Callable[[Any, Any], None]
_fields: dict[type, tuple[frozenset[str], tuple[tuple[str, _Setter], ...]]] = {}


def _slots(kind: type) -> tuple[frozenset[str], tuple[tuple[str, _Setter], ...]]:
    """A record class's field names, and each field's slot setter (the slot's own
    descriptor: it skips the checks of ``object.__setattr__``, in half its time)."""
    found = _fields.get(kind)
    if found is None:
        names: tuple[str, ...] = kind.__slots__  # type: ignore[attr-defined]
        setters = tuple((name, kind.__dict__[name].__set__) for name in names)
        found = _fields[kind] = (frozenset(names), setters)
    return found


def evolve(record: R, **changes: Any) -> R:
    """``dataclasses.replace`` for a record of this module whose fields hold valid
    values already: the copy is filled in slot by slot without running ``__init__``,
    several times faster than ``dataclasses.replace`` for a :class:`Session`."""
    kind = type(record)
    names, setters = _slots(kind)
    if not names.issuperset(changes):
        unknown = sorted(changes.keys() - names)
        raise TypeError(f"{kind.__name__} has no field {', '.join(unknown)}")
    copy: R = object.__new__(kind)
    for name, put in setters:
        put(copy, changes[name] if name in changes else getattr(record, name))
    return copy


@dataclass(frozen=True, slots=True)
class SessionLock:
    """The "active agent" of a conversation (a device's current handler)."""

    agent: str
    locked_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation. Records read from a store are read-only, ``metadata`` included."""

    id: str
    owner: str | None
    device_id: str | None
    persistence: Persistence
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    expires_at: datetime | None
    ttl: timedelta | None
    max_messages: int
    metadata: JSONObject
    tags: frozenset[str]
    version: int
    message_count: int
    last_seq: int
    """The highest ``seq`` ever given in this session (0 before the first message)."""
    lock: SessionLock | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message. Read-only, like its JSON ``content`` and ``metadata``."""

    id: str
    session_id: str
    seq: int
    role: Role
    content: Content
    user_id: str | None
    created_at: datetime
    metadata: JSONObject = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append. ``id`` is an optional idempotency key chosen by the client."""

    role: Role | str
    content: Content
    id: str | None = None
    user_id: str | None = None
    metadata: Mapping[str, JSON] | None = None


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """Changes to a session; fields left :data:`UNSET` are kept as they are.

    ``metadata``/``tags`` replace the whole value; ``merge_metadata`` merges keys
    (a ``None`` value removes the key), ``add_tags``/``remove_tags`` edit the set.
    """

    owner: str | Unset | None = UNSET
    device_id: str | Unset | None = UNSET
    ttl: timedelta | Unset | None = UNSET
    max_messages: int | Unset = UNSET
    metadata: Mapping[str, JSON] | Unset = UNSET
    merge_metadata: Mapping[str, JSON] | Unset = UNSET
    tags: frozenset[str] | set[str] | list[str] | Unset = UNSET
    add_tags: frozenset[str] | set[str] | list[str] | Unset = UNSET
    remove_tags: frozenset[str] | set[str] | list[str] | Unset = UNSET
    persistence: Persistence | str | Unset = UNSET
