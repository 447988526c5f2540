from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from chatkeep.core.frozen import EMPTY
from chatkeep.core.models import Message, Persistence, Role, Session, SessionLock, evolve

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SESSION = Session(
    id="s1",
    owner="alice",
    device_id=None,
    persistence=Persistence.DURABLE,
    created_at=T0,
    updated_at=T0,
    last_activity_at=T0,
    expires_at=T0 + timedelta(hours=1),
    ttl=timedelta(hours=1),
    max_messages=10,
    metadata=EMPTY,
    tags=frozenset({"a"}),
    version=1,
    message_count=0,
    last_seq=0,
)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"version": 2, "message_count": 3, "last_seq": 3},
        {"lock": SessionLock("agent", T0, None), "owner": None},
    ],
)
def test_evolve_is_replace(changes: dict[str, object]) -> None:
    copy = evolve(SESSION, **changes)
    assert copy == dataclasses.replace(SESSION, **changes)  # type: ignore[arg-type]
    assert copy is not SESSION
    assert type(copy) is Session


def test_an_evolved_record_is_as_read_only_as_the_original() -> None:
    copy = evolve(SESSION, version=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.version = 6  # type: ignore[misc]
    assert SESSION.version == 1
    assert hash(evolve(SessionLock("a", T0, None))) == hash(SessionLock("a", T0, None))


def test_evolve_keeps_every_field_of_a_message() -> None:
    message = Message("m1", "s1", 1, Role.USER, "hi", None, T0)
    assert evolve(message, seq=2) == Message("m1", "s1", 2, Role.USER, "hi", None, T0, EMPTY)


def test_evolve_refuses_a_field_the_record_does_not_have() -> None:
    with pytest.raises(TypeError, match="Session has no field colour, size"):
        evolve(SESSION, size=1, colour="red")
