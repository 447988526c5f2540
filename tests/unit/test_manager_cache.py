from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatkeep.core.models import Persistence, Session
from chatkeep.manager.cache import SessionCache

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def session(session_id: str) -> Session:
    return Session(
        id=session_id, owner=None, device_id=None, persistence=Persistence.DURABLE,
        created_at=NOW, updated_at=NOW, last_activity_at=NOW, expires_at=None, ttl=None,
        max_messages=10, metadata={}, tags=frozenset(), version=1, message_count=0, last_seq=0,
    )  # fmt: skip


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = SessionCache(2)
    cache.put(Persistence.DURABLE, "a", session("a"))
    cache.put(Persistence.NONE, "b", None)
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put(Persistence.DURABLE, "c", session("c"))
    assert "b" not in cache
    assert "a" in cache
    assert "c" in cache
    assert len(cache) == 2
    assert cache.info().evictions == 1


def test_entries_remember_route_and_record() -> None:
    cache = SessionCache(4)
    record = session("a")
    cache.put(Persistence.CLIENT, "a", record)
    entry = cache.get("a")
    assert entry is not None
    assert entry.route is Persistence.CLIENT
    assert entry.session is record


def test_peek_neither_counts_nor_refreshes() -> None:
    cache = SessionCache(2)
    cache.put(Persistence.DURABLE, "a", None)
    cache.put(Persistence.DURABLE, "b", None)
    assert cache.peek("a") is not None
    cache.put(Persistence.DURABLE, "c", None)
    assert "a" not in cache
    assert cache.info().hits == 0


def test_putting_again_replaces_and_refreshes() -> None:
    cache = SessionCache(2)
    cache.put(Persistence.DURABLE, "a", None)
    cache.put(Persistence.DURABLE, "b", None)
    cache.put(Persistence.NONE, "a", session("a"))
    cache.put(Persistence.DURABLE, "c", None)
    assert "b" not in cache
    entry = cache.get("a")
    assert entry is not None
    assert entry.route is Persistence.NONE


def test_counts_hits_and_misses() -> None:
    cache = SessionCache(3)
    cache.put(Persistence.DURABLE, "a", None)
    assert cache.get("a") is not None
    assert cache.get("zz") is None
    info = cache.info()
    assert (info.size, info.max_size, info.hits, info.misses) == (1, 3, 1, 1)


def test_pop_and_clear() -> None:
    cache = SessionCache(3)
    cache.put(Persistence.DURABLE, "a", None)
    cache.put(Persistence.DURABLE, "b", None)
    popped = cache.pop("a")
    assert popped is not None
    assert popped.route is Persistence.DURABLE
    assert cache.pop("a") is None
    cache.clear()
    assert len(cache) == 0


def test_refuses_a_size_below_one() -> None:
    with pytest.raises(ValueError, match="positive"):
        SessionCache(0)
