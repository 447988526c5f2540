"""The client against the server: in-process over ASGI (async client), and a server on
a free port run by uvicorn in a thread (sync client, WebSocket)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from chatkeep.client import AsyncClient
from chatkeep.config import Config, ServerConfig, StoreConfig
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import Persistence
from chatkeep.manager import ManagerConfig, SessionManager
from chatkeep.server import create_app
from chatkeep.stores import open_store

BASE = "http://testserver"
KEYS = (("alice-key-0123456789", "alice"), ("bob-key-012345678901", "bob"))
READY_WITHIN = 10.0


@pytest.fixture
async def manager(fake_clock: FakeClock) -> AsyncIterator[SessionManager]:
    async with (
        open_store("memory://", clock=fake_clock) as durable,
        open_store("memory://", clock=fake_clock) as volatile,
    ):
        stores = {
            Persistence.DURABLE: durable,
            Persistence.CLIENT: durable,
            Persistence.NONE: volatile,
        }
        async with SessionManager(
            stores, ManagerConfig(sweep_interval=None), clock=fake_clock
        ) as opened:
            yield opened


@pytest.fixture
async def api(manager: SessionManager) -> AsyncIterator[AsyncClient]:
    app = create_app(Config(), manager)
    async with AsyncClient(BASE, transport=httpx.ASGITransport(app)) as client:
        yield client


@pytest.fixture
def secured_app(manager: SessionManager) -> httpx.ASGITransport:
    return httpx.ASGITransport(create_app(Config(server=ServerConfig(api_keys=KEYS)), manager))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(base: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the server stopped while starting")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.02)
    raise RuntimeError(f"the server did not answer /healthz within {READY_WITHIN}s")


@contextmanager
def serving(server_config: ServerConfig) -> Iterator[str]:
    """A server on a free port (memory stores), stopped on the way out; its base URL."""
    port = free_port()
    config = Config(store=StoreConfig(url="memory://"), server=server_config)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config), host="127.0.0.1", port=port, lifespan="on", log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, thread)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=READY_WITHIN)


@pytest.fixture
def live() -> Iterator[str]:
    with serving(ServerConfig()) as base:
        yield base


@pytest.fixture
def live_secured() -> Iterator[str]:
    with serving(ServerConfig(api_keys=KEYS)) as base:
        yield base
