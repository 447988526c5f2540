"""The ASGI application: ``create_app(config)`` on the session manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from chatkeep.config import Config
from chatkeep.core.clock import Clock, SystemClock
from chatkeep.core.models import Persistence
from chatkeep.manager import SessionManager
from chatkeep.server import (
    errors,
    routes_admin,
    routes_bulk,
    routes_devices,
    routes_messages,
    routes_sessions,
    routes_web,
    ws,
)
from chatkeep.server.auth import Authenticator
from chatkeep.server.fanout import live_events
from chatkeep.server.gate import AuthGate
from chatkeep.server.metrics_http import install as install_metrics
from chatkeep.server.middleware import BodyLimit, LastResort
from chatkeep.server.mount import add_routes

EPHEMERAL_URL = "memory://"


def store_urls(config: Config) -> dict[Persistence, str]:
    """The store of each persistence mode: ``durable`` (and the records of ``client``
    sessions) in the configured store, ``none`` in this process's memory, ``redis`` (when
    a Redis URL is configured) in Redis, written behind to a durable store."""
    url = config.store.url
    urls = {Persistence.DURABLE: url, Persistence.CLIENT: url, Persistence.NONE: EPHEMERAL_URL}
    redis = config.store.redis_store_url()
    if redis is not None:
        urls[Persistence.REDIS] = redis
    return urls


async def build_manager(config: Config, *, clock: Clock | None = None) -> SessionManager:
    """A manager over the configured stores (it owns and closes them); not started."""
    return await SessionManager.from_urls(
        store_urls(config),
        config.manager,
        clock=clock,
        defaults=config.session_defaults(),
        limits=config.store.limits(),
    )


def create_app(config: Config, manager: SessionManager | None = None) -> FastAPI:
    """The chatkeep server.

    Given a ``manager``, the app uses it and leaves its lifecycle to the caller. Without
    one, the app's lifespan builds one from ``config``, starts it, and closes it on
    shutdown. With ``config.server.channel_redis_url``, the lifespan also joins the live
    events of the other instances on that Redis (see :mod:`chatkeep.server.fanout`). With
    API keys or a token secret in ``config.server``, every request outside
    the open paths must authenticate (see :mod:`chatkeep.server.auth`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        channel = config.server.channel_redis_url
        if manager is not None:
            async with live_events(app.state, manager, channel):
                yield
            return
        async with await build_manager(config) as owned:
            app.state.manager = owned
            try:
                async with live_events(app.state, owned, channel):
                    yield
            finally:
                del app.state.manager

    app = FastAPI(
        title="chatkeep",
        summary="Chat and AI-agent sessions that survive restarts, devices and instances.",
        version=_version(),
        lifespan=lifespan,
    )
    if manager is not None:
        app.state.manager = manager
    app.state.config = config
    errors.install(app)
    app.add_middleware(BodyLimit, limit=config.server.max_request_bytes)
    clock = manager.clock if manager is not None else SystemClock()
    app.add_middleware(AuthGate, authenticator=Authenticator(config.server, clock))
    app.add_middleware(LastResort)
    install_metrics(app)
    for module in (routes_sessions, routes_bulk, routes_devices, routes_messages, routes_admin):
        add_routes(app, module.router)
    app.include_router(ws.router)
    app.include_router(routes_web.router)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chatkeep")
    except PackageNotFoundError:
        return "0"
