"""Rows of the PostgreSQL backend: sessions and messages to and from column values.

Times are integer microseconds since the epoch and ``ttl`` integer microseconds, as in
the SQLite backend; JSON values are compact JSON text (see :mod:`chatkeep.core.codec`).
Search words are stored as lexemes of a ``tsvector`` built with ``array_to_tsvector``,
which takes each token as it is (no parser, no dictionary), and queried with a
``tsquery`` of the same tokens ANDed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from chatkeep.core.codec import dumps, from_micros, opt_datetime, opt_micros, to_micros
from chatkeep.core.frozen import EMPTY, freeze, freeze_object
from chatkeep.core.models import JSON, Message, Persistence, Role, Session, SessionLock
from chatkeep.core.query import words
from chatkeep.errors import CorruptDataError
from chatkeep.stores.sqlite_rows import token as sqlite_token

_MICROSECOND = timedelta(microseconds=1)
_ROLES = {role.value: role for role in Role}
_LONG = 512
_HASHED = "\u01c1"

TEXT, JSON_VALUE, ESCAPED_TEXT = 0, 1, 2
"""``messages.content_kind``: plain text, a JSON object or array, or text holding U+0000
(which PostgreSQL text cannot store) kept as a JSON string."""


def token(word: str) -> str:
    """The lexeme of ``word``: the SQLite backend's token (the word itself when made of
    ``[0-9a-z]``, else a mark and its UTF-8 in hex), or for a token longer than a
    ``tsvector`` lexeme may be, another mark and its SHA-256."""
    found = sqlite_token(word)
    if len(found) <= _LONG:
        return found
    return _HASHED + hashlib.sha256(word.encode("utf-8", "surrogatepass")).hexdigest()


def tokens(*values: JSON) -> list[str] | None:
    """The lexemes of the words of JSON values, sorted; ``None`` when there are none."""
    found: set[str] = set()
    for value in values:
        found |= words(value)
    return sorted({token(w) for w in found}) or None


def tsquery(terms: Sequence[str]) -> str:
    """A ``tsquery`` matching documents that hold every term's lexeme. Lexemes are made
    of ``[0-9a-z]`` and two marks only, so quoting them needs no escapes."""
    return " & ".join(f"'{token(t)}'" for t in terms)


def session_row(s: Session) -> tuple[object, ...]:
    """The values of :data:`postgres_query.SESSION_COLUMNS`."""
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


def decode_session(r: Sequence[Any]) -> Session:
    """The session of a row of :data:`postgres_query.SESSION_COLUMNS`."""
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
            tags=frozenset(r[11]),
            version=r[12],
            message_count=r[13],
            last_seq=r[14],
            lock=None
            if r[15] is None
            else SessionLock(r[15], from_micros(r[16]), opt_datetime(r[17])),
        )
    except (ValueError, TypeError) as exc:
        raise CorruptDataError(f"session {r[0]!r}", f"bad session row ({exc})") from exc


def message_columns(messages: Sequence[Message]) -> list[list[object]]:
    """The messages as columns: seq, id, role, content, content_kind, user_id,
    created_at, metadata, words (space-separated lexemes, or ``None``)."""
    columns: list[list[object]] = [[] for _ in range(9)]
    for m in messages:
        if not isinstance(m.content, str):
            content, kind = dumps(m.content), JSON_VALUE
        elif "\x00" in m.content:
            content, kind = dumps(m.content), ESCAPED_TEXT
        else:
            content, kind = m.content, TEXT
        lexemes = tokens(m.content, m.metadata)
        row = (
            m.seq,
            m.id,
            m.role.value,
            content,
            kind,
            m.user_id,
            to_micros(m.created_at),
            dumps(m.metadata),
            None if lexemes is None else " ".join(lexemes),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def decode_message(session_id: str, row: Sequence[Any]) -> Message:
    """The message of a row of :data:`postgres_query.MESSAGE_COLUMNS`."""
    seq, mid, role, content, kind, user_id, created, metadata = row
    try:
        return Message(
            mid,
            session_id,
            seq,
            _ROLES[role],
            content if kind == TEXT else _content(content, kind),
            user_id,
            from_micros(created),
            EMPTY if metadata == "{}" else freeze_object(json.loads(metadata)),
        )
    except (KeyError, ValueError, TypeError) as exc:
        where = f"message {mid!r} of session {session_id!r}"
        raise CorruptDataError(where, f"bad message row ({exc!r})") from exc


def _content(text: str, kind: int) -> Any:
    value = json.loads(text)
    if kind == ESCAPED_TEXT and isinstance(value, str):
        return value
    if kind == JSON_VALUE and isinstance(value, dict | list):
        return freeze(value)
    raise ValueError(f"content of kind {kind} is {type(value).__name__}")
