"""What every route needs: the session manager, who is asking, and what it may see.

Routes take these as FastAPI dependencies; the caller is decided once, by the
authentication gate (:mod:`chatkeep.server.gate`), before any route runs. The
dependencies are coroutines: FastAPI runs a plain function dependency in a worker
thread, a hop that costs more than the lookup it does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chatkeep.core.models import Persistence, Session
from chatkeep.errors import InvalidInputError, SessionExpiredError, SessionNotFoundError
from chatkeep.manager import SessionManager
from chatkeep.server.auth import Caller, ForbiddenError
from chatkeep.server.gate import caller_in


async def manager_of(request: Request) -> SessionManager:
    manager = getattr(request.app.state, "manager", None)
    if not isinstance(manager, SessionManager):
        raise RuntimeError("expected a running app with a session manager, got none")
    return manager


async def caller_of(request: Request) -> Caller:
    return caller_in(request.scope)


Manager = Annotated[SessionManager, Depends(manager_of)]
CallerDep = Annotated[Caller, Depends(caller_of)]


async def served(request: Request) -> tuple[SessionManager, Caller]:
    """The manager and the caller, for a route that takes the ``Request`` itself: the
    routes called on every chat turn do, since solving each dependency costs FastAPI
    more per request than these lookups."""
    return await manager_of(request), caller_in(request.scope)


async def owned(manager: SessionManager, caller: Caller, session_id: str) -> Session:
    """The session, if the caller may see it; otherwise exactly as if it did not exist.

    With authentication on, an expired session is also "not found": telling it apart
    would tell another owner that the id is taken.
    """
    try:
        session = await manager.get_session(session_id)
    except SessionExpiredError:
        if caller.authenticated:
            raise SessionNotFoundError(session_id) from None
        raise
    if not caller.may_see(session.owner):
        raise SessionNotFoundError(session_id)
    return session


async def guard(manager: SessionManager, caller: Caller, session_id: str) -> None:
    """Raise ``SessionNotFoundError`` unless the caller may use the session."""
    if caller.authenticated:
        await owned(manager, caller, session_id)


def own_owner(caller: Caller, owner: str | None, field: str = "owner") -> str | None:
    """The owner a session gets from this caller: its own (another one is 403)."""
    if not caller.authenticated:
        return owner
    if owner is not None and owner != caller.owner:
        raise ForbiddenError(f"{field}: sessions can only belong to the caller ({caller.owner})")
    return caller.owner


def refuse_when_authenticated(caller: Caller, what: str) -> None:
    """Server-wide operations are for the local, unauthenticated server only."""
    if caller.authenticated:
        raise ForbiddenError(f"{what} is server-wide: not available when authentication is on")


def configured_mode(manager: SessionManager, mode: Persistence | None, field: str) -> None:
    """Refuse a persistence mode that has no store here (``None``: the default)."""
    if mode is not None and mode not in manager.stores:
        configured = ", ".join(m.value for m in manager.stores)
        raise InvalidInputError(
            field, f"no store is configured for {mode.value!r} here (configured: {configured})"
        )
