"""A durable store gives back exactly what it held after a clean close and reopen."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from chatkeep import FakeClock, SessionFilter

from .conftest import DURABLE, Backend, Stores
from .support import batch, rich_store, seqs, snapshot


@pytest.fixture(params=DURABLE, ids=lambda b: b.name)
def durable(request: pytest.FixtureRequest, tmp_path: Path, fake_clock: FakeClock) -> Stores:
    backend: Backend = request.param
    backend.require()
    return Stores(backend, tmp_path, fake_clock)


async def test_everything_survives_a_reopen(durable: Stores, fake_clock: FakeClock) -> None:
    async with durable.open() as store:
        await rich_store(store, fake_clock)
        await store.create_session(id="gone", ttl=60)
        await store.create_session(id="deleted")
        await store.append_messages("deleted", batch("x"))
        await store.delete_session("deleted")
        await store.update_session("c", {"max_messages": 1, "merge_metadata": {"z": 1}})
        await store.set_expiration("b", fake_clock.now() + timedelta(days=2))
        fake_clock.advance(timedelta(seconds=61))
        before = await snapshot(store)
    async with durable.open() as store:
        assert await snapshot(store) == before
        assert await store.expire_sessions() == ["gone"]
        assert (await store.get_session_lock("a")) is not None
        assert seqs(await store.append_messages("a", batch("six"))) == [6]
        assert seqs(await store.get_messages("a")) == [3, 4, 6]


async def test_reopen_after_many_small_writes(durable: Stores) -> None:
    async with durable.open() as store:
        s = await store.create_session(max_messages=50)
        for i in range(120):
            await store.append_messages(s.id, batch(f"m{i}"))
            if i % 10 == 0:
                await store.pop_message(s.id)
        before = await snapshot(store)
    for _ in range(2):
        async with durable.open() as store:
            assert await snapshot(store) == before
            stats = await store.stats()
            assert (stats.total_sessions, stats.total_messages) == (1, 50)
            listed = await store.list_sessions(SessionFilter(has_messages=True))
            assert [x.id for x in listed.sessions] == [s.id]
