"""Creating, reading, updating and deleting sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatkeep import (
    FakeClock,
    ImmutableSettingError,
    NewMessage,
    Persistence,
    SessionExistsError,
    SessionNotFoundError,
    SessionUpdate,
    Store,
    VersionConflictError,
)
from chatkeep.core.rules import DEFAULT_MAX_MESSAGES, DEFAULT_TTL

from .support import filled, rejected, unchanged

DEVICE = "550e8400-e29b-41d4-a716-446655440000"


async def test_create_applies_the_defaults(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session()
    now = fake_clock.now()
    assert (s.created_at, s.updated_at, s.last_activity_at) == (now, now, now)
    assert s.ttl == DEFAULT_TTL
    assert s.expires_at == now + DEFAULT_TTL
    assert s.max_messages == DEFAULT_MAX_MESSAGES
    assert s.persistence is Persistence.DURABLE
    assert (s.owner, s.device_id, s.metadata, s.tags, s.lock) == (None, None, {}, frozenset(), None)
    assert (s.version, s.message_count, s.last_seq) == (1, 0, 0)
    assert await store.get_session(s.id) == s


async def test_create_keeps_every_given_field(store: Store, fake_clock: FakeClock) -> None:
    s = await store.create_session(
        id="chat-1",
        owner="alice",
        device_id=DEVICE.upper(),
        persistence="redis",
        ttl=90,
        max_messages=7,
        metadata={"processor_id": "p1", "nested": {"n": [1, 2.5, None, True]}},
        tags=["prod", "eu", "prod"],
    )
    assert s.id == "chat-1"
    assert s.owner == "alice"
    assert s.device_id == DEVICE
    assert s.persistence is Persistence.REDIS
    assert s.ttl == timedelta(seconds=90)
    assert s.expires_at == fake_clock.now() + timedelta(seconds=90)
    assert s.max_messages == 7
    assert s.metadata == {"processor_id": "p1", "nested": {"n": [1, 2.5, None, True]}}
    assert s.tags == frozenset({"prod", "eu"})
    assert await store.get_session("chat-1") == s


async def test_generated_ids_are_unique(store: Store) -> None:
    made = [await store.create_session() for _ in range(20)]
    assert len({s.id for s in made}) == 20


async def test_ids_are_case_sensitive(store: Store) -> None:
    upper = await store.create_session(id="Chat.1", owner="a")
    lower = await store.create_session(id="chat.1", owner="b")
    assert (await store.get_session("Chat.1")).owner == "a"
    assert (await store.get_session("chat.1")).owner == "b"
    assert upper.id != lower.id


@pytest.mark.parametrize("sid", ["a", "A" * 128, "x.y:z-1_2", "0", "con", "nul.txt", "a..b"])
async def test_any_id_matching_the_rule_is_accepted(store: Store, sid: str) -> None:
    s = await store.create_session(id=sid)
    assert (await store.get_session(sid)).id == s.id == sid


@pytest.mark.parametrize(
    "sid", ["", "A" * 129, "-a", ".hidden", "..", "../x", "a/b", "a\\b", "a b", "é", "a\n", 7]
)
async def test_a_bad_id_is_refused(store: Store, sid: object) -> None:
    async with rejected(store, "id"):
        await store.create_session(id=sid)  # type: ignore[arg-type]


async def test_a_taken_id_is_refused(store: Store) -> None:
    first = await store.create_session(id="taken", owner="first")
    async with unchanged(store):
        with pytest.raises(SessionExistsError) as info:
            await store.create_session(id="taken", owner="second")
    assert info.value.session_id == "taken"
    assert await store.get_session("taken") == first


async def test_metadata_is_copied_at_create(store: Store) -> None:
    meta: dict[str, object] = {"k": {"inner": [1]}}
    tags = {"a"}
    s = await store.create_session(metadata=meta, tags=tags)  # type: ignore[arg-type]
    meta["k"]["inner"].append(2)  # type: ignore[index]
    meta["new"] = 1
    tags.add("b")
    assert s.metadata == {"k": {"inner": [1]}}
    stored = await store.get_session(s.id)
    assert stored.metadata == {"k": {"inner": [1]}}
    assert stored.tags == frozenset({"a"})


async def test_missing_session(store: Store) -> None:
    with pytest.raises(SessionNotFoundError) as info:
        await store.get_session("nope")
    assert info.value.session_id == "nope"
    assert isinstance(info.value, LookupError)


async def test_update_changes_fields_and_bumps_the_version(
    store: Store, fake_clock: FakeClock
) -> None:
    s = await store.create_session(owner="a", metadata={"x": 1, "y": 2}, tags=["t1", "t2"])
    fake_clock.advance(timedelta(minutes=5))
    u = await store.update_session(
        s.id,
        SessionUpdate(
            owner="b",
            device_id=DEVICE,
            ttl=timedelta(hours=1),
            merge_metadata={"y": None, "z": 3},
            add_tags={"t3"},
            remove_tags={"t1"},
        ),
    )
    now = fake_clock.now()
    assert u.version == s.version + 1
    assert (u.owner, u.device_id, u.ttl) == ("b", DEVICE, timedelta(hours=1))
    assert u.metadata == {"x": 1, "z": 3}
    assert u.tags == frozenset({"t2", "t3"})
    assert u.created_at == s.created_at
    assert u.updated_at == now
    assert u.expires_at == now + timedelta(hours=1)
    assert await store.get_session(s.id) == u


async def test_update_accepts_a_mapping_and_replaces_metadata_and_tags(store: Store) -> None:
    s = await store.create_session(metadata={"x": 1}, tags=["a"])
    u = await store.update_session(s.id, {"metadata": {"new": True}, "tags": ["b"], "owner": None})
    assert (u.metadata, u.tags, u.owner) == ({"new": True}, frozenset({"b"}), None)
    assert await store.get_session(s.id) == u


async def test_every_update_bumps_the_version(store: Store) -> None:
    s = await store.create_session()
    for expected in range(2, 6):
        s = await store.update_session(s.id, {"merge_metadata": {"n": expected}})
        assert s.version == expected
    assert (await store.get_session(s.id)).version == 5


async def test_update_with_the_current_version_succeeds(store: Store) -> None:
    s = await store.create_session()
    u = await store.update_session(s.id, {"owner": "x"}, expected_version=s.version)
    assert u.version == s.version + 1


async def test_update_with_a_stale_version_changes_nothing(store: Store) -> None:
    s = await store.create_session(owner="a")
    await store.update_session(s.id, {"owner": "b"})
    async with unchanged(store):
        with pytest.raises(VersionConflictError) as info:
            await store.update_session(s.id, {"owner": "c"}, expected_version=s.version)
    assert (info.value.expected, info.value.actual) == (s.version, s.version + 1)
    assert (await store.get_session(s.id)).owner == "b"


@pytest.mark.parametrize("mode", ["none", "client", "redis"])
async def test_persistence_is_immutable(store: Store, mode: str) -> None:
    s = await store.create_session(persistence="durable")
    async with unchanged(store):
        with pytest.raises(ImmutableSettingError) as info:
            await store.update_session(s.id, {"persistence": mode, "owner": "x"})
    assert info.value.setting == "persistence"


async def test_setting_the_same_persistence_is_fine(store: Store) -> None:
    s = await store.create_session(persistence=Persistence.CLIENT)
    u = await store.update_session(s.id, {"persistence": "client", "owner": "o"})
    assert (u.persistence, u.owner) == (Persistence.CLIENT, "o")


async def test_an_unknown_update_field_changes_nothing(store: Store) -> None:
    s = await store.create_session()
    async with rejected(store, "changes") as info:
        await store.update_session(s.id, {"owner": "x", "colour": "red"})
    assert "colour" in str(info.value)


async def test_update_of_a_missing_session(store: Store) -> None:
    with pytest.raises(SessionNotFoundError):
        await store.update_session("ghost", {"owner": "x"})


async def test_delete_removes_the_session_and_its_messages(store: Store) -> None:
    s = await filled(store, 3)
    keep = await filled(store, 2)
    assert await store.delete_session(s.id) is True
    with pytest.raises(SessionNotFoundError):
        await store.get_session(s.id)
    with pytest.raises(SessionNotFoundError):
        await store.get_messages(s.id)
    assert await store.delete_session(s.id) is False
    assert len(await store.get_messages(keep.id)) == 2


async def test_a_deleted_id_can_be_used_again_from_scratch(store: Store) -> None:
    await filled(store, 3, id="again")
    await store.delete_session("again")
    s = await store.create_session(id="again")
    assert (s.message_count, s.last_seq, s.version) == (0, 0, 1)
    assert await store.get_messages("again") == []


LOOKALIKE_IDS = ["x:y", "x_y", "x-y", "x.y", "x..y", "X:Y", "X:y", "x:y.", "x_3Ay", "x3Ay"]


async def test_lookalike_ids_stay_apart(store: Store) -> None:
    for sid in LOOKALIKE_IDS:
        await store.create_session(id=sid, owner=sid)
        await store.append_messages(sid, [NewMessage(role="user", content=f"for {sid}")])
    for sid in LOOKALIKE_IDS:
        assert (await store.get_session(sid)).owner == sid
        assert [m.content for m in await store.get_messages(sid)] == [f"for {sid}"]
    await store.delete_session("x:y")
    assert [m.content for m in await store.get_messages("x_y")] == ["for x_y"]
