"""The session lock: the "active agent" of a conversation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatkeep import FakeClock, SessionLock, SessionNotFoundError, Store
from chatkeep.core.rules import DEFAULT_LOCK_TTL

from .support import rejected


async def test_set_get_clear(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session()
    assert await store.get_session_lock(s.id) is None
    lock = await store.set_session_lock(s.id, "agent-1", ttl=timedelta(minutes=5))
    now = fake_clock.now()
    assert lock == SessionLock("agent-1", now, now + timedelta(minutes=5))
    assert await store.get_session_lock(s.id) == lock
    assert (await store.get_session(s.id)).lock == lock
    assert await store.clear_session_lock(s.id) is True
    assert await store.get_session_lock(s.id) is None
    assert (await store.get_session(s.id)).lock is None
    assert await store.clear_session_lock(s.id) is False


async def test_the_default_lock_ttl(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=None)
    lock = await store.set_session_lock(s.id, "agent")
    assert lock.expires_at == fake_clock.now() + DEFAULT_LOCK_TTL


async def test_a_lock_expires(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=None)
    await store.set_session_lock(s.id, "agent", ttl=60)
    fake_clock.advance(timedelta(seconds=59))
    assert (await store.get_session_lock(s.id)) is not None
    fake_clock.advance(timedelta(seconds=1))
    assert await store.get_session_lock(s.id) is None
    assert await store.clear_session_lock(s.id) is False


async def test_a_lock_without_ttl_stays(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=None)
    lock = await store.set_session_lock(s.id, "agent", ttl=None)
    assert lock.expires_at is None
    fake_clock.advance(timedelta(days=3650))
    assert await store.get_session_lock(s.id) == lock


async def test_a_new_agent_takes_over(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session()
    await store.set_session_lock(s.id, "first")
    fake_clock.advance(timedelta(seconds=1))
    second = await store.set_session_lock(s.id, "second", ttl=30)
    assert await store.get_session_lock(s.id) == second
    assert second.locked_at == fake_clock.now()


async def test_locking_is_activity(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(ttl=timedelta(minutes=10))
    fake_clock.advance(timedelta(minutes=9))
    await store.set_session_lock(s.id, "agent")
    fake_clock.advance(timedelta(minutes=9))
    assert (await store.get_session(s.id)).id == s.id


async def test_locks_of_missing_sessions(store: Store) -> None:
    for call in (
        store.get_session_lock("ghost"),
        store.set_session_lock("ghost", "agent"),
        store.clear_session_lock("ghost"),
    ):
        with pytest.raises(SessionNotFoundError):
            await call


@pytest.mark.parametrize("agent", ["", None, 5, "a\nb", "x" * 257])
async def test_a_bad_agent_is_refused(store: Store, agent: object) -> None:
    s = await store.create_session()
    async with rejected(store, "agent"):
        await store.set_session_lock(s.id, agent)  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [0, -1, "60", float("nan")])
async def test_a_bad_lock_ttl_is_refused(store: Store, ttl: object) -> None:
    s = await store.create_session()
    async with rejected(store, "ttl"):
        await store.set_session_lock(s.id, "agent", ttl=ttl)  # type: ignore[arg-type]


async def test_a_refused_lock_keeps_the_old_one(store: Store) -> None:
    s = await store.create_session()
    lock = await store.set_session_lock(s.id, "holder")
    async with rejected(store, "agent"):
        await store.set_session_lock(s.id, "")
    assert await store.get_session_lock(s.id) == lock
