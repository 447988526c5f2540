"""Listing and search: filters, sort order, keyset cursors, and the reference matcher.

SQL backends translate a :class:`SessionFilter` into a query; in-process backends use
:func:`matches` and :func:`page` directly. Both must give the same answer.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from chatkeep.core.codec import from_micros, to_micros
from chatkeep.core.models import JSON, Message, Session
from chatkeep.errors import InvalidInputError

MAX_PAGE = 1000


class SortField(enum.StrEnum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    LAST_ACTIVITY_AT = "last_activity_at"


@dataclass(frozen=True, slots=True)
class SessionSort:
    field: SortField = SortField.LAST_ACTIVITY_AT
    descending: bool = True

    @classmethod
    def parse(cls, text: str) -> SessionSort:
        """``"created_at"`` (ascending) or ``"-created_at"`` (descending)."""
        desc = text.startswith("-")
        name = text[1:] if desc else text
        try:
            return cls(SortField(name), desc)
        except ValueError:
            choices = ", ".join(f.value for f in SortField)
            raise InvalidInputError("sort", f"{text!r} is not one of: {choices}") from None


def check_sort(sort: object) -> SessionSort:
    """A :class:`SessionSort`, given as one, as text like ``"-created_at"``, or ``None``."""
    if sort is None:
        return SessionSort()
    if isinstance(sort, str):
        return SessionSort.parse(sort)
    if not isinstance(sort, SessionSort):
        raise InvalidInputError("sort", "must be a SessionSort or a field name like '-created_at'")
    return sort


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Sessions to list. Every given condition must hold (tags: all of them)."""

    owner: str | None = None
    device_id: str | None = None
    tags: frozenset[str] = frozenset()
    metadata: Mapping[str, JSON] = field(default_factory=dict)
    created_after: datetime | None = None
    created_before: datetime | None = None
    active_after: datetime | None = None
    active_before: datetime | None = None
    has_messages: bool | None = None
    include_expired: bool = False


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[Session]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SearchHit:
    session: Session
    messages: list[Message]
    """The session's messages that match (newest first, at most a few)."""


def sort_value(session: Session, sort: SessionSort) -> datetime:
    value: datetime = getattr(session, sort.field.value)
    return value


def matches(session: Session, flt: SessionFilter, now: datetime) -> bool:
    """The reference meaning of a filter, used by in-process stores and by tests."""
    if not flt.include_expired and session.is_expired(now):
        return False
    if flt.owner is not None and session.owner != flt.owner:
        return False
    if flt.device_id is not None and session.device_id != flt.device_id:
        return False
    if not flt.tags <= session.tags:
        return False
    for key, value in flt.metadata.items():
        if key not in session.metadata or session.metadata[key] != value:
            return False
    if flt.created_after is not None and session.created_at <= flt.created_after:
        return False
    if flt.created_before is not None and session.created_at >= flt.created_before:
        return False
    if flt.active_after is not None and session.last_activity_at <= flt.active_after:
        return False
    if flt.active_before is not None and session.last_activity_at >= flt.active_before:
        return False
    return flt.has_messages is None or (session.message_count > 0) == flt.has_messages


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last session's sort value and id, and the sort used."""

    sort: SessionSort
    value: datetime
    session_id: str

    def encode(self) -> str:
        raw = json.dumps(
            [self.sort.field.value, self.sort.descending, to_micros(self.value), self.session_id],
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, sort: SessionSort) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            field_name, desc, micros, session_id = json.loads(raw)
            cursor = cls(
                SessionSort(SortField(field_name), bool(desc)), from_micros(micros), str(session_id)
            )
        except (ValueError, TypeError, OverflowError, binascii.Error):
            raise InvalidInputError("cursor", "is not a cursor returned by list_sessions") from None
        if cursor.sort != sort:
            raise InvalidInputError("cursor", "was made for another sort order")
        return cursor

    def admits(self, session: Session) -> bool:
        """True if ``session`` comes after this cursor in the sort order."""
        key = (sort_value(session, self.sort), session.id)
        mark = (self.value, self.session_id)
        return key < mark if self.sort.descending else key > mark


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError("limit", f"must be an integer from 1 to {MAX_PAGE}")
    return limit


def page(
    sessions: Iterable[Session],
    flt: SessionFilter,
    sort: SessionSort,
    limit: int,
    cursor: Cursor | None,
    now: datetime,
) -> SessionPage:
    """Filter, sort and cut one page out of ``sessions`` (the in-process way)."""
    chosen = [s for s in sessions if matches(s, flt, now) and (cursor is None or cursor.admits(s))]
    chosen.sort(key=lambda s: (sort_value(s, sort), s.id), reverse=sort.descending)
    return cut_page(chosen, sort, limit)


def cut_page(ordered: list[Session], sort: SessionSort, limit: int) -> SessionPage:
    """The first ``limit`` of ``ordered`` (which may hold one more), and the next cursor."""
    if len(ordered) <= limit:
        return SessionPage(ordered[:limit], None)
    last = ordered[limit - 1]
    return SessionPage(ordered[:limit], Cursor(sort, sort_value(last, sort), last.id).encode())


_TERM = re.compile(r"[^\W_]+")
_ASCII_SEPARATORS = bytes(c if chr(c).isalnum() else ord(" ") for c in range(128)).ljust(256, b" ")
"""Every ASCII letter and digit as itself, every other byte as a space."""


def text_words(text: str) -> set[str]:
    """The words of ``text`` (runs of letters and digits), case-folded."""
    if text.isascii():
        # The same words, found faster: in ASCII, letters and digits are [A-Za-z0-9]
        # and case folding is lower-casing.
        return set(text.lower().encode().translate(_ASCII_SEPARATORS).decode().split())
    return {t.casefold() for t in _TERM.findall(text)}


def search_terms(query: object) -> list[str]:
    """The words of a search query, lower-cased; every one of them must match."""
    if not isinstance(query, str):
        raise InvalidInputError("query", "must be a string")
    terms = [t.casefold() for t in _TERM.findall(query)]
    if not terms:
        raise InvalidInputError("query", "must contain at least one word")
    return list(dict.fromkeys(terms))


def words(value: JSON) -> set[str]:
    """The words in a JSON value (text, and the strings inside objects and arrays)."""
    if isinstance(value, str):
        return text_words(value)
    if isinstance(value, dict):
        out: set[str] = set()
        for key, item in value.items():
            out |= words(key) | words(item)
        return out
    if isinstance(value, list):
        out = set()
        for item in value:
            out |= words(item)
        return out
    if value is None or isinstance(value, bool):
        return set()
    return words(str(value))
