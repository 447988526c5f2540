"""The contract suite's fixtures: one ``store`` fixture, parametrised over every backend.

Each backend is one line of :data:`BACKENDS`. A backend that needs a server is declared
with :func:`served`, for example::

    served("postgresql", "CHATKEEP_TEST_POSTGRES_URL", "postgresql://127.0.0.1/chatkeep", "schema")
    served("redis", "CHATKEEP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", "prefix")

Its tests skip, with the reason, when the server cannot be reached; with ``CI=true`` they
fail instead. Every store gets a private directory, or for a server a private schema or
key prefix derived from that directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

import chatkeep
from chatkeep import FakeClock, Limits, SessionDefaults, Store


@dataclass(frozen=True, slots=True)
class Backend:
    """A backend under test: how to build the URL of a fresh store kept in ``directory``."""

    name: str
    url_in: Callable[[Path], str]
    server: str | None = None
    """The URL of the server this backend needs, checked before each test."""

    def require(self) -> None:
        """Skip (or, under CI, fail) when the backend's server cannot be reached."""
        if self.server is None:
            return
        parts = urlsplit(self.server)
        host, port = parts.hostname or "127.0.0.1", parts.port
        try:
            with socket.create_connection((host, port or 0), timeout=2):
                return
        except OSError as exc:
            reason = f"{self.name} server {host}:{port} is unreachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def local(name: str, url_in: Callable[[Path], str]) -> Backend:
    return Backend(name, url_in)


_NAMESPACES: list[tuple[Callable[[str], None], str]] = []
"""The namespaces handed out during the current test, with how to remove each."""


def served(
    name: str, env: str, default: str, isolate: str, drop: Callable[[str], None] | None = None
) -> Backend:
    """A server backend at ``$env`` (else ``default``); each store gets its own
    ``?<isolate>=...`` namespace, removed after the test by ``drop(url)``."""
    base = os.environ.get(env, default)

    def url_in(directory: Path) -> str:
        token = "ck" + hashlib.sha256(str(directory).encode()).hexdigest()[:16]
        url = f"{base}{'&' if '?' in base else '?'}{isolate}={token}"
        if drop is not None:
            _NAMESPACES.append((drop, url))
        return url

    return Backend(name, url_in, server=base)


def drop_schema(url: str) -> None:
    """Drop the PostgreSQL schema named by ``url``'s ``schema`` option, with everything in it."""
    import asyncpg  # type: ignore[import-untyped]

    from chatkeep.stores.postgres_options import driver_dsn
    from chatkeep.stores.sql.postgres import quote_ident

    schema = dict(parse_qsl(urlsplit(url).query))["schema"]

    async def drop() -> None:
        conn = await asyncpg.connect(driver_dsn(url))
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as thread:  # away from the test's event loop
        thread.submit(asyncio.run, drop()).result()


def drop_prefix(url: str) -> None:
    """Delete every Redis key under the prefix named by ``url``'s ``prefix`` option."""
    from urllib.parse import urlunsplit

    import redis

    from chatkeep.stores.redis_keys import Keys

    parts = urlsplit(url)
    prefix = dict(parse_qsl(parts.query))["prefix"]
    client = redis.Redis.from_url(urlunsplit(parts._replace(query="")))
    try:
        found = list(client.scan_iter(match=Keys(prefix).pattern(), count=1000))
        for start in range(0, len(found), 500):
            client.unlink(*found[start : start + 500])
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _drop_namespaces() -> Iterator[None]:
    """Remove the server namespaces (schemas, key prefixes) the test was given."""
    yield
    while _NAMESPACES:
        drop, url = _NAMESPACES.pop()
        drop(url)


def written_behind(redis: Backend) -> Backend:
    """Redis written behind to a SQLite file of the store's directory."""

    def url_in(directory: Path) -> str:
        durable = quote(f"sqlite:///{directory}/behind.db", safe="")
        return f"{redis.url_in(directory)}&write_behind={durable}"

    return Backend("redis+sqlite", url_in, redis.server)


REDIS = served(
    "redis", "CHATKEEP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", "prefix", drop_prefix
)
BACKENDS: tuple[Backend, ...] = (
    local("memory", lambda d: "memory://"),
    local("sqlite", lambda d: f"sqlite:///{d}/s.db"),
    local("file", lambda d: f"file://{d}/files"),
    served(
        "postgresql",
        "CHATKEEP_TEST_POSTGRES_URL",
        "postgresql://postgres@127.0.0.1:5432/test",
        "schema",
        drop_schema,
    ),
    REDIS,
    written_behind(REDIS),
)
DURABLE = tuple(b for b in BACKENDS if b.name != "memory")


class Stores:
    """Opens stores of the backend under test, all on the test's fake clock.

    ``name`` picks the store: opening the same name again reopens the same data
    (except on ``memory://``, where every store starts empty).
    """

    def __init__(self, backend: Backend, root: Path, clock: FakeClock) -> None:
        self.backend = backend
        self.root = root
        self.clock = clock

    def url(self, name: str = "main") -> str:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        return self.backend.url_in(directory)

    @asynccontextmanager
    async def open(
        self,
        name: str = "main",
        *,
        limits: Limits | None = None,
        defaults: SessionDefaults | None = None,
    ) -> AsyncIterator[Store]:
        opener = chatkeep.open_store(
            self.url(name), clock=self.clock, limits=limits, defaults=defaults
        )
        async with opener as store:
            yield store


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    chosen: Backend = request.param
    chosen.require()
    return chosen


@pytest.fixture
def stores(backend: Backend, tmp_path: Path, fake_clock: FakeClock) -> Stores:
    return Stores(backend, tmp_path, fake_clock)


@pytest.fixture
async def store(stores: Stores) -> AsyncIterator[Store]:
    """A fresh, empty store of each backend in turn."""
    async with stores.open() as opened:
        yield opened
