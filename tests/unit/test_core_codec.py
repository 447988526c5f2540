from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatkeep.core.codec import (
    dumpb,
    dumps,
    from_micros,
    message_from_dict,
    message_to_dict,
    opt_datetime,
    opt_micros,
    session_from_dict,
    session_to_dict,
    to_micros,
    ttl_seconds,
)
from chatkeep.core.frozen import EMPTY, FrozenDict, FrozenList
from chatkeep.core.models import Message, Persistence, Role, Session, SessionLock
from chatkeep.errors import CorruptDataError

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SESSION = Session(
    id="s1",
    owner="alice",
    device_id="550e8400-e29b-41d4-a716-446655440000",
    persistence=Persistence.CLIENT,
    created_at=T0,
    updated_at=T0 + timedelta(seconds=1),
    last_activity_at=T0 + timedelta(seconds=2),
    expires_at=T0 + timedelta(hours=1),
    ttl=timedelta(minutes=20, microseconds=5),
    max_messages=7,
    metadata={"k": [1, "é", None]},
    tags=frozenset({"b", "a"}),
    version=4,
    message_count=3,
    last_seq=9,
    lock=SessionLock("agent", T0, T0 + timedelta(minutes=1)),
)
MESSAGE = Message("m1", "s1", 3, Role.TOOL, {"call": ["f", 1]}, "u", T0, {"x": 1})

AWARE = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


def test_micros_of_known_instants() -> None:
    assert to_micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005
    assert to_micros(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1
    assert from_micros(-1) == datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert from_micros(0).utcoffset() == timedelta(0)


def test_micros_of_another_zone_is_the_same_instant() -> None:
    local = datetime(2030, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert to_micros(local) == to_micros(T0)


@given(AWARE)
def test_micros_round_trip(when: datetime) -> None:
    assert from_micros(to_micros(when)) == when


@given(AWARE, AWARE)
def test_micros_keep_order(a: datetime, b: datetime) -> None:
    assert (to_micros(a) < to_micros(b)) == (a < b)


def test_optional_helpers() -> None:
    assert opt_micros(None) is None
    assert opt_datetime(None) is None
    assert opt_datetime(opt_micros(T0)) == T0
    assert ttl_seconds(None) is None
    assert ttl_seconds(timedelta(minutes=1, microseconds=500)) == 60.0005


def test_dumps_is_compact_unicode() -> None:
    assert dumps({"a": ["é", 1]}) == '{"a":["é",1]}'
    assert dumps(EMPTY) == dumps({}) == "{}"
    assert dumps(FrozenDict({"k": FrozenList([None, 1.5])})) == '{"k":[null,1.5]}'


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_dumps_reads_back_as_the_standard_library_encodes(value: object) -> None:
    text = dumps(value)  # type: ignore[arg-type]
    assert json.loads(text) == value
    assert json.loads(text) == json.loads(json.dumps(value))
    assert dumpb(value) == text.encode()  # type: ignore[arg-type]


def test_dumps_takes_what_orjson_refuses_from_the_standard_library() -> None:
    assert dumps({"n": 2**70}) == '{"n":1180591620717411303424}'
    assert dumpb([-(2**64)]) == b"[-18446744073709551616]"
    assert dumps(["a\ud800"]) == '["a\ud800"]'  # a lone surrogate, as json.dumps keeps it
    with pytest.raises(UnicodeEncodeError):
        dumpb(["a\ud800"])


def test_session_round_trip_through_json() -> None:
    record = json.loads(json.dumps(session_to_dict(SESSION)))
    assert record["tags"] == ["a", "b"]
    assert record["persistence"] == "client"
    assert session_from_dict(record) == SESSION


def test_session_without_optional_parts() -> None:
    bare = dataclasses.replace(
        SESSION,
        owner=None,
        device_id=None,
        expires_at=None,
        ttl=None,
        lock=None,
        metadata={},
        tags=frozenset(),
    )
    assert session_from_dict(json.loads(json.dumps(session_to_dict(bare)))) == bare
    forever_lock = dataclasses.replace(SESSION, lock=SessionLock("a", T0, None))
    assert session_from_dict(session_to_dict(forever_lock)) == forever_lock


@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)))
def test_ttl_round_trip(ttl: timedelta) -> None:
    s = dataclasses.replace(SESSION, ttl=ttl)
    assert session_from_dict(json.loads(json.dumps(session_to_dict(s)))).ttl == ttl


@pytest.mark.parametrize(
    "record",
    [
        None,
        [],
        "session",
        {},
        {**session_to_dict(SESSION), "created_at": "yesterday"},
        {**session_to_dict(SESSION), "persistence": "tape"},
        {**session_to_dict(SESSION), "version": None},
        {k: v for k, v in session_to_dict(SESSION).items() if k != "max_messages"},
        {**session_to_dict(SESSION), "lock": {"agent": "a"}},
        {**session_to_dict(SESSION), "ttl": "long"},
    ],
)
def test_bad_session_records(record: object) -> None:
    with pytest.raises(CorruptDataError) as info:
        session_from_dict(record, "line 3")
    assert info.value.where == "line 3"


def test_message_round_trip_through_json() -> None:
    record = json.loads(json.dumps(message_to_dict(MESSAGE)))
    assert record["role"] == "tool"
    assert "session_id" not in record
    assert message_from_dict(record, "s1") == MESSAGE


@pytest.mark.parametrize("role", [*Role, *(r.value for r in Role)])
def test_a_message_record_gives_its_role(role: str) -> None:
    decoded = message_from_dict({**message_to_dict(MESSAGE), "role": role}, "s1")
    assert decoded.role is Role(role)


def test_a_message_record_without_metadata() -> None:
    record = {k: v for k, v in message_to_dict(MESSAGE).items() if k != "metadata"}
    assert message_from_dict(record, "s1").metadata == {}


@pytest.mark.parametrize(
    "change",
    [
        {"role": "wizard"},
        {"role": "User"},
        {"role": None},
        {"role": ["user"]},
        {"content": 5},
        {"content": None},
        {"seq": "x"},
        {"created_at": None},
    ],
)
def test_bad_message_records(change: dict[str, object]) -> None:
    with pytest.raises(CorruptDataError):
        message_from_dict({**message_to_dict(MESSAGE), **change}, "s1")
    with pytest.raises(CorruptDataError):
        message_from_dict(None, "s1")


def test_a_session_written_at_one_time_records_it_as_both_updated_and_active() -> None:
    now = T0 + timedelta(seconds=5, microseconds=7)
    written = dataclasses.replace(SESSION, updated_at=now, last_activity_at=now)
    record = session_to_dict(written)
    assert record["updated_at"] == record["last_activity_at"] == to_micros(now)
    assert session_from_dict(record) == written
