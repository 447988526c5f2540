"""/api/sessions: create, list, read, change, delete; every error path."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from chatkeep.core.clock import FakeClock
from chatkeep.manager import SessionManager

from .support import failed, new_session, ok

CAMEL = re.compile(r"^[a-z]+(?:[A-Z][a-z]*)*$")
SESSION_KEYS = {
    "id", "owner", "deviceId", "persistence", "createdAt", "updatedAt", "lastActivity",
    "expiresAt", "ttl", "maxMessages", "metadata", "tags", "version", "messageCount",
    "lastSeq", "lock",
}  # fmt: skip


async def test_create_with_defaults(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/sessions", json={})
    data = ok(response, 201)
    assert set(data) == SESSION_KEYS
    assert all(CAMEL.match(key) for key in data)
    assert data["persistence"] == "durable"
    assert data["ttl"] == 86400
    assert data["createdAt"] == "2030-01-01T00:00:00Z"
    assert data["expiresAt"] == "2030-01-02T00:00:00Z"
    assert (data["version"], data["messageCount"], data["lastSeq"]) == (1, 0, 0)
    assert response.headers["location"] == f"/api/sessions/{data['id']}"
    assert response.headers["etag"] == '"1"'


async def test_create_with_every_option(client: httpx.AsyncClient) -> None:
    data = await new_session(
        client,
        id="chat-1",
        owner="alice",
        deviceId="6f1c1f52-31b3-4a54-9e0e-6d3d1f6c2b7a",
        persistence="none",
        ttl=60,
        maxMessages=5,
        metadata={"topic": "x", "n": 3},
        tags=["b", "a"],
    )
    assert data["id"] == "chat-1"
    assert data["owner"] == "alice"
    assert data["deviceId"] == "6f1c1f52-31b3-4a54-9e0e-6d3d1f6c2b7a"
    assert data["persistence"] == "none"
    assert data["ttl"] == 60
    assert data["expiresAt"] == "2030-01-01T00:01:00Z"
    assert data["maxMessages"] == 5
    assert data["metadata"] == {"topic": "x", "n": 3}
    assert data["tags"] == ["a", "b"]


async def test_a_null_ttl_never_expires(client: httpx.AsyncClient) -> None:
    data = await new_session(client, ttl=None)
    assert (data["ttl"], data["expiresAt"]) == (None, None)


async def test_create_errors(client: httpx.AsyncClient) -> None:
    await new_session(client, id="taken")
    failed(await client.post("/api/sessions", json={"id": "taken"}), 409, "session_exists")
    failed(await client.post("/api/sessions", json={"id": "bad id!"}), 400, "invalid_input")
    failed(await client.post("/api/sessions", json={"ttl": -5}), 400, "invalid_input")
    failed(await client.post("/api/sessions", json={"maxMessages": 0}), 400, "invalid_input")
    error = failed(
        await client.post("/api/sessions", json={"ttl": "soon"}), 422, "validation_error"
    )
    assert error["details"][0]["field"] == "ttl"
    failed(
        await client.post("/api/sessions", json={"persistence": "disk"}), 422, "validation_error"
    )
    failed(await client.post("/api/sessions", json={"colour": "red"}), 422, "validation_error")
    error = failed(
        await client.post("/api/sessions", json={"persistence": "redis"}), 400, "invalid_input"
    )
    assert "no store is configured for 'redis'" in error["message"]
    assert ok(await client.get("/api/sessions"))["count"] == 1


async def test_get_and_etag(client: httpx.AsyncClient) -> None:
    created = await new_session(client, metadata={"k": "v"})
    response = await client.get(f"/api/sessions/{created['id']}")
    assert ok(response) == created
    assert response.headers["etag"] == '"1"'


async def test_get_errors(client: httpx.AsyncClient) -> None:
    failed(await client.get("/api/sessions/no-such"), 404, "session_not_found")
    failed(await client.get("/api/sessions/bad%20id"), 400, "invalid_input")


async def test_an_expired_session_is_gone(client: httpx.AsyncClient, fake_clock: FakeClock) -> None:
    sid = (await new_session(client, ttl=60))["id"]
    fake_clock.advance(timedelta(seconds=61))
    error = failed(await client.get(f"/api/sessions/{sid}"), 410, "session_expired")
    assert sid in error["message"]
    failed(await client.post(f"/api/sessions/{sid}/load"), 410, "session_expired")
    assert ok(await client.get("/api/sessions"))["count"] == 0
    listed = ok(await client.get("/api/sessions", params={"includeExpired": "true"}))
    assert [s["id"] for s in listed["sessions"]] == [sid]


async def test_patch_changes_fields(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client, metadata={"a": 1, "b": 2}, tags=["x"]))["id"]
    body = {"mergeMetadata": {"b": None, "c": 3}, "addTags": ["y"], "ttl": 120, "maxMessages": 9}
    response = await client.patch(f"/api/sessions/{sid}", json=body)
    data = ok(response)
    assert data["metadata"] == {"a": 1, "c": 3}
    assert data["tags"] == ["x", "y"]
    assert (data["ttl"], data["maxMessages"], data["version"]) == (120, 9, 2)
    assert response.headers["etag"] == '"2"'


@pytest.mark.parametrize("header", ['"1"', "1", 'W/"1"'])
async def test_patch_with_if_match(client: httpx.AsyncClient, header: str) -> None:
    sid = (await new_session(client))["id"]
    url = f"/api/sessions/{sid}"
    assert (
        ok(await client.patch(url, json={"owner": "bob"}, headers={"If-Match": header}))["owner"]
        == "bob"
    )
    error = failed(
        await client.patch(url, json={"owner": "eve"}, headers={"If-Match": header}),
        409,
        "version_conflict",
    )
    assert "version 2" in error["message"]
    assert ok(await client.get(url))["owner"] == "bob"


async def test_patch_with_expected_version(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client))["id"]
    url = f"/api/sessions/{sid}"
    failed(
        await client.patch(url, json={"tags": ["t"], "expectedVersion": 7}), 409, "version_conflict"
    )
    assert ok(await client.patch(url, json={"tags": ["t"], "expectedVersion": 1}))["tags"] == ["t"]
    disagree = await client.patch(url, json={"expectedVersion": 2}, headers={"If-Match": '"3"'})
    failed(disagree, 400, "invalid_input")
    failed(await client.patch(url, json={}, headers={"If-Match": "abc"}), 400, "invalid_input")


async def test_persistence_cannot_change(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client, persistence="durable"))["id"]
    url = f"/api/sessions/{sid}"
    error = failed(await client.patch(url, json={"persistence": "none"}), 409, "immutable_setting")
    assert "fixed at creation" in error["message"]
    assert ok(await client.patch(url, json={"persistence": "durable"}))["persistence"] == "durable"


async def test_patch_errors(client: httpx.AsyncClient) -> None:
    failed(await client.patch("/api/sessions/nope", json={"owner": "x"}), 404, "session_not_found")
    sid = (await new_session(client))["id"]
    failed(
        await client.patch(f"/api/sessions/{sid}", json={"maxMessages": -1}), 400, "invalid_input"
    )
    failed(await client.patch(f"/api/sessions/{sid}", json={"nope": 1}), 422, "validation_error")
    assert ok(await client.get(f"/api/sessions/{sid}"))["version"] == 1


async def test_delete(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client))["id"]
    assert ok(await client.delete(f"/api/sessions/{sid}")) == {"sessionId": sid, "deleted": True}
    failed(await client.get(f"/api/sessions/{sid}"), 404, "session_not_found")
    failed(await client.delete(f"/api/sessions/{sid}"), 404, "session_not_found")


async def test_list_filters(client: httpx.AsyncClient, fake_clock: FakeClock) -> None:
    a = await new_session(client, owner="alice", tags=["x", "y"], metadata={"n": 3, "s": "3"})
    fake_clock.advance(timedelta(minutes=1))
    b = await new_session(client, owner="bob", tags=["x"], metadata={"n": 4})
    ok(
        await client.post(
            f"/api/sessions/{b['id']}/messages", json={"role": "user", "content": "hi"}
        ),
        201,
    )

    async def ids(**params: object) -> list[str]:
        data = ok(await client.get("/api/sessions", params=params))
        assert data["count"] == len(data["sessions"])
        return [s["id"] for s in data["sessions"]]

    assert await ids() == [b["id"], a["id"]]
    assert await ids(owner="alice") == [a["id"]]
    assert await ids(tag=["x", "y"]) == [a["id"]]
    assert await ids(**{"metadata.n": "3"}) == [a["id"]]
    assert await ids(**{"metadata.s": '"3"'}) == [a["id"]]
    assert await ids(**{"metadata.s": "3"}) == []
    assert await ids(hasMessages="true") == [b["id"]]
    assert await ids(hasMessages="false") == [a["id"]]
    assert await ids(createdAfter="2030-01-01T00:00:30Z") == [b["id"]]
    assert await ids(createdBefore="2030-01-01T00:00:30+00:00") == [a["id"]]
    assert await ids(activeAfter="2030-01-01T00:00:30Z") == [b["id"]]
    assert await ids(activeBefore="2030-01-01T00:00:30Z") == [a["id"]]
    assert await ids(sort="createdAt") == [a["id"], b["id"]]
    assert await ids(sort="-createdAt") == [b["id"], a["id"]]


async def test_list_pages_with_a_cursor(client: httpx.AsyncClient, fake_clock: FakeClock) -> None:
    made = []
    for _ in range(5):
        made.append((await new_session(client))["id"])
        fake_clock.advance(timedelta(seconds=1))
    seen: list[str] = []
    params: dict[str, object] = {"limit": 2, "sort": "createdAt"}
    while True:
        data = ok(await client.get("/api/sessions", params=params))
        seen += [s["id"] for s in data["sessions"]]
        if data["nextCursor"] is None:
            break
        params["cursor"] = data["nextCursor"]
    assert seen == made


async def test_list_errors(client: httpx.AsyncClient) -> None:
    failed(await client.get("/api/sessions", params={"limit": 0}), 422, "validation_error")
    failed(await client.get("/api/sessions", params={"sort": "size"}), 422, "validation_error")
    failed(await client.get("/api/sessions", params={"cursor": "junk"}), 400, "invalid_input")
    naive = {"createdAfter": "2030-01-01T00:00:00"}
    failed(await client.get("/api/sessions", params=naive), 422, "validation_error")
    failed(await client.get("/api/sessions", params={"metadata.": "1"}), 400, "invalid_input")
    other_sort = ok(await client.get("/api/sessions", params={"limit": 1}))
    assert other_sort["nextCursor"] is None


async def test_a_session_of_every_mode_lists_together(
    client: httpx.AsyncClient, manager: SessionManager
) -> None:
    kept = await new_session(client, persistence="durable")
    gone = await new_session(client, persistence="none")
    local = await new_session(client, persistence="client")
    listed = ok(await client.get("/api/sessions"))
    assert {s["id"] for s in listed["sessions"]} == {kept["id"], gone["id"], local["id"]}
