"""The lobby: ``sessions:watch`` / ``sessions:unwatch`` and the ``session:created|deleted|
expired`` frames a watching connection gets, only for the sessions its owner may see."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from chatkeep.core.clock import FakeClock
from chatkeep.manager import SessionManager

from .auth_support import KEY_A, KEY_B, auth_app, bearer, connected
from .support import new_session, ok
from .test_ws import WsClient
from .test_ws import app as app  # the fixture
from .test_ws import rest as rest  # the fixture


async def watching(ws: WsClient) -> None:
    """Watch, and wait until the server has acted on it (frames are handled in order)."""
    await ws.send("sessions:watch")
    await ws.nothing_pending()


async def test_a_watcher_is_told_of_created_deleted_and_expired_sessions(
    app: FastAPI, rest: httpx.AsyncClient, manager: SessionManager, fake_clock: FakeClock
) -> None:
    async with WsClient(app) as ws:
        await watching(ws)
        made = await new_session(rest, tags=["lobby"], ttl=60)
        created = await ws.expect("session:created")
        assert created == {"type": "session:created", "sessionId": made["id"], "session": made}
        other = (await new_session(rest))["id"]
        assert (await ws.expect("session:created"))["sessionId"] == other
        ok(await rest.delete(f"/api/sessions/{other}"))
        assert await ws.expect("session:deleted") == {"type": "session:deleted", "sessionId": other}
        fake_clock.advance(timedelta(seconds=61))
        await manager.sweep()
        expired = await ws.expect("session:expired")
        assert expired == {"type": "session:expired", "sessionId": made["id"]}
        await manager.sweep()
        await ws.nothing_pending()


async def test_unwatch_stops_the_frames_and_a_plain_connection_gets_none(
    app: FastAPI, rest: httpx.AsyncClient
) -> None:
    async with WsClient(app) as watcher, WsClient(app) as plain:
        await watching(watcher)
        sid = (await new_session(rest))["id"]
        await watcher.expect("session:created")
        await watcher.send("sessions:unwatch")
        await watcher.nothing_pending()
        ok(await rest.delete(f"/api/sessions/{sid}"))
        await new_session(rest)
        await watcher.nothing_pending()
        await plain.nothing_pending()
        await watching(watcher)
        again = (await new_session(rest))["id"]
        assert (await watcher.expect("session:created"))["sessionId"] == again


async def test_a_watching_member_gets_each_ending_once(
    app: FastAPI, rest: httpx.AsyncClient, manager: SessionManager, fake_clock: FakeClock
) -> None:
    deleted = (await new_session(rest))["id"]
    expiring = (await new_session(rest, ttl=60))["id"]
    async with WsClient(app) as ws:
        await watching(ws)
        await ws.join(deleted)
        await ws.join(expiring)
        ok(await rest.delete(f"/api/sessions/{deleted}"))
        assert await ws.expect("session:deleted") == {
            "type": "session:deleted",
            "sessionId": deleted,
        }
        fake_clock.advance(timedelta(seconds=61))
        await manager.sweep()
        assert (await ws.expect("session:expired"))["sessionId"] == expiring
        await ws.nothing_pending()


async def test_a_join_that_creates_is_answered_once_and_told_to_the_other_watchers(
    app: FastAPI,
) -> None:
    async with WsClient(app) as creator, WsClient(app) as other:
        await watching(creator)
        await watching(other)
        await creator.send("session:join", sessionId="made-by-join", create=True)
        answer = await creator.expect("session:created")
        await creator.expect("messages:history")
        await creator.nothing_pending()
        told = await other.expect("session:created")
        assert told == answer


async def test_lobby_frames_with_fields_are_refused(app: FastAPI) -> None:
    async with WsClient(app) as ws:
        await ws.send("sessions:watch", sessionId="x")
        await ws.error("validation_error")
        await ws.send("sessions:unwatch")
        await ws.nothing_pending()


async def test_an_owner_never_sees_another_owners_sessions_in_the_lobby(
    manager: SessionManager, fake_clock: FakeClock
) -> None:
    app = auth_app(manager)
    async with (
        connected(app, bearer(KEY_A)) as alice,
        connected(app, bearer(KEY_B)) as bob,
        WsClient(app, query=f"token={KEY_A}") as alice_ws,
        WsClient(app, query=f"token={KEY_B}") as bob_ws,
    ):
        await watching(alice_ws)
        await watching(bob_ws)
        mine = await new_session(alice, ttl=60)
        assert (await alice_ws.expect("session:created"))["session"] == mine
        bobs = (await new_session(bob))["id"]
        assert (await bob_ws.expect("session:created"))["sessionId"] == bobs
        ok(await alice.delete(f"/api/sessions/{(await new_session(alice))['id']}"))
        await alice_ws.expect("session:created")
        await alice_ws.expect("session:deleted")
        await manager.get_session(mine["id"])
        fake_clock.advance(timedelta(seconds=61))
        await manager.sweep()
        assert (await alice_ws.expect("session:expired"))["sessionId"] == mine["id"]
        await alice_ws.nothing_pending()
        await bob_ws.nothing_pending()


async def test_an_ending_whose_owner_is_unknown_reaches_no_authenticated_watcher(
    manager: SessionManager, fake_clock: FakeClock
) -> None:
    app = auth_app(manager)
    async with connected(app, bearer(KEY_A)) as alice, WsClient(app, query=f"token={KEY_A}") as ws:
        sid = (await new_session(alice, ttl=60))["id"]
        await watching(ws)
        manager._cache.clear()  # the record is no longer at hand: the owner is unknown
        fake_clock.advance(timedelta(seconds=61))
        assert (await manager.sweep()).expired == [sid]
        await ws.nothing_pending()


# -- restore goes through the manager: its events reach the lobby -----------------------


async def restore(rest: httpx.AsyncClient, body: str, **params: str) -> dict[str, object]:
    report: dict[str, object] = ok(
        await rest.post("/api/restore", params=params, content=body.encode())
    )
    return report


async def test_a_restore_tells_the_lobby_and_the_manager_listeners(
    app: FastAPI, rest: httpx.AsyncClient, manager: SessionManager
) -> None:
    kept = await new_session(rest, metadata={"v": 1})
    gone = await new_session(rest, tags=["restored"])
    backup = (await rest.post("/api/backup")).text
    ok(await rest.delete(f"/api/sessions/{gone['id']}"))
    ok(await rest.patch(f"/api/sessions/{kept['id']}", json={"metadata": {"v": 2}}))
    async with WsClient(app) as ws, manager.events.listen() as events:
        await watching(ws)
        dry = await restore(rest, backup, strategy="overwrite", dryRun="true")
        assert (dry["restored"], dry["dryRun"]) == (2, True)
        await ws.nothing_pending()
        assert events.pending == 0

        report = await restore(rest, backup, strategy="overwrite")
        assert (report["restored"], report["failed"]) == (2, 0)
        created = await ws.expect("session:created")
        assert created["sessionId"] == gone["id"]
        assert created["session"]["tags"] == ["restored"]
        await ws.nothing_pending()
        told = [(e.type.value, e.session_id) for e in [await anext(events) for _ in range(2)]]
        assert sorted(told) == sorted(
            [("session:created", gone["id"]), ("session:updated", kept["id"])]
        )
        assert events.pending == 0
    assert ok(await rest.get(f"/api/sessions/{kept['id']}"))["metadata"] == {"v": 1}


async def test_a_restore_that_changes_nothing_tells_nothing(
    app: FastAPI, rest: httpx.AsyncClient, manager: SessionManager
) -> None:
    await new_session(rest)
    backup = (await rest.post("/api/backup")).text
    async with WsClient(app) as ws, manager.events.listen() as events:
        await watching(ws)
        report = await restore(rest, backup)
        assert (report["restored"], report["skipped"]) == (0, 1)
        bad = await restore(rest, backup + '{"session": {"id": "x"}}\n')
        assert bad["failed"] == 1
        await ws.nothing_pending()
        assert events.pending == 0
