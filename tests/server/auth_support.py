"""An app with authentication on (two API keys and a token secret), and its callers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from chatkeep.config import Config, ServerConfig
from chatkeep.manager import SessionManager
from chatkeep.server import create_app
from chatkeep.server.auth import mint_token

KEY_A = "alice-key-0123456789"
KEY_B = "bob-key-abcdefghijkl"
SECRET = "token-secret-for-tests-only"
AUTH = ServerConfig(api_keys=((KEY_A, "alice"), (KEY_B, "bob")), token_secret=SECRET)


def auth_app(manager: SessionManager) -> FastAPI:
    return create_app(Config(server=AUTH), manager)


def token_for(manager: SessionManager, owner: str, ttl: timedelta = timedelta(hours=1)) -> str:
    return mint_token(SECRET, owner, manager.clock.now() + ttl)


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@asynccontextmanager
async def connected(
    app: FastAPI, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield client


@pytest.fixture
def owners_app(manager: SessionManager) -> FastAPI:
    """One app with authentication on, shared by ``alice`` and ``bob``."""
    return auth_app(manager)


@pytest.fixture
async def alice(owners_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with connected(owners_app, bearer(KEY_A)) as c:
        yield c


@pytest.fixture
async def bob(owners_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with connected(owners_app, bearer(KEY_B)) as c:
        yield c
