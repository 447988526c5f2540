"""Which store holds a session: persistence modes mapped to stores, and id lookup.

A session lives in the store configured for its persistence mode. One store may serve
several modes. An id is unique across all the stores: a lookup that misses the cache
asks each distinct store in turn, the most durable first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from chatkeep.core.models import Persistence, Session
from chatkeep.core.validation import check_persistence
from chatkeep.errors import (
    ConfigurationError,
    SessionExistsError,
    SessionExpiredError,
    SessionNotFoundError,
)
from chatkeep.manager.cache import SessionCache
from chatkeep.stores.base import Store

LOOKUP_ORDER = (Persistence.DURABLE, Persistence.REDIS, Persistence.CLIENT, Persistence.NONE)
"""The order in which stores are asked for an id that is not cached."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a session was found: the mode whose store holds it, and that store."""

    mode: Persistence
    store: Store
    session: Session | None
    """The record, when it was read (a cache hit gives the last record seen)."""


class Router:
    def __init__(
        self,
        stores: Mapping[Persistence, Store] | Mapping[str, Store],
        default: Persistence,
        cache: SessionCache,
    ) -> None:
        if not stores:
            raise ConfigurationError(
                "stores", "configure a store for at least one persistence mode"
            )
        by_mode: dict[Persistence, Store] = {}
        for mode, store in stores.items():
            try:
                by_mode[Persistence(mode)] = store
            except ValueError:
                choices = ", ".join(p.value for p in Persistence)
                raise ConfigurationError(
                    "stores", f"{mode!r} is not a persistence mode (one of: {choices})"
                ) from None
        self._stores = by_mode
        self._cache = cache
        primary: dict[int, Persistence] = {}
        for mode in LOOKUP_ORDER:
            if mode in by_mode:
                primary.setdefault(id(by_mode[mode]), mode)
        self._distinct = tuple((mode, by_mode[mode]) for mode in primary.values())
        self._default = self._configured(default, "default_persistence")

    @property
    def stores(self) -> Mapping[Persistence, Store]:
        return MappingProxyType(self._stores)

    @property
    def distinct(self) -> tuple[tuple[Persistence, Store], ...]:
        """Each store once, with the first mode (in lookup order) it serves."""
        return self._distinct

    @property
    def default(self) -> Persistence:
        return self._default

    def set_default(self, mode: Persistence | str) -> Persistence:
        self._default = self._configured(check_persistence(mode), "default_persistence")
        return self._default

    def modes_of(self, store: Store) -> tuple[Persistence, ...]:
        return tuple(mode for mode in LOOKUP_ORDER if self._stores.get(mode) is store)

    def store_for(self, mode: Persistence | str | None) -> tuple[Persistence, Store]:
        """The store of ``mode`` (``None``: the default mode)."""
        chosen = self._default if mode is None else check_persistence(mode)
        return chosen, self._stores[self._configured(chosen, "persistence")]

    def _configured(self, mode: Persistence, name: str) -> Persistence:
        if mode not in self._stores:
            configured = ", ".join(m.value for m in LOOKUP_ORDER if m in self._stores)
            raise ConfigurationError(
                name,
                f"no store is configured for persistence mode {mode.value!r} "
                f"(configured: {configured})",
            )
        return mode

    def remember(self, mode: Persistence, session: Session) -> None:
        """Cache ``session`` as held by the store of ``mode``."""
        self._cache.put(self._route_mode(mode, session), session.id, session)

    def _route_mode(self, mode: Persistence, session: Session) -> Persistence:
        own = session.persistence
        return own if self._stores.get(own) is self._stores[mode] else mode

    async def locate(self, session_id: str) -> Route:
        """Where the session is (also when it has expired); ``SessionNotFoundError`` if nowhere."""
        entry = self._cache.get(session_id)
        if entry is not None:
            return Route(entry.route, self._stores[entry.route], entry.session)
        expired: tuple[Persistence, Store] | None = None
        for mode, store in self._distinct:
            try:
                session = await store.get_session(session_id)
            except SessionNotFoundError:
                continue
            except SessionExpiredError:
                expired = expired or (mode, store)
                continue
            self.remember(mode, session)
            return Route(self._route_mode(mode, session), store, session)
        if expired is None:
            raise SessionNotFoundError(session_id)
        self._cache.put(expired[0], session_id, None)
        return Route(expired[0], expired[1], None)

    async def ensure_free(self, session_id: str, target: Store) -> None:
        """``SessionExistsError`` if a store other than ``target`` holds ``session_id``."""
        for _mode, store in self._distinct:
            if store is target:
                continue
            try:
                await store.get_session(session_id)
            except SessionNotFoundError:
                continue
            except SessionExpiredError:
                raise SessionExistsError(session_id) from None
            raise SessionExistsError(session_id)
