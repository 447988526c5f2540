"""The SessionManager: one entry point over the stores of every persistence mode."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self, Unpack

from chatkeep.core.clock import Clock, SystemClock
from chatkeep.core.models import Persistence
from chatkeep.core.rules import SessionDefaults
from chatkeep.core.validation import Limits
from chatkeep.errors import ConfigurationError
from chatkeep.manager.backups import BackupInfo, Backups, Restored, import_lines
from chatkeep.manager.cache import CacheInfo, SessionCache
from chatkeep.manager.config import ManagerConfig
from chatkeep.manager.conversation import Conversation
from chatkeep.manager.events import Event, EventBus, EventType
from chatkeep.manager.routing import Router
from chatkeep.manager.sessions import SessionOperations, SessionOptions
from chatkeep.manager.sweeper import Periodic, Sweeper, SweepReport
from chatkeep.stores.base import HealthReport, ImportReport, MergeStrategy, Store, StoreStats

logger = logging.getLogger("chatkeep.manager")


class SessionManager(SessionOperations):
    """Sessions of every persistence mode, each kept in the store configured for its mode.

    ::

        stores = {Persistence.NONE: memory_store, Persistence.DURABLE: sqlite_store}
        async with SessionManager(stores, ManagerConfig(default_persistence="durable")) as m:
            conv = await m.open(None, owner="alice")
            await conv.add("user", "hi")

    The manager does not close the stores it is given (it does close those it opened
    itself in :meth:`from_urls`). ``async with`` (or :meth:`start` / :meth:`close`)
    runs the background sweeper and scheduled backups.
    """

    def __init__(
        self,
        stores: Mapping[Persistence, Store] | Mapping[str, Store],
        config: ManagerConfig | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or ManagerConfig()
        self.clock: Clock = clock or SystemClock()
        cache = SessionCache(self.config.max_sessions)
        router = Router(stores, self.config.default_persistence, cache)
        sweeper = Sweeper(
            self._sweep_targets, self.config.expired_retention, self._expired, self.clock
        )
        super().__init__(router, cache, EventBus(self.config.listener_queue_size), sweeper)
        directory = self.config.backup_dir
        self._backups = (
            None if directory is None else Backups(directory, self.config.max_backups, self.clock)
        )
        self._jobs: list[Periodic] = []
        self._owned: Sequence[Store] = ()
        self._closed = False

    @classmethod
    async def from_urls(
        cls,
        urls: Mapping[Persistence, str] | Mapping[str, str],
        config: ManagerConfig | None = None,
        *,
        clock: Clock | None = None,
        defaults: SessionDefaults | None = None,
        limits: Limits | None = None,
    ) -> SessionManager:
        """A manager over stores it opens from URLs (modes with the same URL share one
        store) and closes in :meth:`close`."""
        from chatkeep.stores.registry import open_store

        clock = clock or SystemClock()
        opened: dict[str, Store] = {}
        try:
            for url in dict.fromkeys(urls.values()):
                opened[url] = await open_store(url, clock=clock, defaults=defaults, limits=limits)
            manager = cls({mode: opened[url] for mode, url in urls.items()}, config, clock=clock)
        except BaseException:
            for store in opened.values():
                await store.close()
            raise
        manager._owned = tuple(opened.values())
        return manager

    # -- configuration ------------------------------------------------------
    @property
    def stores(self) -> Mapping[Persistence, Store]:
        """The store of each configured mode (read-only)."""
        return self._router.stores

    @property
    def default_persistence(self) -> Persistence:
        """The mode of sessions created without one."""
        return self._router.default

    def set_default_persistence(self, mode: Persistence | str) -> Persistence:
        """Change the default mode for sessions created from now on (existing sessions
        keep theirs). ``ConfigurationError`` if the mode has no store."""
        return self._router.set_default(mode)

    def cache_info(self) -> CacheInfo:
        return self._cache.info()

    # -- lifecycle ----------------------------------------------------------
    @property
    def running(self) -> bool:
        return bool(self._jobs)

    async def start(self) -> None:
        """Start the sweeper and the scheduled backups (those with an interval)."""
        if self._closed:
            raise RuntimeError("expected an open manager, got a closed one")
        if self._jobs:
            raise RuntimeError("expected a stopped manager, got a running one")
        if self.config.sweep_interval is not None:
            self._jobs.append(Periodic("sweeper", self.config.sweep_interval, self.sweep))
        if self.config.backup_interval is not None:
            self._jobs.append(Periodic("backups", self.config.backup_interval, self.backup_now))
        for job in self._jobs:
            job.start()

    async def close(self) -> None:
        """Stop the background jobs, end every event listener, close owned stores."""
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            await job.stop()
        if self._closed:
            return
        self._closed = True
        self.events.close()
        for store in self._owned:
            await store.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- expiry ---------------------------------------------------------------
    async def sweep(self) -> SweepReport:
        """One sweep now: publish ``session:expired`` once for each newly expired session,
        drop it from the cache, delete those expired for longer than the retention."""
        return await self._sweeper.sweep()

    def _sweep_targets(self) -> list[tuple[str, Store]]:
        return [(mode.value, store) for mode, store in self._router.distinct]

    def _expired(self, session_id: str) -> None:
        entry = self._cache.pop(session_id)
        last_seen = None if entry is None else entry.session
        self.events.publish(Event(EventType.SESSION_EXPIRED, session_id, last_seen))

    # -- backups --------------------------------------------------------------
    def _backup_dir(self) -> Backups:
        if self._backups is None:
            raise ConfigurationError("backup_dir", "backups need a backup_dir in the config")
        return self._backups

    async def backup_now(self) -> BackupInfo:
        """Write every store into a new backup file; keeps the newest ``max_backups``."""
        sections = [(self._router.modes_of(store), store) for _m, store in self._router.distinct]
        return await self._backup_dir().create(sections)

    def list_backups(self) -> list[BackupInfo]:
        """The complete backups in ``backup_dir``, newest first."""
        return self._backup_dir().list()

    async def restore_backup(
        self,
        name: str,
        *,
        strategy: MergeStrategy | str = MergeStrategy.SKIP_EXISTING,
        dry_run: bool = False,
    ) -> ImportReport:
        """Import the backup called ``name`` (as listed) into the stores of its modes;
        the cached sessions are forgotten, and ``session:created`` (or
        ``session:updated``) is published for each session created (or replaced)."""
        try:
            restored = await self._backup_dir().restore(
                name, self._restore_target, strategy=strategy, dry_run=dry_run
            )
        finally:
            self._cache.clear()
        self._announce(restored)
        return restored.report

    async def import_lines(
        self,
        store: Store,
        lines: Sequence[str],
        *,
        strategy: MergeStrategy | str = MergeStrategy.SKIP_EXISTING,
        dry_run: bool = False,
    ) -> ImportReport:
        """Import backup ``lines`` (the export format) into ``store``, one of this
        manager's; the cached sessions are forgotten, and ``session:created`` (or
        ``session:updated``) is published for each session created (or replaced)."""
        if all(store is not mine for mine in self._router.stores.values()):
            raise ConfigurationError("store", "is not one of this manager's stores")
        try:
            restored = await import_lines(store, lines, strategy=strategy, dry_run=dry_run)
        finally:
            self._cache.clear()
        self._announce(restored)
        return restored.report

    def _announce(self, restored: Restored) -> None:
        """Publish ``session:created`` / ``session:updated`` for what an import changed."""
        for kind, sessions in (
            (EventType.SESSION_CREATED, restored.created),
            (EventType.SESSION_UPDATED, restored.replaced),
        ):
            for session in sessions:
                self._sweeper.forget(session.id)
                self.events.publish(Event(kind, session.id, session))

    def _restore_target(self, modes: tuple[Persistence, ...]) -> Store:
        for mode in modes:
            if mode in self._router.stores:
                return self._router.stores[mode]
        names = ", ".join(mode.value for mode in modes)
        raise ConfigurationError(
            "stores", f"the backup holds sessions of mode {names}, which has no store here"
        )

    # -- reports --------------------------------------------------------------
    async def stats(self) -> dict[Persistence, StoreStats]:
        """The statistics of each mode's store (a store serving several modes is counted
        under each of them)."""
        by_store = {id(store): await store.stats() for _m, store in self._router.distinct}
        return {mode: by_store[id(store)] for mode, store in self._router.stores.items()}

    async def health(self) -> dict[Persistence, HealthReport]:
        by_store = {id(store): await store.health() for _m, store in self._router.distinct}
        return {mode: by_store[id(store)] for mode, store in self._router.stores.items()}

    # -- conversations --------------------------------------------------------
    async def open(
        self, session_id: str | None = None, **options: Unpack[SessionOptions]
    ) -> Conversation:
        """A :class:`Conversation` on the session ``session_id``, or, given ``None``, on a
        new session created with ``options``."""
        if session_id is None:
            return Conversation(self, await self.create_session(**options))
        if options:
            raise TypeError(
                f"expected no creation options when opening session {session_id!r}, "
                f"got {', '.join(sorted(options))}"
            )
        return Conversation(self, await self.get_session(session_id))
