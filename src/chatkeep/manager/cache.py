"""A bounded, least-recently-used map from session id to where the session lives."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from chatkeep.core.models import Persistence, Session


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """``route``: the mode whose store holds the session. ``session``: the last record
    seen (``None`` when the session was found expired, so its record was not read)."""

    route: Persistence
    session: Session | None


@dataclass(frozen=True, slots=True)
class CacheInfo:
    size: int
    max_size: int
    hits: int
    misses: int
    evictions: int


class SessionCache:
    """Holds at most ``max_size`` entries; using or storing one makes it the most recent."""

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"expected a positive max_size, got {max_size}")
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._max_size = max_size
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def get(self, session_id: str) -> CacheEntry | None:
        entry = self._entries.get(session_id)
        if entry is None:
            self._misses += 1
            return None
        self._hits += 1
        self._entries.move_to_end(session_id)
        return entry

    def peek(self, session_id: str) -> CacheEntry | None:
        """The entry without counting a use or changing its recency."""
        return self._entries.get(session_id)

    def put(self, route: Persistence, session_id: str, session: Session | None) -> None:
        self._entries[session_id] = CacheEntry(route, session)
        self._entries.move_to_end(session_id)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)
            self._evictions += 1

    def pop(self, session_id: str) -> CacheEntry | None:
        return self._entries.pop(session_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._entries

    def info(self) -> CacheInfo:
        return CacheInfo(
            size=len(self._entries),
            max_size=self._max_size,
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
        )
