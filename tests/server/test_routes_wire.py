"""The answers encoded from records at once are the bytes the wire models give, and the
app's routes cost no more than they must (no worker threads, no included routers)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from chatkeep.config import Config
from chatkeep.core.frozen import freeze, freeze_object
from chatkeep.core.models import Message, Persistence, Role, Session, SessionLock
from chatkeep.server import create_app, routes_messages
from chatkeep.server.mount import add_routes
from chatkeep.server.wire import (
    Envelope,
    MessageOut,
    SessionOut,
    answer,
    envelope_json,
    message_json,
    message_out,
    session_json,
    session_out,
)

from .support import new_session, ok

AT = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def a_session(**changes: Any) -> Session:
    fields: dict[str, Any] = {
        "id": "s-1",
        "owner": None,
        "device_id": None,
        "persistence": Persistence.DURABLE,
        "created_at": AT,
        "updated_at": AT,
        "last_activity_at": AT,
        "expires_at": None,
        "ttl": None,
        "max_messages": 1000,
        "metadata": freeze_object({}),
        "tags": frozenset(),
        "version": 1,
        "message_count": 0,
        "last_seq": 0,
        "lock": None,
    }
    fields.update(changes)
    return Session(**fields)


SESSIONS = [
    a_session(),
    a_session(
        owner="alice",
        device_id="7f0c1d2e-0000-4000-8000-000000000001",
        persistence=Persistence.CLIENT,
        expires_at=AT + timedelta(hours=1),
        ttl=timedelta(seconds=3600.25),
        metadata=freeze_object({"plan": "pro", "n": [1, 2.5, {"deep": None}], "ok": True}),
        tags=frozenset({"zeta", "alpha", "ünï"}),
        version=7,
        message_count=3,
        last_seq=9,
        lock=SessionLock("scheduling", AT, AT + timedelta(days=1)),
    ),
    a_session(lock=SessionLock("billing", AT, None), ttl=timedelta(0)),
]

MESSAGES = [
    Message("m-1", "s-1", 1, Role.USER, "hello", None, AT),
    Message(
        "m-2",
        "s-1",
        2,
        Role.TOOL,
        freeze({"call": "add", "args": [2, 2.5], "nested": {"x": None, "t": "\u2028é"}}),
        "u-1",
        AT.replace(microsecond=0),
        freeze_object({"ms": 3, "tags": ["a"]}),
    ),
    Message("m-3", "s-1", 3, Role.ASSISTANT, freeze([1, "two", {"3": [True]}]), None, AT),
    Message("m-4", "s-1", 4, Role.SYSTEM, {"inf": float("inf"), "nan": float("nan")}, None, AT),
]


def model_bytes(model: SessionOut | MessageOut) -> bytes:
    return TypeAdapter(Envelope[type(model)]).dump_json(Envelope(data=model), by_alias=True)  # type: ignore[misc]


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: f"v{s.version}-{s.lock}")
def test_a_session_encodes_as_its_model(session: Session) -> None:
    assert envelope_json(session_json(session)) == model_bytes(session_out(session))


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.id)
def test_a_message_encodes_as_its_model(message: Message) -> None:
    assert envelope_json(message_json(message)) == model_bytes(message_out(message))


def test_the_dictionaries_name_every_field_of_the_models() -> None:
    by_alias = {name: field.alias for name, field in SessionOut.model_fields.items()}
    assert list(session_json(SESSIONS[1])) == list(by_alias.values())
    by_alias = {name: field.alias for name, field in MessageOut.model_fields.items()}
    assert list(message_json(MESSAGES[1])) == list(by_alias.values())


def test_an_answer_is_a_json_response() -> None:
    response = answer({"sessionId": "s-1", "count": 0}, status_code=201)
    assert response.status_code == 201
    assert response.body == b'{"success":true,"data":{"sessionId":"s-1","count":0}}'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.body))


# -- the routes ----------------------------------------------------------------------


def model_of(app: FastAPI, method: str, path: str) -> Any:
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path == path and method in route.methods:
            return route.response_model
    raise AssertionError(f"no route {method} {path}")


def assert_as_declared(app: FastAPI, response: httpx.Response, method: str, path: str) -> None:
    """The body is exactly what the route's declared model encodes it to."""
    assert response.headers["content-type"] == "application/json"
    adapter = TypeAdapter(model_of(app, method, path))
    assert (
        adapter.dump_json(adapter.validate_json(response.content), by_alias=True)
        == response.content
    )


@pytest.fixture
def app(client: httpx.AsyncClient) -> FastAPI:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    built = transport.app
    assert isinstance(built, FastAPI)
    return built


async def test_the_message_routes_answer_as_their_models(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    sid = (await new_session(client, metadata={"k": [1, {"v": None}]}, tags=["b", "a"]))["id"]
    path = "/api/sessions/{session_id}/messages"
    one = await client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "a"})
    assert one.status_code == 201
    assert_as_declared(app, one, "POST", path)
    several = [
        {"role": "tool", "content": {"x": [1, 2.5]}, "metadata": {"m": True}, "userId": "u"},
        {"role": "assistant", "content": ["é", {"y": None}], "clientId": "c-1"},
    ]
    many = await client.post(f"/api/sessions/{sid}/messages", json=several)
    assert_as_declared(app, many, "POST", path)
    again = await client.post(f"/api/sessions/{sid}/messages", json=several[1:])
    assert_as_declared(app, again, "POST", path)
    assert ok(again, 201)["added"] == 0
    for method, route, url in [
        ("GET", path, f"/api/sessions/{sid}/messages?last=2"),
        ("GET", "/chat/api/sessions/{session_id}/messages/", f"/chat/api/sessions/{sid}/messages/"),
        ("GET", "/api/sessions/{session_id}/history", f"/api/sessions/{sid}/history"),
        ("POST", "/api/sessions/{session_id}/load", f"/api/sessions/{sid}/load"),
    ]:
        answered = await client.request(method, url)
        assert answered.status_code == 200, answered.text
        assert_as_declared(app, answered, method, route)


async def test_a_client_session_answers_as_its_models(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    sid = (await new_session(client, persistence="client", ttl=60))["id"]
    stored = await client.post(
        f"/api/sessions/{sid}/messages", json={"role": "user", "content": "x"}
    )
    assert_as_declared(app, stored, "POST", "/api/sessions/{session_id}/messages")
    assert ok(stored, 201)["historyOnClient"] is True
    loaded = await client.post(f"/api/sessions/{sid}/load")
    assert_as_declared(app, loaded, "POST", "/api/sessions/{session_id}/load")
    assert ok(loaded)["conversationHistory"] == []


def dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from dependencies(dependency)


def test_no_dependency_runs_in_a_worker_thread() -> None:
    """FastAPI runs a plain function dependency in a worker thread on every request."""
    app = create_app(Config())
    plain = [
        f"{route.path}: {dependency.call}"
        for route in app.routes
        if isinstance(route, APIRoute)
        for dependency in dependencies(route.dependant)
        if dependency.call is not None and not inspect.iscoroutinefunction(dependency.call)
    ]
    assert plain == []
    endpoints = [route.endpoint for route in app.routes if isinstance(route, APIRoute)]
    assert all(inspect.iscoroutinefunction(endpoint) for endpoint in endpoints)


# -- adding routes -------------------------------------------------------------------


def test_added_routes_are_documented_as_included_ones() -> None:
    included, added = FastAPI(), FastAPI()
    included.include_router(routes_messages.router)
    add_routes(added, routes_messages.router)
    assert added.openapi() == included.openapi()
    assert added.routes[-len(routes_messages.router.routes) :] == routes_messages.router.routes


def test_only_http_routes_can_be_added() -> None:
    router = APIRouter()

    @router.websocket("/socket")
    async def socket(websocket: WebSocket) -> None:
        await websocket.close()

    app = FastAPI()
    before = list(app.routes)
    with pytest.raises(TypeError, match="HTTP routes only"):
        add_routes(app, router)
    assert app.routes == before


async def test_a_wrong_method_on_an_added_route(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client))["id"]
    response = await client.put(f"/api/sessions/{sid}/messages", json={})
    assert response.status_code == 405
    assert "GET" in response.headers["allow"].split(", ")
    assert response.json()["error"]["code"] == "method_not_allowed"
