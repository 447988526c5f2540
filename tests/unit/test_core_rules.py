from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest

from chatkeep.core import rules
from chatkeep.core.models import (
    UNSET,
    Message,
    NewMessage,
    Persistence,
    Role,
    Session,
    SessionLock,
    SessionUpdate,
)
from chatkeep.core.validation import Limits
from chatkeep.errors import (
    ImmutableSettingError,
    InvalidInputError,
    SessionExpiredError,
    SessionNotFoundError,
    VersionConflictError,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
LIMITS = Limits()
DEFAULTS = rules.SessionDefaults(ttl=timedelta(minutes=30), max_messages=5)
NO_FIELDS: dict[str, object] = {
    "id": None,
    "owner": None,
    "device_id": None,
    "persistence": UNSET,
    "ttl": UNSET,
    "max_messages": UNSET,
    "metadata": None,
    "tags": None,
}


def naming(field: str) -> pytest.RaisesExc[InvalidInputError]:
    return pytest.raises(InvalidInputError, match=f"^{re.escape(field)}: ")


def make(**fields: object) -> Session:
    given = {**NO_FIELDS, **fields}
    return rules.new_session(now=NOW, defaults=DEFAULTS, limits=LIMITS, **given)  # type: ignore[arg-type]


def message(session: Session, seq: int, id: str | None = None) -> Message:
    return Message(id or f"m{seq}", session.id, seq, Role.USER, f"text {seq}", None, NOW)


# -- new sessions -------------------------------------------------------------


def test_a_new_session_gets_the_defaults() -> None:
    s = make()
    assert (s.created_at, s.updated_at, s.last_activity_at) == (NOW, NOW, NOW)
    assert (s.ttl, s.expires_at) == (timedelta(minutes=30), NOW + timedelta(minutes=30))
    assert (s.max_messages, s.persistence) == (5, Persistence.DURABLE)
    assert (s.version, s.message_count, s.last_seq, s.lock) == (1, 0, 0, None)
    assert len(s.id) == 26


def test_a_new_session_takes_the_given_fields() -> None:
    meta = {"a": [1]}
    s = make(
        id="chat-1",
        owner="o",
        device_id="550E8400-E29B-41D4-A716-446655440000",
        persistence="none",
        ttl=None,
        max_messages=9,
        metadata=meta,
        tags=["x"],
    )
    meta["a"].append(2)
    assert (s.id, s.owner, s.persistence, s.ttl, s.expires_at) == (
        "chat-1",
        "o",
        Persistence.NONE,
        None,
        None,
    )
    assert s.device_id == "550e8400-e29b-41d4-a716-446655440000"
    assert (s.max_messages, s.metadata, s.tags) == (9, {"a": [1]}, frozenset({"x"}))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "a/b"}, "id"),
        ({"owner": 1}, "owner"),
        ({"device_id": "x"}, "device_id"),
        ({"persistence": "disk"}, "persistence"),
        ({"ttl": -1}, "ttl"),
        ({"max_messages": 0}, "max_messages"),
        ({"metadata": {"x": {1}}}, "metadata"),
        ({"tags": "a"}, "tags"),
    ],
)
def test_a_bad_field_is_named(fields: dict[str, object], field: str) -> None:
    with naming(field):
        make(**fields)


def test_a_ttl_past_the_calendar_is_invalid_input() -> None:
    with naming("ttl"):
        make(ttl=timedelta(days=999_999_999))


# -- liveness -------------------------------------------------------------------


def test_live_and_existing() -> None:
    s = make(ttl=60)
    with pytest.raises(SessionNotFoundError):
        rules.live(None, "x", NOW)
    with pytest.raises(SessionNotFoundError):
        rules.existing(None, "x")
    assert rules.live(s, s.id, NOW + timedelta(seconds=60) - timedelta(microseconds=1)) is s
    with pytest.raises(SessionExpiredError):
        rules.live(s, s.id, NOW + timedelta(seconds=60))
    assert rules.existing(s, s.id) is s
    assert rules.live(make(ttl=None), "x", NOW + timedelta(days=10**5)).expires_at is None


def test_expiry_after() -> None:
    assert rules.expiry_after(NOW, None) is None
    assert rules.expiry_after(NOW, timedelta(hours=1)) == NOW + timedelta(hours=1)


# -- renewal and updates ---------------------------------------------------------


def test_renewed_moves_activity_and_bumps_the_version() -> None:
    s = make(ttl=60)
    r = rules.renewed(s, LATER, message_count=3)
    assert (r.updated_at, r.last_activity_at, r.expires_at) == (
        LATER,
        LATER,
        LATER + timedelta(seconds=60),
    )
    assert (r.version, r.message_count, r.created_at) == (2, 3, NOW)
    r = rules.renewed(s, LATER, ttl=None)
    assert (r.ttl, r.expires_at) == (None, None)


def test_check_version() -> None:
    s = make()
    rules.check_version(s, None)
    rules.check_version(s, 1)
    with pytest.raises(VersionConflictError) as info:
        rules.check_version(s, 2)
    assert (info.value.expected, info.value.actual) == (2, 1)


def test_updated_applies_each_kind_of_change() -> None:
    s = make(metadata={"a": 1, "b": 2}, tags=["x", "y"], ttl=60)
    u = rules.updated(
        s,
        SessionUpdate(
            owner="o",
            ttl=timedelta(seconds=120),
            merge_metadata={"b": None, "c": 3},
            add_tags={"z"},
            remove_tags={"x"},
        ),
        LIMITS,
        LATER,
    )
    assert (u.owner, u.ttl, u.expires_at) == (
        "o",
        timedelta(seconds=120),
        LATER + timedelta(seconds=120),
    )
    assert (u.metadata, u.tags, u.version) == ({"a": 1, "c": 3}, frozenset({"y", "z"}), 2)
    assert s.metadata == {"a": 1, "b": 2}


def test_updated_replaces_then_merges() -> None:
    s = make(metadata={"old": 1}, tags=["old"])
    u = rules.updated(
        s,
        SessionUpdate(metadata={"new": 1}, merge_metadata={"more": 2}, tags=["t"], add_tags=["u"]),
        LIMITS,
        LATER,
    )
    assert (u.metadata, u.tags) == ({"new": 1, "more": 2}, frozenset({"t", "u"}))


def test_lowering_the_window_lowers_the_count() -> None:
    s = dataclasses.replace(make(max_messages=10), message_count=8, last_seq=12)
    u = rules.updated(s, SessionUpdate(max_messages=3), LIMITS, LATER)
    assert (u.max_messages, u.message_count, u.last_seq) == (3, 3, 12)
    u = rules.updated(s, SessionUpdate(max_messages=20), LIMITS, LATER)
    assert u.message_count == 8


def test_persistence_may_be_restated_but_not_changed() -> None:
    s = make(persistence="redis")
    assert (
        rules.updated(s, SessionUpdate(persistence="redis"), LIMITS, LATER).persistence
        is Persistence.REDIS
    )
    with pytest.raises(ImmutableSettingError) as info:
        rules.updated(s, SessionUpdate(persistence=Persistence.DURABLE), LIMITS, LATER)
    assert info.value.setting == "persistence"
    with naming("persistence"):
        rules.updated(s, SessionUpdate(persistence="tape"), LIMITS, LATER)


def test_merge_that_grows_too_big_names_metadata() -> None:
    limits = Limits(max_metadata_bytes=30)
    s = make(metadata={"a": "1234567890"})
    with naming("metadata"):
        rules.updated(s, SessionUpdate(merge_metadata={"b": "1234567890"}), limits, LATER)


@pytest.mark.parametrize("changes", [{"owner": "x"}, SessionUpdate(owner="x")])
def test_as_update_accepts_mappings_and_updates(changes: object) -> None:
    assert rules.as_update(changes) == SessionUpdate(owner="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("changes", [{"owner": "x", "bogus": 1}, ["owner"], "owner", None])
def test_as_update_refuses_unknown_fields_and_other_types(changes: object) -> None:
    with naming("changes"):
        rules.as_update(changes)  # type: ignore[arg-type]


def test_updated_refuses_what_is_not_an_update() -> None:
    with naming("changes"):
        rules.updated(make(), {"owner": "x"}, LIMITS, LATER)  # type: ignore[arg-type]


# -- appends ---------------------------------------------------------------------


def test_plan_append_numbers_new_messages_after_last_seq() -> None:
    s = dataclasses.replace(make(), last_seq=7, message_count=2)
    plan = rules.plan_append(
        s,
        [NewMessage(role=Role.USER, content="a"), NewMessage(role=Role.TOOL, content=[1], id="k")],
        {},
        LATER,
    )
    assert plan.changed
    assert [m.seq for m in plan.insert] == [8, 9]
    assert plan.results == plan.insert
    assert plan.insert[1].id == "k"
    assert plan.insert[1].role is Role.TOOL
    assert all(m.created_at == LATER and m.session_id == s.id for m in plan.insert)
    assert (plan.session.last_seq, plan.session.message_count, plan.session.version) == (9, 4, 2)
    assert plan.session.expires_at == LATER + timedelta(minutes=30)
    assert plan.drop_oldest == 0


def test_plan_append_returns_stored_ids_as_stored() -> None:
    s = dataclasses.replace(make(), last_seq=3, message_count=3)
    stored = message(s, 2, "k")
    plan = rules.plan_append(
        s,
        [
            NewMessage(role=Role.USER, content="new", id="k"),
            NewMessage(role=Role.USER, content="b", id="j"),
            NewMessage(role=Role.USER, content="c", id="j"),
        ],
        {"k": stored},
        LATER,
    )
    assert plan.results[0] is stored
    assert [m.seq for m in plan.insert] == [4]
    assert plan.results[2] is plan.results[1]


def test_plan_append_of_only_stored_ids_changes_nothing() -> None:
    s = dataclasses.replace(make(), last_seq=1, message_count=1)
    stored = message(s, 1, "k")
    plan = rules.plan_append(
        s, [NewMessage(role=Role.USER, content="x", id="k")], {"k": stored}, LATER
    )
    assert not plan.changed
    assert plan.session is s
    assert plan.results == [stored]


def test_plan_append_drops_the_oldest_past_the_window() -> None:
    s = dataclasses.replace(make(max_messages=3), last_seq=10, message_count=2)
    plan = rules.plan_append(
        s, [NewMessage(role=Role.USER, content=str(i)) for i in range(4)], {}, LATER
    )
    assert plan.drop_oldest == 3
    assert plan.session.message_count == 3
    assert plan.session.last_seq == 14


# -- locks -----------------------------------------------------------------------


def test_locks() -> None:
    lock = rules.new_lock("agent", 60, LIMITS, NOW)
    assert lock == SessionLock("agent", NOW, NOW + timedelta(seconds=60))
    assert rules.lock_live(lock, NOW + timedelta(seconds=59)) is lock
    assert rules.lock_live(lock, NOW + timedelta(seconds=60)) is None
    assert rules.lock_live(None, NOW) is None
    forever = rules.new_lock("agent", None, LIMITS, NOW)
    assert rules.lock_live(forever, NOW + timedelta(days=10**5)) is forever
    with naming("agent"):
        rules.new_lock("", 60, LIMITS, NOW)
    with naming("ttl"):
        rules.new_lock("agent", 0, LIMITS, NOW)
