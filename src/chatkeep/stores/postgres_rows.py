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
import re
from collections.abc import Sequence
from typing import Any

from chatkeep.core.codec import dumps, from_micros, to_micros
from chatkeep.core.frozen import EMPTY, freeze, freeze_object
from chatkeep.core.models import JSON, Message, Role, Session
from chatkeep.core.query import words
from chatkeep.errors import CorruptDataError
from chatkeep.stores.rows import index_words, session_from_values, session_values
from chatkeep.stores.rows import token as plain_token

_ROLES = {role.value: role for role in Role}
_LONG = 512
_HASHED = "\u01c1"
_PLAIN_WORDS = re.compile(rf"[0-9a-z]{{1,{_LONG}}}(?: [0-9a-z]{{1,{_LONG}}})*")
"""Space-separated words that are each their own lexeme (see :func:`token`)."""

TEXT, JSON_VALUE, ESCAPED_TEXT = 0, 1, 2
"""``messages.content_kind``: plain text, a JSON object or array, or text holding U+0000
(which PostgreSQL text cannot store) kept as a JSON string."""


def token(word: str) -> str:
    """The lexeme of ``word``: the SQLite backend's token (the word itself when made of
    ``[0-9a-z]``, else a mark and its UTF-8 in hex), or for a token longer than a
    ``tsvector`` lexeme may be, another mark and its SHA-256."""
    found = plain_token(word)
    if len(found) <= _LONG:
        return found
    return _HASHED + hashlib.sha256(word.encode("utf-8", "surrogatepass")).hexdigest()


def tokens(*values: JSON) -> list[str] | None:
    """The lexemes of the words of JSON values, sorted; ``None`` when there are none."""
    return sorted({token(w) for w in index_words(*values)}) or None


def tsquery(terms: Sequence[str]) -> str:
    """A ``tsquery`` matching documents that hold every term's lexeme. Lexemes are made
    of ``[0-9a-z]`` and two marks only, so quoting them needs no escapes."""
    return " & ".join(f"'{token(t)}'" for t in terms)


def session_row(s: Session) -> tuple[object, ...]:
    """The values of :data:`postgres_query.SESSION_COLUMNS` (tags as a text array)."""
    return session_values(s)


def decode_session(r: Sequence[Any]) -> Session:
    """The session of a row of :data:`postgres_query.SESSION_COLUMNS`."""
    return session_from_values(r, r[11] or ())


def message_row(m: Message) -> tuple[object, ...]:
    """The message's column values: seq, id, role, content, content_kind, user_id,
    created_at, metadata, words (space-separated lexemes, or ``None``)."""
    content = m.content
    if not isinstance(content, str):
        stored, kind = dumps(content), JSON_VALUE
    elif "\x00" in content:
        stored, kind = dumps(content), ESCAPED_TEXT
    else:
        stored, kind = content, TEXT
    return (
        m.seq,
        m.id,
        m.role.value,
        stored,
        kind,
        m.user_id,
        to_micros(m.created_at),
        dumps(m.metadata),
        _lexemes(content, m.metadata),
    )


def _lexemes(content: JSON, metadata: JSON) -> str | None:
    """The lexemes of the words of a message, space-separated in no order (the
    ``tsvector`` made of them sorts them); ``None`` when there are none. Most often
    every word is its own lexeme, found with one test of them all."""
    found = index_words(content, metadata) if metadata else words(content)
    if not found:
        return None
    joined = " ".join(found)
    if _PLAIN_WORDS.fullmatch(joined):
        return joined
    return " ".join({token(w) for w in found})


def message_columns(messages: Sequence[Message]) -> list[list[object]]:
    """The messages' :func:`message_row` values as nine columns."""
    columns: list[list[object]] = [[] for _ in range(9)]
    for m in messages:
        for column, value in zip(columns, message_row(m), strict=True):
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
