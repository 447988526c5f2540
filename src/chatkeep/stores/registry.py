"""Open a store from a URL: ``memory://``, ``sqlite:///path.db``, ``file:///dir``,
``postgresql://...``, ``redis://...`` (with ``write_behind=<durable URL>``: a Redis store
written behind to a durable one, see :mod:`chatkeep.stores.tiered`).

Redis is also reached over TLS (``rediss://host:port/db``, the server's certificate
checked against the system's certificate authorities) or a Unix socket
(``unix:///path/to/redis.sock``, database 0); both take the options of ``redis://``."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chatkeep.core.clock import Clock
from chatkeep.core.rules import SessionDefaults
from chatkeep.core.validation import Limits
from chatkeep.errors import ConfigurationError, MissingDependencyError
from chatkeep.stores.backend import Backend
from chatkeep.stores.local import LocalStore
from chatkeep.stores.remote import RemoteStore
from chatkeep.stores.remote_backend import AsyncBackend
from chatkeep.stores.runner import InlineRunner, Runner, ThreadRunner
from chatkeep.stores.surface import StoreSurface
from chatkeep.stores.urls import masked


@dataclass(frozen=True, slots=True)
class StoreURL:
    scheme: str
    path: str
    options: dict[str, str]

    @classmethod
    def parse(cls, url: str) -> StoreURL:
        if not isinstance(url, str) or "://" not in url:
            shown = masked(url) if isinstance(url, str) else url
            raise ConfigurationError("store URL", f"{shown!r} is not a URL like sqlite:///chat.db")
        scheme, rest = url.split("://", 1)
        parts = urlsplit(f"x://{rest}")
        path = rest.split("?", 1)[0]
        if scheme == "sqlite":
            path = path[1:] if path.startswith("/") else path
        options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
        return cls(scheme.lower(), path, options)


async def _memory(url: StoreURL) -> tuple[Backend, Runner]:
    from chatkeep.stores.memory import MemoryBackend

    if url.path or url.options:
        raise ConfigurationError("store URL", "memory:// takes no path or options")
    return MemoryBackend(), InlineRunner()


async def _on_thread(
    name: str, opener: Callable[[str, Mapping[str, str]], Backend], url: StoreURL
) -> tuple[Backend, Runner]:
    """Open on the store's own thread: opening may read a lot from disk."""
    if not url.path:
        raise ConfigurationError("store URL", f"{url.scheme}:// needs a path")
    runner = ThreadRunner(f"chatkeep-{name}")
    try:
        backend = await runner.run(partial(opener, url.path, url.options))
    except BaseException:
        runner.shutdown()
        raise
    return backend, runner


async def _sqlite(url: StoreURL) -> tuple[Backend, Runner]:
    from chatkeep.stores.sqlite import SqliteBackend

    return await _on_thread("sqlite", SqliteBackend.open, url)


async def _file(url: StoreURL) -> tuple[Backend, Runner]:
    from chatkeep.stores.filesystem import FileBackend

    return await _on_thread("file", FileBackend.open, url)


_ALIASES = {"postgres": "postgresql", "rediss": "redis", "unix": "redis"}
"""Other schemes of a networked backend: the same backend, reached another way."""

_REMOTE = {
    # scheme: (module, class, driver package, extra that installs it)
    "postgresql": ("chatkeep.stores.postgres", "PostgresBackend", "asyncpg", "postgres"),
    "redis": ("chatkeep.stores.redis", "RedisBackend", "redis", "redis"),
}


def _remote_backend(scheme: str) -> type[AsyncBackend]:
    """The backend class of a networked scheme; its driver is an optional extra."""
    module_name, class_name, driver, extra = _REMOTE[scheme]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == driver:
            raise MissingDependencyError(driver, extra) from exc
        raise
    backend = getattr(module, class_name)
    if not (isinstance(backend, type) and issubclass(backend, AsyncBackend)):
        raise TypeError(f"expected an AsyncBackend class, got {backend!r}")
    return backend


async def _tiered(url: str, options: dict[str, str], kwargs: dict[str, Any]) -> StoreSurface:
    """A Redis store written behind to the durable store its ``write_behind`` names."""
    _remote_backend("redis")  # the driver is there, or a clear error
    from chatkeep.stores.tiered import open_tiered
    from chatkeep.stores.tiered_options import TierOptions

    tier, rest = TierOptions.split(options)
    assert tier is not None
    return await open_tiered(url, tier, rest, **kwargs)


_LOCAL: dict[str, Callable[[StoreURL], Awaitable[tuple[Backend, Runner]]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "file": _file,
}


def supported_schemes() -> list[str]:
    return sorted([*_LOCAL, *_REMOTE, "rediss", "unix"])


class StoreOpener:
    """What :func:`open_store` returns: ``await`` it, or use it with ``async with``."""

    def __init__(self, url: str, kwargs: dict[str, Any]) -> None:
        self._url = url
        self._kwargs = kwargs
        self._store: StoreSurface | None = None

    async def _open(self) -> StoreSurface:
        parsed = StoreURL.parse(self._url)
        if parsed.scheme in (*_ALIASES, *_REMOTE):
            scheme = _ALIASES.get(parsed.scheme, parsed.scheme)
            if scheme == "redis" and "write_behind" in parsed.options:
                return await _tiered(self._url, parsed.options, self._kwargs)
            remote = await _remote_backend(scheme).open(self._url, parsed.options)
            return RemoteStore(remote, **self._kwargs)
        factory = _LOCAL.get(parsed.scheme)
        if factory is None:
            raise ConfigurationError(
                "store URL",
                f"unknown scheme {parsed.scheme!r}; use one of: "
                + ", ".join(f"{s}://" for s in supported_schemes()),
            )
        backend, runner = await factory(parsed)
        return LocalStore(backend, runner, **self._kwargs)

    def __await__(self) -> Generator[Any, None, StoreSurface]:
        return self._open().__await__()

    async def __aenter__(self) -> StoreSurface:
        self._store = await self._open()
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    defaults: SessionDefaults | None = None,
    limits: Limits | None = None,
) -> StoreOpener:
    """Open the store at ``url``. ``await open_store(...)`` or ``async with open_store(...)``."""
    return StoreOpener(url, {"clock": clock, "defaults": defaults, "limits": limits})
