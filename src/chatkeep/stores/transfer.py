"""The export format: JSONL, a header line and then one session (with its messages) per line."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from chatkeep.core.codec import (
    dumps,
    message_from_dict,
    message_to_dict,
    session_from_dict,
    session_to_dict,
)
from chatkeep.core.ids import check_id
from chatkeep.core.models import Message, Session
from chatkeep.core.validation import Limits, check_content, check_max_messages, check_metadata
from chatkeep.errors import CorruptDataError, InvalidInputError

FORMAT = "chatkeep-export"
FORMAT_VERSION = 1


def header_line(exported_at_micros: int) -> str:
    return (
        dumps({"format": FORMAT, "version": FORMAT_VERSION, "exported_at": exported_at_micros})
        + "\n"
    )


def session_line(session: Session, messages: list[Message]) -> str:
    record = {
        "session": session_to_dict(session),
        "messages": [message_to_dict(m) for m in messages],
    }
    return dumps(record) + "\n"  # type: ignore[arg-type]


async def numbered(lines: Iterable[str] | AsyncIterable[str]) -> AsyncIterator[tuple[int, str]]:
    """The lines with their 1-based numbers, from a plain or an async iterable."""
    number = 0
    if isinstance(lines, AsyncIterable):
        async for line in lines:
            number += 1
            yield number, line
    else:
        for line in lines:
            number += 1
            yield number, line


def parse_line(line: str, limits: Limits) -> tuple[Session, list[Message]] | None:
    """Decode and check one line; ``None`` for the header or a blank line."""
    text = line.strip()
    if not text:
        return None
    try:
        record: Any = json.loads(text)
    except ValueError as exc:
        raise CorruptDataError("import", f"not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise CorruptDataError("import", "a line must be a JSON object")
    if record.get("format") == FORMAT:
        if record.get("version") != FORMAT_VERSION:
            raise CorruptDataError(
                "import", f"unsupported format version {record.get('version')!r}"
            )
        return None
    session = session_from_dict(record.get("session"), "session")
    check_id(session.id, "session.id")
    check_max_messages(session.max_messages, "session.max_messages")
    check_metadata(session.metadata, "session.metadata", limits)
    raw = record.get("messages", [])
    if not isinstance(raw, list):
        raise CorruptDataError("import", "messages must be a list")
    messages = [message_from_dict(m, session.id, f"messages[{i}]") for i, m in enumerate(raw)]
    last = 0
    for i, msg in enumerate(messages):
        check_id(msg.id, f"messages[{i}].id")
        check_content(msg.content, f"messages[{i}].content", limits)
        if msg.seq <= last:
            raise InvalidInputError(f"messages[{i}].seq", "seqs must be strictly increasing")
        last = msg.seq
    if len({m.id for m in messages}) != len(messages):
        raise InvalidInputError("messages", "message ids must be unique within a session")
    fixed = session_with_counts(session, messages)
    return fixed, messages


def session_with_counts(session: Session, messages: list[Message]) -> Session:
    """Make the counters agree with the messages actually imported."""
    last_seq = max([session.last_seq, *(m.seq for m in messages)])
    return dataclasses.replace(session, message_count=len(messages), last_seq=last_seq)
