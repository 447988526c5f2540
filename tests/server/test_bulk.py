"""Bulk update, backup (JSONL) and restore over REST."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from chatkeep.core.clock import FakeClock

from .auth_support import alice as alice  # the fixtures
from .auth_support import bob as bob
from .auth_support import owners_app as owners_app
from .conftest import BODY_LIMIT
from .support import failed, new_session, ok


async def session_with(client: httpx.AsyncClient, text: str, **body: Any) -> str:
    sid: str = (await new_session(client, **body))["id"]
    message = {"role": "user", "content": text}
    ok(await client.post(f"/api/sessions/{sid}/messages", json=message), 201)
    return sid


async def backup_lines(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.post("/api/backup")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


async def restore(client: httpx.AsyncClient, body: str, **params: str) -> Any:
    return await client.post("/api/restore", params=params, content=body.encode())


# -- bulk update ---------------------------------------------------------------------


async def test_bulk_update_changes_every_matching_session(client: httpx.AsyncClient) -> None:
    tagged = {(await new_session(client, tags=["old"]))["id"] for _ in range(3)}
    other = (await new_session(client, tags=["keep"]))["id"]
    body = {"filter": {"tags": ["old"]}, "changes": {"addTags": ["archived"], "ttl": 3600}}
    assert ok(await client.post("/api/sessions/bulk-update", json=body)) == {"updatedCount": 3}
    for sid in tagged:
        session = ok(await client.get(f"/api/sessions/{sid}"))
        assert session["tags"] == ["archived", "old"]
        assert session["ttl"] == 3600
    assert ok(await client.get(f"/api/sessions/{other}"))["tags"] == ["keep"]


async def test_bulk_update_filters_like_the_list(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    await new_session(client, owner="ann", metadata={"plan": "free"})
    fake_clock.advance(timedelta(hours=1))
    late = (await new_session(client, owner="ann", metadata={"plan": "free"}))["id"]
    await new_session(client, owner="ben", metadata={"plan": "free"})
    body = {
        "filter": {
            "owner": "ann",
            "metadata": {"plan": "free"},
            "createdAfter": "2030-01-01T00:30:00Z",
        },
        "changes": {"mergeMetadata": {"plan": "pro"}},
    }
    assert ok(await client.post("/api/sessions/bulk-update", json=body)) == {"updatedCount": 1}
    assert ok(await client.get(f"/api/sessions/{late}"))["metadata"] == {"plan": "pro"}
    listed = ok(await client.get("/api/sessions", params={"metadata.plan": "free"}))
    assert listed["count"] == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"filter": {}, "changes": {"expectedVersion": 1}}, 400, "invalid_input"),
        ({"filter": {"deviceId": "nope"}, "changes": {"tags": []}}, 400, "invalid_input"),
        ({"filter": {}, "changes": {"ttl": -1}}, 400, "invalid_input"),
        ({"filter": {}, "changes": {"persistence": "none"}}, 409, "immutable_setting"),
        ({"filter": {"colour": "red"}, "changes": {}}, 422, "validation_error"),
        ({"filter": {}, "changes": {"colour": "red"}}, 422, "validation_error"),
        ({"filter": {}}, 422, "validation_error"),
    ],
)
async def test_a_bad_bulk_update_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    sid = (await new_session(client, tags=["t"]))["id"]
    before = ok(await client.get(f"/api/sessions/{sid}"))
    failed(await client.post("/api/sessions/bulk-update", json=body), status, code)
    assert ok(await client.get(f"/api/sessions/{sid}")) == before


# -- backup --------------------------------------------------------------------------


async def test_backup_streams_every_session_with_its_messages(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    durable = await session_with(client, "kept on disk")
    volatile = await session_with(client, "kept in memory", persistence="none")
    expired = await session_with(client, "expired", ttl=60)
    fake_clock.advance(timedelta(minutes=5))
    header, *records = await backup_lines(client)
    assert header["format"] == "chatkeep-export"
    assert {r["session"]["id"] for r in records} == {durable, volatile, expired}
    contents = {r["session"]["id"]: [m["content"] for m in r["messages"]] for r in records}
    assert contents[durable] == ["kept on disk"]
    assert contents[volatile] == ["kept in memory"]


async def test_backup_then_restore_brings_sessions_back(client: httpx.AsyncClient) -> None:
    durable = await session_with(client, "one")
    volatile = await session_with(client, "two", persistence="none")
    body = (await client.post("/api/backup")).text
    for sid in (durable, volatile):
        ok(await client.delete(f"/api/sessions/{sid}"))
    report = ok(await restore(client, body))
    assert report == {"restored": 2, "skipped": 0, "failed": 0, "dryRun": False, "errors": []}
    history = ok(await client.get(f"/api/sessions/{volatile}/history"))
    assert [m["content"] for m in history["history"]] == ["two"]
    assert ok(await client.get(f"/api/sessions/{volatile}"))["persistence"] == "none"
    again = ok(await restore(client, body))
    assert (again["restored"], again["skipped"]) == (0, 2)


# -- restore -------------------------------------------------------------------------


async def test_a_dry_run_reports_and_changes_nothing(client: httpx.AsyncClient) -> None:
    sid = await session_with(client, "hello")
    body = (await client.post("/api/backup")).text
    ok(await client.delete(f"/api/sessions/{sid}"))
    report = ok(await restore(client, body, dryRun="true"))
    assert (report["restored"], report["dryRun"]) == (1, True)
    failed(await client.get(f"/api/sessions/{sid}"), 404, "session_not_found")


async def test_the_strategies(client: httpx.AsyncClient, fake_clock: FakeClock) -> None:
    sid = await session_with(client, "hello", tags=["v1"])
    body = (await client.post("/api/backup")).text
    fake_clock.advance(timedelta(seconds=5))
    ok(await client.patch(f"/api/sessions/{sid}", json={"tags": ["v2"]}))

    skipped = ok(await restore(client, body, strategy="skip_existing"))
    assert (skipped["restored"], skipped["skipped"]) == (0, 1)
    newer = ok(await restore(client, body, strategy="update_newer"))
    assert (newer["restored"], newer["skipped"]) == (0, 1)
    assert ok(await client.get(f"/api/sessions/{sid}"))["tags"] == ["v2"]
    replaced = ok(await restore(client, body, strategy="overwrite"))
    assert (replaced["restored"], replaced["skipped"]) == (1, 0)
    assert ok(await client.get(f"/api/sessions/{sid}"))["tags"] == ["v1"]


async def test_bad_lines_fail_alone_with_their_line_number(client: httpx.AsyncClient) -> None:
    sid = await session_with(client, "hello")
    header, record = await backup_lines(client)
    ok(await client.delete(f"/api/sessions/{sid}"))
    changed_mode = {**record, "session": {**record["session"], "persistence": "redis"}}
    body = (
        json.dumps(header)
        + "\n{not json\n\n[1, 2]\n"
        + json.dumps(changed_mode)
        + "\n"
        + json.dumps(record)
        + "\n"
    )
    report = ok(await restore(client, body))
    assert (report["restored"], report["skipped"], report["failed"]) == (1, 0, 3)
    assert [e.split(":")[0] for e in report["errors"]] == ["line 2", "line 4", "line 5"]
    assert "redis" in report["errors"][2]
    assert ok(await client.get(f"/api/sessions/{sid}"))["messageCount"] == 1


async def test_a_session_cannot_change_mode_by_restore(client: httpx.AsyncClient) -> None:
    sid = await session_with(client, "hello")
    _header, record = await backup_lines(client)
    moved = {**record, "session": {**record["session"], "persistence": "none"}}
    report = ok(await restore(client, jsonl([moved]), strategy="overwrite"))
    assert report["failed"] == 1
    assert "fixed" in report["errors"][0]
    assert ok(await client.get(f"/api/sessions/{sid}"))["persistence"] == "durable"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"strategy": "merge"}, 422, "validation_error"),
        ({"dryRun": "perhaps"}, 422, "validation_error"),
    ],
)
async def test_bad_restore_parameters_are_refused(
    client: httpx.AsyncClient, params: dict[str, str], status: int, code: str
) -> None:
    failed(await restore(client, "", **params), status, code)


async def test_a_body_that_is_not_utf8_or_too_large_is_refused(client: httpx.AsyncClient) -> None:
    not_text = await client.post("/api/restore", content=b"\xff\xfe\x00")
    failed(not_text, 400, "invalid_input")
    huge = await client.post("/api/restore", content=b"x" * (BODY_LIMIT + 1))
    failed(huge, 413, "payload_too_large")


# -- with authentication on ------------------------------------------------------------


async def test_bulk_update_changes_only_the_callers_sessions(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    alices = (await new_session(alice, tags=["t"]))["id"]
    bobs = (await new_session(bob, tags=["t"]))["id"]
    body = {"filter": {"owner": "alice", "tags": ["t"]}, "changes": {"tags": ["bob-was-here"]}}
    assert ok(await bob.post("/api/sessions/bulk-update", json=body)) == {"updatedCount": 1}
    assert ok(await alice.get(f"/api/sessions/{alices}"))["tags"] == ["t"]
    assert ok(await bob.get(f"/api/sessions/{bobs}"))["tags"] == ["bob-was-here"]
    give = {"filter": {}, "changes": {"owner": "alice"}}
    failed(await bob.post("/api/sessions/bulk-update", json=give), 403, "forbidden")
    assert ok(await bob.get(f"/api/sessions/{bobs}"))["owner"] == "bob"


async def test_a_backup_holds_only_the_callers_sessions(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    await session_with(alice, "alice's secret")
    bobs = await session_with(bob, "bob's")
    _header, *records = await backup_lines(bob)
    assert [r["session"]["id"] for r in records] == [bobs]
    assert "alice" not in (await bob.post("/api/backup")).text


async def test_nobody_restores_into_another_owners_sessions(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    sid = await session_with(alice, "alice's")
    alices_backup = (await alice.post("/api/backup")).text
    before = ok(await alice.get(f"/api/sessions/{sid}"))
    as_alice = ok(await restore(bob, alices_backup, strategy="overwrite"))
    assert (as_alice["restored"], as_alice["failed"]) == (0, 1)
    assert "another owner" in as_alice["errors"][0]
    _header, record = [json.loads(line) for line in alices_backup.splitlines()]
    taken = {**record, "session": {**record["session"], "owner": "bob"}}
    same_id = ok(await restore(bob, jsonl([taken]), strategy="overwrite"))
    assert (same_id["restored"], same_id["failed"]) == (0, 1)
    assert ok(await alice.get(f"/api/sessions/{sid}")) == before
    failed(await bob.get(f"/api/sessions/{sid}"), 404, "session_not_found")


async def test_an_owner_restores_its_own_sessions(alice: httpx.AsyncClient) -> None:
    sid = await session_with(alice, "mine")
    body = (await alice.post("/api/backup")).text
    ok(await alice.delete(f"/api/sessions/{sid}"))
    report = ok(await restore(alice, body))
    assert (report["restored"], report["failed"]) == (1, 0)
    assert ok(await alice.get(f"/api/sessions/{sid}"))["owner"] == "alice"


async def test_an_expired_session_is_restored_by_its_owner_only(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    sid = await session_with(alice, "mine", ttl=60)
    _header, record = await backup_lines(alice)
    fresh = {**record, "session": {**record["session"], "expires_at": None, "ttl": None}}
    fake_clock.advance(timedelta(minutes=5))
    failed(await alice.get(f"/api/sessions/{sid}"), 404, "session_not_found")
    taken = {**fresh, "session": {**fresh["session"], "owner": "bob"}}
    by_bob = ok(await restore(bob, jsonl([taken]), strategy="overwrite"))
    assert (by_bob["restored"], by_bob["failed"]) == (0, 1)
    assert "another owner" in by_bob["errors"][0]
    by_alice = ok(await restore(alice, jsonl([fresh]), strategy="overwrite"))
    assert (by_alice["restored"], by_alice["failed"]) == (1, 0)
    assert ok(await alice.get(f"/api/sessions/{sid}"))["owner"] == "alice"
