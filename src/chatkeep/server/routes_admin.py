"""Search, statistics, settings, health, and the page at ``/``."""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import Field, JsonValue

from chatkeep.core.models import Persistence
from chatkeep.core.query import MAX_PAGE
from chatkeep.errors import ChatkeepError
from chatkeep.manager import SessionManager
from chatkeep.server.deps import CallerDep, Manager, configured_mode, refuse_when_authenticated
from chatkeep.server.errors import ERROR_RESPONSES, error_response
from chatkeep.server.fanout import Fanout
from chatkeep.server.wire import Envelope, MessageOut, SessionOut, Wire, message_out, session_out
from chatkeep.stores.base import Store

router = APIRouter()

NEW_SESSIONS_ONLY = "the default applies to new sessions only; existing sessions keep their mode"


class Hit(Wire):
    session: SessionOut
    messages: list[MessageOut] = Field(description="Matching messages, newest first.")


class SearchResults(Wire):
    query: str
    results: list[Hit]
    count: int


class StoreStatsOut(Wire):
    backend: str
    total_sessions: int
    active_sessions: int
    expired_sessions: int
    total_messages: int
    sessions_by_owner: dict[str, int]
    details: dict[str, JsonValue]


class Stats(Wire):
    default_persistence: Persistence
    stores: dict[Persistence, StoreStatsOut] = Field(
        description="Each persistence mode's store (a store serving several is under each)."
    )
    cached_sessions: int


class SettingsOut(Wire):
    default_persistence: Persistence
    persistence_modes: list[Persistence] = Field(description="The modes with a store here.")
    note: str = NEW_SESSIONS_ONLY


class SettingsIn(Wire):
    default_persistence: Persistence


class Alive(Wire):
    status: str


class StoreHealth(Wire):
    backend: str
    healthy: bool
    latency_ms: float | None
    issues: list[str]


class ChannelHealth(Wire):
    up: bool = Field(description="Connected to the Redis that links the server instances.")
    connects: int
    published: int
    received: int
    dropped: int = Field(description="Events not sent to the other instances.")
    last_error: str | None


class Readiness(Wire):
    status: str = Field(description="ready, or degraded when a store is down.")
    stores: dict[Persistence, StoreHealth]
    channel: ChannelHealth | None = Field(
        default=None,
        description="The live events between instances (when configured). While it is down "
        "this instance still serves and tells its own connections; it reconnects by itself.",
    )


@router.get(
    "/api/search",
    tags=["search"],
    responses=ERROR_RESPONSES,
    response_model=Envelope[SearchResults],
)
async def search(
    manager: Manager,
    caller: CallerDep,
    q: Annotated[str, Query(description="Every word must match.")],
    owner: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    include_expired: Annotated[bool, Query(alias="includeExpired")] = False,
) -> Envelope[SearchResults]:
    """Sessions with a message (or metadata) holding every word of `q`, most recently
    active first. With authentication on, only the caller's own sessions are searched."""
    hits = await manager.search_sessions(
        q,
        owner=caller.owner if caller.authenticated else owner,
        limit=limit,
        include_expired=include_expired,
    )
    results = [
        Hit(session=session_out(h.session), messages=[message_out(m) for m in h.messages])
        for h in hits
    ]
    return Envelope(data=SearchResults(query=q, results=results, count=len(results)))


@router.get("/api/stats", tags=["admin"], responses=ERROR_RESPONSES, response_model=Envelope[Stats])
async def stats(manager: Manager, caller: CallerDep) -> Envelope[Stats]:
    """Counts over every owner's sessions: 403 `forbidden` when authentication is on."""
    refuse_when_authenticated(caller, "/api/stats")
    by_mode = await manager.stats()
    stores = {
        mode: StoreStatsOut(
            backend=s.backend,
            total_sessions=s.total_sessions,
            active_sessions=s.active_sessions,
            expired_sessions=s.expired_sessions,
            total_messages=s.total_messages,
            sessions_by_owner=dict(s.sessions_by_owner),
            details=dict(s.details),
        )
        for mode, s in by_mode.items()
    }
    cached = manager.cache_info().size
    return Envelope(
        data=Stats(
            default_persistence=manager.default_persistence, stores=stores, cached_sessions=cached
        )
    )


def _settings(manager: SessionManager) -> Envelope[SettingsOut]:
    return Envelope(
        data=SettingsOut(
            default_persistence=manager.default_persistence,
            persistence_modes=list(manager.stores),
        )
    )


@router.get(
    "/api/settings", tags=["admin"], responses=ERROR_RESPONSES, response_model=Envelope[SettingsOut]
)
async def get_settings(manager: Manager) -> Envelope[SettingsOut]:
    return _settings(manager)


@router.put(
    "/api/settings", tags=["admin"], responses=ERROR_RESPONSES, response_model=Envelope[SettingsOut]
)
async def put_settings(
    body: SettingsIn, manager: Manager, caller: CallerDep
) -> Envelope[SettingsOut]:
    """Change the global default persistence mode. It applies to new sessions only.

    The default is shared by every owner: with authentication on this is 403 `forbidden`
    (set `CHATKEEP_DEFAULT_PERSISTENCE` instead)."""
    refuse_when_authenticated(caller, "changing the default persistence mode")
    configured_mode(manager, body.default_persistence, "defaultPersistence")
    manager.set_default_persistence(body.default_persistence)
    return _settings(manager)


@router.get("/healthz", tags=["health"], response_model=Envelope[Alive])
async def healthz() -> Envelope[Alive]:
    """The process is alive (it does not look at the stores)."""
    return Envelope(data=Alive(status="alive"))


@router.get(
    "/readyz",
    tags=["health"],
    response_model=Envelope[Readiness],
    responses={503: {"description": "A store is down; `error.details` has each store's state."}},
)
async def readyz(request: Request, manager: Manager) -> Envelope[Readiness] | JSONResponse:
    """Each store's health; 503 when one of them is down. The channel between instances
    is reported, but being down does not make this instance unready."""
    checked: dict[int, StoreHealth] = {}
    for store in manager.stores.values():
        if id(store) not in checked:
            checked[id(store)] = await _health(store)
    stores = {mode: checked[id(store)] for mode, store in manager.stores.items()}
    channel = _channel(request)
    if all(h.healthy for h in stores.values()):
        return Envelope(data=Readiness(status="ready", stores=stores, channel=channel))
    down = ", ".join(sorted(mode.value for mode, h in stores.items() if not h.healthy))
    report = Readiness(status="degraded", stores=stores, channel=channel).model_dump(
        mode="json", by_alias=True
    )
    return error_response(503, "not_ready", f"store down for: {down}", report)


def _channel(request: Request) -> ChannelHealth | None:
    fanout = getattr(request.app.state, "fanout", None)
    if not isinstance(fanout, Fanout):
        return None
    state = fanout.state
    return ChannelHealth(
        up=state.up,
        connects=state.connects,
        published=state.published,
        received=state.received,
        dropped=state.dropped,
        last_error=state.last_error,
    )


async def _health(store: Store) -> StoreHealth:
    try:
        report = await store.health()
    except ChatkeepError as exc:
        return StoreHealth(backend=store.backend, healthy=False, latency_ms=None, issues=[str(exc)])
    return StoreHealth(
        backend=report.backend,
        healthy=report.healthy,
        latency_ms=report.latency_ms,
        issues=list(report.issues),
    )


@router.get("/", response_class=HTMLResponse, tags=["web"], summary="The web page")
async def index() -> HTMLResponse:
    page = files("chatkeep").joinpath("web/index.html").read_text(encoding="utf-8")
    return HTMLResponse(page)
