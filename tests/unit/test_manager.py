from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

import chatkeep
from chatkeep.core.clock import FakeClock
from chatkeep.core.codec import message_to_dict, session_to_dict
from chatkeep.core.models import NewMessage, Persistence
from chatkeep.core.query import SessionFilter
from chatkeep.errors import (
    ConfigurationError,
    InvalidInputError,
    SessionNotFoundError,
    StoreClosedError,
)
from chatkeep.manager import Event, EventType, ManagerConfig, SessionManager
from chatkeep.stores.base import Store

DURABLE, NONE, CLIENT = Persistence.DURABLE, Persistence.NONE, Persistence.CLIENT
QUIET = ManagerConfig(sweep_interval=None)


@pytest.fixture
async def stores(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[dict[Persistence, Store]]:
    async with (
        chatkeep.open_store(f"sqlite:///{tmp_path}/chat.db", clock=fake_clock) as durable,
        chatkeep.open_store("memory://", clock=fake_clock) as memory,
    ):
        yield {DURABLE: durable, NONE: memory}


def manager_over(
    stores: dict[Persistence, Store], clock: FakeClock, **config: object
) -> SessionManager:
    return SessionManager(stores, ManagerConfig(**config), clock=clock)  # type: ignore[arg-type]


# -- the default mode ---------------------------------------------------------
async def test_changing_the_default_affects_only_new_sessions(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    manager = SessionManager(stores, QUIET, clock=fake_clock)
    assert manager.default_persistence is DURABLE
    before = await manager.create_session()
    assert manager.set_default_persistence("none") is NONE
    assert manager.default_persistence is NONE
    after = await manager.create_session()
    assert (before.persistence, after.persistence) == (DURABLE, NONE)
    assert (await manager.get_session(before.id)).persistence is DURABLE
    assert (await manager.create_session(persistence=DURABLE)).persistence is DURABLE


async def test_the_default_must_be_a_configured_mode(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    manager = SessionManager(stores, QUIET, clock=fake_clock)
    with pytest.raises(ConfigurationError, match="'client'"):
        manager.set_default_persistence(CLIENT)
    with pytest.raises(InvalidInputError, match="persistence"):
        manager.set_default_persistence("disk")
    assert manager.default_persistence is DURABLE
    with pytest.raises(ConfigurationError, match="'client'"):
        manager_over(stores, fake_clock, default_persistence=CLIENT)


def test_the_stores_are_read_only(stores: dict[Persistence, Store], fake_clock: FakeClock) -> None:
    manager = SessionManager(stores, QUIET, clock=fake_clock)
    assert manager.stores == stores
    with pytest.raises(TypeError):
        manager.stores[CLIENT] = stores[NONE]  # type: ignore[index]


# -- lifecycle ----------------------------------------------------------------
async def test_start_and_close(stores: dict[Persistence, Store], fake_clock: FakeClock) -> None:
    manager = SessionManager(stores, clock=fake_clock)
    listener = manager.events.listen()
    async with manager:
        assert manager.running
        with pytest.raises(RuntimeError, match="expected a stopped manager"):
            await manager.start()
        await manager.create_session()
    assert not manager.running
    assert [e.type async for e in listener] == [EventType.SESSION_CREATED]
    await manager.close()
    with pytest.raises(RuntimeError, match="expected an open manager"):
        await manager.start()
    assert await stores[DURABLE].get_session((await manager.create_session()).id)


async def test_without_intervals_nothing_runs_in_the_background(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    async with SessionManager(stores, QUIET, clock=fake_clock) as manager:
        assert not manager.running


# -- expiry -------------------------------------------------------------------
async def test_a_sweep_tells_each_expiry_once(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    manager = manager_over(stores, fake_clock, expired_retention=timedelta(hours=1))
    listener = manager.events.listen(types=[EventType.SESSION_EXPIRED])
    short = await manager.create_session(persistence=NONE, ttl=30)
    durable = await manager.create_session(ttl=90)
    await manager.create_session(ttl=None)
    fake_clock.advance(timedelta(seconds=60))
    first = await manager.sweep()
    assert first.expired == [short.id]
    assert short.id not in [s.id for s in (await manager.list_sessions()).sessions]
    fake_clock.advance(timedelta(seconds=60))
    assert (await manager.sweep()).expired == [durable.id]
    assert (await manager.sweep()).expired == []
    await manager.close()
    told = [e async for e in listener]
    assert [(e.session_id, e.session) for e in told] == [(short.id, short), (durable.id, durable)]
    assert manager.cache_info().size == 1


async def test_sweeps_delete_after_the_retention(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    manager = manager_over(stores, fake_clock, expired_retention=timedelta(minutes=10))
    session = await manager.create_session(ttl=1)
    fake_clock.advance(timedelta(seconds=1))
    assert (await manager.sweep()).cleaned == 0
    everything = SessionFilter(include_expired=True)
    assert [s.id for s in (await manager.list_sessions(everything)).sessions] == [session.id]
    fake_clock.advance(timedelta(minutes=10))
    assert (await manager.sweep()).cleaned == 1
    assert (await manager.list_sessions(everything)).sessions == []


async def test_the_background_sweeper(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    config = ManagerConfig(sweep_interval=timedelta(milliseconds=5))
    async with SessionManager(stores, config, clock=fake_clock) as manager:
        listener = manager.events.listen(types=[EventType.SESSION_EXPIRED])
        session = await manager.create_session(ttl=5)
        fake_clock.advance(timedelta(seconds=5))
        event: Event = await asyncio.wait_for(anext(listener), timeout=10)
        assert event.session_id == session.id
        with pytest.raises(SessionNotFoundError):
            await manager.get_session(session.id)


# -- backups ------------------------------------------------------------------
async def test_backups_need_a_directory(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    manager = SessionManager(stores, QUIET, clock=fake_clock)
    with pytest.raises(ConfigurationError, match="backup_dir"):
        await manager.backup_now()
    with pytest.raises(ConfigurationError, match="backup_dir"):
        manager.list_backups()
    with pytest.raises(ConfigurationError, match="backup_dir"):
        await manager.restore_backup("backup-20300101T000000.000000Z.jsonl")


async def test_scheduled_backups_keep_the_newest(
    tmp_path: Path, stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    config = ManagerConfig(
        sweep_interval=None,
        backup_dir=tmp_path / "backups",
        backup_interval=timedelta(milliseconds=5),
        max_backups=2,
    )
    manager = SessionManager(stores, config, clock=fake_clock)
    await manager.create_session()
    fourth = fake_clock.now() + timedelta(microseconds=3)
    async with manager:
        for _attempt in range(10_000):
            newest = manager.list_backups()
            if newest and newest[0].created_at >= fourth:
                break
            await asyncio.sleep(0.005)
    kept = manager.list_backups()
    assert len(kept) == 2
    assert kept[0].created_at - kept[1].created_at == timedelta(microseconds=1)
    assert kept[0].created_at >= fourth
    assert all(b.session_count == 1 for b in kept)


async def test_restore_round_trips_sessions_and_messages(
    tmp_path: Path, stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    source = manager_over(stores, fake_clock, backup_dir=tmp_path / "backups")
    for mode in (DURABLE, NONE, DURABLE):
        s = await source.create_session(persistence=mode, metadata={"m": mode.value})
        await source.append_messages(s.id, [NewMessage(role="user", content=f"in {mode}")])
        await source.append_messages(s.id, [NewMessage(role="assistant", content={"ok": 1})])
    info = await source.backup_now()
    assert source.list_backups() == [info]
    assert info.session_count == 3

    async with (
        chatkeep.open_store(f"sqlite:///{tmp_path}/restored.db", clock=fake_clock) as durable,
        chatkeep.open_store("memory://", clock=fake_clock) as memory,
    ):
        target = SessionManager(
            {DURABLE: durable, NONE: memory},
            ManagerConfig(backup_dir=tmp_path / "backups"),
            clock=fake_clock,
        )
        seen: list[tuple[EventType, str]] = []
        target.events.subscribe(lambda e: seen.append((e.type, e.session_id)))
        assert (await target.restore_backup(info.name, dry_run=True)).restored == 3
        assert (await target.list_sessions()).sessions == []
        assert seen == [], "a dry run publishes nothing"
        report = await target.restore_backup(info.name)
        assert (report.restored, report.failed) == (3, 0)
        ids = sorted(s.id for s in (await source.list_sessions()).sessions)
        assert sorted(seen) == [(EventType.SESSION_CREATED, sid) for sid in ids]
        seen.clear()
        first = ids[0]
        await target.append_messages(first, [NewMessage(role="user", content="after")])
        seen.clear()
        again = await target.restore_backup(info.name, strategy="overwrite")
        assert again.restored == 3
        assert seen == [(EventType.SESSION_UPDATED, first)], "only the changed one was replaced"
        original = (await source.list_sessions()).sessions
        restored = (await target.list_sessions()).sessions
        assert [session_to_dict(s) for s in restored] == [session_to_dict(s) for s in original]
        for session in original:
            want = [message_to_dict(m) for m in await source.get_messages(session.id)]
            got = [message_to_dict(m) for m in await target.get_messages(session.id)]
            assert got == want
            assert await target.stores[session.persistence].get_session(session.id) == session


@pytest.mark.parametrize(
    "name", ["../chat.db", "backup-20300101T000000.000000Z.jsonl/../../chat.db", "/etc/passwd"]
)
async def test_restore_refuses_names_outside_the_list(
    tmp_path: Path, stores: dict[Persistence, Store], fake_clock: FakeClock, name: str
) -> None:
    manager = manager_over(stores, fake_clock, backup_dir=tmp_path / "backups")
    await manager.backup_now()
    with pytest.raises(InvalidInputError, match="not a backup name"):
        await manager.restore_backup(name)


async def test_restore_needs_a_store_for_every_mode_in_the_backup(
    tmp_path: Path, stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    source = manager_over(stores, fake_clock, backup_dir=tmp_path)
    await source.create_session(persistence=DURABLE)
    info = await source.backup_now()
    async with chatkeep.open_store("memory://", clock=fake_clock) as memory:
        target = SessionManager(
            {NONE: memory}, ManagerConfig(default_persistence=NONE, backup_dir=tmp_path)
        )
        with pytest.raises(ConfigurationError, match="mode durable"):
            await target.restore_backup(info.name)
        assert (await target.list_sessions()).sessions == []


# -- reports and conversations ------------------------------------------------
async def test_stats_and_health_per_mode(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    shared = {DURABLE: stores[DURABLE], CLIENT: stores[DURABLE], NONE: stores[NONE]}
    manager = SessionManager(shared, QUIET, clock=fake_clock)
    await manager.create_session(persistence=CLIENT)
    await manager.create_session(persistence=NONE)
    stats = await manager.stats()
    assert set(stats) == {DURABLE, CLIENT, NONE}
    assert stats[DURABLE] is stats[CLIENT]
    assert (stats[DURABLE].total_sessions, stats[NONE].total_sessions) == (1, 1)
    health = await manager.health()
    assert all(report.healthy for report in health.values())


async def test_open(stores: dict[Persistence, Store], fake_clock: FakeClock) -> None:
    manager = SessionManager(stores, QUIET, clock=fake_clock)
    created = await manager.open(None, id="conv-1", persistence="none", owner="ann")
    assert (created.id, created.session.persistence, created.session.owner) == (
        "conv-1",
        NONE,
        "ann",
    )
    opened = await manager.open("conv-1")
    assert opened.session == created.session
    with pytest.raises(TypeError, match="no creation options"):
        await manager.open("conv-1", owner="bob")
    with pytest.raises(SessionNotFoundError):
        await manager.open("conv-2")


async def test_from_urls_opens_and_closes_its_stores(tmp_path: Path, fake_clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path}/chat.db"
    manager = await SessionManager.from_urls(
        {"durable": url, "client": url, "none": "memory://"}, QUIET, clock=fake_clock
    )
    assert manager.stores[DURABLE] is manager.stores[CLIENT]
    assert manager.stores[NONE] is not manager.stores[DURABLE]
    session = await manager.create_session(persistence=CLIENT)
    store = manager.stores[DURABLE]
    await manager.close()
    with pytest.raises(StoreClosedError):
        await store.get_session(session.id)


async def test_from_urls_refuses_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="store URL"):
        await SessionManager.from_urls({"durable": "nosuch://x"})
    with pytest.raises(ConfigurationError, match="'disk' is not a persistence mode"):
        await SessionManager.from_urls({"disk": f"sqlite:///{tmp_path}/a.db"})
