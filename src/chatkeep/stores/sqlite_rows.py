"""Rows of the SQLite backend: sessions and messages to and from column values.

Times are integer microseconds since the epoch, ``ttl`` is integer microseconds, JSON
values are compact JSON text (see :mod:`chatkeep.core.codec`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chatkeep.core.codec import dumps, from_micros, opt_micros, to_micros
from chatkeep.core.frozen import EMPTY, FrozenDict, freeze, freeze_object
from chatkeep.core.models import JSON, Message, Role, Session
from chatkeep.errors import CorruptDataError
from chatkeep.stores.rows import index_words, session_from_values, session_values, token

_ROLES = {role.value: role for role in Role}
_ROLE_TEXT = {role: role.value for role in Role}
"""A role's text, looked up faster than ``role.value`` (an enum property) is read."""


def index_text(*values: Any) -> str:
    """The search text of JSON values: the tokens of all their words, sorted, space-separated."""
    found = index_words(*values)
    text = " ".join(sorted(found))
    # Most words are their own token (``[0-9a-z]+``): then so is the whole text.
    simple = text.isascii() and text.replace(" ", "").isalnum() and text.lower() == text
    if simple and "" not in found:
        return text
    return " ".join(sorted(token(w) for w in found))


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query for rows holding every term: each term's token as a quoted string,
    so that nothing a user types is read as FTS5 syntax."""
    return " ".join('"' + token(t).replace('"', '""') + '"' for t in terms)


def session_row(s: Session) -> tuple[object, ...]:
    """The values of :data:`sqlite_query.SESSION_COLUMNS` (tags as JSON text)."""
    values = session_values(s)
    return (*values[:11], dumps(list[JSON](sorted(s.tags))), *values[12:])


_ALL_COLUMNS = range(18)
RENEWED = (5, 6, 7, 12, 13, 14)
"""The columns a write that keeps a session's settings changes: ``updated_at``,
``last_activity_at``, ``expires_at``, ``version``, ``message_count``, ``last_seq``."""


def session_row_after(
    before: Session, row: tuple[object, ...], s: Session
) -> tuple[tuple[object, ...], Sequence[int]]:
    """:func:`session_row` of ``s``, given ``row``, the row of ``before``, and the
    columns where the two rows may differ.

    When ``s`` holds the very objects of ``before`` in every other field (as a session
    renewed by an append does), only the :data:`RENEWED` columns are encoded again; the
    others are taken from ``row``. Metadata is reused only when it is read-only.
    """
    if (
        s.metadata is before.metadata
        and type(s.metadata) is FrozenDict
        and s.tags is before.tags
        and s.lock is before.lock
        and s.id is before.id
        and s.owner is before.owner
        and s.device_id is before.device_id
        and s.persistence is before.persistence
        and s.created_at is before.created_at
        and s.ttl is before.ttl
        and s.max_messages is before.max_messages
    ):
        return (
            *row[:5],
            to_micros(s.updated_at),
            to_micros(s.last_activity_at),
            opt_micros(s.expires_at),
            *row[8:12],
            s.version,
            s.message_count,
            s.last_seq,
            *row[15:],
        ), RENEWED
    return session_row(s), _ALL_COLUMNS


def decode_session(r: Sequence[Any]) -> Session:
    """The session of a row of :data:`sqlite_query.SESSION_COLUMNS`."""
    try:
        tags = [] if r[11] == "[]" else json.loads(r[11])
    except ValueError as exc:
        raise CorruptDataError(f"session {r[0]!r}", f"bad tags ({exc})") from exc
    return session_from_values(r, tags)


def message_row(session_id: str, m: Message, doc: int | None) -> tuple[object, ...]:
    """The values of a ``messages`` row; ``doc`` is its row in ``message_search``."""
    content = m.content
    text = isinstance(content, str)
    return (
        session_id,
        m.seq,
        m.id,
        _ROLE_TEXT[m.role],
        content if text else dumps(content),
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
