"""Records of the Redis backend: sessions and messages as compact JSON, in UTF-8.

The dict forms are those of :mod:`chatkeep.core.codec` (the export format). A value that
cannot be decoded raises :class:`~chatkeep.errors.CorruptDataError` naming its session.
"""

from __future__ import annotations

import json
from datetime import datetime

from chatkeep.core.codec import (
    dumpb,
    message_from_dict,
    message_to_dict,
    session_from_dict,
    session_to_dict,
    to_micros,
)
from chatkeep.core.models import Message, Session
from chatkeep.errors import CorruptDataError


def score(when: datetime) -> int:
    """A time as a sorted-set score: integer microseconds (exact as a double up to 2255)."""
    return to_micros(when)


def encode_session(session: Session) -> bytes:
    return dumpb(session_to_dict(session))


def decode_session(session_id: str, raw: object) -> Session:
    """The session stored under ``session_id``'s key."""
    where = f"session {session_id!r}"
    data = _json(raw, where, "session record")
    session = session_from_dict(data, where)
    if session.id != session_id:
        raise CorruptDataError(where, f"the record holds session {session.id!r}")
    return session


def encode_message(message: Message) -> bytes:
    return dumpb(message_to_dict(message))


def decode_message(session_id: str, raw: object) -> Message:
    where = f"a message of session {session_id!r}"
    return message_from_dict(_json(raw, where, "message record"), session_id, where)


def decode_messages(session_id: str, raws: object) -> list[Message]:
    if not isinstance(raws, list):
        raise CorruptDataError(f"session {session_id!r}", "the message set is not a sorted set")
    return [decode_message(session_id, raw) for raw in raws]


_DECODER = json.JSONDecoder()


def _json(raw: object, where: str, what: str) -> object:
    """``json.loads(raw)``, first tried the cheaper way: for bytes ``json.loads`` detects
    their encoding in Python, which costs about as much as parsing a message record.
    Text this cannot parse whole (another encoding, surrounding whitespace, bad JSON)
    goes to ``json.loads``, which answers or raises as it would."""
    if not isinstance(raw, bytes):
        raise CorruptDataError(where, f"bad {what} (a {type(raw).__name__}, not bytes)")
    try:
        text = raw.decode()
        value, end = _DECODER.raw_decode(text)
        if end == len(text):
            return value
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        pass
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptDataError(where, f"bad {what} ({exc})") from None
