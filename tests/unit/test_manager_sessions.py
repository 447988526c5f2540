from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

import chatkeep
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import NewMessage, Persistence, Session
from chatkeep.core.query import SessionFilter
from chatkeep.errors import (
    ConfigurationError,
    ImmutableSettingError,
    InvalidInputError,
    SessionExistsError,
    SessionExpiredError,
    SessionNotFoundError,
    VersionConflictError,
)
from chatkeep.manager import CLIENT_HISTORY, Event, EventType, ManagerConfig, SessionManager
from chatkeep.stores.base import Store

DURABLE, NONE, CLIENT = Persistence.DURABLE, Persistence.NONE, Persistence.CLIENT


@pytest.fixture
async def stores(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[dict[Persistence, Store]]:
    async with (
        chatkeep.open_store(f"sqlite:///{tmp_path}/chat.db", clock=fake_clock) as durable,
        chatkeep.open_store("memory://", clock=fake_clock) as memory,
        chatkeep.open_store("memory://", clock=fake_clock) as client,
    ):
        yield {DURABLE: durable, NONE: memory, CLIENT: client}


@pytest.fixture
def manager(stores: dict[Persistence, Store], fake_clock: FakeClock) -> SessionManager:
    return SessionManager(stores, ManagerConfig(sweep_interval=None), clock=fake_clock)


@pytest.fixture
def events(manager: SessionManager) -> list[Event]:
    got: list[Event] = []
    manager.events.subscribe(got.append)
    return got


def hi(text: str = "hi", id: str | None = None) -> NewMessage:
    return NewMessage(role="user", content=text, id=id)


# -- creation and routing ---------------------------------------------------
@pytest.mark.parametrize("mode", [DURABLE, NONE, CLIENT])
async def test_a_session_lives_in_the_store_of_its_mode(
    manager: SessionManager, stores: dict[Persistence, Store], mode: Persistence
) -> None:
    session = await manager.create_session(persistence=mode, owner="alice")
    assert session.persistence is mode
    assert await stores[mode].get_session(session.id) == session
    for other, store in stores.items():
        if other is not mode:
            with pytest.raises(SessionNotFoundError):
                await store.get_session(session.id)


async def test_sessions_get_the_default_mode(manager: SessionManager) -> None:
    assert (await manager.create_session()).persistence is DURABLE
    assert (await manager.create_session(persistence=None)).persistence is DURABLE


async def test_a_mode_without_a_store_is_a_configuration_error(manager: SessionManager) -> None:
    with pytest.raises(ConfigurationError, match="persistence mode 'redis'"):
        await manager.create_session(persistence="redis")
    with pytest.raises(InvalidInputError, match="persistence"):
        await manager.create_session(persistence="disk")


async def test_ids_are_unique_across_modes(manager: SessionManager, fake_clock: FakeClock) -> None:
    await manager.create_session(id="chat-1", persistence=NONE)
    with pytest.raises(SessionExistsError, match="'chat-1'"):
        await manager.create_session(id="chat-1", persistence=DURABLE)
    with pytest.raises(SessionExistsError, match="'chat-1'"):
        await manager.create_session(id="chat-1", persistence=NONE)
    await manager.create_session(id="short", persistence=CLIENT, ttl=1)
    fake_clock.advance(timedelta(seconds=2))
    with pytest.raises(SessionExistsError, match="'short'"):
        await manager.create_session(id="short", persistence=DURABLE)


async def test_concurrent_creations_of_one_id_in_two_modes(manager: SessionManager) -> None:
    results = await asyncio.gather(
        manager.create_session(id="race", persistence=NONE),
        manager.create_session(id="race", persistence=DURABLE),
        return_exceptions=True,
    )
    assert sum(isinstance(r, SessionExistsError) for r in results) == 1


async def test_a_bad_id_is_refused_before_any_store_is_asked(manager: SessionManager) -> None:
    with pytest.raises(InvalidInputError, match="id"):
        await manager.create_session(id="../etc")
    with pytest.raises(InvalidInputError, match="session_id"):
        await manager.get_session("a b")


async def test_lookups_survive_cache_eviction(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    manager = SessionManager(stores, ManagerConfig(max_sessions=2), clock=fake_clock)
    made = [await manager.create_session(persistence=mode) for mode in (NONE, CLIENT, DURABLE)]
    info = manager.cache_info()
    assert (info.size, info.evictions) == (2, 1)
    for session in made:
        assert (await manager.get_session(session.id)).persistence is session.persistence
    assert manager.cache_info().size == 2


async def test_an_unknown_session(manager: SessionManager) -> None:
    with pytest.raises(SessionNotFoundError):
        await manager.get_session("nobody")
    with pytest.raises(SessionNotFoundError):
        await manager.append_messages("nobody", [hi()])
    assert await manager.delete_session("nobody") is False


@pytest.mark.parametrize("use", ["get", "append"])
async def test_a_session_deleted_behind_the_managers_back(
    manager: SessionManager, stores: dict[Persistence, Store], use: str
) -> None:
    session = await manager.create_session(persistence=NONE)
    await stores[NONE].delete_session(session.id)
    with pytest.raises(SessionNotFoundError):
        if use == "get":
            await manager.get_session(session.id)
        else:
            await manager.append_messages(session.id, [hi()])
    assert manager.cache_info().size == 0
    assert await manager.delete_session(session.id) is False


class CountingReads:
    """A real store that counts the session records read from it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def get_session(self, session_id: str) -> Session:
        self.reads += 1
        return await self._store.get_session(session_id)


async def test_an_append_to_a_known_session_reads_no_record(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    counting = CountingReads(stores[DURABLE])
    shared = cast(Store, counting)
    manager = SessionManager({DURABLE: shared, CLIENT: shared}, clock=fake_clock)
    durable = await manager.create_session(persistence=DURABLE)
    client = await manager.create_session(persistence=CLIENT)
    assert len(await manager.append_messages(durable.id, [hi("one"), hi("two")])) == 2
    assert await manager.append_messages(client.id, [hi("kept on the client")]) == []
    assert counting.reads == 0
    assert [m.content for m in await stores[DURABLE].get_messages(durable.id)] == ["one", "two"]
    assert await stores[DURABLE].get_messages(client.id) == []


async def test_an_append_to_a_session_expired_since_it_was_cached(
    manager: SessionManager, stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    session = await manager.create_session(persistence=DURABLE, ttl=60)
    fake_clock.advance(timedelta(seconds=61))
    with pytest.raises(SessionExpiredError):
        await manager.append_messages(session.id, [hi()])
    (kept,) = (await stores[DURABLE].list_sessions(SessionFilter(include_expired=True))).sessions
    assert (kept.id, kept.message_count, kept.version) == (session.id, 0, session.version)


async def test_an_append_to_a_session_found_expired(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    shared = {DURABLE: stores[DURABLE], CLIENT: stores[DURABLE]}
    manager = SessionManager(shared, ManagerConfig(max_sessions=1), clock=fake_clock)
    client = await manager.create_session(persistence=CLIENT, ttl=60)
    await manager.create_session(persistence=DURABLE)  # the cache forgets the first
    fake_clock.advance(timedelta(seconds=61))
    with pytest.raises(SessionExpiredError):
        await manager.append(client.id, [hi()])
    with pytest.raises(SessionExpiredError):
        await manager.append(client.id, [hi()])  # found expired, then cached as such


# -- changes and events -----------------------------------------------------
async def test_the_mode_cannot_change(manager: SessionManager, events: list[Event]) -> None:
    session = await manager.create_session(persistence=NONE)
    with pytest.raises(ImmutableSettingError, match="persistence"):
        await manager.update_session(session.id, {"persistence": "durable", "owner": "x"})
    assert await manager.get_session(session.id) == session
    assert [e.type for e in events] == [EventType.SESSION_CREATED]


async def test_updates_are_stored_and_told(manager: SessionManager, events: list[Event]) -> None:
    session = await manager.create_session(persistence=CLIENT)
    changed = await manager.update_session(session.id, {"merge_metadata": {"k": 1}}, 1)
    assert changed.metadata == {"k": 1}
    assert changed.version == 2
    with pytest.raises(VersionConflictError):
        await manager.update_session(session.id, {"owner": "bob"}, expected_version=1)
    assert [(e.type, e.session) for e in events] == [
        (EventType.SESSION_CREATED, session),
        (EventType.SESSION_UPDATED, changed),
    ]


async def test_delete_tells_the_last_record(manager: SessionManager, events: list[Event]) -> None:
    session = await manager.create_session(persistence=NONE)
    assert await manager.delete_session(session.id) is True
    assert (events[-1].type, events[-1].session) == (EventType.SESSION_DELETED, session)
    with pytest.raises(SessionNotFoundError):
        await manager.get_session(session.id)


async def test_append_tells_only_the_new_messages(
    manager: SessionManager, events: list[Event]
) -> None:
    session = await manager.create_session()
    first = await manager.append(session.id, [hi("one", id="k1"), hi("two")])
    assert [m.seq for m in first.added] == [1, 2]
    again = await manager.append(session.id, [hi("one", id="k1"), hi("three")])
    assert [m.seq for m in again.messages] == [1, 3]
    assert [m.seq for m in again.added] == [3]
    assert again.session.message_count == 3
    replay = await manager.append_messages(session.id, hi("one", id="k1"))
    assert [m.seq for m in replay] == [1]
    appended = [e for e in events if e.type is EventType.MESSAGE_APPENDED]
    assert [[m.seq for m in e.messages] for e in appended] == [[1, 2], [3]]
    assert appended[-1].session == again.session
    assert [m.content for m in await manager.get_messages(session.id, last=2)] == ["two", "three"]


async def test_a_failing_callback_does_not_break_writes(
    manager: SessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_event: Event) -> None:
        raise RuntimeError("subscriber bug")

    manager.events.subscribe(broken)
    listener = manager.events.listen()
    with caplog.at_level(logging.ERROR):
        session = await manager.create_session()
        stored = await manager.append_messages(session.id, [hi()])
    assert [m.content for m in await manager.get_messages(session.id)] == ["hi"]
    assert stored[0].seq == 1
    assert manager.events.callback_errors == 2
    assert "subscriber bug" in caplog.text
    assert listener.pending == 2


async def test_expiry_changes(
    manager: SessionManager, events: list[Event], fake_clock: FakeClock
) -> None:
    session = await manager.create_session(persistence=NONE, ttl=10)
    fake_clock.advance(timedelta(seconds=10))
    with pytest.raises(SessionExpiredError):
        await manager.get_session(session.id)
    revived = await manager.extend_expiration(session.id, timedelta(minutes=1))
    assert revived.expires_at == session.expires_at + timedelta(minutes=1)  # type: ignore[operator]
    assert (await manager.get_session(session.id)).id == session.id
    never = await manager.set_expiration(session.id, None)
    assert never.expires_at is None
    assert [e.type for e in events[1:]] == [EventType.SESSION_UPDATED] * 2


async def test_touch_moves_the_expiry_and_tells_nobody(
    manager: SessionManager, events: list[Event], fake_clock: FakeClock
) -> None:
    session = await manager.create_session(ttl=60)
    fake_clock.advance(timedelta(seconds=30))
    touched = await manager.touch(session.id)
    assert touched.expires_at == fake_clock.now() + timedelta(seconds=60)
    assert len(events) == 1


async def test_pop_clear_and_locks(manager: SessionManager, events: list[Event]) -> None:
    session = await manager.create_session(persistence=NONE)
    await manager.append_messages(session.id, [hi("a"), hi("b")])
    popped = await manager.pop_message(session.id)
    assert popped is not None
    assert popped.content == "b"
    assert await manager.clear_messages(session.id) == 1
    assert await manager.clear_messages(session.id) == 0
    assert await manager.pop_message(session.id) is None
    lock = await manager.set_session_lock(session.id, "agent-7", ttl=60)
    assert lock.agent == "agent-7"
    assert await manager.get_session_lock(session.id) == lock
    assert await manager.clear_session_lock(session.id) is True
    assert await manager.clear_session_lock(session.id) is False
    updates = [e for e in events if e.type is EventType.SESSION_UPDATED]
    assert len(updates) == 4  # pop, clear, lock set, lock cleared


# -- client mode --------------------------------------------------------------
async def test_client_mode_keeps_no_history_on_the_server(
    manager: SessionManager,
    stores: dict[Persistence, Store],
    events: list[Event],
    fake_clock: FakeClock,
) -> None:
    session = await manager.create_session(persistence=CLIENT, ttl=60)
    fake_clock.advance(timedelta(seconds=30))
    result = await manager.append(session.id, [hi("secret")])
    assert (result.messages, result.added) == ([], [])
    assert result.session.last_activity_at == fake_clock.now()
    assert result.session.message_count == 0
    assert await stores[CLIENT].get_messages(session.id) == []
    with pytest.raises(InvalidInputError, match=CLIENT_HISTORY):
        await manager.get_messages(session.id)
    with pytest.raises(InvalidInputError, match=CLIENT_HISTORY):
        await manager.pop_message(session.id)
    fake_clock.advance(timedelta(seconds=5))
    assert await manager.clear_messages(session.id) == 0
    assert (await manager.get_session(session.id)).last_activity_at == fake_clock.now()
    assert [e.type for e in events] == [EventType.SESSION_CREATED]


async def test_client_mode_in_a_store_shared_with_durable(
    stores: dict[Persistence, Store], fake_clock: FakeClock
) -> None:
    shared = {DURABLE: stores[DURABLE], CLIENT: stores[DURABLE]}
    manager = SessionManager(shared, ManagerConfig(max_sessions=1), clock=fake_clock)
    client = await manager.create_session(persistence=CLIENT)
    durable = await manager.create_session(persistence=DURABLE)
    assert await manager.append_messages(client.id, [hi()]) == []
    assert len(await manager.append_messages(durable.id, [hi()])) == 1
    with pytest.raises(InvalidInputError, match=CLIENT_HISTORY):
        await manager.get_messages(client.id)
    page = await manager.list_sessions()
    assert sorted(s.id for s in page.sessions) == sorted([client.id, durable.id])


# -- across modes -------------------------------------------------------------
async def test_list_and_search_across_modes(manager: SessionManager, fake_clock: FakeClock) -> None:
    made = []
    for i, mode in enumerate([NONE, DURABLE, CLIENT, DURABLE, NONE]):
        made.append(await manager.create_session(persistence=mode, owner=f"o{i % 2}"))
        fake_clock.advance(timedelta(seconds=1))
    first = await manager.list_sessions(limit=3)
    rest = await manager.list_sessions(limit=3, cursor=first.next_cursor)
    assert [s.id for s in first.sessions + rest.sessions] == [s.id for s in reversed(made)]
    assert rest.next_cursor is None
    owned = await manager.list_sessions(SessionFilter(owner="o1"), sort="created_at")
    assert [s.id for s in owned.sessions] == [made[1].id, made[3].id]
    await manager.append_messages(made[0].id, [hi("find the needle")])
    await manager.append_messages(made[3].id, [hi("another needle")])
    hits = await manager.search_sessions("needle")
    assert [h.session.id for h in hits] == [made[3].id, made[0].id]


async def test_bulk_update_in_every_store(manager: SessionManager) -> None:
    ids = [(await manager.create_session(persistence=m, owner="a")).id for m in (NONE, DURABLE)]
    await manager.create_session(persistence=CLIENT, owner="b")
    assert await manager.bulk_update(SessionFilter(owner="a"), {"add_tags": ["moved"]}) == 2
    assert manager.cache_info().size == 0
    for session_id in ids:
        assert (await manager.get_session(session_id)).tags == {"moved"}
