"""Search, stats, settings, health, the page at / and the OpenAPI document."""

from __future__ import annotations

import httpx

from chatkeep.core.models import Persistence
from chatkeep.manager import SessionManager

from .support import failed, new_session, ok


async def test_search_finds_every_word(client: httpx.AsyncClient) -> None:
    a = (await new_session(client, owner="alice"))["id"]
    b = (await new_session(client, owner="bob"))["id"]
    for sid, text in [(a, "the blue whale sings"), (b, "a blue bird")]:
        body = {"role": "user", "content": text}
        ok(await client.post(f"/api/sessions/{sid}/messages", json=body), 201)
    data = ok(await client.get("/api/search", params={"q": "blue"}))
    assert data["query"] == "blue"
    assert data["count"] == 2
    assert {hit["session"]["id"] for hit in data["results"]} == {a, b}
    whale = ok(await client.get("/api/search", params={"q": "Blue WHALE"}))
    assert [hit["session"]["id"] for hit in whale["results"]] == [a]
    assert whale["results"][0]["messages"][0]["content"] == "the blue whale sings"
    bob = ok(await client.get("/api/search", params={"q": "blue", "owner": "bob"}))
    assert [hit["session"]["id"] for hit in bob["results"]] == [b]


async def test_search_errors(client: httpx.AsyncClient) -> None:
    failed(await client.get("/api/search"), 422, "validation_error")
    failed(await client.get("/api/search", params={"q": "  !! "}), 400, "invalid_input")
    failed(await client.get("/api/search", params={"q": "x", "limit": 0}), 422, "validation_error")


async def test_stats(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client, owner="alice"))["id"]
    ok(
        await client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "x"}),
        201,
    )
    await new_session(client, persistence="none")
    data = ok(await client.get("/api/stats"))
    assert data["defaultPersistence"] == "durable"
    assert set(data["stores"]) == {"durable", "client", "none"}
    durable = data["stores"]["durable"]
    assert (durable["totalSessions"], durable["totalMessages"]) == (1, 1)
    assert durable["sessionsByOwner"] == {"alice": 1}
    assert data["stores"]["none"]["totalSessions"] >= 1
    assert data["cachedSessions"] == 2


async def test_settings_change_the_default_for_new_sessions_only(
    client: httpx.AsyncClient, manager: SessionManager
) -> None:
    before = await new_session(client)
    settings = ok(await client.get("/api/settings"))
    assert settings["defaultPersistence"] == "durable"
    assert set(settings["persistenceModes"]) == {"durable", "client", "none"}
    assert "new sessions only" in settings["note"]
    changed = ok(await client.put("/api/settings", json={"defaultPersistence": "none"}))
    assert changed["defaultPersistence"] == "none"
    assert "existing sessions keep their mode" in changed["note"]
    assert manager.default_persistence is Persistence.NONE
    after = await new_session(client)
    assert after["persistence"] == "none"
    assert ok(await client.get(f"/api/sessions/{before['id']}"))["persistence"] == "durable"
    assert ok(await client.get("/api/settings"))["defaultPersistence"] == "none"


async def test_settings_errors_change_nothing(client: httpx.AsyncClient) -> None:
    url = "/api/settings"
    failed(await client.put(url, json={"defaultPersistence": "redis"}), 400, "invalid_input")
    failed(await client.put(url, json={"defaultPersistence": "disk"}), 422, "validation_error")
    failed(await client.put(url, json={}), 422, "validation_error")
    assert ok(await client.get(url))["defaultPersistence"] == "durable"


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert ok(await client.get("/healthz")) == {"status": "alive"}
    ready = ok(await client.get("/readyz"))
    assert ready["status"] == "ready"
    assert set(ready["stores"]) == {"durable", "client", "none"}
    assert all(store["healthy"] for store in ready["stores"].values())


async def test_the_page_at_the_root(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>chatkeep</title>" in response.text


async def test_every_endpoint_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/api/sessions": {"get", "post"},
        "/api/sessions/{session_id}": {"get", "patch", "delete"},
        "/api/sessions/{session_id}/load": {"post"},
        "/api/sessions/{session_id}/history": {"get"},
        "/api/sessions/{session_id}/messages": {"get", "post"},
        "/chat/api/sessions/{session_id}/messages/": {"get"},
        "/api/sessions/{session_id}/lock": {"get", "put", "delete"},
        "/api/sessions/bulk-update": {"post"},
        "/api/devices/{device_id}/session": {"get"},
        "/api/backup": {"post"},
        "/api/restore": {"post"},
        "/api/search": {"get"},
        "/api/stats": {"get"},
        "/api/settings": {"get", "put"},
        "/healthz": {"get"},
        "/metrics": {"get"},
        "/readyz": {"get"},
        "/": {"get"},
    }
    assert {path: set(ops) for path, ops in paths.items()} == expected
    schemas = response.json()["components"]["schemas"]
    assert "lastActivity" in schemas["SessionOut"]["properties"]
    assert "conversationHistory" in schemas["Loaded"]["properties"]


def keys(value: object, skip: frozenset[str]) -> set[str]:
    """Every object key in a JSON value, not looking inside the keys named in ``skip``."""
    if isinstance(value, dict):
        found = set(value)
        for key, item in value.items():
            if key not in skip:
                found |= keys(item, skip)
        return found
    if isinstance(value, list):
        return set().union(*(keys(item, skip) for item in value))
    return set()


async def test_every_answer_is_camel_case(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client, owner="o_1", metadata={"snake_key": 1}))["id"]
    body = {"role": "user", "content": {"tool_call": "x"}, "metadata": {"a_b": 1}}
    answers = [await client.post(f"/api/sessions/{sid}/messages", json=body)]
    for path in ["/api/sessions", f"/api/sessions/{sid}", "/api/stats", "/api/settings"]:
        answers.append(await client.get(path))
    answers += [
        await client.get("/api/search", params={"q": "x"}),
        await client.get(f"/api/sessions/{sid}/history"),
        await client.post(f"/api/sessions/{sid}/load"),
        await client.get("/readyz"),
        await client.get("/api/sessions/missing"),
    ]
    user_data = frozenset({"metadata", "content", "sessionsByOwner", "details"})
    for answer in answers:
        found = keys(answer.json(), user_data)
        assert found, answer.text
        assert not [key for key in found if "_" in key], answer.text
