"""bulk_update: the same change to every matching session, all or none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatkeep import (
    FakeClock,
    ImmutableSettingError,
    SessionFilter,
    SessionUpdate,
    Store,
)

from .support import filled, rejected, seqs, unchanged


async def population(store: Store) -> None:
    for i in range(6):
        await store.create_session(
            id=f"s{i}", owner="even" if i % 2 == 0 else "odd", tags=["t"] if i < 3 else []
        )


async def test_only_matching_sessions_change(store: Store, fake_clock: FakeClock) -> None:
    await population(store)
    before = {s.id: s for s in (await store.list_sessions(limit=100)).sessions}
    fake_clock.advance(timedelta(seconds=1))
    count = await store.bulk_update(
        SessionFilter(owner="even"), SessionUpdate(add_tags={"bulk"}, merge_metadata={"b": 1})
    )
    assert count == 3
    for sid, old in before.items():
        now = await store.get_session(sid)
        if old.owner == "even":
            assert now.tags == old.tags | {"bulk"}
            assert now.metadata == {"b": 1}
            assert now.version == old.version + 1
            assert now.updated_at == fake_clock.now()
        else:
            assert now == old


async def test_a_mapping_of_changes_and_a_combined_filter(store: Store) -> None:
    await population(store)
    flt = SessionFilter(owner="even", tags=frozenset({"t"}))
    assert await store.bulk_update(flt, {"owner": "moved"}) == 2
    moved = await store.list_sessions(SessionFilter(owner="moved"), "created_at")
    assert [s.id for s in moved.sessions] == ["s0", "s2"]


async def test_nothing_matches(store: Store) -> None:
    await population(store)
    async with unchanged(store):
        assert await store.bulk_update(SessionFilter(owner="nobody"), {"owner": "x"}) == 0


async def test_expired_sessions_are_left_alone(store: Store, fake_clock: FakeClock) -> None:
    await store.create_session(id="old", ttl=60, owner="o")
    await store.create_session(id="new", ttl=None, owner="o")
    fake_clock.advance(timedelta(minutes=2))
    assert await store.bulk_update(SessionFilter(owner="o"), {"tags": ["seen"]}) == 1
    assert (await store.get_session("new")).tags == frozenset({"seen"})


async def test_lowering_the_window_trims_every_match(store: Store) -> None:
    a = await filled(store, 5, owner="w")
    b = await filled(store, 2, owner="w")
    assert await store.bulk_update(SessionFilter(owner="w"), {"max_messages": 3}) == 2
    assert seqs(await store.get_messages(a.id)) == [3, 4, 5]
    assert seqs(await store.get_messages(b.id)) == [1, 2]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_messages": 0}, "max_messages"),
        ({"owner": 5}, "owner"),
        ({"metadata": {"x": {1, 2}}}, "metadata"),
        ({"tags": "not-a-list"}, "tags"),
        ({"colour": "red"}, "changes"),
        ("owner=x", "changes"),
    ],
)
async def test_invalid_changes_change_nothing(store: Store, changes: object, field: str) -> None:
    await population(store)
    async with rejected(store, field):
        await store.bulk_update(SessionFilter(), changes)  # type: ignore[arg-type]


async def test_a_persistence_change_changes_nothing(store: Store) -> None:
    await store.create_session(id="d", persistence="durable")
    await store.create_session(id="r", persistence="redis")
    async with unchanged(store):
        with pytest.raises(ImmutableSettingError):
            await store.bulk_update(SessionFilter(), {"persistence": "durable", "owner": "x"})


async def test_a_bad_filter_changes_nothing(store: Store) -> None:
    await population(store)
    async with rejected(store, "filter"):
        await store.bulk_update({"owner": "even"}, {"owner": "x"})  # type: ignore[arg-type]
