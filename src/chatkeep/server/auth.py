"""Who is asking: API keys and signed tokens, each standing for one owner.

With neither API keys nor a token secret configured, authentication is off: every caller
is anonymous and sees every session. With either, every request outside :data:`OPEN_PATHS`
must carry ``Authorization: Bearer <key or token>`` (or ``?token=`` for browsers and
WebSockets), and its caller is the owner the key or token stands for.

A token is ``ck1.<payload>.<signature>``: the payload is ``<owner>.<expiry>`` (expiry in
seconds since the epoch), the signature its HMAC-SHA256 under the token secret, both
base64url without padding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from chatkeep.config import ServerConfig
from chatkeep.core.clock import Clock
from chatkeep.errors import ChatkeepError

TOKEN_PREFIX: Final = "ck1"
OPEN_PATHS: Final = frozenset(
    {"/", "/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
"""Answered without authentication; every other path needs it when it is on."""
OPEN_PREFIX: Final = "/web/"
"""The web page's static files (one level under it) are open too."""


def is_open(path: str) -> bool:
    """Whether ``path`` is answered without authentication."""
    if path.startswith(OPEN_PREFIX):
        return "/" not in path[len(OPEN_PREFIX) :]
    return path in OPEN_PATHS


class UnauthorizedError(ChatkeepError):
    """The request carries no valid credentials (HTTP 401)."""


class ForbiddenError(ChatkeepError):
    """The caller may not do this (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request. ``owner`` of ``None``: anyone (authentication is off)."""

    owner: str | None = None
    authenticated: bool = False

    def may_see(self, owner: str | None) -> bool:
        """True if a session of ``owner`` is visible to this caller."""
        return not self.authenticated or owner == self.owner


ANONYMOUS: Final = Caller()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64url without padding: anything but the one canonical form is an error."""
    data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if _b64(data) != text:
        raise ValueError(f"expected canonical base64url, got {text!r}")
    return data


def _signature(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()


def mint_token(secret: str, owner: str, expires_at: datetime) -> str:
    """A token for ``owner`` that is valid until ``expires_at``."""
    if not owner.strip() or any(ch.isspace() for ch in owner):
        raise ValueError(f"expected an owner name, got {owner!r}")
    payload = f"{owner}.{int(expires_at.timestamp())}".encode()
    return f"{TOKEN_PREFIX}.{_b64(payload)}.{_b64(_signature(secret, payload))}"


def read_token(secret: str, token: str, now: datetime) -> str:
    """The owner a valid, unexpired token stands for; ``UnauthorizedError`` otherwise."""
    prefix, _, rest = token.partition(".")
    encoded, _, signature = rest.partition(".")
    if prefix != TOKEN_PREFIX or not encoded or not signature:
        raise UnauthorizedError("the bearer credential is not a known key or token")
    try:
        payload, given = _unb64(encoded), _unb64(signature)
    except (binascii.Error, ValueError):
        raise UnauthorizedError("the token is malformed") from None
    if not hmac.compare_digest(_signature(secret, payload), given):
        raise UnauthorizedError("the token's signature is not valid")
    owner, _, expiry = payload.decode("utf-8", "replace").rpartition(".")
    if not owner or not expiry.isdigit():
        raise UnauthorizedError("the token is malformed")
    if datetime.fromtimestamp(int(expiry), UTC) <= now:
        raise UnauthorizedError("the token has expired")
    return owner


class Authenticator:
    """Turns the credentials a request carries into its :class:`Caller`."""

    def __init__(self, config: ServerConfig, clock: Clock) -> None:
        self._keys: Mapping[str, str] = dict(config.api_keys)
        self._secret = config.token_secret
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._keys) or self._secret is not None

    def caller(self, authorization: str | None, token: str | None) -> Caller:
        """The caller of a request with this ``Authorization`` header and ``?token=``."""
        if not self.enabled:
            return ANONYMOUS
        credential = _bearer(authorization) if authorization is not None else token
        if not credential:
            raise UnauthorizedError("authentication required: send Authorization: Bearer <key>")
        owner = self._owner_of_key(credential)
        if owner is None and self._secret is not None and credential.startswith(TOKEN_PREFIX):
            owner = read_token(self._secret, credential, self._clock.now())
        if owner is None:
            raise UnauthorizedError("the bearer credential is not a known key or token")
        return Caller(owner=owner, authenticated=True)

    def _owner_of_key(self, credential: str) -> str | None:
        """The owner of a configured key, comparing every key in constant time."""
        found = None
        given = credential.encode()
        for key, owner in self._keys.items():
            if hmac.compare_digest(key.encode(), given):
                found = owner
        return found


def _bearer(header: str) -> str:
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise UnauthorizedError("the Authorization header must be: Bearer <key or token>")
    return credential.strip()
