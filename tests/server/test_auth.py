"""Authentication: bearer keys and signed tokens, 401 for the rest, the open paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from chatkeep.config import ServerConfig
from chatkeep.core.clock import FakeClock
from chatkeep.manager import SessionManager
from chatkeep.server.auth import (
    ANONYMOUS,
    Authenticator,
    Caller,
    UnauthorizedError,
    mint_token,
    read_token,
)

from .auth_support import AUTH, KEY_A, SECRET, auth_app, bearer, connected, token_for
from .support import failed, new_session, ok

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def app(manager: SessionManager) -> FastAPI:
    return auth_app(manager)


def test_a_token_names_its_owner_until_it_expires() -> None:
    token = mint_token(SECRET, "alice.example", NOW + timedelta(minutes=5))
    assert token.startswith("ck1.")
    assert read_token(SECRET, token, NOW) == "alice.example"
    assert read_token(SECRET, token, NOW + timedelta(minutes=4)) == "alice.example"
    with pytest.raises(UnauthorizedError, match="expired"):
        read_token(SECRET, token, NOW + timedelta(minutes=5))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "signature"),
        (lambda t: t.replace("ck1.", "ck2."), "not a known key"),
        (lambda t: t.rsplit(".", 1)[0], "not a known key"),
        (lambda t: t + "%%", "malformed"),
    ],
)
def test_a_changed_token_is_refused(change: object, reason: str) -> None:
    token = mint_token(SECRET, "alice", NOW + timedelta(hours=1))
    assert callable(change)
    with pytest.raises(UnauthorizedError, match=reason):
        read_token(SECRET, change(token), NOW)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = mint_token("another-secret-of-length", "alice", NOW + timedelta(hours=1))
    with pytest.raises(UnauthorizedError, match="signature"):
        read_token(SECRET, token, NOW)


def test_a_token_with_another_owner_in_its_payload_is_refused() -> None:
    good = mint_token(SECRET, "alice", NOW + timedelta(hours=1))
    other = mint_token(SECRET, "bobby", NOW + timedelta(hours=1))
    forged = ".".join([*other.split(".")[:2], good.split(".")[2]])
    with pytest.raises(UnauthorizedError, match="signature"):
        read_token(SECRET, forged, NOW)


@pytest.mark.parametrize("owner", ["", " ", "two words"])
def test_a_token_needs_an_owner_name(owner: str) -> None:
    with pytest.raises(ValueError, match="owner"):
        mint_token(SECRET, owner, NOW)


def test_the_authenticator_decides_the_caller() -> None:
    clock = FakeClock(NOW)
    auth = Authenticator(AUTH, clock)
    assert auth.enabled
    assert auth.caller(f"Bearer {KEY_A}", None) == Caller("alice", authenticated=True)
    assert auth.caller(f"bearer  {KEY_A} ", None) == Caller("alice", authenticated=True)
    assert auth.caller(None, KEY_A) == Caller("alice", authenticated=True)
    token = mint_token(SECRET, "carol", NOW + timedelta(seconds=30))
    assert auth.caller(f"Bearer {token}", None).owner == "carol"
    clock.advance(timedelta(seconds=30))
    with pytest.raises(UnauthorizedError, match="expired"):
        auth.caller(f"Bearer {token}", None)
    for header in (
        None,
        "",
        f"Basic {KEY_A}",
        "Bearer ",
        f"Bearer {KEY_A}x",
        f"Bearer {KEY_A[:-1]}",
    ):
        with pytest.raises(UnauthorizedError):
            auth.caller(header, None)


def test_without_keys_or_secret_everyone_is_anonymous() -> None:
    auth = Authenticator(ServerConfig(), FakeClock(NOW))
    assert not auth.enabled
    assert auth.caller(None, None) is ANONYMOUS
    assert auth.caller("Bearer anything-at-all", "x") is ANONYMOUS
    assert ANONYMOUS.may_see("anyone")
    assert ANONYMOUS.may_see(None)


def test_keys_alone_do_not_accept_tokens() -> None:
    auth = Authenticator(ServerConfig(api_keys=((KEY_A, "alice"),)), FakeClock(NOW))
    token = mint_token(SECRET, "alice", NOW + timedelta(hours=1))
    with pytest.raises(UnauthorizedError, match="not a known key"):
        auth.caller(f"Bearer {token}", None)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("not-a-key-of-this-server"),
        {"Authorization": f"Basic {KEY_A}"},
        {"Authorization": KEY_A},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/sessions"),
        ("POST", "/api/sessions"),
        ("GET", "/api/sessions/any-id"),
        ("GET", "/chat/api/sessions/any-id/messages/"),
        ("GET", "/api/search?q=x"),
        ("GET", "/api/settings"),
        ("GET", "/api/stats"),
        ("GET", "/no/such/path"),
    ],
)
async def test_a_request_without_a_valid_credential_is_401(
    app: FastAPI, headers: dict[str, str], method: str, path: str
) -> None:
    async with connected(app, headers) as client:
        response = await client.request(method, path, json={} if method == "POST" else None)
    failed(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_bad_or_expired_token_is_401(
    app: FastAPI, manager: SessionManager, fake_clock: FakeClock
) -> None:
    token = token_for(manager, "alice", timedelta(minutes=10))
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    past = mint_token(SECRET, "alice", fake_clock.now() - timedelta(seconds=1))
    async with connected(app) as client:
        ok(await client.get("/api/sessions", headers=bearer(token)))
        for bad in (tampered, past):
            error = failed(
                await client.get("/api/sessions", headers=bearer(bad)), 401, "unauthorized"
            )
            assert token not in error["message"]
        fake_clock.advance(timedelta(minutes=10))
        error = failed(
            await client.get("/api/sessions", headers=bearer(token)), 401, "unauthorized"
        )
        assert "expired" in error["message"]


async def test_a_token_and_a_key_of_one_owner_see_the_same_sessions(
    app: FastAPI, manager: SessionManager
) -> None:
    async with connected(app, bearer(KEY_A)) as by_key:
        made = await new_session(by_key)
    async with connected(app, bearer(token_for(manager, "alice"))) as by_token:
        ok(await by_token.get(f"/api/sessions/{made['id']}"))
    async with connected(app) as by_query:
        ok(await by_query.get(f"/api/sessions/{made['id']}", params={"token": KEY_A}))
        listed = ok(await by_query.get("/api/sessions", params={"token": KEY_A}))
        assert [s["id"] for s in listed["sessions"]] == [made["id"]]


async def test_a_header_wins_over_the_query_token(app: FastAPI) -> None:
    async with connected(app, bearer("wrong-key-wrong-key")) as client:
        response = await client.get("/api/sessions", params={"token": KEY_A})
    failed(response, 401, "unauthorized")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/docs", "/"])
async def test_the_open_paths_need_no_credential(app: FastAPI, path: str) -> None:
    async with connected(app) as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text


async def test_an_unauthenticated_request_body_is_not_read(app: FastAPI) -> None:
    async with connected(app) as client:
        response = await client.post("/api/sessions", content=b"x" * (1 << 20))
    failed(response, 401, "unauthorized")


def test_the_openapi_document_lists_401_and_403(app: FastAPI) -> None:
    responses = app.openapi()["paths"]["/api/sessions"]["post"]["responses"]
    assert {"401", "403"} <= set(responses)
