"""An app over a real manager (memory and SQLite stores), driven in-process over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from chatkeep.config import Config, ServerConfig
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import Persistence
from chatkeep.manager import ManagerConfig, SessionManager
from chatkeep.server import create_app
from chatkeep.stores import open_store

BODY_LIMIT = 64 * 1024


@pytest.fixture(params=["memory", "sqlite"])
async def manager(
    request: pytest.FixtureRequest, tmp_path: Path, fake_clock: FakeClock
) -> AsyncIterator[SessionManager]:
    """``durable`` and ``client`` sessions in one store (memory or SQLite), ``none`` ones
    in another (memory)."""
    durable_url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'c.db'}"
    async with (
        open_store(durable_url, clock=fake_clock) as durable,
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
async def client(manager: SessionManager) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Config(server=ServerConfig(max_request_bytes=BODY_LIMIT)), manager)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
