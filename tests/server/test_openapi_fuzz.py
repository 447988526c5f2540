"""Requests generated from the app's own OpenAPI schema never get a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import response_schema_conformance

from chatkeep.config import Config, ServerConfig
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import Persistence
from chatkeep.manager import ManagerConfig, SessionManager
from chatkeep.server import create_app
from chatkeep.stores import open_store

BASE_URL = "http://testserver"
EXAMPLES_PER_OPERATION = 25

Operation = APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Operation]

DEVICE_ID = "3f2c1e9a-8b7d-4c6e-9f10-2a3b4c5d6e7f"
TRANSPORT_KEYS = frozenset({"method", "url", "headers", "params", "json", "data", "cookies"})


@asynccontextmanager
async def _client(durable_url: str, backup_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    clock = FakeClock()
    async with (
        open_store(durable_url, clock=clock) as durable,
        open_store("memory://", clock=clock) as volatile,
    ):
        stores = {
            Persistence.DURABLE: durable,
            Persistence.CLIENT: durable,
            Persistence.NONE: volatile,
        }
        manager_config = ManagerConfig(sweep_interval=None, backup_dir=backup_dir)
        async with SessionManager(stores, manager_config, clock=clock) as manager:
            app = create_app(Config(server=ServerConfig(max_request_bytes=64 * 1024)), manager)
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                yield client


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture(params=["memory", "sqlite"])
def client(
    request: pytest.FixtureRequest, portal: BlockingPortal, tmp_path: Path
) -> Iterator[httpx.AsyncClient]:
    """A client of the app, whose manager, stores and requests all run in ``portal``."""
    durable_url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'c.db'}"
    with portal.wrap_async_context_manager(_client(durable_url, tmp_path / "backups")) as opened:
        yield opened


def _schema(portal: BlockingPortal, client: httpx.AsyncClient) -> BaseSchema:
    response = portal.call(client.get, "/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return schemathesis.openapi.from_dict(document)


def _operations(schema: BaseSchema) -> list[Operation]:
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    return operations


def _aimed(case: Case, session_id: str) -> Case:
    """``case`` sent to a session and a device that exist (otherwise most of the generated
    ids name nothing and never get past the lookup)."""
    if "session_id" in case.path_parameters:
        case.path_parameters["session_id"] = session_id
    if "device_id" in case.path_parameters:
        case.path_parameters["device_id"] = DEVICE_ID
        case.headers["X-Device-ID"] = DEVICE_ID
    return case


def _fuzz(portal: BlockingPortal, client: httpx.AsyncClient, operation: Operation) -> None:
    created = portal.call(lambda: client.post("/api/sessions", json={}))
    assert created.status_code == 201, created.text
    session_id = created.json()["data"]["id"]
    generated = operation.as_strategy()

    @given(case=st.one_of(generated, generated.map(lambda case: _aimed(case, session_id))))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Case) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        response = portal.call(lambda: client.request(**_httpx_kwargs(kwargs)))
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    check()


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Transport keyword arguments (in ``requests`` spelling) as ``httpx`` takes them."""
    assert set(kwargs) <= TRANSPORT_KEYS, sorted(set(kwargs) - TRANSPORT_KEYS)
    passed = {"method", "url", "headers", "params", "json"}
    translated = {key: value for key, value in kwargs.items() if key in passed}
    if "data" in kwargs:
        translated["content"] = kwargs["data"]
    if kwargs.get("cookies"):
        pairs = "; ".join(f"{name}={value}" for name, value in kwargs["cookies"].items())
        translated["headers"] = {**translated.get("headers", {}), "Cookie": pairs}
    return translated


def test_schema_lists_the_http_api(portal: BlockingPortal, client: httpx.AsyncClient) -> None:
    paths = {operation.path for operation in _operations(_schema(portal, client))}
    assert "/api/sessions/{session_id}/messages" in paths
    assert "/api/search" in paths


def test_generated_requests_get_no_5xx_and_documented_responses(
    portal: BlockingPortal, client: httpx.AsyncClient
) -> None:
    for operation in _operations(_schema(portal, client)):
        _fuzz(portal, client, operation)
