"""A device's current session: the newest live session of the device an ``X-Device-ID`` names."""

from __future__ import annotations

from typing import Final

from chatkeep.core.models import Session
from chatkeep.core.query import SessionFilter
from chatkeep.manager import SessionManager

DEVICE_HEADER: Final = "X-Device-ID"
NEWEST_FIRST: Final = "-created_at"


async def live_session(
    manager: SessionManager, owner: str | None, device_id: str
) -> Session | None:
    """The device's current session: its newest one that has not expired."""
    flt = SessionFilter(owner=owner, device_id=device_id)
    page = await manager.list_sessions(flt, NEWEST_FIRST, 1)
    return page.sessions[0] if page.sessions else None
