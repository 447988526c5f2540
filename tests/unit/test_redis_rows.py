"""Records of the Redis backend: a record reads as ``json.loads`` reads its bytes, in
every encoding and spacing JSON allows, and a bad one is an error naming its session."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chatkeep import CorruptDataError
from chatkeep.core.models import Message, Role
from chatkeep.stores.redis_rows import decode_message, decode_messages, encode_message

MESSAGE = Message(
    id="m1",
    session_id="s1",
    seq=7,
    role=Role.USER,
    content={"text": "héllo \U0001f600", "parts": [1, 2.5, None, True]},
    user_id=None,
    created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
)
STORED = encode_message(MESSAGE)
TEXT = STORED.decode()


@pytest.mark.parametrize(
    "raw",
    [
        STORED,
        b"  " + STORED + b"\n",
        b"\xef\xbb\xbf" + STORED,
        TEXT.encode("utf-16"),
        TEXT.encode("utf-16-le"),
        TEXT.encode("utf-32"),
        json.dumps(json.loads(TEXT), indent=2, ensure_ascii=True).encode(),
    ],
    ids=["stored", "spaced", "utf-8 bom", "utf-16", "utf-16-le", "utf-32", "indented"],
)
def test_a_record_reads_as_json_loads_reads_it(raw: bytes) -> None:
    assert json.loads(raw) == json.loads(TEXT)
    assert decode_message("s1", raw) == MESSAGE
    assert decode_messages("s1", [raw, STORED]) == [MESSAGE, MESSAGE]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff" + STORED,
        STORED + b"x",
        STORED + b"," + STORED,
        STORED[:-1],
        STORED.replace(b'"seq":7', b'"seq":\x007'),
    ],
    ids=["empty", "not utf-8", "trailing text", "two records", "cut", "control character"],
)
def test_a_bad_record_is_an_error_naming_its_session(raw: bytes) -> None:
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        json.loads(raw)
    with pytest.raises(CorruptDataError, match="session 's1'"):
        decode_message("s1", raw)
    with pytest.raises(CorruptDataError, match="session 's1'"):
        decode_messages("s1", [STORED, raw])
