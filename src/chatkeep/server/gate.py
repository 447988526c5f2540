"""The ASGI middleware that authenticates every request and WebSocket before any route.

It puts the :class:`~chatkeep.server.auth.Caller` in the scope for the routes to read
(:func:`caller_in`); a request it refuses never reaches a route: HTTP gets 401
``unauthorized``, a WebSocket is closed with code 4401 before it is accepted.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from chatkeep.server.auth import Authenticator, Caller, UnauthorizedError, is_open
from chatkeep.server.errors import CloseCode, error_response

CALLER_KEY: Final = "chatkeep.caller"


class AuthGate:
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            caller = self.authenticator.caller(_authorization(scope), _query_token(scope))
        except UnauthorizedError as exc:
            await _refuse(scope, receive, send, str(exc))
            return
        scope[CALLER_KEY] = caller
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    if scope["type"] == "websocket":
        connect = await receive()
        if connect["type"] == "websocket.connect":
            await send(
                {"type": "websocket.close", "code": CloseCode.UNAUTHORIZED, "reason": reason}
            )
        return
    headers = {"WWW-Authenticate": 'Bearer realm="chatkeep"'}
    await error_response(401, "unauthorized", reason, headers=headers)(scope, receive, send)


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1")
            return text
    return None


def _query_token(scope: Scope) -> str | None:
    query = scope.get("query_string", b"").decode("latin-1")
    tokens = parse_qs(query).get("token")
    return tokens[0] if tokens else None


def caller_in(scope: Scope) -> Caller:
    """The caller the gate found; a route outside the gate's reach has none."""
    caller = scope.get(CALLER_KEY)
    if not isinstance(caller, Caller):
        raise RuntimeError(f"expected an authenticated scope for {scope.get('path')!r}, got none")
    return caller
