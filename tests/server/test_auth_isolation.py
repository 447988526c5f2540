"""With authentication on, each owner sees only its own sessions, on every endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatkeep.core.clock import FakeClock
from chatkeep.manager import SessionManager

from .auth_support import KEY_A, KEY_B, auth_app, bearer, connected
from .support import failed, new_session, ok

MISSING = "no-such-session"

# Every route that names a session, and a request that would change or read it.
SESSION_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/sessions/{id}", None),
    ("PATCH", "/api/sessions/{id}", {"tags": ["taken"]}),
    ("DELETE", "/api/sessions/{id}", None),
    ("POST", "/api/sessions/{id}/load", None),
    ("GET", "/api/sessions/{id}/history", None),
    ("GET", "/api/sessions/{id}/messages", None),
    ("POST", "/api/sessions/{id}/messages", {"role": "user", "content": "from bob"}),
    ("GET", "/chat/api/sessions/{id}/messages/", None),
    ("GET", "/api/sessions/{id}/lock", None),
    ("PUT", "/api/sessions/{id}/lock", {"agent": "scheduling", "ttl": 60}),
    ("DELETE", "/api/sessions/{id}/lock", None),
]


@pytest.fixture
def app(manager: SessionManager) -> FastAPI:
    return auth_app(manager)


@pytest.fixture
async def alice(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with connected(app, bearer(KEY_A)) as client:
        yield client


@pytest.fixture
async def bob(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with connected(app, bearer(KEY_B)) as client:
        yield client


async def alices_session(alice: httpx.AsyncClient, **body: Any) -> str:
    session = await new_session(alice, tags=["mine"], **body)
    assert session["owner"] == "alice"
    sid: str = session["id"]
    message = {"role": "user", "content": "hello from alice"}
    ok(await alice.post(f"/api/sessions/{sid}/messages", json=message), 201)
    return sid


def test_the_matrix_covers_every_route_that_names_a_session(app: FastAPI) -> None:
    named = {
        (method.upper(), path.replace("{session_id}", "{id}"))
        for path, operations in app.openapi()["paths"].items()
        if "{session_id}" in path
        for method in operations
    }
    assert named == {(method, path) for method, path, _body in SESSION_ROUTES}


@pytest.mark.parametrize(("method", "path", "body"), SESSION_ROUTES)
async def test_another_owners_session_is_not_found_like_a_missing_one(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    sid = await alices_session(alice)
    before = ok(await alice.get(f"/api/sessions/{sid}"))
    hidden = await bob.request(method, path.format(id=sid), json=body)
    missing = await bob.request(method, path.format(id=MISSING), json=body)
    error = failed(hidden, 404, "session_not_found")
    assert error == {**failed(missing, 404, "session_not_found"), "message": error["message"]}
    assert error["message"] == failed(missing, 404, "session_not_found")["message"].replace(
        MISSING, sid
    )
    after = ok(await alice.get(f"/api/sessions/{sid}"))
    assert after == before
    history = ok(await alice.get(f"/api/sessions/{sid}/history"))
    assert [m["content"] for m in history["history"]] == ["hello from alice"]


@pytest.mark.parametrize(("method", "path", "body"), SESSION_ROUTES)
async def test_the_owner_reaches_its_session_on_every_route(
    alice: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    sid = await alices_session(alice)
    response = await alice.request(method, path.format(id=sid), json=body)
    assert response.status_code in (200, 201), response.text


async def test_an_expired_session_of_another_owner_is_not_found(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    sid = await alices_session(alice, ttl=60)
    fake_clock.advance(timedelta(minutes=5))
    failed(await bob.get(f"/api/sessions/{sid}"), 404, "session_not_found")
    failed(await bob.post(f"/api/sessions/{sid}/load"), 404, "session_not_found")
    failed(await alice.get(f"/api/sessions/{sid}"), 404, "session_not_found")


async def test_list_and_search_show_only_the_callers_sessions(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    mine = {await alices_session(alice), await alices_session(alice)}
    bobs = await new_session(bob, tags=["mine"])
    message = {"role": "user", "content": "hello from bob"}
    ok(await bob.post(f"/api/sessions/{bobs['id']}/messages", json=message), 201)
    for query in ("", "?owner=bob", "?tag=mine", "?includeExpired=true"):
        listed = ok(await alice.get(f"/api/sessions{query}"))
        assert {s["id"] for s in listed["sessions"]} == mine, query
    found = ok(await alice.get("/api/search", params={"q": "hello"}))
    assert {hit["session"]["id"] for hit in found["results"]} == mine
    found = ok(await alice.get("/api/search", params={"q": "hello", "owner": "bob"}))
    assert {hit["session"]["id"] for hit in found["results"]} == mine
    found = ok(await bob.get("/api/search", params={"q": "hello"}))
    assert [hit["session"]["id"] for hit in found["results"]] == [bobs["id"]]


async def test_a_new_session_belongs_to_its_creator(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    assert (await new_session(alice))["owner"] == "alice"
    assert (await new_session(alice, owner="alice"))["owner"] == "alice"
    error = failed(await alice.post("/api/sessions", json={"owner": "bob"}), 403, "forbidden")
    assert "alice" in error["message"]
    listed = ok(await bob.get("/api/sessions"))
    assert listed["sessions"] == []


async def test_a_session_cannot_be_given_to_another_owner(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    sid = await alices_session(alice)
    failed(await alice.patch(f"/api/sessions/{sid}", json={"owner": "bob"}), 403, "forbidden")
    kept = ok(await alice.patch(f"/api/sessions/{sid}", json={"owner": None}))
    assert kept["owner"] == "alice"
    ok(await alice.get(f"/api/sessions/{sid}"))
    failed(await bob.get(f"/api/sessions/{sid}"), 404, "session_not_found")


async def test_stats_and_changing_the_default_mode_are_forbidden(
    alice: httpx.AsyncClient,
) -> None:
    failed(await alice.get("/api/stats"), 403, "forbidden")
    body = {"defaultPersistence": "none"}
    failed(await alice.put("/api/settings", json=body), 403, "forbidden")
    settings = ok(await alice.get("/api/settings"))
    assert settings["defaultPersistence"] == "durable"


async def test_without_auth_everything_stays_open(client: httpx.AsyncClient) -> None:
    made = await new_session(client, owner="bob")
    assert made["owner"] == "bob"
    ok(await client.get(f"/api/sessions/{made['id']}"))
    ok(await client.get("/api/stats"))
    ok(await client.put("/api/settings", json={"defaultPersistence": "durable"}))
