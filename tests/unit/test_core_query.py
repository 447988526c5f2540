from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from listing_reference import make_session

from chatkeep.core.models import Session
from chatkeep.core.query import (
    MAX_PAGE,
    Cursor,
    SessionFilter,
    SessionSort,
    SortField,
    check_limit,
    check_sort,
    cut_page,
    matches,
    page,
    search_terms,
    text_words,
    words,
)
from chatkeep.errors import InvalidInputError

T0 = datetime(2030, 1, 1, tzinfo=UTC)
DEVICE = "550e8400-e29b-41d4-a716-446655440000"


def naming(field: str) -> pytest.RaisesExc[InvalidInputError]:
    return pytest.raises(InvalidInputError, match=f"^{re.escape(field)}: ")


def session(sid: str, minute: int = 0, **fields: object) -> Session:
    settings: dict[str, object] = {"expires_at": None, "ttl": None, "max_messages": 10}
    return make_session(sid, minutes=minute, **{**settings, **fields})


# -- sort ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("created_at", SessionSort(SortField.CREATED_AT, descending=False)),
        ("-created_at", SessionSort(SortField.CREATED_AT, descending=True)),
        ("updated_at", SessionSort(SortField.UPDATED_AT, descending=False)),
        ("-last_activity_at", SessionSort(SortField.LAST_ACTIVITY_AT, descending=True)),
    ],
)
def test_sort_parse(text: str, expected: SessionSort) -> None:
    assert SessionSort.parse(text) == expected


def test_the_default_sort_is_most_recently_active_first() -> None:
    assert SessionSort() == SessionSort.parse("-last_activity_at")


@pytest.mark.parametrize("text", ["", "-", "--created_at", "+created_at", "created", "CREATED_AT"])
def test_sort_parse_refuses_unknown_fields(text: str) -> None:
    with naming("sort") as info:
        SessionSort.parse(text)
    assert "created_at, updated_at, last_activity_at" in str(info.value)


# -- filters -----------------------------------------------------------------------


NOW = T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("flt", "fields", "expected"),
    [
        (SessionFilter(), {}, True),
        (SessionFilter(), {"expires_at": NOW}, False),
        (SessionFilter(), {"expires_at": NOW + timedelta(microseconds=1)}, True),
        (SessionFilter(include_expired=True), {"expires_at": NOW}, True),
        (SessionFilter(owner="a"), {"owner": "a"}, True),
        (SessionFilter(owner="a"), {"owner": "A"}, False),
        (SessionFilter(owner="a"), {}, False),
        (SessionFilter(device_id=DEVICE), {"device_id": DEVICE}, True),
        (SessionFilter(device_id=DEVICE), {}, False),
        (SessionFilter(tags=frozenset({"a"})), {"tags": frozenset({"a", "b"})}, True),
        (SessionFilter(tags=frozenset({"a", "c"})), {"tags": frozenset({"a", "b"})}, False),
        (SessionFilter(metadata={"k": 1}), {"metadata": {"k": 1, "x": 2}}, True),
        (SessionFilter(metadata={"k": 1}), {"metadata": {"k": "1"}}, False),
        (SessionFilter(metadata={"k": None}), {"metadata": {"k": None}}, True),
        (SessionFilter(metadata={"k": None}), {"metadata": {}}, False),
        (SessionFilter(metadata={"k": {"a": [1]}}), {"metadata": {"k": {"a": [1]}}}, True),
        (SessionFilter(has_messages=True), {"message_count": 1}, True),
        (SessionFilter(has_messages=True), {}, False),
        (SessionFilter(has_messages=False), {}, True),
        (SessionFilter(created_after=T0), {}, False),
        (SessionFilter(created_after=T0 - timedelta(microseconds=1)), {}, True),
        (SessionFilter(created_before=T0), {}, False),
        (SessionFilter(created_before=T0 + timedelta(microseconds=1)), {}, True),
        (SessionFilter(active_after=T0), {"last_activity_at": T0 + timedelta(seconds=1)}, True),
        (SessionFilter(active_before=T0), {"last_activity_at": T0 + timedelta(seconds=1)}, False),
    ],
)
def test_matches(flt: SessionFilter, fields: dict[str, object], expected: bool) -> None:
    assert matches(session("s", 0, **fields), flt, NOW) is expected


# -- cursors and pages ----------------------------------------------------------------


@pytest.mark.parametrize("sort", [SessionSort(), SessionSort.parse("created_at")])
def test_cursor_round_trip(sort: SessionSort) -> None:
    cursor = Cursor(sort, T0 + timedelta(microseconds=7), "id:1")
    text = cursor.encode()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", text)
    assert Cursor.decode(text, sort) == cursor


def test_cursor_from_another_sort() -> None:
    text = Cursor(SessionSort.parse("created_at"), T0, "a").encode()
    for other in ("-created_at", "updated_at", "-last_activity_at"):
        with naming("cursor"):
            Cursor.decode(text, SessionSort.parse(other))


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        "é",
        b64("not json"),
        b64("{}"),
        b64("[]"),
        b64('["created_at",false,0]'),
        b64('["bogus",false,0,"a"]'),
        b64('["created_at",false,"soon","a"]'),
        b64('["created_at",false,null,"a"]'),
        b64('["created_at",false,1e300,"a"]'),
        b64(json.dumps(["created_at", False, 10**30, "a"])),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
    ],
)
def test_garbage_cursors(text: str) -> None:
    with naming("cursor"):
        Cursor.decode(text, SessionSort.parse("created_at"))


def test_admits_follows_the_sort_direction_with_id_ties() -> None:
    asc = Cursor(SessionSort.parse("created_at"), T0 + timedelta(minutes=1), "m")
    assert asc.admits(session("a", 2))
    assert asc.admits(session("z", 1))
    assert not asc.admits(session("m", 1))
    assert not asc.admits(session("a", 1))
    assert not asc.admits(session("z", 0))
    desc = Cursor(SessionSort.parse("-created_at"), T0 + timedelta(minutes=1), "m")
    assert desc.admits(session("z", 0))
    assert desc.admits(session("a", 1))
    assert not desc.admits(session("m", 1))
    assert not desc.admits(session("z", 1))


@pytest.mark.parametrize("limit", [1, 50, MAX_PAGE])
def test_check_limit_accepts(limit: int) -> None:
    assert check_limit(limit) == limit


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, True, 1.0, "5", None])
def test_check_limit_refuses(limit: object) -> None:
    with naming("limit"):
        check_limit(limit)


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "-last_activity_at"])
def test_pages_cover_everything_once_in_order(sort: str) -> None:
    order = SessionSort.parse(sort)
    population = [session(f"s{i}", minute=i // 3) for i in range(11)]
    expected = sorted(population, key=lambda s: (s.created_at, s.id), reverse=order.descending)
    seen: list[Session] = []
    cursor = None
    while True:
        got = page(population, SessionFilter(), order, 4, cursor, NOW)
        seen += got.sessions
        if got.next_cursor is None:
            break
        cursor = Cursor.decode(got.next_cursor, order)
    assert seen == expected


def test_page_applies_the_filter() -> None:
    population = [session("a", owner="x"), session("b", owner="y"), session("c", owner="x")]
    got = page(population, SessionFilter(owner="x"), SessionSort.parse("created_at"), 10, None, NOW)
    assert [s.id for s in got.sessions] == ["a", "c"]
    assert got.next_cursor is None


def test_cut_page() -> None:
    order = SessionSort.parse("created_at")
    rows = [session("a", 0), session("b", 1), session("c", 2)]
    assert cut_page(rows, order, 3).next_cursor is None
    cut = cut_page(rows, order, 2)
    assert [s.id for s in cut.sessions] == ["a", "b"]
    assert cut.next_cursor is not None
    assert Cursor.decode(cut.next_cursor, order) == Cursor(order, rows[1].created_at, "b")


# -- search --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("Hello", ["hello"]),
        ("hello HELLO world", ["hello", "world"]),
        ('"quoted" NEAR(a*) -b OR c', ["quoted", "near", "a", "b", "or", "c"]),
        ("snake_case", ["snake", "case"]),
        ("Straße", ["strasse"]),
        ("café 42", ["café", "42"]),
        ("日本語", ["日本語"]),
    ],
)
def test_search_terms(query: str, terms: list[str]) -> None:
    assert search_terms(query) == terms


@pytest.mark.parametrize("query", ["", "   ", '"', "*", "()", "-", "_", "^'\""])
def test_a_query_without_words(query: str) -> None:
    with naming("query"):
        search_terms(query)


@pytest.mark.parametrize("query", [None, 1, b"x", ["x"]])
def test_a_query_that_is_not_text(query: object) -> None:
    with naming("query"):
        search_terms(query)


def test_words_of_json_values() -> None:
    assert words("Hello, World!") == {"hello", "world"}
    assert words({"Key": ["Value", 12, 1.5, None, True, {"deep": "Er"}]}) == {
        "key",
        "value",
        "12",
        "1",
        "5",
        "deep",
        "er",
    }
    assert words(None) == set()
    assert words(False) == set()
    assert words([]) == set()


def test_words_of_text_beyond_ascii_are_case_folded_runs_of_letters_and_digits() -> None:
    assert text_words("Straße İstanbul ΣΊΣΥΦΟΣ_x 2½ naïve") == {
        "strasse",
        "i̇stanbul",
        "σίσυφοσ",
        "x",
        "2½",
        "naïve",
    }


@given(st.text(st.characters(max_codepoint=127)) | st.text())
def test_words_of_text_follow_one_rule_whatever_the_alphabet(text: str) -> None:
    expected = {word.casefold() for word in re.findall(r"[^\W_]+", text)}
    assert text_words(text) == expected
    assert words(text) == expected


def test_check_sort_accepts_a_sort_a_name_or_none() -> None:
    assert check_sort(None) == SessionSort()
    assert check_sort("-created_at") == SessionSort(SortField.CREATED_AT, True)
    assert check_sort("updated_at") == SessionSort(SortField.UPDATED_AT, False)
    with pytest.raises(InvalidInputError, match="sort"):
        check_sort(42)
    with pytest.raises(InvalidInputError, match="sort"):
        check_sort("-owner")
