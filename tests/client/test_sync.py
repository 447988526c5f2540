"""The synchronous client against a server listening on a free port."""

from __future__ import annotations

import uuid

import pytest

from chatkeep import (
    NewMessage,
    Persistence,
    SessionFilter,
    SessionNotFoundError,
    SessionUpdate,
    VersionConflictError,
)
from chatkeep.client import Client, ClientAuthError, ServerUnreachableError

from .conftest import KEYS, free_port


def test_every_call(live: str) -> None:
    with Client(live) as api:
        assert api.health() == "alive"
        assert api.ready()["status"] == "ready"
        made = api.create_session(owner="alice", tags=["t"])
        assert api.get_session(made.id) == made
        changed = api.update_session(
            made.id, SessionUpdate(metadata={"k": "v"}), expected_version=made.version
        )
        assert changed.metadata == {"k": "v"}
        with pytest.raises(VersionConflictError):
            api.update_session(made.id, SessionUpdate(tags=[]), expected_version=made.version)
        stored = api.append(made.id, [NewMessage(role="user", content="sync hello")])
        assert stored.added == 1
        assert [m.content for m in api.history(made.id)] == ["sync hello"]
        assert [m.seq for m in api.get_messages(made.id, after_seq=0)] == [1]
        assert api.load(made.id).history[0].content == "sync hello"
        assert [h.session.id for h in api.search("hello")] == [made.id]
        assert [s.id for s in api.list_sessions(SessionFilter(owner="alice")).sessions] == [made.id]
        assert api.set_lock(made.id, "agent").agent == "agent"
        assert api.get_lock(made.id) is not None
        assert api.clear_lock(made.id) is True
        device = str(uuid.uuid4())
        assert api.device_session(device).device_id == device
        assert api.bulk_update(SessionFilter(owner="alice"), SessionUpdate(add_tags=["b"])) == 1
        assert api.get_default_persistence() is Persistence.DURABLE
        assert api.set_default_persistence(Persistence.NONE) is Persistence.NONE
        assert "stores" in api.stats()
        dump = api.backup()
        assert "sync hello" in dump
        assert api.delete_session(made.id) is True
        with pytest.raises(SessionNotFoundError):
            api.get_session(made.id)
        assert api.restore(dump).restored >= 1
        assert api.history(made.id)[0].content == "sync hello"


def test_token(live_secured: str) -> None:
    with Client(live_secured) as anonymous, pytest.raises(ClientAuthError):
        anonymous.list_sessions()
    with Client(live_secured, token=KEYS[1][0]) as bob:
        assert bob.create_session().owner == "bob"


def test_nothing_listening() -> None:
    api = Client(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    with api, pytest.raises(ServerUnreachableError) as caught:
        api.health()
    assert "/healthz" in str(caught.value)
