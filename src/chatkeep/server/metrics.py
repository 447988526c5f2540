"""Prometheus metrics of one app: what its manager holds, what it stored, how it answered.

Each app has its own :class:`Metrics` (its own registry), so several apps in one process
never share a series. Gauges are read at scrape time: ``GET /metrics`` takes a
:class:`Snapshot` of the stores and the WebSocket hub, then renders the registry. The
message counter follows the manager's ``message:appended`` events, and the request
histogram is filled by :class:`RequestTimer`, an ASGI middleware that labels each request
with its route's path template (``/api/sessions/{session_id}``), never the raw path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatkeep.core.models import Persistence
from chatkeep.errors import ChatkeepError
from chatkeep.manager import Event, EventType, SessionManager
from chatkeep.server.rooms import Rooms
from chatkeep.stores.base import Store, StoreStats

UNROUTED: Final = "unrouted"
"""The route label of a request answered before routing: an unknown path, or one refused
by the authentication gate or the body limit."""


@dataclass(frozen=True, slots=True)
class StoreState:
    backend: str
    healthy: bool
    stats: StoreStats | None
    """``None`` when the store could not tell."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the gauges show: each persistence mode's store, and the open WebSockets."""

    stores: Mapping[Persistence, StoreState] = field(default_factory=dict)
    websocket_connections: int = 0
    channel_up: bool | None = None
    """The channel between server instances: ``None`` when there is none."""


async def snapshot(manager: SessionManager, rooms: Rooms | None) -> Snapshot:
    """Ask each distinct store once for its health and statistics; a store that fails
    either is reported unhealthy, and without statistics when they failed."""
    seen: dict[int, StoreState] = {}
    for store in manager.stores.values():
        if id(store) not in seen:
            seen[id(store)] = await _state(store)
    return Snapshot(
        stores={mode: seen[id(store)] for mode, store in manager.stores.items()},
        websocket_connections=rooms.connections if rooms is not None else 0,
        channel_up=None if rooms is None or rooms.channel is None else rooms.channel.up,
    )


async def _state(store: Store) -> StoreState:
    try:
        healthy = (await store.health()).healthy
    except ChatkeepError:
        healthy = False
    try:
        stats: StoreStats | None = await store.stats()
    except ChatkeepError:
        return StoreState(store.backend, False, None)
    return StoreState(store.backend, healthy, stats)


class SnapshotCollector(Collector):
    """Renders the latest :class:`Snapshot` as gauges."""

    def __init__(self) -> None:
        self.current = Snapshot()

    def collect(self) -> Iterator[Metric]:
        labels = ["persistence", "backend"]
        up = GaugeMetricFamily(
            "chatkeep_store_up",
            "1 when the store of a persistence mode is healthy, else 0.",
            labels=labels,
        )
        total = GaugeMetricFamily(
            "chatkeep_sessions_stored",
            "Sessions in the store of a persistence mode, expired ones included.",
            labels=labels,
        )
        active = GaugeMetricFamily(
            "chatkeep_sessions_active",
            "Sessions not expired in the store of a persistence mode.",
            labels=labels,
        )
        waiting = GaugeMetricFamily(
            "chatkeep_write_behind_outbox_length",
            "Changes of a write-behind store not yet synced to its durable store.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "chatkeep_write_behind_lag_seconds",
            "Age of the oldest change of a write-behind store not yet synced (0: none).",
            labels=labels,
        )
        for mode, state in sorted(self.current.stores.items()):
            values = [mode.value, state.backend]
            up.add_metric(values, 1.0 if state.healthy else 0.0)
            if state.stats is not None:
                total.add_metric(values, state.stats.total_sessions)
                active.add_metric(values, state.stats.active_sessions)
                details = state.stats.details
                length = _number(details.get("outbox_length"))
                if length is not None:
                    waiting.add_metric(values, length)
                    lag.add_metric(values, _number(details.get("sync_lag_seconds")) or 0.0)
        connections = GaugeMetricFamily(
            "chatkeep_websocket_connections", "Open WebSocket connections to this process."
        )
        connections.add_metric([], self.current.websocket_connections)
        yield from (up, total, active, connections, waiting, lag)
        if self.current.channel_up is not None:
            channel = GaugeMetricFamily(
                "chatkeep_channel_up",
                "1 when the Redis pub/sub channel between server instances is connected.",
            )
            channel.add_metric([], 1.0 if self.current.channel_up else 0.0)
            yield channel


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class Metrics:
    """The registry of one app and the series it holds."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.gauges = SnapshotCollector()
        self.registry.register(self.gauges)
        self.messages_appended = Counter(
            "chatkeep_messages_appended",
            "Messages stored through this process's manager.",
            ["persistence"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "chatkeep_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status class.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._watched: SessionManager | None = None
        self._timers: dict[tuple[str, str, int], Histogram] = {}
        """The histogram of each (method, route, status class) seen: found once."""

    def watch(self, manager: SessionManager) -> None:
        """Count the messages ``manager`` appends from now on (and stop counting those of
        the manager watched before, if another)."""
        if manager is self._watched:
            return
        if self._watched is not None:
            self._watched.events.unsubscribe(self._on_event)
        manager.events.subscribe(self._on_event)
        self._watched = manager

    def _on_event(self, event: Event) -> None:
        if event.type is EventType.MESSAGE_APPENDED and event.messages:
            mode = event.session.persistence.value if event.session is not None else "unknown"
            self.messages_appended.labels(mode).inc(len(event.messages))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status // 100)
        timer = self._timers.get(key)
        if timer is None:
            timer = self._timers[key] = self.request_duration.labels(method, route, f"{key[2]}xx")
        timer.observe(seconds)


class RequestTimer:
    """Times each HTTP request into ``metrics``; also makes sure ``metrics`` watches the
    app's manager before a request or WebSocket reaches a route."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        manager = getattr(scope["app"].state, "manager", None)
        if isinstance(manager, SessionManager):
            self.metrics.watch(manager)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.observe(scope["method"], route_template(scope), status, elapsed)


def route_template(scope: Scope) -> str:
    """The path template of the route that served ``scope``; :data:`UNROUTED` for a
    request answered before routing."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNROUTED
