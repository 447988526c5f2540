"""``GET /metrics``: the app's Prometheus metrics in the text exposition format.

:func:`install` gives an app its own :class:`~chatkeep.server.metrics.Metrics`, the
middleware that times its requests, and the route. The route is not in the OpenAPI
document (it does not answer in the JSON envelope); with authentication on it needs a
credential like every path outside ``OPEN_PATHS``, and any caller with one may scrape.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chatkeep.server.deps import Manager
from chatkeep.server.metrics import Metrics, RequestTimer, snapshot
from chatkeep.server.mount import add_routes
from chatkeep.server.rooms import Rooms

router = APIRouter()


def install(app: FastAPI) -> Metrics:
    """Give ``app`` its metrics; call it after the other middleware, so that the timer
    is the outermost one and sees every answer (401s and 500s included)."""
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(RequestTimer, metrics=metrics)
    add_routes(app, router)
    return metrics


def metrics_of(request: Request) -> Metrics:
    metrics = getattr(request.app.state, "metrics", None)
    if not isinstance(metrics, Metrics):
        raise RuntimeError("expected an app with metrics installed, got none")
    return metrics


@router.get("/metrics", summary="Prometheus metrics (text exposition format)")
async def scrape(request: Request, manager: Manager) -> Response:
    """Every series, the gauges read from the stores and the WebSocket hub right now."""
    metrics = metrics_of(request)
    metrics.watch(manager)
    hub = getattr(request.app.state, "rooms", None)
    rooms = hub if isinstance(hub, Rooms) and hub.manager is manager else None
    metrics.gauges.current = await snapshot(manager, rooms)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
