"""stats, health, optimize, and what a closed store does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

import chatkeep
from chatkeep import FakeClock, SessionFilter, Store, StoreClosedError

from .conftest import Backend, Stores
from .support import batch, filled, seqs, snapshot


async def test_the_store_names_its_backend(store: Store, backend: Backend) -> None:
    assert isinstance(store, Store)
    assert store.backend == backend.name


async def test_stats_of_an_empty_store(store: Store) -> None:
    stats = await store.stats()
    assert stats.backend == store.backend
    assert (stats.total_sessions, stats.active_sessions, stats.expired_sessions) == (0, 0, 0)
    assert stats.total_messages == 0
    assert dict(stats.sessions_by_owner) == {}


async def test_stats_count_sessions_messages_and_owners(
    store: Store, fake_clock: FakeClock
) -> None:
    await filled(store, 3, owner="alice", ttl=60)
    await filled(store, 2, owner="alice", max_messages=1)
    await filled(store, 4, owner="bob")
    await filled(store, 0)
    fake_clock.advance(timedelta(seconds=60))
    stats = await store.stats()
    assert (stats.total_sessions, stats.active_sessions, stats.expired_sessions) == (4, 3, 1)
    assert stats.total_messages == 3 + 1 + 4
    assert dict(stats.sessions_by_owner) == {"alice": 2, "bob": 1}
    await store.cleanup_expired_sessions()
    after = await store.stats()
    assert (after.total_sessions, after.expired_sessions, after.total_messages) == (3, 0, 5)


async def test_health(store: Store) -> None:
    await filled(store, 2)
    report = await store.health()
    assert report.backend == store.backend
    assert report.healthy is True
    assert report.issues == []
    assert 0 <= report.latency_ms < 10_000


async def test_optimize_keeps_the_data(store: Store, fake_clock: FakeClock) -> None:
    for i in range(5):
        await filled(store, 10, id=f"s{i}", max_messages=4)
    await store.delete_session("s0")
    before = await snapshot(store)
    report = await store.optimize()
    assert report.backend == store.backend
    assert report.operations
    assert all(isinstance(op, str) and op for op in report.operations)
    assert await snapshot(store) == before
    assert seqs(await store.append_messages("s1", batch("x"))) == [11]
    assert (await store.health()).healthy


async def test_a_closed_store_refuses_work(stores: Stores) -> None:
    async with stores.open() as store:
        s = await filled(store, 1)
    await store.close()
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "create_session": lambda: store.create_session(),
        "get_session": lambda: store.get_session(s.id),
        "update_session": lambda: store.update_session(s.id, {"owner": "x"}),
        "delete_session": lambda: store.delete_session(s.id),
        "list_sessions": lambda: store.list_sessions(),
        "search_sessions": lambda: store.search_sessions("m1"),
        "append_messages": lambda: store.append_messages(s.id, batch("late")),
        "get_messages": lambda: store.get_messages(s.id),
        "pop_message": lambda: store.pop_message(s.id),
        "clear_messages": lambda: store.clear_messages(s.id),
        "touch": lambda: store.touch(s.id),
        "set_expiration": lambda: store.set_expiration(s.id, None),
        "extend_expiration": lambda: store.extend_expiration(s.id, timedelta(1)),
        "get_session_lock": lambda: store.get_session_lock(s.id),
        "set_session_lock": lambda: store.set_session_lock(s.id, "a"),
        "clear_session_lock": lambda: store.clear_session_lock(s.id),
        "bulk_update": lambda: store.bulk_update(SessionFilter(), {"owner": "x"}),
        "expire_sessions": lambda: store.expire_sessions(),
        "cleanup_expired_sessions": lambda: store.cleanup_expired_sessions(),
        "import_sessions": lambda: store.import_sessions([]),
        "optimize": lambda: store.optimize(),
        "stats": lambda: store.stats(),
    }
    for name, call in calls.items():
        with pytest.raises(StoreClosedError):
            await call()
            pytest.fail(f"{name} worked on a closed store")
    with pytest.raises(StoreClosedError):
        async with store.transaction():
            pass
    with pytest.raises(StoreClosedError):
        [line async for line in store.export_sessions()]
    assert (await store.health()).healthy is False


async def test_awaiting_open_store_gives_a_store_to_close(stores: Stores) -> None:
    store = await chatkeep.open_store(stores.url(), clock=stores.clock)
    try:
        s = await filled(store, 2)
        assert seqs(await store.get_messages(s.id)) == [1, 2]
    finally:
        await store.close()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.get_session(s.id)
