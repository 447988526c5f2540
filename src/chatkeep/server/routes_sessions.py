"""``/api/sessions``: list, create, read, change and delete sessions."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import AwareDatetime, Field, JsonValue

from chatkeep.core.ids import check_device_id
from chatkeep.core.models import JSON, Persistence
from chatkeep.core.query import MAX_PAGE, SessionFilter
from chatkeep.errors import InvalidInputError, SessionNotFoundError
from chatkeep.manager import SessionOptions
from chatkeep.server.deps import CallerDep, Manager, configured_mode, guard, own_owner, owned
from chatkeep.server.device import DEVICE_HEADER, live_session
from chatkeep.server.errors import ERROR_RESPONSES
from chatkeep.server.wire import MAX_INT, Envelope, SessionOut, Wire, session_out

router = APIRouter(prefix="/api/sessions", tags=["sessions"], responses=ERROR_RESPONSES)

SortParam = Literal[
    "createdAt", "-createdAt", "updatedAt", "-updatedAt", "lastActivity", "-lastActivity"
]
_SORT_FIELDS = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "lastActivity": "last_activity_at",
}
METADATA_PREFIX = "metadata."


class SessionList(Wire):
    sessions: list[SessionOut]
    count: int = Field(description="Sessions on this page.")
    next_cursor: str | None = Field(description="Give as `cursor` for the next page.")
    current_session: str | None = Field(
        default=None,
        description="With `X-Device-ID`: the id of that device's current (live) session.",
    )


class NewSession(Wire):
    id: str | None = None
    owner: str | None = None
    device_id: str | None = None
    persistence: Persistence | None = Field(
        default=None, description="Fixed for the session's life; left out: the global default."
    )
    ttl: float | None = Field(
        default=None, description="Seconds of inactivity before it expires; null: never."
    )
    max_messages: int | None = None
    metadata: dict[str, JsonValue] | None = None
    tags: list[str] | None = None


class SessionChanges(Wire):
    owner: str | None = None
    device_id: str | None = None
    ttl: float | None = None
    max_messages: int | None = None
    metadata: dict[str, JsonValue] | None = None
    merge_metadata: dict[str, JsonValue] | None = Field(
        default=None, description="Keys to set; a null value removes the key."
    )
    tags: list[str] | None = None
    add_tags: list[str] | None = None
    remove_tags: list[str] | None = None
    persistence: Persistence | None = Field(
        default=None, description="Only its current value is accepted: the mode is fixed."
    )
    expected_version: int | None = Field(
        default=None,
        ge=0,
        le=MAX_INT,
        description="Refuse (409) unless the session is at this version.",
    )


class Deleted(Wire):
    session_id: str
    deleted: bool


@router.get("", summary="List sessions", response_model=Envelope[SessionList])
async def list_sessions(
    request: Request,
    manager: Manager,
    caller: CallerDep,
    owner: str | None = None,
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    tag: Annotated[list[str] | None, Query(description="Repeatable: all must match.")] = None,
    created_after: Annotated[AwareDatetime | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[AwareDatetime | None, Query(alias="createdBefore")] = None,
    active_after: Annotated[AwareDatetime | None, Query(alias="activeAfter")] = None,
    active_before: Annotated[AwareDatetime | None, Query(alias="activeBefore")] = None,
    has_messages: Annotated[bool | None, Query(alias="hasMessages")] = None,
    include_expired: Annotated[bool, Query(alias="includeExpired")] = False,
    sort: SortParam = "-lastActivity",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
    x_device_id: Annotated[
        str | None, Header(description="The calling device's id (a UUID), if it has one.")
    ] = None,
) -> Envelope[SessionList]:
    """Filters combine (all must hold). `metadata.<key>=<value>` parameters match a
    metadata key; the value is read as JSON when it is JSON (`3`, `true`, `"3"`), else
    as text. With authentication on, only the caller's own sessions are listed."""
    flt = SessionFilter(
        owner=caller.owner if caller.authenticated else owner,
        device_id=device_id,
        tags=frozenset(tag or ()),
        metadata=metadata_filter(request),
        created_after=created_after,
        created_before=created_before,
        active_after=active_after,
        active_before=active_before,
        has_messages=has_messages,
        include_expired=include_expired,
    )
    order = ("-" if sort.startswith("-") else "") + _SORT_FIELDS[sort.lstrip("-")]
    page = await manager.list_sessions(flt, order, limit, cursor)
    sessions = [session_out(s) for s in page.sessions]
    current = None
    if x_device_id is not None:
        device = check_device_id(x_device_id, DEVICE_HEADER)
        owner_of_device = caller.owner if caller.authenticated else None
        current = await live_session(manager, owner_of_device, device)
    return Envelope(
        data=SessionList(
            sessions=sessions,
            count=len(sessions),
            next_cursor=page.next_cursor,
            current_session=None if current is None else current.id,
        )
    )


def metadata_filter(request: Request) -> dict[str, JSON]:
    found: dict[str, JSON] = {}
    for name, text in request.query_params.multi_items():
        if not name.startswith(METADATA_PREFIX):
            continue
        key = name.removeprefix(METADATA_PREFIX)
        if not key:
            raise InvalidInputError(name, "names no metadata key (use metadata.<key>=<value>)")
        try:
            found[key] = json.loads(text)
        except ValueError:
            found[key] = text
    return found


@router.post("", summary="Create a session", status_code=201, response_model=Envelope[SessionOut])
async def create_session(
    body: NewSession, response: Response, manager: Manager, caller: CallerDep
) -> Envelope[SessionOut]:
    """With authentication on, the session belongs to the caller (another `owner` is 403)."""
    configured_mode(manager, body.persistence, "persistence")
    options = SessionOptions(
        id=body.id,
        owner=own_owner(caller, body.owner),
        device_id=body.device_id,
        persistence=body.persistence,
        metadata=body.metadata,
        tags=body.tags,
    )
    if "ttl" in body.model_fields_set:
        options["ttl"] = body.ttl
    if body.max_messages is not None:
        options["max_messages"] = body.max_messages
    session = await manager.create_session(**options)
    response.headers["Location"] = f"{router.prefix}/{session.id}"
    response.headers["ETag"] = etag(session.version)
    return Envelope(data=session_out(session))


@router.get("/{session_id}", summary="Read a session", response_model=Envelope[SessionOut])
async def get_session(
    session_id: str, response: Response, manager: Manager, caller: CallerDep
) -> Envelope[SessionOut]:
    session = await owned(manager, caller, session_id)
    response.headers["ETag"] = etag(session.version)
    return Envelope(data=session_out(session))


@router.patch("/{session_id}", summary="Change a session", response_model=Envelope[SessionOut])
async def update_session(
    session_id: str,
    body: SessionChanges,
    response: Response,
    manager: Manager,
    caller: CallerDep,
    if_match: Annotated[str | None, Header(description='The version, as in the ETag: "3".')] = None,
) -> Envelope[SessionOut]:
    """Optimistic locking: give the version last read as `If-Match` or `expectedVersion`;
    409 `version_conflict` if it changed since. Changing `persistence` is 409
    `immutable_setting`. With authentication on, `owner` can only be the caller."""
    expected = expected_version(if_match, body.expected_version)
    await guard(manager, caller, session_id)
    changes = {
        name: getattr(body, name) for name in body.model_fields_set if name != "expected_version"
    }
    if "owner" in changes:
        changes["owner"] = own_owner(caller, body.owner)
    session = await manager.update_session(session_id, changes, expected)
    response.headers["ETag"] = etag(session.version)
    return Envelope(data=session_out(session))


@router.delete("/{session_id}", summary="Delete a session", response_model=Envelope[Deleted])
async def delete_session(session_id: str, manager: Manager, caller: CallerDep) -> Envelope[Deleted]:
    await guard(manager, caller, session_id)
    if not await manager.delete_session(session_id):
        raise SessionNotFoundError(session_id)
    return Envelope(data=Deleted(session_id=session_id, deleted=True))


def etag(version: int) -> str:
    return f'"{version}"'


_IF_MATCH = re.compile(r'(?:W/)?"?(\d{1,18})"?')


def expected_version(if_match: str | None, in_body: int | None) -> int | None:
    """The version the caller expects, from ``If-Match`` and/or ``expectedVersion``."""
    from_header: int | None = None
    if if_match is not None and if_match.strip() != "*":
        found = _IF_MATCH.fullmatch(if_match.strip())
        if found is None:
            raise InvalidInputError("If-Match", 'must be a session version such as "3"')
        from_header = int(found[1])
    if from_header is not None and in_body is not None and from_header != in_body:
        raise InvalidInputError("expectedVersion", "disagrees with the If-Match header")
    return in_body if in_body is not None else from_header
