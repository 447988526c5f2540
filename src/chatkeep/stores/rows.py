"""What the SQL backends share: a session as column values, and search tokens.

Times are integer microseconds since the epoch, ``ttl`` integer microseconds, metadata
compact JSON text. Each backend stores ``tags`` its own way, so they are passed apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from chatkeep.core.codec import dumps, from_micros, opt_datetime, opt_micros, to_micros
from chatkeep.core.frozen import EMPTY, freeze_object
from chatkeep.core.models import JSON, Persistence, Session, SessionLock
from chatkeep.core.query import words
from chatkeep.errors import CorruptDataError

_MICROSECOND = timedelta(microseconds=1)
_MARK = "\u01c2"


def session_values(s: Session) -> tuple[object, ...]:
    """The session's column values, in the order of the backends' ``SESSION_COLUMNS``;
    ``tags`` (the 12th) as a sorted list."""
    lock = s.lock
    return (
        s.id,
        s.owner,
        s.device_id,
        s.persistence.value,
        to_micros(s.created_at),
        to_micros(s.updated_at),
        to_micros(s.last_activity_at),
        opt_micros(s.expires_at),
        None if s.ttl is None else s.ttl // _MICROSECOND,
        s.max_messages,
        dumps(s.metadata),
        sorted(s.tags),
        s.version,
        s.message_count,
        s.last_seq,
        None if lock is None else lock.agent,
        None if lock is None else to_micros(lock.locked_at),
        None if lock is None else opt_micros(lock.expires_at),
    )


def session_from_values(r: Sequence[Any], tags: Iterable[str]) -> Session:
    """The session of column values as :func:`session_values` gives them (``tags``
    decoded by the caller)."""
    try:
        return Session(
            id=r[0],
            owner=r[1],
            device_id=r[2],
            persistence=Persistence(r[3]),
            created_at=from_micros(r[4]),
            updated_at=from_micros(r[5]),
            last_activity_at=from_micros(r[6]),
            expires_at=opt_datetime(r[7]),
            ttl=None if r[8] is None else timedelta(microseconds=r[8]),
            max_messages=r[9],
            metadata=EMPTY if r[10] == "{}" else freeze_object(json.loads(r[10])),
            tags=frozenset(tags),
            version=r[12],
            message_count=r[13],
            last_seq=r[14],
            lock=None
            if r[15] is None
            else SessionLock(r[15], from_micros(r[16]), opt_datetime(r[17])),
        )
    except (ValueError, TypeError) as exc:
        raise CorruptDataError(f"session {r[0]!r}", f"bad session row ({exc})") from exc


def _lock(agent: str | None, locked: int, unlocks: int | None) -> SessionLock | None:
    return None if agent is None else SessionLock(agent, from_micros(locked), opt_datetime(unlocks))


def token(word: str) -> str:
    """The one search token for ``word``: itself if it is made of ``[0-9a-z]``, else its
    UTF-8 in hex after a mark.

    Full-text engines split or fold many other strings (combining marks, Greek with
    diacritics, capitals, punctuation); as one opaque token each, equal tokens mean
    equal strings, so search matches whole words exactly as the reference does, and the
    two kinds of tokens never collide (the mark is not ASCII).
    """
    if word.isascii() and word.isalnum() and word.lower() == word:  # [0-9a-z]+
        return word
    return _MARK + word.encode("utf-8", "surrogatepass").hex()


def index_words(*values: JSON) -> set[str]:
    """The words of JSON values, as the search index holds them (see :func:`token`)."""
    found: set[str] = set()
    for value in values:
        found |= words(value)
    return found
