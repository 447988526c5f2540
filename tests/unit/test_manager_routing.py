from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

import chatkeep
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import Persistence
from chatkeep.errors import (
    ConfigurationError,
    InvalidInputError,
    SessionExistsError,
    SessionNotFoundError,
)
from chatkeep.manager.cache import SessionCache
from chatkeep.manager.routing import Router
from chatkeep.stores.base import Store

DURABLE, NONE, CLIENT, REDIS = (
    Persistence.DURABLE,
    Persistence.NONE,
    Persistence.CLIENT,
    Persistence.REDIS,
)


@pytest.fixture
async def durable(fake_clock: FakeClock) -> AsyncIterator[Store]:
    async with chatkeep.open_store("memory://", clock=fake_clock) as store:
        yield store


@pytest.fixture
async def memory(fake_clock: FakeClock) -> AsyncIterator[Store]:
    async with chatkeep.open_store("memory://", clock=fake_clock) as store:
        yield store


def router(stores: dict[Persistence, Store], cache: SessionCache | None = None) -> Router:
    return Router(stores, next(iter(stores)), SessionCache(100) if cache is None else cache)


def test_needs_at_least_one_store() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        Router({}, DURABLE, SessionCache(1))


def test_refuses_a_key_that_is_not_a_mode(durable: Store) -> None:
    with pytest.raises(ConfigurationError, match="'disk' is not a persistence mode"):
        Router({"disk": durable}, DURABLE, SessionCache(1))


def test_accepts_modes_given_as_text(durable: Store) -> None:
    r = Router({"durable": durable}, DURABLE, SessionCache(1))
    assert r.stores == {DURABLE: durable}


def test_the_default_mode_needs_a_store(durable: Store) -> None:
    with pytest.raises(ConfigurationError, match="'none'") as info:
        Router({DURABLE: durable}, NONE, SessionCache(1))
    assert info.value.name == "default_persistence"


def test_store_for_a_mode(durable: Store, memory: Store) -> None:
    r = router({DURABLE: durable, NONE: memory})
    assert r.store_for(None) == (DURABLE, durable)
    assert r.store_for("none") == (NONE, memory)
    with pytest.raises(ConfigurationError, match="'redis'") as info:
        r.store_for(REDIS)
    assert "configured: durable, none" in str(info.value)
    with pytest.raises(InvalidInputError, match="persistence"):
        r.store_for("disk")


def test_changing_the_default(durable: Store, memory: Store) -> None:
    r = router({DURABLE: durable, NONE: memory})
    assert r.set_default("none") is NONE
    assert r.default is NONE
    assert r.store_for(None) == (NONE, memory)
    with pytest.raises(ConfigurationError, match="'client'"):
        r.set_default(CLIENT)
    assert r.default is NONE


def test_a_shared_store_is_listed_once_under_its_most_durable_mode(
    durable: Store, memory: Store
) -> None:
    r = router({NONE: memory, CLIENT: durable, DURABLE: durable})
    assert r.distinct == ((DURABLE, durable), (NONE, memory))
    assert r.modes_of(durable) == (DURABLE, CLIENT)
    assert r.modes_of(memory) == (NONE,)


def test_the_stores_mapping_is_read_only(durable: Store) -> None:
    r = router({DURABLE: durable})
    with pytest.raises(TypeError):
        r.stores[NONE] = durable  # type: ignore[index]


async def test_locate_asks_the_stores_once_then_uses_the_cache(
    durable: Store, memory: Store
) -> None:
    cache = SessionCache(10)
    r = router({DURABLE: durable, NONE: memory}, cache)
    session = await memory.create_session(id="s1", persistence=NONE)
    route = await r.locate("s1")
    assert (route.mode, route.store, route.session) == (NONE, memory, session)
    assert cache.info().misses == 1
    again = await r.locate("s1")
    assert again.store is memory
    assert cache.info().hits == 1


async def test_locate_in_a_shared_store_routes_by_the_session_mode(durable: Store) -> None:
    r = router({DURABLE: durable, CLIENT: durable})
    await durable.create_session(id="c1", persistence=CLIENT)
    route = await r.locate("c1")
    assert route.mode is CLIENT
    assert route.store is durable


async def test_locate_finds_expired_sessions(
    durable: Store, memory: Store, fake_clock: FakeClock
) -> None:
    r = router({DURABLE: durable, NONE: memory})
    await memory.create_session(id="old", persistence=NONE, ttl=timedelta(seconds=5))
    fake_clock.advance(timedelta(seconds=6))
    route = await r.locate("old")
    assert (route.mode, route.store, route.session) == (NONE, memory, None)


async def test_locate_unknown_id(durable: Store, memory: Store) -> None:
    r = router({DURABLE: durable, NONE: memory})
    with pytest.raises(SessionNotFoundError, match="'nobody'"):
        await r.locate("nobody")


async def test_ensure_free_looks_in_the_other_stores(
    durable: Store, memory: Store, fake_clock: FakeClock
) -> None:
    r = router({DURABLE: durable, NONE: memory})
    await memory.create_session(id="taken", persistence=NONE)
    await memory.create_session(id="gone", persistence=NONE, ttl=1)
    fake_clock.advance(timedelta(seconds=2))
    with pytest.raises(SessionExistsError, match="'taken'"):
        await r.ensure_free("taken", durable)
    with pytest.raises(SessionExistsError, match="'gone'"):
        await r.ensure_free("gone", durable)
    await r.ensure_free("taken", memory)
    await r.ensure_free("free", durable)
