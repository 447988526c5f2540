"""Adding a router's HTTP routes to an app without the cost of an included router."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put the routes of ``router`` (HTTP routes only, each already built with the
    router's prefix, tags and responses) straight into the app's own list, in order.

    The app serves the same routes and documents them the same way as
    ``app.include_router(router)`` would; but FastAPI matches a request against an
    included router through a layer that costs more per request than the route it
    finds. (The routes keep the dependency overrides of ``router``, which has none.)
    """
    routes = list(router.routes)
    for route in routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"expected HTTP routes only, got {route!r}")
    app.router.routes.extend(routes)
