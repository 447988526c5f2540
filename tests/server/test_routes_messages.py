"""Load, history, paged reads and appends of a session's messages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from chatkeep.core.clock import FakeClock

from .support import failed, new_session, ok

MESSAGE_KEYS = {"id", "sessionId", "seq", "role", "content", "userId", "createdAt", "metadata"}


async def post(
    client: httpx.AsyncClient, sid: str, body: object, status: int = 201
) -> dict[str, Any]:
    data: dict[str, Any] = ok(await client.post(f"/api/sessions/{sid}/messages", json=body), status)
    return data


async def test_append_one_message(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client))["id"]
    data = await post(client, sid, {"role": "user", "content": "hello"})
    assert (data["sessionId"], data["added"], data["messageCount"], data["lastSeq"]) == (
        sid,
        1,
        1,
        1,
    )
    (message,) = data["messages"]
    assert set(message) == MESSAGE_KEYS
    assert (message["seq"], message["role"], message["content"]) == (1, "user", "hello")
    assert message["createdAt"] == "2030-01-01T00:00:00Z"


async def test_append_a_list_with_json_content(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client))["id"]
    body = [
        {"role": "user", "content": "what is 2+2?", "userId": "u1"},
        {"role": "tool", "content": {"call": "add", "args": [2, 2]}, "metadata": {"ms": 3}},
        {"role": "assistant", "content": "4"},
    ]
    data = await post(client, sid, body)
    assert [m["seq"] for m in data["messages"]] == [1, 2, 3]
    assert data["messages"][0]["userId"] == "u1"
    assert data["messages"][1]["content"] == {"call": "add", "args": [2, 2]}
    assert data["messages"][1]["metadata"] == {"ms": 3}


async def test_a_client_id_is_stored_once(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client))["id"]
    body = {"role": "user", "content": "once", "clientId": "turn-1"}
    first = await post(client, sid, body)
    again = await post(client, sid, body)
    assert first["messages"] == again["messages"]
    assert first["messages"][0]["id"] == "turn-1"
    assert (first["added"], again["added"], again["messageCount"]) == (1, 0, 1)


async def test_append_errors_store_nothing(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client))["id"]
    url = f"/api/sessions/{sid}/messages"
    failed(await client.post(url, json={"role": "robot", "content": "x"}), 422, "validation_error")
    failed(await client.post(url, json={"content": "x"}), 422, "validation_error")
    failed(await client.post(url, json=[]), 422, "validation_error")
    good_then_bad = [
        {"role": "user", "content": "fine"},
        {"role": "user", "content": "x", "clientId": "bad id!"},
    ]
    failed(await client.post(url, json=good_then_bad), 400, "invalid_input")
    bad_json = await client.post(
        url, content=b"{oops", headers={"content-type": "application/json"}
    )
    failed(bad_json, 400, "invalid_json")
    failed(
        await client.post("/api/sessions/nope/messages", json={"role": "user", "content": "x"}),
        404,
        "session_not_found",
    )
    assert ok(await client.get(f"/api/sessions/{sid}"))["messageCount"] == 0


async def test_appending_renews_the_expiry(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    sid = (await new_session(client, ttl=60))["id"]
    fake_clock.advance(timedelta(seconds=50))
    await post(client, sid, {"role": "user", "content": "still here"})
    fake_clock.advance(timedelta(seconds=50))
    assert ok(await client.get(f"/api/sessions/{sid}"))["expiresAt"] == "2030-01-01T00:01:50Z"
    fake_clock.advance(timedelta(seconds=11))
    failed(
        await client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "content": "x"}),
        410,
        "session_expired",
    )


async def test_load_returns_the_history_and_touches(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    sid = (await new_session(client, ttl=60))["id"]
    await post(
        client, sid, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    )
    fake_clock.advance(timedelta(seconds=30))
    data = ok(await client.post(f"/api/sessions/{sid}/load"))
    assert (data["sessionId"], data["loaded"], data["historyOnClient"]) == (sid, True, False)
    assert [m["content"] for m in data["conversationHistory"]] == ["a", "b"]
    assert data["session"]["lastActivity"] == "2030-01-01T00:00:30Z"
    assert data["session"]["expiresAt"] == "2030-01-01T00:01:30Z"
    failed(await client.post("/api/sessions/nope/load"), 404, "session_not_found")


async def test_history_does_not_touch(client: httpx.AsyncClient, fake_clock: FakeClock) -> None:
    sid = (await new_session(client))["id"]
    await post(client, sid, {"role": "user", "content": "a"})
    fake_clock.advance(timedelta(seconds=30))
    data = ok(await client.get(f"/api/sessions/{sid}/history"))
    assert (data["sessionId"], data["count"]) == (sid, 1)
    assert data["history"][0]["content"] == "a"
    assert ok(await client.get(f"/api/sessions/{sid}"))["lastActivity"] == "2030-01-01T00:00:00Z"
    failed(await client.get("/api/sessions/nope/history"), 404, "session_not_found")


async def test_client_mode_keeps_no_history_here(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client, persistence="client"))["id"]
    stored = await post(client, sid, {"role": "user", "content": "kept on the client"})
    assert (stored["messages"], stored["added"], stored["historyOnClient"]) == ([], 0, True)
    loaded = ok(await client.post(f"/api/sessions/{sid}/load"))
    assert (loaded["conversationHistory"], loaded["historyOnClient"]) == ([], True)
    assert ok(await client.get(f"/api/sessions/{sid}/history"))["history"] == []
    failed(await client.get(f"/api/sessions/{sid}/messages"), 400, "invalid_input")


@pytest.mark.parametrize(
    "path", ["/api/sessions/{sid}/messages", "/chat/api/sessions/{sid}/messages/"]
)
async def test_messages_are_paged_by_seq(client: httpx.AsyncClient, path: str) -> None:
    sid = (await new_session(client))["id"]
    await post(client, sid, [{"role": "user", "content": str(n)} for n in range(1, 8)])
    url = path.format(sid=sid)

    async def seqs(**params: int) -> list[int]:
        data = ok(await client.get(url, params=params))
        assert data["sessionId"] == sid
        assert data["count"] == len(data["messages"])
        return [m["seq"] for m in data["messages"]]

    assert await seqs() == [1, 2, 3, 4, 5, 6, 7]
    assert await seqs(afterSeq=5) == [6, 7]
    assert await seqs(beforeSeq=3) == [1, 2]
    assert await seqs(last=2) == [6, 7]
    assert await seqs(afterSeq=1, limit=2) == [2, 3]
    failed(await client.get(url, params={"limit": 0}), 422, "validation_error")
    failed(await client.get(url, params={"afterSeq": "x"}), 422, "validation_error")
    for name in ("afterSeq", "beforeSeq", "last", "limit"):
        failed(await client.get(url, params={name: 2**63}), 422, "validation_error")


async def test_the_rolling_window_drops_old_messages(client: httpx.AsyncClient) -> None:
    sid = (await new_session(client, maxMessages=2))["id"]
    for n in range(4):
        await post(client, sid, {"role": "user", "content": str(n)})
    data = ok(await client.get(f"/api/sessions/{sid}/messages"))
    assert [m["seq"] for m in data["messages"]] == [3, 4]
