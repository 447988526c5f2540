"""Each error code of the server raised as the library's exception."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from chatkeep import (
    ChatkeepError,
    ImmutableSettingError,
    InvalidInputError,
    NewMessage,
    Persistence,
    SessionExistsError,
    SessionExpiredError,
    SessionNotFoundError,
    SessionUpdate,
    StoreUnavailableError,
    VersionConflictError,
)
from chatkeep.client import AsyncClient, ClientAuthError, ServerError
from chatkeep.client.errors import error_from_body
from chatkeep.core.clock import FakeClock

from .conftest import BASE, KEYS


async def test_unknown_session(api: AsyncClient) -> None:
    with pytest.raises(SessionNotFoundError) as caught:
        await api.get_session("nope")
    assert caught.value.session_id == "nope"
    with pytest.raises(SessionNotFoundError):
        await api.append("nope", NewMessage(role="user", content="x"))
    with pytest.raises(SessionNotFoundError):
        await api.delete_session("nope")


async def test_version_conflict(api: AsyncClient) -> None:
    made = await api.create_session()
    await api.update_session(made.id, SessionUpdate(tags=["a"]))
    with pytest.raises(VersionConflictError) as caught:
        await api.update_session(made.id, SessionUpdate(tags=["b"]), expected_version=made.version)
    assert caught.value.session_id == made.id
    assert caught.value.expected == made.version
    assert caught.value.actual == made.version + 1


async def test_session_exists(api: AsyncClient) -> None:
    await api.create_session(id="taken")
    with pytest.raises(SessionExistsError):
        await api.create_session(id="taken")


async def test_immutable_setting(api: AsyncClient) -> None:
    made = await api.create_session(persistence=Persistence.DURABLE)
    with pytest.raises(ImmutableSettingError):
        await api.update_session(made.id, SessionUpdate(persistence=Persistence.NONE))


async def test_bad_input(api: AsyncClient) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await api.create_session(ttl=-5)
    assert caught.value.field == "ttl"
    with pytest.raises(InvalidInputError):
        await api.list_sessions(cursor="not-a-cursor")
    with pytest.raises(InvalidInputError):
        await api.device_session("not-a-uuid")


async def test_validation_error_is_invalid_input(api: AsyncClient) -> None:
    with pytest.raises(InvalidInputError):
        await api.get_messages("any", limit=0)


async def test_expired(api: AsyncClient, fake_clock: FakeClock) -> None:
    made = await api.create_session(ttl=timedelta(seconds=30))
    fake_clock.advance(timedelta(seconds=31))
    with pytest.raises(SessionExpiredError) as caught:
        await api.get_session(made.id)
    assert caught.value.session_id == made.id


async def test_unauthorized_and_forbidden(secured_app: httpx.ASGITransport) -> None:
    async with AsyncClient(BASE, transport=secured_app) as anonymous:
        with pytest.raises(ClientAuthError) as caught:
            await anonymous.list_sessions()
        assert caught.value.code == "unauthorized"
        assert await anonymous.health() == "alive"
    async with AsyncClient(BASE, transport=secured_app, token="wrong-key-0123456789") as bad:
        with pytest.raises(ClientAuthError):
            await bad.create_session()
    alice_key, bob_key = KEYS[0][0], KEYS[1][0]
    async with (
        AsyncClient(BASE, transport=secured_app, token=alice_key) as alice,
        AsyncClient(BASE, transport=secured_app, token=bob_key) as bob,
    ):
        made = await alice.create_session()
        assert made.owner == "alice"
        with pytest.raises(SessionNotFoundError):
            await bob.get_session(made.id)
        with pytest.raises(ClientAuthError) as forbidden:
            await alice.stats()
        assert forbidden.value.code == "forbidden"
        assert isinstance(forbidden.value, ChatkeepError)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("store_unavailable", StoreUnavailableError),
        ("invalid_json", InvalidInputError),
        ("validation_error", InvalidInputError),
        ("not_found", ServerError),
    ],
)
def test_codes_without_a_route_here(code: str, kind: type[Exception]) -> None:
    body = {"success": False, "error": {"code": code, "message": "field: broken"}}
    assert isinstance(error_from_body(503, body), kind)


def test_an_answer_without_envelope() -> None:
    error = error_from_body(502, "<html>bad gateway</html>")
    assert isinstance(error, ServerError)
    assert error.status == 502
