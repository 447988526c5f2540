"""A device's current session (``X-Device-ID``), and a session's active-agent lock."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Header, Response

from chatkeep.core.ids import check_device_id
from chatkeep.core.models import Session
from chatkeep.core.query import SessionFilter
from chatkeep.errors import InvalidInputError, SessionExistsError
from chatkeep.manager import SessionManager
from chatkeep.server.deps import CallerDep, Manager, guard
from chatkeep.server.device import DEVICE_HEADER, NEWEST_FIRST, live_session
from chatkeep.server.errors import ERROR_RESPONSES
from chatkeep.server.wire import Envelope, LockOut, SessionOut, lock_out, session_out
from chatkeep.server.wire_admin import LockCleared, LockIn

router = APIRouter(tags=["devices"], responses=ERROR_RESPONSES)


@router.get(
    "/api/devices/{device_id}/session",
    summary="The device's current session, created when it has none",
    response_model=Envelope[SessionOut],
    responses={201: {"description": "The device had no live session: a new one."}},
)
async def device_session(
    device_id: str,
    response: Response,
    manager: Manager,
    caller: CallerDep,
    x_device_id: Annotated[
        str | None, Header(description="The device's id (a UUID): the same as in the path.")
    ] = None,
) -> Envelope[SessionOut]:
    """The newest live session of the device (of the caller, with authentication on);
    when there is none (or it has expired) a new one is created for the device (201)."""
    if x_device_id is None:
        raise InvalidInputError(DEVICE_HEADER, "the header is required (the device's UUID)")
    from_header = check_device_id(x_device_id, DEVICE_HEADER)
    if check_device_id(device_id, "deviceId") != from_header:
        raise InvalidInputError(DEVICE_HEADER, "names another device than the path")
    owner = caller.owner if caller.authenticated else None
    current = await live_session(manager, owner, from_header)
    if current is not None:
        return Envelope(data=session_out(current))
    newest = await _newest(manager, owner, from_header)
    if newest is not None and not newest.is_expired(manager.clock.now()):
        return Envelope(data=session_out(newest))  # created since the first look
    try:
        session = await manager.create_session(
            id=_next_id(owner, from_header, newest), owner=owner, device_id=from_header
        )
    except SessionExistsError:
        current = await live_session(manager, owner, from_header)
        if current is None:
            raise
        return Envelope(data=session_out(current))
    response.status_code = 201
    response.headers["Location"] = f"/api/sessions/{session.id}"
    return Envelope(data=session_out(session))


async def _newest(manager: SessionManager, owner: str | None, device_id: str) -> Session | None:
    flt = SessionFilter(owner=owner, device_id=device_id, include_expired=True)
    page = await manager.list_sessions(flt, NEWEST_FIRST, 1)
    return page.sessions[0] if page.sessions else None


def _next_id(owner: str | None, device_id: str, newest: Session | None) -> str:
    """The id of the device's next session, derived from its newest (expired) one:
    requests that race to create it (on any instance) choose the same id, so one creates
    it and the others answer with that session."""
    previous = "" if newest is None else newest.id
    key = "\0".join((owner or "", device_id, previous)).encode()
    return "device-" + hashlib.sha256(key).hexdigest()[:32]


@router.get(
    "/api/sessions/{session_id}/lock",
    summary="The session's live lock (null when it has none)",
    response_model=Envelope[LockOut | None],
)
async def get_lock(
    session_id: str, manager: Manager, caller: CallerDep
) -> Envelope[LockOut | None]:
    await guard(manager, caller, session_id)
    return Envelope(data=lock_out(await manager.get_session_lock(session_id)))


@router.put(
    "/api/sessions/{session_id}/lock",
    summary="Set the session's active agent",
    response_model=Envelope[LockOut],
)
async def set_lock(
    session_id: str, body: LockIn, manager: Manager, caller: CallerDep
) -> Envelope[LockOut]:
    """Replaces any lock the session has; `ttl` in seconds (null: the lock never lapses)."""
    await guard(manager, caller, session_id)
    lock = await manager.set_session_lock(session_id, body.agent, body.ttl)
    return Envelope(
        data=LockOut(agent=lock.agent, locked_at=lock.locked_at, expires_at=lock.expires_at)
    )


@router.delete(
    "/api/sessions/{session_id}/lock",
    summary="Clear the session's lock",
    response_model=Envelope[LockCleared],
)
async def clear_lock(session_id: str, manager: Manager, caller: CallerDep) -> Envelope[LockCleared]:
    await guard(manager, caller, session_id)
    cleared = await manager.clear_session_lock(session_id)
    return Envelope(data=LockCleared(session_id=session_id, cleared=cleared))
