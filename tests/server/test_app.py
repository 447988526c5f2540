"""create_app without a manager: its lifespan opens the configured stores and closes them."""

from __future__ import annotations

from pathlib import Path

import httpx

from chatkeep.config import Config
from chatkeep.core.models import Persistence
from chatkeep.server import create_app, store_urls
from chatkeep.stores import open_store

from .support import ok


def test_store_urls_put_durable_and_client_in_the_store_and_none_in_memory() -> None:
    config = Config.from_env({"DATABASE_URL": "sqlite:////srv/chat.db"})
    assert store_urls(config) == {
        Persistence.DURABLE: "sqlite:////srv/chat.db",
        Persistence.CLIENT: "sqlite:////srv/chat.db",
        Persistence.NONE: "memory://",
    }


async def test_the_lifespan_builds_the_manager_from_the_config(tmp_path: Path) -> None:
    config = Config.from_env({"STORAGE_DATABASE_PATH": str(tmp_path), "SESSION_TTL": "1h"})
    app = create_app(config)
    transport = httpx.ASGITransport(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        assert app.state.manager.running
        created = ok(await client.post("/api/sessions", json={}), 201)
        assert created["ttl"] == 3600
        sid = created["id"]
        body = {"role": "user", "content": "kept"}
        ok(await client.post(f"/api/sessions/{sid}/messages", json=body), 201)
        gone = ok(await client.post("/api/sessions", json={"persistence": "none"}), 201)
    assert not hasattr(app.state, "manager")
    async with open_store(f"sqlite:///{tmp_path / 'chatkeep.db'}") as store:
        (message,) = await store.get_messages(sid)
        assert message.content == "kept"
        assert [s.id for s in (await store.list_sessions()).sessions] == [sid]
    assert gone["id"] != sid
