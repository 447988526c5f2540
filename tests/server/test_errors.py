"""The error table and the envelope: every failure has a status, a code and no trace."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

import chatkeep.errors
from chatkeep.core.models import Persistence
from chatkeep.manager import SessionManager
from chatkeep.server import errors
from chatkeep.server.errors import ERRORS, INTERNAL, spec_for
from chatkeep.server.middleware import LastResort

from .conftest import BODY_LIMIT
from .support import failed, new_session, ok


def test_every_error_class_is_in_the_table() -> None:
    classes = [
        value
        for _name, value in inspect.getmembers(chatkeep.errors, inspect.isclass)
        if issubclass(value, chatkeep.errors.ChatkeepError)
    ]
    assert set(classes) == set(ERRORS)
    codes = {spec.code for spec in ERRORS.values()}
    assert {"immutable_setting", "version_conflict", "session_exists"} <= codes


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (chatkeep.errors.InvalidInputError("f", "bad"), 400, "invalid_input"),
        (chatkeep.errors.SessionNotFoundError("s"), 404, "session_not_found"),
        (chatkeep.errors.SessionExpiredError("s"), 410, "session_expired"),
        (chatkeep.errors.SessionExistsError("s"), 409, "session_exists"),
        (chatkeep.errors.VersionConflictError("s", 1, 2), 409, "version_conflict"),
        (chatkeep.errors.ImmutableSettingError("persistence"), 409, "immutable_setting"),
        (chatkeep.errors.StoreUnavailableError("down"), 503, "store_unavailable"),
        (chatkeep.errors.StoreClosedError(), 503, "store_unavailable"),
        (chatkeep.errors.ConfigurationError("x", "y"), 500, "configuration_error"),
        (ValueError("not ours"), 500, "internal_error"),
    ],
)
def test_the_spec_of_each_error(error: Exception, status: int, code: str) -> None:
    spec = spec_for(error)
    assert (spec.status, spec.code) == (status, code)
    assert spec.close_code >= 1000


def test_an_unknown_error_is_internal() -> None:
    assert spec_for(KeyError("x")) is INTERNAL


async def test_a_declared_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    body = {"metadata": {"big": "x" * BODY_LIMIT}}
    error = failed(await client.post("/api/sessions", json=body), 413, "payload_too_large")
    assert str(BODY_LIMIT) in error["message"]
    assert ok(await client.get("/api/sessions"))["count"] == 0


async def test_a_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"metadata": {"big": "'
        for _ in range(BODY_LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}}'

    response = await client.post(
        "/api/sessions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    failed(response, 413, "payload_too_large")
    assert ok(await client.get("/api/sessions"))["count"] == 0


async def test_a_body_under_the_limit_is_fine(client: httpx.AsyncClient) -> None:
    body = {"metadata": {"big": "x" * (BODY_LIMIT - 100)}}
    ok(await client.post("/api/sessions", json=body), 201)


async def test_unknown_paths_and_methods_are_in_the_envelope(client: httpx.AsyncClient) -> None:
    failed(await client.get("/api/nothing"), 404, "not_found")
    failed(await client.put("/api/sessions"), 405, "method_not_allowed")


async def test_a_closed_durable_store_gives_503(
    client: httpx.AsyncClient, manager: SessionManager
) -> None:
    kept = await new_session(client)
    volatile = await new_session(client, persistence="none")
    await manager.stores[Persistence.DURABLE].close()
    failed(await client.get(f"/api/sessions/{kept['id']}"), 503, "store_unavailable")
    failed(await client.post("/api/sessions", json={}), 503, "store_unavailable")
    body = {"role": "user", "content": "not stored"}
    url = f"/api/sessions/{kept['id']}/messages"
    failed(await client.post(url, json=body), 503, "store_unavailable")
    failed(await client.get("/api/sessions"), 503, "store_unavailable")
    error = failed(await client.get("/readyz"), 503, "not_ready")
    assert error["details"]["status"] == "degraded"
    stores = error["details"]["stores"]
    assert not stores["durable"]["healthy"]
    assert ok(await client.get("/healthz")) == {"status": "alive"}
    assert stores["none"]["healthy"]
    assert ok(await client.get(f"/api/sessions/{volatile['id']}"))["persistence"] == "none"


async def _crash(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("secret detail")


async def test_an_unexpected_error_is_500_without_its_detail() -> None:
    transport = httpx.ASGITransport(LastResort(_crash))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/")
    error = failed(response, 500, "internal_error")
    assert "secret" not in response.text
    assert error["message"] == "internal server error"


def _raising(error: Exception) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/")
    async def fail() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    ("error", "status", "shown"),
    [
        (chatkeep.errors.CorruptDataError("session 'x'", "secret bytes"), 500, False),
        (chatkeep.errors.ChatkeepError("secret state"), 500, False),
        (chatkeep.errors.ConfigurationError("persistence", "no store"), 500, True),
        (chatkeep.errors.StoreUnavailableError("the database is unreachable"), 503, True),
        (chatkeep.errors.SessionNotFoundError("x"), 404, True),
    ],
)
async def test_what_a_client_is_told(error: Exception, status: int, shown: bool) -> None:
    transport = httpx.ASGITransport(_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/")
    body = failed(response, status, spec_for(error).code)
    assert (body["message"] == str(error)) is shown
    assert "secret" not in response.text
