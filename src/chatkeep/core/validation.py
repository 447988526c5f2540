"""Input checks, written once for every store. Each failure names the field."""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from chatkeep.core.frozen import EMPTY, freeze, freeze_object
from chatkeep.core.ids import check_device_id, check_id
from chatkeep.core.models import (
    JSON,
    ROLES,
    Content,
    JSONObject,
    NewMessage,
    Persistence,
    Role,
)
from chatkeep.errors import InvalidInputError

MAX_WINDOW = 1_000_000
MAX_TTL = timedelta(days=36_500)


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied to everything a caller stores."""

    max_content_bytes: int = 1_048_576
    max_metadata_bytes: int = 65_536
    max_tags: int = 64
    max_tag_length: int = 128
    max_name_length: int = 256
    max_batch: int = 1_000


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def utf8_size(text: str, field: str) -> int:
    """The UTF-8 size of ``text``; lone surrogates cannot be stored and are refused."""
    if text.isascii():
        return len(text)  # one byte a character
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInputError(field, "is not valid Unicode text (lone surrogate)") from None


def check_name(value: object, field: str, limits: Limits, *, optional: bool = True) -> str | None:
    """An owner, user id or agent name: a short printable string."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limits.max_name_length:
        raise InvalidInputError(
            field, f"must be a non-empty string of at most {limits.max_name_length} characters"
        )
    if _has_control(value):
        raise InvalidInputError(field, "must not contain control characters")
    utf8_size(value, field)
    return value


def check_optional_device_id(value: object) -> str | None:
    return None if value is None else check_device_id(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode_json(value: object, field: str) -> str:
    """Compact JSON for ``value``, or :class:`InvalidInputError` if it is not JSON."""
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(field, f"is not JSON-serialisable ({exc})") from None


def _check_keys(value: object, field: str) -> None:
    """JSON objects must have string keys at every depth (json.dumps would coerce them)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(field, f"object keys must be strings, got {key!r}")
            _check_keys(item, field)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(item, field)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(field, "numbers must be finite")


def check_metadata(value: object, field: str, limits: Limits) -> JSONObject:
    """A JSON object, returned as a read-only deep copy (``None``: the empty object)."""
    if value is None:
        return EMPTY
    if not isinstance(value, Mapping):
        raise InvalidInputError(field, f"must be a JSON object, got {type(value).__name__}")
    _check_keys(value, field)
    text = encode_json(dict(value), field)
    if utf8_size(text, field) > limits.max_metadata_bytes:
        raise InvalidInputError(field, f"is larger than {limits.max_metadata_bytes} bytes")
    return freeze_object(json.loads(text))


def check_tags(value: object, field: str, limits: Limits) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidInputError(field, "must be a set or list of strings")
    try:
        tags = frozenset(value)
    except TypeError:
        raise InvalidInputError(field, "must be a set or list of strings") from None
    if len(tags) > limits.max_tags:
        raise InvalidInputError(field, f"at most {limits.max_tags} tags are allowed")
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > limits.max_tag_length:
            raise InvalidInputError(
                field,
                f"each tag must be a non-empty string of at most {limits.max_tag_length}"
                " characters",
            )
        if _has_control(tag):
            raise InvalidInputError(field, "tags must not contain control characters")
        utf8_size(tag, field)
    return tags


def check_ttl(value: object, field: str = "ttl") -> timedelta | None:
    """A positive duration (a timedelta or seconds), or ``None`` for "never expires"."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInputError(field, "must be a duration")
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > MAX_TTL.total_seconds():
            raise InvalidInputError(field, f"must be at most {MAX_TTL.days} days")
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta):
        raise InvalidInputError(
            field, f"must be a timedelta or seconds, got {type(value).__name__}"
        )
    if value <= timedelta(0):
        raise InvalidInputError(field, "must be positive")
    if value > MAX_TTL:
        raise InvalidInputError(field, f"must be at most {MAX_TTL.days} days")
    return value


def check_max_messages(value: object, field: str = "max_messages") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WINDOW:
        raise InvalidInputError(field, f"must be an integer from 1 to {MAX_WINDOW}")
    return value


E = TypeVar("E", bound=enum.Enum)


def check_choice(kind: type[E], value: object, field: str) -> E:
    """A member of the enum ``kind``, given as the member or its value."""
    try:
        return kind(value)
    except (ValueError, TypeError):
        pass
    choices = ", ".join(str(m.value) for m in kind)
    raise InvalidInputError(field, f"{value!r} is not one of: {choices}")


def check_persistence(value: object, field: str = "persistence") -> Persistence:
    return check_choice(Persistence, value, field)


def check_role(value: object, field: str) -> Role:
    if type(value) is Role:
        return value
    found = ROLES.get(value) if type(value) is str else None
    return check_choice(Role, value, field) if found is None else found


def check_content(value: object, field: str, limits: Limits) -> Content:
    if isinstance(value, str):
        size = utf8_size(value, field)
        content: Content = value
    elif isinstance(value, Mapping | list | tuple):
        _check_keys(value, field)
        text = encode_json(dict(value) if isinstance(value, Mapping) else list(value), field)
        size = utf8_size(text, field)
        content = freeze(json.loads(text))  # type: ignore[assignment]
    else:
        raise InvalidInputError(
            field, f"must be text or a JSON object or array, got {type(value).__name__}"
        )
    if size > limits.max_content_bytes:
        raise InvalidInputError(
            field, f"is larger than the limit of {limits.max_content_bytes} bytes"
        )
    return content


def check_new_messages(messages: object, limits: Limits) -> list[NewMessage]:
    """Validate a batch to append; returns normalised copies."""
    if isinstance(messages, NewMessage):
        messages = [messages]
    if type(messages) is not list and (
        not isinstance(messages, Sequence) or isinstance(messages, str)
    ):
        raise InvalidInputError("messages", "must be a list of NewMessage")
    if len(messages) > limits.max_batch:
        raise InvalidInputError("messages", f"at most {limits.max_batch} messages per call")
    out: list[NewMessage] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, NewMessage):
            raise InvalidInputError(where, f"must be a NewMessage, got {type(msg).__name__}")
        out.append(
            NewMessage(
                role=check_role(msg.role, f"{where}.role"),
                content=check_content(msg.content, f"{where}.content", limits),
                id=None if msg.id is None else check_id(msg.id, f"{where}.id"),
                user_id=None
                if msg.user_id is None
                else check_name(msg.user_id, f"{where}.user_id", limits),
                metadata=EMPTY
                if msg.metadata is None
                else check_metadata(msg.metadata, f"{where}.metadata", limits),
            )
        )
    return out


def check_when(value: object, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError(field, "must be a timezone-aware datetime")
    return value


MAX_INT = 2**63 - 1
"""The largest count, seq or version a store keeps (a signed 64-bit integer)."""


def check_positive_int(value: object, field: str, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_INT:
        raise InvalidInputError(field, f"must be an integer from {low} to {MAX_INT}")
    return value


def merged_metadata(base: JSONObject, changes: Mapping[str, JSON]) -> JSONObject:
    out = dict(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out
