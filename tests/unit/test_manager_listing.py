from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

import chatkeep
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import NewMessage, Session
from chatkeep.core.query import SessionFilter, SessionSort, SortField
from chatkeep.errors import InvalidInputError
from chatkeep.manager.listing import list_across, search_across
from chatkeep.stores.base import Store


@pytest.fixture
async def stores(fake_clock: FakeClock) -> AsyncIterator[list[Store]]:
    async with (
        chatkeep.open_store("memory://", clock=fake_clock) as a,
        chatkeep.open_store("memory://", clock=fake_clock) as b,
        chatkeep.open_store("memory://", clock=fake_clock) as c,
    ):
        yield [a, b, c]


async def spread(stores: list[Store], clock: FakeClock, count: int) -> list[Session]:
    """``count`` sessions spread unevenly over the stores, one second apart."""
    made = []
    for i in range(count):
        store = stores[0] if i % 5 < 3 else stores[(1 + i % 2) % len(stores)]
        made.append(await store.create_session(owner="even" if i % 2 == 0 else "odd"))
        clock.advance(timedelta(seconds=1))
    return made


async def all_pages(
    stores: list[Store], sort: SessionSort, limit: int, flt: SessionFilter | None = None
) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await list_across(stores, flt, sort, limit, cursor)
        assert len(page.sessions) <= limit
        seen.extend(s.id for s in page.sessions)
        if page.next_cursor is None:
            return seen
        assert len(page.sessions) == limit
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
@pytest.mark.parametrize(
    "sort",
    [SessionSort(), SessionSort(SortField.CREATED_AT, False)],
    ids=["active-desc", "created-asc"],
)
async def test_pages_over_several_stores_give_every_session_once_in_order(
    stores: list[Store], fake_clock: FakeClock, limit: int, sort: SessionSort
) -> None:
    made = await spread(stores, fake_clock, 17)
    expected = sorted(made, key=lambda s: (getattr(s, sort.field.value), s.id))
    if sort.descending:
        expected.reverse()
    assert await all_pages(stores, sort, limit) == [s.id for s in expected]


async def test_sessions_with_equal_times_are_ordered_by_id(stores: list[Store]) -> None:
    ids = ["a1", "b2", "c3", "d4", "e5", "f6"]
    for i, session_id in enumerate(ids):
        await stores[i % 3].create_session(id=session_id)
    assert await all_pages(stores, SessionSort(), 4) == sorted(ids, reverse=True)
    assert await all_pages(stores, SessionSort(SortField.CREATED_AT, False), 4) == ids


async def test_filters_apply_in_every_store(stores: list[Store], fake_clock: FakeClock) -> None:
    made = await spread(stores, fake_clock, 12)
    odd = [s.id for s in reversed(made) if s.owner == "odd"]
    assert await all_pages(stores, SessionSort(), 2, SessionFilter(owner="odd")) == odd


async def test_one_store_is_asked_directly(stores: list[Store], fake_clock: FakeClock) -> None:
    made = await spread(stores[:1], fake_clock, 4)
    page = await list_across(stores[:1], None, "-created_at", 3, None)
    assert [s.id for s in page.sessions] == [s.id for s in reversed(made)][:3]
    assert page.next_cursor is not None


async def test_bad_limits_and_cursors_are_refused(
    stores: list[Store], fake_clock: FakeClock
) -> None:
    await spread(stores, fake_clock, 6)
    with pytest.raises(InvalidInputError, match="limit"):
        await list_across(stores, None, None, 0, None)
    with pytest.raises(InvalidInputError, match="cursor"):
        await list_across(stores, None, None, 5, "not-a-cursor")
    page = await list_across(stores, None, "-created_at", 2, None)
    assert page.next_cursor is not None
    with pytest.raises(InvalidInputError, match="another sort"):
        await list_across(stores, None, "created_at", 2, page.next_cursor)


async def test_empty_stores_give_an_empty_last_page(stores: list[Store]) -> None:
    page = await list_across(stores, None, None, 10, None)
    assert page.sessions == []
    assert page.next_cursor is None


async def test_search_merges_the_best_hits(stores: list[Store], fake_clock: FakeClock) -> None:
    hits_expected = []
    for i in range(7):
        store = stores[i % 3]
        session = await store.create_session()
        text = "the red fox" if i != 4 else "a blue whale"
        await store.append_messages(session.id, [NewMessage(role="user", content=text)])
        if i != 4:
            hits_expected.append(session.id)
        fake_clock.advance(timedelta(seconds=1))
    hits = await search_across(stores, "red fox", owner=None, limit=4, include_expired=False)
    assert [h.session.id for h in hits] == list(reversed(hits_expected))[:4]
    assert all(h.messages[0].content == "the red fox" for h in hits)
    one = await search_across(stores[:1], "whale", owner=None, limit=5, include_expired=False)
    assert one == []
    with pytest.raises(InvalidInputError, match="query"):
        await search_across(stores, "  ", owner=None, limit=5, include_expired=False)
