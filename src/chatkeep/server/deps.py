"""What every route needs: the session manager, and who is asking.

Routes take these as FastAPI dependencies, so that authentication can later decide the
caller (and its owner) in one place without changing the routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from chatkeep.core.models import Persistence
from chatkeep.errors import InvalidInputError
from chatkeep.manager import SessionManager


def manager_of(request: Request) -> SessionManager:
    manager = getattr(request.app.state, "manager", None)
    if not isinstance(manager, SessionManager):
        raise RuntimeError("expected a running app with a session manager, got none")
    return manager


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request. ``owner`` of ``None``: anyone (no authentication)."""

    owner: str | None = None


ANONYMOUS = Caller()


def caller_of(request: Request) -> Caller:
    return ANONYMOUS


Manager = Annotated[SessionManager, Depends(manager_of)]
CallerDep = Annotated[Caller, Depends(caller_of)]


def configured_mode(manager: SessionManager, mode: Persistence | None, field: str) -> None:
    """Refuse a persistence mode that has no store here (``None``: the default)."""
    if mode is not None and mode not in manager.stores:
        configured = ", ".join(m.value for m in manager.stores)
        raise InvalidInputError(
            field, f"no store is configured for {mode.value!r} here (configured: {configured})"
        )
