"""Rows of the SQLite backend: sessions and messages to and from column values.

Times are integer microseconds since the epoch, ``ttl`` is integer microseconds, JSON
values are compact JSON text (see :mod:`chatkeep.core.codec`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from chatkeep.core.codec import dumps, from_micros, opt_datetime, opt_micros, to_micros
from chatkeep.core.frozen import EMPTY, freeze, freeze_object
from chatkeep.core.models import Message, Persistence, Role, Session, SessionLock
from chatkeep.core.query import words
from chatkeep.errors import CorruptDataError

_MICROSECOND = timedelta(microseconds=1)
_ROLES = {role.value: role for role in Role}
_MARK = "\u01c2"
_PLAIN = re.compile("[0-9a-z]+")


def token(word: str) -> str:
    """The one search token for ``word``: itself if it is made of ``[0-9a-z]``, else its
    UTF-8 in hex after a mark.

    The FTS5 ``unicode61`` tokenizer splits or folds many other strings (combining marks,
    Greek with diacritics, capitals, punctuation); as one opaque token each, equal tokens
    mean equal strings, so search matches whole words exactly as the reference does, and
    the two kinds of tokens never collide (the mark is not ASCII).
    """
    if _PLAIN.fullmatch(word):
        return word
    return _MARK + word.encode("utf-8", "surrogatepass").hex()


def index_text(*values: Any) -> str:
    """The search text of JSON values: the tokens of all their words, sorted, space-separated."""
    found: set[str] = set()
    for value in values:
        found |= words(value)
    return " ".join(sorted(token(w) for w in found))


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query for rows holding every term: each term's token as a quoted string,
    so that nothing a user types is read as FTS5 syntax."""
    return " ".join('"' + token(t).replace('"', '""') + '"' for t in terms)


def session_row(s: Session) -> tuple[object, ...]:
    """The values of :data:`sqlite_query.SESSION_COLUMNS`."""
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
        dumps([t for t in sorted(s.tags)]),
        s.version,
        s.message_count,
        s.last_seq,
        None if lock is None else lock.agent,
        None if lock is None else to_micros(lock.locked_at),
        None if lock is None else opt_micros(lock.expires_at),
    )


def decode_session(r: Sequence[Any]) -> Session:
    """The session of a row of :data:`sqlite_query.SESSION_COLUMNS`."""
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
            tags=frozenset() if r[11] == "[]" else frozenset(json.loads(r[11])),
            version=r[12],
            message_count=r[13],
            last_seq=r[14],
            lock=_decode_lock(r[15], r[16], r[17]),
        )
    except (ValueError, TypeError) as exc:
        raise CorruptDataError(f"session {r[0]!r}", f"bad session row ({exc})") from exc


def _decode_lock(agent: str | None, locked: int, unlocks: int | None) -> SessionLock | None:
    return None if agent is None else SessionLock(agent, from_micros(locked), opt_datetime(unlocks))


def message_row(session_id: str, m: Message, doc: int | None) -> tuple[object, ...]:
    """The values of a ``messages`` row; ``doc`` is its row in ``message_search``."""
    text = isinstance(m.content, str)
    return (
        session_id,
        m.seq,
        m.id,
        m.role.value,
        m.content if isinstance(m.content, str) else dumps(m.content),
        0 if text else 1,
        m.user_id,
        to_micros(m.created_at),
        dumps(m.metadata),
        doc,
    )


def decode_message(session_id: str, row: Sequence[Any]) -> Message:
    """The message of a row of :data:`sqlite_query.MESSAGE_COLUMNS`."""
    seq, mid, role, content, is_json, user_id, created, metadata = row
    try:
        return Message(
            mid,
            session_id,
            seq,
            _ROLES[role],
            freeze(json.loads(content)) if is_json else content,  # type: ignore[arg-type]
            user_id,
            from_micros(created),
            EMPTY if metadata == "{}" else freeze_object(json.loads(metadata)),
        )
    except (KeyError, ValueError, TypeError) as exc:
        where = f"message {mid!r} of session {session_id!r}"
        raise CorruptDataError(where, f"bad message row ({exc!r})") from exc
