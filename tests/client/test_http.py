"""Every call of the async client against the app, in-process."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta

from chatkeep import Message, NewMessage, Persistence, Role, Session, SessionFilter, SessionUpdate
from chatkeep.client import AsyncClient
from chatkeep.core.clock import FakeClock
from chatkeep.stores.base import MergeStrategy


async def test_create_get_list_and_delete(api: AsyncClient) -> None:
    made = await api.create_session(
        id="s-one", owner="alice", metadata={"topic": "cats"}, tags=["a", "b"], ttl=60
    )
    assert isinstance(made, Session)
    assert made.id == "s-one"
    assert made.owner == "alice"
    assert made.tags == frozenset({"a", "b"})
    assert made.ttl == timedelta(seconds=60)
    assert made.created_at.tzinfo is not None
    assert made.created_at.utcoffset() == timedelta(0)
    assert made.persistence is Persistence.DURABLE
    assert await api.get_session("s-one") == made
    await api.create_session(id="s-two", owner="bob", ttl=None)
    assert (await api.get_session("s-two")).ttl is None
    page = await api.list_sessions(SessionFilter(owner="alice"))
    assert [s.id for s in page.sessions] == ["s-one"]
    assert page.next_cursor is None
    first = await api.list_sessions(limit=1, sort="createdAt")
    assert len(first.sessions) == 1
    assert first.next_cursor is not None
    rest = await api.list_sessions(limit=1, sort="createdAt", cursor=first.next_cursor)
    assert {first.sessions[0].id, rest.sessions[0].id} == {"s-one", "s-two"}
    tagged = await api.list_sessions(
        SessionFilter(tags=frozenset({"b"}), metadata={"topic": "cats"})
    )
    assert [s.id for s in tagged.sessions] == ["s-one"]
    assert await api.delete_session("s-one") is True
    assert [s.id for s in (await api.list_sessions()).sessions] == ["s-two"]


async def test_update_with_expected_version(api: AsyncClient) -> None:
    made = await api.create_session(tags=["x"])
    changed = await api.update_session(
        made.id,
        SessionUpdate(merge_metadata={"k": 1}, add_tags=["y"], ttl=timedelta(minutes=5)),
        expected_version=made.version,
    )
    assert changed.version == made.version + 1
    assert changed.metadata == {"k": 1}
    assert changed.tags == frozenset({"x", "y"})
    assert changed.ttl == timedelta(minutes=5)


async def test_messages_load_history_and_search(api: AsyncClient) -> None:
    made = await api.create_session()
    stored = await api.append(made.id, NewMessage(role="user", content="hello purple world"))
    assert stored.added == 1
    assert stored.last_seq == 1
    again = await api.append(
        made.id,
        [
            NewMessage(role=Role.ASSISTANT, content={"text": "hi"}, id="c-1"),
            NewMessage(role="user", content="bye", id="c-2", metadata={"m": True}),
        ],
    )
    assert again.added == 2
    assert [m.seq for m in again.messages] == [2, 3]
    repeat = await api.append(made.id, NewMessage(role="assistant", content="other", id="c-1"))
    assert repeat.added == 0
    assert repeat.messages[0].content == {"text": "hi"}
    history = await api.history(made.id)
    assert [m.seq for m in history] == [1, 2, 3]
    assert all(isinstance(m, Message) for m in history)
    assert history[2].metadata == {"m": True}
    assert history[1].role is Role.ASSISTANT
    assert [m.seq for m in await api.get_messages(made.id, after_seq=1)] == [2, 3]
    assert [m.seq for m in await api.get_messages(made.id, last=1)] == [3]
    assert [m.seq for m in await api.get_messages(made.id, before_seq=3, limit=1)] == [1]
    loaded = await api.load(made.id)
    assert loaded.session.id == made.id
    assert [m.id for m in loaded.history] == [m.id for m in history]
    assert loaded.history_on_client is False
    hits = await api.search("purple")
    assert [h.session.id for h in hits] == [made.id]
    assert [m.seq for m in hits[0].messages] == [1]
    assert await api.search("absent") == []


async def test_settings_stats_and_health(api: AsyncClient) -> None:
    assert await api.get_default_persistence() is Persistence.DURABLE
    assert await api.set_default_persistence(Persistence.NONE) is Persistence.NONE
    assert (await api.create_session()).persistence is Persistence.NONE
    stats = await api.stats()
    assert stats["defaultPersistence"] == "none"
    assert await api.health() == "alive"
    assert (await api.ready())["status"] == "ready"


async def test_locks(api: AsyncClient, fake_clock: FakeClock) -> None:
    made = await api.create_session()
    assert await api.get_lock(made.id) is None
    lock = await api.set_lock(made.id, "scheduling", 60)
    assert lock.agent == "scheduling"
    assert lock.locked_at == fake_clock.now()
    assert lock.expires_at == fake_clock.now() + timedelta(seconds=60)
    assert await api.get_lock(made.id) == lock
    forever = await api.set_lock(made.id, "billing", None)
    assert forever.expires_at is None
    assert await api.clear_lock(made.id) is True
    assert await api.clear_lock(made.id) is False


async def test_device_session(api: AsyncClient) -> None:
    device = str(uuid.uuid4())
    first = await api.device_session(device)
    assert first.device_id == device
    assert (await api.device_session(device)).id == first.id


async def test_bulk_update(api: AsyncClient) -> None:
    for owner in ("alice", "alice", "bob"):
        await api.create_session(owner=owner)
    count = await api.bulk_update(SessionFilter(owner="alice"), SessionUpdate(add_tags=["vip"]))
    assert count == 2
    vip = await api.list_sessions(SessionFilter(tags=frozenset({"vip"})))
    assert {s.owner for s in vip.sessions} == {"alice"}


async def test_backup_and_restore(api: AsyncClient) -> None:
    made = await api.create_session(id="kept")
    await api.append(made.id, NewMessage(role="user", content="remember me"))
    dump = await api.backup()
    assert "remember me" in dump
    await api.delete_session("kept")
    dry = await api.restore(dump, dry_run=True)
    assert (dry.restored, dry.dry_run) == (1, True)
    assert (await api.list_sessions()).sessions == []
    report = await api.restore(dump)
    assert (report.restored, report.failed) == (1, 0)
    assert [m.content for m in await api.history("kept")] == ["remember me"]
    skipped = await api.restore(dump, strategy=MergeStrategy.SKIP_EXISTING)
    assert skipped.skipped == 1


async def test_times_are_aware(api: AsyncClient, fake_clock: FakeClock) -> None:
    made = await api.create_session(ttl=10)
    assert made.expires_at == fake_clock.now() + timedelta(seconds=10)
    assert made.last_activity_at.tzinfo is not None
    assert made.last_activity_at.astimezone(UTC) == fake_clock.now()
