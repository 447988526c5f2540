"""A device's current session (``X-Device-ID``) and a session's active-agent lock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from chatkeep.core.clock import FakeClock

from .auth_support import alice as alice  # the fixtures
from .auth_support import bob as bob
from .auth_support import owners_app as owners_app
from .support import failed, new_session, ok

DEVICE = "5b9f1abf-f180-456d-8a3e-0123456789ab"
OTHER_DEVICE = "0816132e-965f-432d-9c3e-fedcba987654"


def device_path(device: str = DEVICE) -> str:
    return f"/api/devices/{device}/session"


def as_device(device: str = DEVICE) -> dict[str, str]:
    return {"X-Device-ID": device}


# -- the device's session --------------------------------------------------------------


async def test_a_device_without_a_session_gets_a_new_one(client: httpx.AsyncClient) -> None:
    response = await client.get(device_path(), headers=as_device())
    made = ok(response, 201)
    assert made["deviceId"] == DEVICE
    assert made["messageCount"] == 0
    assert response.headers["Location"] == f"/api/sessions/{made['id']}"
    again = ok(await client.get(device_path(), headers=as_device()))
    assert again["id"] == made["id"]
    other = ok(await client.get(device_path(OTHER_DEVICE), headers=as_device(OTHER_DEVICE)), 201)
    assert other["id"] != made["id"]


async def test_the_current_session_is_the_newest_live_one(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    await new_session(client, deviceId=DEVICE)
    fake_clock.advance(timedelta(seconds=1))
    newest = await new_session(client, deviceId=DEVICE)
    fake_clock.advance(timedelta(seconds=1))
    await new_session(client, deviceId=OTHER_DEVICE)
    current = ok(await client.get(device_path(), headers=as_device()))
    assert current["id"] == newest["id"]


async def test_the_device_id_is_compared_in_its_canonical_form(
    client: httpx.AsyncClient,
) -> None:
    made = ok(await client.get(device_path(), headers=as_device(DEVICE.upper())), 201)
    assert made["deviceId"] == DEVICE
    same = ok(await client.get(device_path(DEVICE.upper()), headers=as_device()))
    assert same["id"] == made["id"]


async def test_an_expired_device_session_is_replaced(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    old = await new_session(client, deviceId=DEVICE, ttl=60)
    fake_clock.advance(timedelta(minutes=5))
    fresh = ok(await client.get(device_path(), headers=as_device()), 201)
    assert fresh["id"] != old["id"]
    assert fresh["deviceId"] == DEVICE


@pytest.mark.parametrize(
    ("path_device", "header", "field"),
    [
        ("not-a-uuid", "not-a-uuid", "X-Device-ID"),
        (DEVICE, "123", "X-Device-ID"),
        ("nope", DEVICE, "deviceId"),
        (DEVICE, OTHER_DEVICE, "X-Device-ID"),
        (DEVICE, None, "X-Device-ID"),
    ],
)
async def test_a_bad_or_disagreeing_device_id_is_refused(
    client: httpx.AsyncClient, path_device: str, header: str | None, field: str
) -> None:
    headers = {} if header is None else as_device(header)
    error = failed(
        await client.get(device_path(path_device), headers=headers), 400, "invalid_input"
    )
    assert error["message"].startswith(f"{field}:")
    listed = ok(await client.get("/api/sessions"))
    assert listed["sessions"] == []


async def test_the_session_list_names_the_devices_current_session(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    assert ok(await client.get("/api/sessions"))["currentSession"] is None
    assert ok(await client.get("/api/sessions", headers=as_device()))["currentSession"] is None
    current = ok(await client.get(device_path(), headers=as_device()), 201)
    listed = ok(await client.get("/api/sessions", headers=as_device(DEVICE.upper())))
    assert listed["currentSession"] == current["id"]
    assert ok(await client.get("/api/sessions"))["currentSession"] is None
    other = ok(await client.get("/api/sessions", headers=as_device(OTHER_DEVICE)))
    assert other["currentSession"] is None
    fake_clock.advance(timedelta(days=2))  # past the default ttl: no current session
    assert ok(await client.get("/api/sessions", headers=as_device()))["currentSession"] is None


async def test_a_session_list_with_a_bad_device_id_is_refused(client: httpx.AsyncClient) -> None:
    error = failed(
        await client.get("/api/sessions", headers=as_device("not-a-uuid")), 400, "invalid_input"
    )
    assert error["message"].startswith("X-Device-ID:")


# -- locks ---------------------------------------------------------------------------


async def test_a_lock_is_set_read_and_cleared(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    sid = (await new_session(client))["id"]
    path = f"/api/sessions/{sid}/lock"
    assert ok(await client.get(path)) is None
    lock = ok(await client.put(path, json={"agent": "scheduling", "ttl": 86400}))
    assert lock == {
        "agent": "scheduling",
        "lockedAt": "2030-01-01T00:00:00Z",
        "expiresAt": "2030-01-02T00:00:00Z",
    }
    assert ok(await client.get(path)) == lock
    assert ok(await client.get(f"/api/sessions/{sid}"))["lock"] == lock
    assert ok(await client.delete(path)) == {"sessionId": sid, "cleared": True}
    assert ok(await client.get(path)) is None
    assert ok(await client.delete(path)) == {"sessionId": sid, "cleared": False}


async def test_a_lock_lapses_after_its_ttl(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    sid = (await new_session(client))["id"]
    path = f"/api/sessions/{sid}/lock"
    ok(await client.put(path, json={"agent": "billing", "ttl": 30}))
    fake_clock.advance(timedelta(seconds=29))
    assert ok(await client.get(path))["agent"] == "billing"
    fake_clock.advance(timedelta(seconds=1))
    assert ok(await client.get(path)) is None


async def test_a_lock_without_ttl_never_lapses_and_the_default_is_a_day(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    sid = (await new_session(client, ttl=None))["id"]
    path = f"/api/sessions/{sid}/lock"
    assert ok(await client.put(path, json={"agent": "a"}))["expiresAt"] == "2030-01-02T00:00:00Z"
    forever = ok(await client.put(path, json={"agent": "b", "ttl": None}))
    assert forever["expiresAt"] is None
    fake_clock.advance(timedelta(days=3000))
    assert ok(await client.get(path))["agent"] == "b"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"agent": "a", "ttl": -5}, 400, "invalid_input"),
        ({"agent": "a", "ttl": 0}, 400, "invalid_input"),
        ({"agent": "a", "ttl": "soon"}, 422, "validation_error"),
        ({"agent": "", "ttl": 60}, 400, "invalid_input"),
        ({"ttl": 60}, 422, "validation_error"),
        ({"agent": "a", "owner": "x"}, 422, "validation_error"),
    ],
)
async def test_a_bad_lock_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, object], status: int, code: str
) -> None:
    sid = (await new_session(client))["id"]
    path = f"/api/sessions/{sid}/lock"
    failed(await client.put(path, json=body), status, code)
    assert ok(await client.get(path)) is None


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_the_lock_of_a_missing_or_expired_session(
    client: httpx.AsyncClient, fake_clock: FakeClock, method: str
) -> None:
    body = {"agent": "a"} if method == "PUT" else None
    missing = await client.request(method, "/api/sessions/nothing-here/lock", json=body)
    failed(missing, 404, "session_not_found")
    sid = (await new_session(client, ttl=60))["id"]
    fake_clock.advance(timedelta(minutes=2))
    expired = await client.request(method, f"/api/sessions/{sid}/lock", json=body)
    failed(expired, 410, "session_expired")


# -- with authentication on ------------------------------------------------------------


async def test_each_owner_has_its_own_session_on_a_shared_device(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    alices = ok(await alice.get(device_path(), headers=as_device()), 201)
    assert alices["owner"] == "alice"
    bobs = ok(await bob.get(device_path(), headers=as_device()), 201)
    assert bobs["owner"] == "bob"
    assert bobs["id"] != alices["id"]
    assert ok(await alice.get(device_path(), headers=as_device()))["id"] == alices["id"]
    assert ok(await bob.get(device_path(), headers=as_device()))["id"] == bobs["id"]


async def test_the_current_session_of_a_shared_device_is_the_callers(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    alices = ok(await alice.get(device_path(), headers=as_device()), 201)
    assert ok(await bob.get("/api/sessions", headers=as_device()))["currentSession"] is None
    listed = ok(await alice.get("/api/sessions", headers=as_device()))
    assert listed["currentSession"] == alices["id"]


async def test_another_owner_cannot_touch_a_lock(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    sid = (await new_session(alice))["id"]
    path = f"/api/sessions/{sid}/lock"
    lock = ok(await alice.put(path, json={"agent": "scheduling"}))
    failed(await bob.get(path), 404, "session_not_found")
    failed(await bob.put(path, json={"agent": "intruder"}), 404, "session_not_found")
    failed(await bob.delete(path), 404, "session_not_found")
    assert ok(await alice.get(path)) == lock


async def test_an_expired_sessions_lock_is_not_found_with_authentication(
    alice: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    sid = (await new_session(alice, ttl=60))["id"]
    fake_clock.advance(timedelta(minutes=2))
    failed(await alice.get(f"/api/sessions/{sid}/lock"), 404, "session_not_found")


async def test_concurrent_first_requests_of_a_device_end_with_one_session(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    async def ask() -> httpx.Response:
        return await client.get(device_path(), headers=as_device())

    for _ in range(2):  # a first session, then a new one once it has expired
        answers = await asyncio.gather(*(ask() for _ in range(6)))
        assert sorted(a.status_code for a in answers) == [200] * 5 + [201], answers
        assert len({ok(a, a.status_code)["id"] for a in answers}) == 1
        live = ok(await client.get("/api/sessions", params={"deviceId": DEVICE}))["sessions"]
        assert [s["id"] for s in live] == [answers[0].json()["data"]["id"]]
        fake_clock.advance(timedelta(days=400))
    listed = {"deviceId": DEVICE, "includeExpired": "true"}
    assert ok(await client.get("/api/sessions", params=listed))["count"] == 2
