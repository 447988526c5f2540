"""GET /metrics over a real manager: the gauges, the message counter, the request
histogram by route template, the WebSocket gauge, store health, and auth."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from chatkeep.config import Config
from chatkeep.core.clock import FakeClock
from chatkeep.core.models import Persistence
from chatkeep.manager import ManagerConfig, SessionManager
from chatkeep.server import create_app
from chatkeep.stores import open_store
from chatkeep.stores.tiered import TieredStore
from failure.conftest import REDIS_URL, require_port, with_option

from .auth_support import KEY_A, auth_app, bearer, connected
from .support import failed, new_session, ok
from .test_ws import WsClient

WAITING = "chatkeep_write_behind_outbox_length"
LAG = "chatkeep_write_behind_lag_seconds"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def by_mode(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["persistence"]: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def app(manager: SessionManager) -> FastAPI:
    return create_app(Config(), manager)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with connected(app) as opened:
        yield opened


async def append(client: httpx.AsyncClient, sid: str, count: int) -> None:
    body = [{"role": "user", "content": f"m{i}"} for i in range(count)]
    ok(await client.post(f"/api/sessions/{sid}/messages", json=body), 201)


async def test_sessions_and_messages_move_by_what_was_done(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    before = await scrape(client)
    durable = [(await new_session(client, ttl=60))["id"] for _ in range(2)]
    volatile = (await new_session(client, persistence="none", ttl=3600))["id"]
    await append(client, durable[0], 3)
    await append(client, volatile, 1)
    after = await scrape(client)

    for name in ("chatkeep_sessions_stored", "chatkeep_sessions_active"):
        moved = {
            mode: after_value - by_mode(before, name)[mode]
            for mode, after_value in by_mode(after, name).items()
        }
        # ``client`` sessions share the durable store here, so it reports the same sessions.
        assert moved == {"durable": 2, "client": 2, "none": 1}, name
    appended = "chatkeep_messages_appended_total"
    assert value(after, appended, persistence="durable") == 3
    assert value(after, appended, persistence="none") == 1

    fake_clock.advance(timedelta(minutes=2))
    expired = await scrape(client)
    active = by_mode(expired, "chatkeep_sessions_active")
    assert active["durable"] == by_mode(before, "chatkeep_sessions_active")["durable"]
    assert active["none"] == by_mode(after, "chatkeep_sessions_active")["none"]
    stored = "chatkeep_sessions_stored"
    assert by_mode(expired, stored)["durable"] == by_mode(after, stored)["durable"]
    assert value(expired, appended, persistence="durable") == 3


async def test_messages_before_the_first_scrape_are_counted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    sid = (await new_session(client))["id"]
    await append(client, sid, 2)
    once = {"role": "user", "content": "once", "clientId": "c0"}
    for _ in range(2):
        ok(await client.post(f"/api/sessions/{sid}/messages", json=once), 201)
    async with WsClient(app) as ws:
        await ws.join(sid)
        await ws.send("message:send", sessionId=sid, content="over the socket", clientId="c1")
        await ws.expect("message:ack")
    samples = await scrape(client)
    assert value(samples, "chatkeep_messages_appended_total", persistence="durable") == 4


async def test_requests_are_timed_by_route_template_not_raw_path(
    client: httpx.AsyncClient,
) -> None:
    sid = (await new_session(client))["id"]
    ok(await client.get(f"/api/sessions/{sid}"))
    ok(await client.get(f"/api/sessions/{sid}"))
    failed(await client.get("/api/sessions/missing-session"), 404, "session_not_found")
    failed(await client.put(f"/api/sessions/{sid}/load"), 405, "method_not_allowed")
    failed(await client.get(f"/api/nothing/{sid}"), 404, "not_found")
    samples = await scrape(client)

    count = "chatkeep_http_request_duration_seconds_count"
    template = "/api/sessions/{session_id}"
    assert value(samples, count, method="GET", route=template, status="2xx") == 2
    assert value(samples, count, method="GET", route=template, status="4xx") == 1
    load = "/api/sessions/{session_id}/load"
    assert value(samples, count, method="PUT", route=load, status="4xx") == 1
    assert value(samples, count, method="GET", route="unrouted", status="4xx") == 1
    assert value(samples, count, method="POST", route="/api/sessions", status="2xx") == 1
    bucket = "chatkeep_http_request_duration_seconds_bucket"
    inf = {"method": "GET", "route": template, "status": "2xx", "le": "+Inf"}
    assert value(samples, bucket, **inf) == 2
    routes = {dict(labels).get("route", "") for _name, labels in samples}
    assert not any(sid in route or "missing" in route for route in routes), routes


async def test_each_app_has_its_own_registry(manager: SessionManager) -> None:
    first, second = create_app(Config(), manager), create_app(Config(), manager)
    async with connected(first) as a, connected(second) as b:
        ok(await a.get("/healthz"))
        ok(await a.get("/healthz"))
        ok(await b.get("/healthz"))
        count = "chatkeep_http_request_duration_seconds_count"
        labels = {"method": "GET", "route": "/healthz", "status": "2xx"}
        assert value(await scrape(a), count, **labels) == 2
        assert value(await scrape(b), count, **labels) == 1


async def test_the_websocket_gauge_counts_open_connections(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    gauge = "chatkeep_websocket_connections"
    assert value(await scrape(client), gauge) == 0
    async with WsClient(app) as ws:
        await ws.nothing_pending()
        assert value(await scrape(client), gauge) == 1
        async with WsClient(app) as other:
            await other.nothing_pending()
            assert value(await scrape(client), gauge) == 2
        assert value(await scrape(client), gauge) == 1
    assert value(await scrape(client), gauge) == 0


async def test_a_store_down_is_zero_and_metrics_still_answer(
    client: httpx.AsyncClient, manager: SessionManager
) -> None:
    await new_session(client, persistence="none")
    healthy = by_mode(await scrape(client), "chatkeep_store_up")
    assert healthy == {"durable": 1, "client": 1, "none": 1}

    await manager.stores[Persistence.DURABLE].close()
    samples = await scrape(client)
    assert by_mode(samples, "chatkeep_store_up") == {"durable": 0, "client": 0, "none": 1}
    assert set(by_mode(samples, "chatkeep_sessions_stored")) == {"none"}
    assert by_mode(samples, "chatkeep_sessions_active") == {"none": 1}


async def test_with_auth_on_metrics_need_a_credential(manager: SessionManager) -> None:
    app = auth_app(manager)
    async with connected(app) as anonymous:
        failed(await anonymous.get("/metrics"), 401, "unauthorized")
        failed(await anonymous.get("/metrics", params={"token": "not-a-key"}), 401, "unauthorized")
    async with connected(app, bearer(KEY_A)) as alice:
        samples = await scrape(alice)
    count = "chatkeep_http_request_duration_seconds_count"
    refused = {"method": "GET", "route": "unrouted", "status": "4xx"}
    assert value(samples, count, **refused) == 2


async def test_metrics_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert set(response.json()["paths"]["/metrics"]) == {"get"}


async def test_write_behind_lag_is_shown_until_the_outbox_is_synced(tmp_path: Path) -> None:
    require_port(REDIS_URL, 6379)
    prefix = f"ckmetrics{secrets.token_hex(6)}"
    durable = quote(f"sqlite:///{tmp_path}/durable.db", safe="")
    url = with_option(with_option(REDIS_URL, "prefix", prefix), "write_behind", durable)
    tier = await open_store(with_option(url, "sync_interval", "300"))
    assert isinstance(tier, TieredStore)
    await tier.worker.first_sync.wait()  # then the worker waits five minutes
    manager = SessionManager({Persistence.DURABLE: tier}, ManagerConfig(sweep_interval=None))
    try:
        async with connected(create_app(Config(), manager)) as client:
            quiet = await scrape(client)
            assert value(quiet, WAITING, persistence="durable", backend=tier.backend) == 0
            sid = (await new_session(client))["id"]
            await append(client, sid, 3)
            busy = await scrape(client)
            assert value(busy, WAITING, persistence="durable", backend=tier.backend) >= 1
            assert value(busy, LAG, persistence="durable", backend=tier.backend) >= 0
            await tier.sync_now()
            synced = await scrape(client)
            assert value(synced, WAITING, persistence="durable", backend=tier.backend) == 0
            assert value(synced, LAG, persistence="durable", backend=tier.backend) == 0
    finally:
        await manager.close()
        await tier.close()
        client_ = aioredis.Redis.from_url(REDIS_URL)
        try:
            found = [key async for key in client_.scan_iter(match=f"{prefix}:*", count=1000)]
            if found:
                await client_.unlink(*found)
        finally:
            await client_.aclose()


async def test_stores_without_write_behind_show_no_lag(client: httpx.AsyncClient) -> None:
    samples = await scrape(client)
    assert by_mode(samples, WAITING) == {}
    assert by_mode(samples, LAG) == {}
