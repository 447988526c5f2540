"""Rows of the SQLite backend: sessions and messages to and from column values.

Times are integer microseconds since the epoch, ``ttl`` is integer microseconds, JSON
values are compact JSON text (see :mod:`chatkeep.core.codec`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chatkeep.core.codec import dumps, from_micros, to_micros
from chatkeep.core.frozen import EMPTY, freeze, freeze_object
from chatkeep.core.models import JSON, Message, Role, Session
from chatkeep.errors import CorruptDataError
from chatkeep.stores.rows import index_words, session_from_values, session_values, token

_ROLES = {role.value: role for role in Role}


def index_text(*values: Any) -> str:
    """The search text of JSON values: the tokens of all their words, sorted, space-separated."""
    return " ".join(sorted(token(w) for w in index_words(*values)))


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query for rows holding every term: each term's token as a quoted string,
    so that nothing a user types is read as FTS5 syntax."""
    return " ".join('"' + token(t).replace('"', '""') + '"' for t in terms)


def session_row(s: Session) -> tuple[object, ...]:
    """The values of :data:`sqlite_query.SESSION_COLUMNS` (tags as JSON text)."""
    values = session_values(s)
    return (*values[:11], dumps(list[JSON](sorted(s.tags))), *values[12:])


def decode_session(r: Sequence[Any]) -> Session:
    """The session of a row of :data:`sqlite_query.SESSION_COLUMNS`."""
    try:
        tags = [] if r[11] == "[]" else json.loads(r[11])
    except ValueError as exc:
        raise CorruptDataError(f"session {r[0]!r}", f"bad tags ({exc})") from exc
    return session_from_values(r, tags)


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
