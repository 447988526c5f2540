from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chatkeep.core.models import JSON, NewMessage, Persistence, Role
from chatkeep.core.validation import (
    MAX_WINDOW,
    Limits,
    check_content,
    check_max_messages,
    check_metadata,
    check_name,
    check_new_messages,
    check_persistence,
    check_positive_int,
    check_role,
    check_tags,
    check_ttl,
    check_when,
    encode_json,
    merged_metadata,
)
from chatkeep.errors import InvalidInputError

LIMITS = Limits()
SMALL = Limits(
    max_content_bytes=8,
    max_metadata_bytes=32,
    max_tags=2,
    max_tag_length=4,
    max_name_length=5,
    max_batch=3,
)
NOT_JSON = [{1, 2}, datetime(2030, 1, 1, tzinfo=UTC), math.nan, math.inf, object(), b"bytes"]


def naming(field: str) -> pytest.RaisesExc[InvalidInputError]:
    """Expect an InvalidInputError whose message starts with the field's name."""
    return pytest.raises(InvalidInputError, match=f"^{re.escape(field)}: ")


# -- names -------------------------------------------------------------------


def test_names_accept_short_printable_text() -> None:
    assert check_name("alice", "owner", SMALL) == "alice"
    assert check_name("ü ö", "owner", SMALL) == "ü ö"
    assert check_name(None, "owner", SMALL) is None


@pytest.mark.parametrize("value", ["", "abcdef", "a\tb", "a\x7f", "a\nb", 5, b"alice", ["a"]])
def test_bad_names_raise_naming_the_field(value: object) -> None:
    with naming("owner") as info:
        check_name(value, "owner", SMALL)
    assert info.value.field == "owner"


def test_a_required_name_may_not_be_none() -> None:
    with naming("agent"):
        check_name(None, "agent", SMALL, optional=False)


# -- JSON and metadata -------------------------------------------------------


def test_encode_json_is_compact_and_keeps_unicode() -> None:
    assert encode_json({"a": [1, "é"]}, "x") == '{"a":[1,"é"]}'


@pytest.mark.parametrize("value", NOT_JSON)
def test_encode_json_refuses_what_json_cannot_hold(value: object) -> None:
    with naming("x"):
        encode_json(value, "x")


def test_metadata_is_a_private_deep_copy() -> None:
    inner: list[int] = [1, 2]
    given = {"a": {"b": inner}, "t": (1, 2)}
    copy = check_metadata(given, "metadata", LIMITS)
    inner.append(3)
    assert copy == {"a": {"b": [1, 2]}, "t": [1, 2]}
    assert check_metadata(None, "metadata", LIMITS) == {}


@pytest.mark.parametrize(
    "value",
    [
        [("a", 1)],
        "text",
        {1: "x"},
        {"a": {2: "x"}},
        {"a": [{"b": {None: 1}}]},
        {"a": [math.inf]},
        {"a": {"b": -math.inf}},
        {"a": "x" * 40},
        *({"a": bad} for bad in NOT_JSON),
    ],
)
def test_bad_metadata_raises_naming_the_field(value: object) -> None:
    with naming("messages[0].metadata"):
        check_metadata(value, "messages[0].metadata", SMALL)


@pytest.mark.parametrize("value", [{"a": "\ud800"}, {"\udfff": 1}, {"a": ["x\udc80"]}])
def test_metadata_with_lone_surrogates_is_invalid_input(value: object) -> None:
    """Lone surrogates have no UTF-8 form, so no backend could store them."""
    with naming("metadata"):
        check_metadata(value, "metadata", LIMITS)


def test_metadata_size_is_measured_in_encoded_bytes() -> None:
    limits = Limits(max_metadata_bytes=12)
    assert check_metadata({"a": "1234"}, "m", limits) == {"a": "1234"}  # {"a":"1234"}: 12 bytes
    with naming("m"):
        check_metadata({"a": "12345"}, "m", limits)
    with naming("m"):
        check_metadata({"a": "ééé"}, "m", limits)  # 11 characters, 14 bytes


def test_merged_metadata_sets_and_removes_keys_without_touching_the_base() -> None:
    base: dict[str, JSON] = {"a": 1, "b": 2}
    assert merged_metadata(base, {"b": None, "c": 3, "zz": None}) == {"a": 1, "c": 3}
    assert base == {"a": 1, "b": 2}


# -- tags --------------------------------------------------------------------


def test_tags_become_a_frozen_set() -> None:
    assert check_tags(["ab", "cd", "ab"], "tags", SMALL) == frozenset({"ab", "cd"})
    assert check_tags(None, "tags", SMALL) == frozenset()
    assert check_tags((t for t in ["x"]), "tags", SMALL) == frozenset({"x"})


@pytest.mark.parametrize(
    "value",
    ["abc", ["a", "b", "c"], [""], ["abcde"], ["a\n"], [1], [None], 5, [["a"]], [{"a": 1}]],
)
def test_bad_tags_raise_naming_the_field(value: object) -> None:
    with naming("add_tags"):
        check_tags(value, "add_tags", SMALL)


# -- ttl, window, persistence, role --------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (60, timedelta(minutes=1)),
        (0.5, timedelta(milliseconds=500)),
        (timedelta(hours=2), timedelta(hours=2)),
        (timedelta(microseconds=1), timedelta(microseconds=1)),
    ],
)
def test_ttl_accepts_durations_and_seconds(value: object, expected: timedelta | None) -> None:
    assert check_ttl(value) == expected


@pytest.mark.parametrize(
    "value",
    [0, -1, 0.0, timedelta(0), -timedelta(seconds=1), True, math.nan, math.inf, "60", [60]],
)
def test_bad_ttl_raises_naming_the_field(value: object) -> None:
    with naming("lock.ttl"):
        check_ttl(value, "lock.ttl")


@pytest.mark.parametrize("value", [1e300, 10**30])
def test_a_ttl_too_large_for_a_timedelta_is_invalid_input(value: object) -> None:
    with naming("ttl"):
        check_ttl(value)


@pytest.mark.parametrize("value", [1, 1000, MAX_WINDOW])
def test_max_messages_accepts_a_window(value: int) -> None:
    assert check_max_messages(value) == value


@pytest.mark.parametrize("value", [0, -5, MAX_WINDOW + 1, True, 10.0, "10", None])
def test_bad_max_messages_raises_naming_the_field(value: object) -> None:
    with naming("max_messages"):
        check_max_messages(value)


def test_persistence_accepts_names_and_members() -> None:
    assert check_persistence("redis") is Persistence.REDIS
    assert check_persistence(Persistence.NONE) is Persistence.NONE


@pytest.mark.parametrize("value", ["cloud", "DURABLE", "", None, 1])
def test_bad_persistence_lists_the_choices(value: object) -> None:
    with naming("persistence") as info:
        check_persistence(value)
    assert "none, client, redis, durable" in str(info.value)


def test_roles() -> None:
    assert [check_role(r.value, "role") for r in Role] == list(Role)
    assert [check_role(r, "role") for r in Role] == list(Role)
    for bad in ("robot", "User", None, 1, ["user"], {"user": 1}, Persistence.NONE):
        with naming("messages[1].role"):
            check_role(bad, "messages[1].role")


# -- content -----------------------------------------------------------------


def test_content_is_text_or_a_json_object_or_array() -> None:
    assert check_content("", "c", LIMITS) == ""
    assert check_content("a\x00b", "c", LIMITS) == "a\x00b"
    parts = {"type": "tool", "args": [1, {"x": None}]}
    copy = check_content(parts, "c", LIMITS)
    assert copy == parts
    assert copy is not parts
    assert check_content((1, "a"), "c", LIMITS) == [1, "a"]
    assert check_content({}, "c", LIMITS) == {}


@pytest.mark.parametrize(
    "value", [5, 1.5, None, True, b"bytes", {"a": {1, 2}}, {1: "a"}, [math.nan], {"a": object()}]
)
def test_bad_content_raises_naming_the_field(value: object) -> None:
    with naming("messages[0].content"):
        check_content(value, "messages[0].content", LIMITS)


def test_content_with_a_lone_surrogate_is_invalid_input() -> None:
    """It has no UTF-8 form: SQLite and files could not store it."""
    with naming("content"):
        check_content("ok \ud83d", "content", LIMITS)


def test_content_size_is_counted_in_utf8_bytes() -> None:
    assert check_content("12345678", "c", SMALL) == "12345678"
    with naming("c"):
        check_content("123456789", "c", SMALL)
    with naming("c"):
        check_content("éééé€", "c", SMALL)  # 5 characters, 11 bytes
    assert check_content(["123"], "c", SMALL) == ["123"]  # ["123"]: 7 bytes
    with naming("c"):
        check_content(["12345"], "c", SMALL)


# -- message batches ---------------------------------------------------------


def test_a_batch_is_normalised() -> None:
    meta: dict[str, JSON] = {"k": [1]}
    out = check_new_messages(
        [NewMessage(role="user", content="hi", id="k1", user_id="bob", metadata=meta)], LIMITS
    )
    assert out == [NewMessage(role=Role.USER, content="hi", id="k1", user_id="bob", metadata=meta)]
    assert out[0].metadata is not meta
    assert check_new_messages(NewMessage(role="tool", content=[]), LIMITS) == [
        NewMessage(role=Role.TOOL, content=[], metadata={})
    ]
    assert check_new_messages([], LIMITS) == []


@pytest.mark.parametrize(
    ("batch", "field"),
    [
        ("hello", "messages"),
        ((NewMessage(role="user", content="x") for _ in range(1)), "messages"),
        ([NewMessage(role="user", content="x")] * 4, "messages"),
        ([NewMessage(role="user", content="x"), {"role": "user"}], "messages[1]"),
        ([NewMessage(role="bot", content="x")], "messages[0].role"),
        ([NewMessage(role="user", content=7)], "messages[0].content"),  # type: ignore[arg-type]
        ([NewMessage(role="user", content="x", id="../x")], "messages[0].id"),
        ([NewMessage(role="user", content="x", user_id="")], "messages[0].user_id"),
        (
            [NewMessage(role="user", content="x", metadata={"a": {1}})],  # type: ignore[dict-item]
            "messages[0].metadata",
        ),
    ],
)
def test_bad_batches_name_the_message_and_field(batch: object, field: str) -> None:
    with naming(field):
        check_new_messages(batch, SMALL)


# -- times and counts --------------------------------------------------------


def test_when_must_be_aware() -> None:
    aware = datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=-3)))
    assert check_when(aware, "at") is aware
    for bad in (datetime(2030, 1, 1), "2030-01-01T00:00:00Z", 0, None):
        with naming("at"):
            check_when(bad, "at")


def test_positive_ints() -> None:
    assert check_positive_int(1, "last") == 1
    assert check_positive_int(0, "last", allow_zero=True) == 0
    for bad in (0, -1, True, 1.0, "1", None):
        with naming("last"):
            check_positive_int(bad, "last")
    with naming("last"):
        check_positive_int(-1, "last", allow_zero=True)
