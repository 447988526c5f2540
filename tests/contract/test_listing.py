"""list_sessions: filters, sort orders and keyset pagination."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from chatkeep import FakeClock, Session, SessionFilter, SessionSort, SortField, Store

from .support import batch, ids_of, rejected

DEVICE = "550e8400-e29b-41d4-a716-446655440000"


async def make_population(store: Store, clock: FakeClock) -> dict[str, Session]:
    """Six sessions created a minute apart, then active in another order."""
    specs = [
        ("s1", {"owner": "alice", "tags": ["a", "b"], "metadata": {"team": "red", "n": 1}}),
        ("s2", {"owner": "bob", "tags": ["a"], "metadata": {"team": "blue", "n": "1"}}),
        ("s3", {"owner": "alice", "device_id": DEVICE, "metadata": {"team": "red", "x": None}}),
        ("s4", {"owner": None, "tags": ["b"], "metadata": {"obj": {"k": [1, 2]}}}),
        ("s5", {"owner": "bob", "tags": ["a", "b", "c"]}),
        ("s6", {"owner": "carol", "metadata": {"team": "red"}}),
    ]
    for sid, fields in specs:
        await store.create_session(id=sid, **fields)  # type: ignore[arg-type]
        clock.advance(timedelta(minutes=1))
    for sid in ("s4", "s1", "s6"):
        await store.append_messages(sid, batch("hello"))
        clock.advance(timedelta(minutes=1))
    return {s.id: s for s in (await store.list_sessions(limit=100)).sessions}


async def listed(
    store: Store, flt: SessionFilter | None = None, sort: str = "created_at"
) -> list[str]:
    return ids_of((await store.list_sessions(flt, sort, limit=100)).sessions)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (SessionFilter(), ["s1", "s2", "s3", "s4", "s5", "s6"]),
        (SessionFilter(owner="alice"), ["s1", "s3"]),
        (SessionFilter(owner="nobody"), []),
        (SessionFilter(device_id=DEVICE), ["s3"]),
        (SessionFilter(device_id=DEVICE.upper()), ["s3"]),
        (SessionFilter(tags=frozenset({"a"})), ["s1", "s2", "s5"]),
        (SessionFilter(tags=frozenset({"a", "b"})), ["s1", "s5"]),
        (SessionFilter(tags=frozenset({"c", "zzz"})), []),
        (SessionFilter(metadata={"team": "red"}), ["s1", "s3", "s6"]),
        (SessionFilter(metadata={"team": "red", "n": 1}), ["s1"]),
        (SessionFilter(metadata={"n": "1"}), ["s2"]),
        (SessionFilter(metadata={"n": 1}), ["s1"]),
        (SessionFilter(metadata={"x": None}), ["s3"]),
        (SessionFilter(metadata={"obj": {"k": [1, 2]}}), ["s4"]),
        (SessionFilter(metadata={"obj": {"k": [2, 1]}}), []),
        (SessionFilter(has_messages=True), ["s1", "s4", "s6"]),
        (SessionFilter(has_messages=False), ["s2", "s3", "s5"]),
        (SessionFilter(owner="alice", has_messages=True, tags=frozenset({"b"})), ["s1"]),
    ],
)
async def test_filters(
    store: Store, fake_clock: FakeClock, flt: SessionFilter, expected: list[str]
) -> None:
    await make_population(store, fake_clock)
    assert await listed(store, flt) == expected


async def test_time_range_filters_are_exclusive(store: Store, fake_clock: FakeClock) -> None:
    sessions = await make_population(store, fake_clock)
    s2, s5 = sessions["s2"].created_at, sessions["s5"].created_at
    assert await listed(store, SessionFilter(created_after=s2)) == ["s3", "s4", "s5", "s6"]
    assert await listed(store, SessionFilter(created_before=s2)) == ["s1"]
    assert await listed(store, SessionFilter(created_after=s2, created_before=s5)) == ["s3", "s4"]
    s1_active = sessions["s1"].last_activity_at
    assert await listed(store, SessionFilter(active_after=s1_active)) == ["s6"]
    assert await listed(store, SessionFilter(active_before=s1_active)) == ["s2", "s3", "s4", "s5"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created_at", ["s1", "s2", "s3", "s4", "s5", "s6"]),
        ("-created_at", ["s6", "s5", "s4", "s3", "s2", "s1"]),
        ("last_activity_at", ["s2", "s3", "s5", "s4", "s1", "s6"]),
        ("-last_activity_at", ["s6", "s1", "s4", "s5", "s3", "s2"]),
        ("updated_at", ["s2", "s3", "s5", "s4", "s1", "s6"]),
        (SessionSort(SortField.UPDATED_AT, descending=True), ["s6", "s1", "s4", "s5", "s3", "s2"]),
    ],
)
async def test_sort_orders(
    store: Store, fake_clock: FakeClock, sort: str | SessionSort, expected: list[str]
) -> None:
    await make_population(store, fake_clock)
    assert ids_of((await store.list_sessions(sort=sort)).sessions) == expected


async def test_the_default_order_is_most_recently_active_first(
    store: Store, fake_clock: FakeClock
) -> None:
    await make_population(store, fake_clock)
    assert ids_of((await store.list_sessions()).sessions) == ["s6", "s1", "s4", "s5", "s3", "s2"]


@pytest.mark.parametrize(("sort", "reverse"), [("created_at", False), ("-created_at", True)])
async def test_ties_are_broken_by_id_in_the_sort_direction(
    store: Store, sort: str, reverse: bool
) -> None:
    for sid in ("b", "d", "a", "c", "e"):
        await store.create_session(id=sid)
    expected = sorted("abcde", reverse=reverse)
    assert await listed(store, sort=sort) == expected
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_sessions(sort=sort, limit=2, cursor=cursor)
        seen += ids_of(page.sessions)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "last_activity_at", "-updated_at"])
async def test_pagination_visits_each_session_once(
    store: Store, fake_clock: FakeClock, sort: str
) -> None:
    for i in range(23):
        await store.create_session(id=f"p{i:02d}")
        if i % 3:
            fake_clock.advance(timedelta(seconds=1))
    everything = await listed(store, sort=sort)
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await store.list_sessions(sort=sort, limit=5, cursor=cursor)
        pages.append(ids_of(page.sessions))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [sid for p in pages for sid in p] == everything


async def test_a_full_last_page_has_no_next_cursor(store: Store) -> None:
    for i in range(4):
        await store.create_session(id=f"x{i}")
    first = await store.list_sessions(limit=2, sort="created_at")
    assert first.next_cursor is not None
    second = await store.list_sessions(limit=2, sort="created_at", cursor=first.next_cursor)
    assert ids_of(second.sessions) == ["x2", "x3"]
    assert second.next_cursor is None
    assert (await store.list_sessions(limit=4)).next_cursor is None


async def test_pagination_while_sessions_are_created(store: Store, fake_clock: FakeClock) -> None:
    originals = []
    for i in range(12):
        originals.append((await store.create_session(id=f"o{i:02d}")).id)
        fake_clock.advance(timedelta(seconds=1))
    for n, sort in enumerate(("created_at", "-created_at", "-last_activity_at")):
        seen: list[str] = []
        cursor = None
        round_ = 0
        while True:
            page = await store.list_sessions(sort=sort, limit=4, cursor=cursor)
            seen += ids_of(page.sessions)
            await store.create_session(id=f"new-{n}-{round_}")
            fake_clock.advance(timedelta(seconds=1))
            round_ += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert len(seen) == len(set(seen)), f"{sort}: a session was listed twice"
        assert set(originals) <= set(seen), f"{sort}: a session was missed"


async def test_pagination_with_a_filter(store: Store, fake_clock: FakeClock) -> None:
    for i in range(10):
        await store.create_session(id=f"f{i}", owner="even" if i % 2 == 0 else "odd")
        fake_clock.advance(timedelta(seconds=1))
    flt = SessionFilter(owner="even")
    first = await store.list_sessions(flt, "created_at", limit=3)
    rest = await store.list_sessions(flt, "created_at", limit=3, cursor=first.next_cursor)
    assert ids_of(first.sessions) + ids_of(rest.sessions) == ["f0", "f2", "f4", "f6", "f8"]
    assert rest.next_cursor is None


async def test_a_cursor_from_another_sort_is_refused(store: Store) -> None:
    for i in range(3):
        await store.create_session(id=f"c{i}")
    page = await store.list_sessions(sort="created_at", limit=1)
    assert page.next_cursor is not None
    for other in ("-created_at", "last_activity_at", "updated_at"):
        async with rejected(store, "cursor"):
            await store.list_sessions(sort=other, limit=1, cursor=page.next_cursor)


def encoded(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


GARBAGE_CURSORS = {
    "empty": "",
    "not-base64": "garbage!",
    "not-ascii": "é",
    "an-object": encoded("{}"),
    "short-list": encoded("[1,2,3]"),
    "text-time": encoded('["created_at",false,"x","id"]'),
    "unknown-field": encoded('["nope",false,0,"id"]'),
    "float-overflow": encoded('["created_at",false,1e300,"id"]'),
    "int-overflow": encoded('["created_at",false,99999999999999999999999,"id"]'),
    "null-time": encoded('["created_at",false,null,"id"]'),
    "not-utf8": base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "not-text": 42,
}


@pytest.mark.parametrize("cursor", GARBAGE_CURSORS.values(), ids=GARBAGE_CURSORS.keys())
async def test_a_garbage_cursor_is_refused(store: Store, cursor: object) -> None:
    await store.create_session()
    async with rejected(store, "cursor"):
        await store.list_sessions(sort="created_at", cursor=cursor)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [0, -1, 1001, "10", 2.0, True, None])
async def test_limit_bounds(store: Store, limit: object) -> None:
    async with rejected(store, "limit"):
        await store.list_sessions(limit=limit)  # type: ignore[arg-type]


async def test_limit_extremes_are_accepted(store: Store) -> None:
    for i in range(3):
        await store.create_session(id=f"l{i}")
    assert len((await store.list_sessions(limit=1)).sessions) == 1
    assert len((await store.list_sessions(limit=1000)).sessions) == 3


@pytest.mark.parametrize("sort", ["bogus", "-", "", "--created_at", "message_count", 5])
async def test_a_bad_sort_is_refused(store: Store, sort: object) -> None:
    async with rejected(store, "sort"):
        await store.list_sessions(sort=sort)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("flt", "field"),
    [
        ({"owner": "x"}, "filter"),
        (SessionFilter(device_id="not-a-uuid"), "filter.device_id"),
        (SessionFilter(created_after="2030-01-01"), "filter.created_after"),  # type: ignore[arg-type]
        (SessionFilter(active_before=1), "filter.active_before"),  # type: ignore[arg-type]
    ],
)
async def test_a_bad_filter_is_refused(store: Store, flt: object, field: str) -> None:
    async with rejected(store, field):
        await store.list_sessions(flt)  # type: ignore[arg-type]


TRICKY_TAGS = ["a,b", "x%y", "a_b", "with space", 'quo"te', "ü", "[0]"]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"a,b"}, ["tricky"]),
        ({"a"}, []),
        ({"b"}, []),
        ({"x%y"}, ["tricky"]),
        ({"x"}, []),
        ({"xzy"}, ["plain"]),
        ({"a_b"}, ["tricky"]),
        ({"acb"}, ["plain"]),
        ({"a_b", "acb"}, []),
        ({"with space"}, ["tricky"]),
        ({"with"}, []),
        ({'quo"te'}, ["tricky"]),
        ({"Ü"}, []),
        ({"[0]", "ü"}, ["tricky"]),
        ({"0"}, []),
    ],
)
async def test_tags_match_exactly(store: Store, tags: set[str], expected: list[str]) -> None:
    await store.create_session(id="tricky", tags=TRICKY_TAGS)
    await store.create_session(id="plain", tags=["axb", "acb", "xzy"])
    assert await listed(store, SessionFilter(tags=frozenset(tags))) == expected


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"a.b": 1}, ["dotted"]),
        ({"a": {"b": 1}}, ["nested"]),
        ({"$": "dollar"}, ["odd-keys"]),
        ({'k"q': "quote"}, ["odd-keys"]),
        ({"[0]": "index"}, ["odd-keys"]),
        ({"": "empty"}, ["odd-keys"]),
        ({"big": 2**70}, ["numbers"]),
        ({"big": 2**70 + 1}, []),
        ({"small": -(2**63)}, ["numbers"]),
        ({"ratio": 0.1}, ["numbers"]),
        ({"ratio": 0.1000001}, []),
        ({"text": "ünïcode ✓"}, ["numbers"]),
        ({"list": [1, "a", None]}, ["numbers"]),
        ({"list": [1, "a"]}, []),
    ],
)
async def test_metadata_keys_and_values_match_exactly(
    store: Store, metadata: dict[str, object], expected: list[str]
) -> None:
    await store.create_session(id="dotted", metadata={"a.b": 1})
    await store.create_session(id="nested", metadata={"a": {"b": 1}})
    await store.create_session(
        id="odd-keys", metadata={"$": "dollar", 'k"q': "quote", "[0]": "index", "": "empty"}
    )
    await store.create_session(
        id="numbers",
        metadata={
            "big": 2**70,
            "small": -(2**63),
            "ratio": 0.1,
            "text": "ünïcode ✓",
            "list": [1, "a", None],
        },
    )
    flt = SessionFilter(metadata=metadata)  # type: ignore[arg-type]
    assert await listed(store, flt) == expected
    numbers = (await store.get_session("numbers")).metadata
    assert numbers["big"] == 2**70
    assert isinstance(numbers["big"], int)
    assert numbers["ratio"] == 0.1
