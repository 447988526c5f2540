"""A real ``chatkeep serve`` with the redis mode written behind to SQLite: messages sent,
the server restarted, the session's keys removed from Redis, and its whole history still
served, now from the durable copy (the sync interval is the seed's five minutes, so the
copy was made by the clean shutdown)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import pytest
import redis

from chatkeep.stores.redis_keys import Keys
from failure.conftest import shared_redis_url as shared_redis_url  # the fixture

from .support import ok
from .test_serve import clean_env as clean_env  # the fixture
from .test_serve import free_port, start, stop
from .test_serve import serve as serve  # the fixture
from .test_serve import server_env as server_env  # the fixture

pytestmark = pytest.mark.slow


def forget(redis_url: str, session_id: str) -> int:
    """Remove the session's keys from Redis, as its idle TTL would; how many there were."""
    parts = urlsplit(redis_url)
    prefix = dict(parse_qsl(parts.query))["prefix"]
    client = redis.Redis.from_url(urlunsplit(parts._replace(query="")))
    try:
        return int(client.delete(*Keys(prefix).data(session_id)))
    finally:
        client.close()


def history(base: str, session_id: str) -> list[tuple[int, str]]:
    loaded = ok(httpx.post(f"{base}/api/sessions/{session_id}/load"))
    return [(m["seq"], m["content"]) for m in loaded["conversationHistory"]]


def test_history_survives_a_restart_and_leaving_redis(
    serve: list[subprocess.Popen[str]],
    server_env: dict[str, str],
    shared_redis_url: str,
    tmp_path: Path,
) -> None:
    env = {
        **server_env,
        "REDIS_URL": shared_redis_url,
        "CHATKEEP_DEFAULT_PERSISTENCE": "redis",
        "SESSION_SYNC_INTERVAL_SECONDS": "300",
    }
    port = free_port()
    base = start(serve, env, tmp_path, port)
    session = ok(httpx.post(f"{base}/api/sessions", json={}), 201)
    assert session["persistence"] == "redis"
    sid = session["id"]
    for i in range(5):
        body = {"role": "user", "content": f"message {i}"}
        ok(httpx.post(f"{base}/api/sessions/{sid}/messages", json=body), 201)
    stop(serve[0])
    assert (tmp_path / "data" / "chatkeep-redis.db").exists()
    assert forget(shared_redis_url, sid) == 3

    base = start(serve, env, tmp_path, port)
    listed = ok(httpx.get(f"{base}/api/sessions"))["sessions"]
    assert [s["id"] for s in listed] == [sid]  # listed from the durable copy
    expected = [(i + 1, f"message {i}") for i in range(5)]
    assert history(base, sid) == expected
    ok(
        httpx.post(f"{base}/api/sessions/{sid}/messages", json={"role": "user", "content": "6"}),
        201,
    )
    assert history(base, sid) == [*expected, (6, "6")]
    ready = ok(httpx.get(f"{base}/readyz"))
    assert ready["status"] == "ready"
    stop(serve[1])
