from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

import chatkeep
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import NewMessage, Persistence, Role
from chatkeep.errors import InvalidInputError, SessionNotFoundError, VersionConflictError
from chatkeep.manager import CLIENT_HISTORY, ManagerConfig, SessionManager
from chatkeep.stores.base import Store

DURABLE, NONE, CLIENT = Persistence.DURABLE, Persistence.NONE, Persistence.CLIENT
QUIET = ManagerConfig(sweep_interval=None)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/chat.db"


@pytest.fixture
async def stores(db_url: str, fake_clock: FakeClock) -> AsyncIterator[dict[Persistence, Store]]:
    async with (
        chatkeep.open_store(db_url, clock=fake_clock) as durable,
        chatkeep.open_store("memory://", clock=fake_clock) as memory,
    ):
        yield {DURABLE: durable, NONE: memory, CLIENT: memory}


@pytest.fixture
def manager(stores: dict[Persistence, Store], fake_clock: FakeClock) -> SessionManager:
    return SessionManager(stores, QUIET, clock=fake_clock)


async def test_add_stores_at_once_and_refreshes_the_session(
    manager: SessionManager, stores: dict[Persistence, Store]
) -> None:
    conv = await manager.open(None, owner="ann")
    first = await conv.add("user", "hello", user_id="ann", metadata={"lang": "en"})
    second = await conv.add(Role.ASSISTANT, {"text": "hi", "tool": None})
    assert (first.seq, second.seq) == (1, 2)
    assert first.role is Role.USER
    assert (conv.session.message_count, conv.session.last_seq) == (2, 2)
    assert conv.session == await stores[DURABLE].get_session(conv.id)
    assert await stores[DURABLE].get_messages(conv.id) == [first, second]


async def test_add_with_an_idempotency_key(manager: SessionManager) -> None:
    conv = await manager.open(None)
    first = await conv.add("user", "once", id="turn-1")
    again = await conv.add("user", "once", id="turn-1")
    assert again == first
    assert conv.session.message_count == 1


async def test_extend_and_read_back(manager: SessionManager) -> None:
    conv = await manager.open(None, max_messages=3)
    stored = await conv.extend([NewMessage(role="user", content=f"m{i}") for i in range(5)])
    assert [m.seq for m in stored] == [1, 2, 3, 4, 5]
    assert [m.content for m in await conv.messages()] == ["m2", "m3", "m4"]
    assert [m.content for m in await conv.messages(last=2)] == ["m3", "m4"]
    assert [m.seq for m in await conv.messages(after_seq=3, limit=1)] == [4]
    assert conv.session.message_count == 3


async def test_bad_input_changes_nothing(manager: SessionManager) -> None:
    conv = await manager.open(None)
    before = conv.session
    with pytest.raises(InvalidInputError, match="role"):
        await conv.add("narrator", "once upon a time")
    with pytest.raises(InvalidInputError, match="metadata"):
        await conv.set_metadata({"bad": {1, 2}})  # type: ignore[dict-item]
    assert conv.session == before
    assert await conv.refresh() == before


async def test_metadata_and_tags(manager: SessionManager) -> None:
    conv = await manager.open(None, metadata={"a": 1, "b": 2})
    await conv.set_metadata({"b": None, "c": 3})
    assert conv.session.metadata == {"a": 1, "c": 3}
    await conv.set_metadata({"only": True}, replace=True)
    assert conv.session.metadata == {"only": True}
    await conv.tag("vip", "beta")
    await conv.untag("beta")
    assert conv.session.tags == {"vip"}
    assert (await manager.get_session(conv.id)).metadata == {"only": True}


async def test_update_with_an_expected_version(manager: SessionManager) -> None:
    conv = await manager.open(None)
    version = conv.session.version
    await conv.update({"owner": "bob"}, expected_version=version)
    with pytest.raises(VersionConflictError):
        await conv.update({"owner": "eve"}, expected_version=version)
    assert conv.session.owner == "bob"


async def test_touch_and_expiry(manager: SessionManager, fake_clock: FakeClock) -> None:
    conv = await manager.open(None, ttl=60)
    fake_clock.advance(timedelta(seconds=45))
    await conv.touch()
    assert conv.session.expires_at == fake_clock.now() + timedelta(seconds=60)
    await conv.extend_expiration(timedelta(minutes=5))
    assert conv.session.expires_at == fake_clock.now() + timedelta(minutes=6)


async def test_pop_clear_and_delete(manager: SessionManager) -> None:
    conv = await manager.open(None, persistence=NONE)
    await conv.add("user", "a")
    await conv.add("assistant", "b")
    popped = await conv.pop()
    assert popped is not None
    assert popped.content == "b"
    assert conv.session.message_count == 1
    assert await conv.clear() == 1
    assert conv.session.message_count == 0
    assert await conv.pop() is None
    assert await conv.delete() is True
    with pytest.raises(SessionNotFoundError):
        await conv.refresh()


async def test_changes_made_elsewhere_show_after_refresh(manager: SessionManager) -> None:
    conv = await manager.open(None)
    await manager.append_messages(conv.id, [NewMessage(role="user", content="elsewhere")])
    assert conv.session.message_count == 0
    assert (await conv.refresh()).message_count == 1
    assert repr(conv) == f"<Conversation {conv.id} durable messages=1>"


async def test_a_client_mode_conversation_holds_no_history(manager: SessionManager) -> None:
    conv = await manager.open(None, persistence=CLIENT)
    with pytest.raises(InvalidInputError, match=CLIENT_HISTORY):
        await conv.add("user", "kept on the device")
    with pytest.raises(InvalidInputError, match=CLIENT_HISTORY):
        await conv.messages()
    await conv.set_metadata({"device": "phone"})
    assert conv.session.metadata == {"device": "phone"}
    assert conv.session.message_count == 0


async def test_a_fresh_manager_on_the_same_file_sees_everything(db_url: str) -> None:
    first = await SessionManager.from_urls({"durable": db_url}, QUIET)
    async with first:
        conv = await first.open(None, id="kept", owner="ann", metadata={"topic": "tea"})
        await conv.add("user", "green or black?")
        await conv.add("assistant", "green")
        await conv.set_metadata({"answered": True})
        written = conv.session
    second = await SessionManager.from_urls({"durable": db_url}, QUIET)
    async with second:
        reopened = await second.open("kept")
        assert reopened.session == written
        assert [m.content for m in await reopened.messages()] == ["green or black?", "green"]
        await reopened.add("user", "thanks")
    third = await SessionManager.from_urls({"durable": db_url}, QUIET)
    async with third:
        assert [m.seq for m in await (await third.open("kept")).messages()] == [1, 2, 3]
