"""``AsyncClient``: the REST API of a chatkeep server, on ``httpx.AsyncClient``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Self, TypeVar

import httpx

from chatkeep.client import calls
from chatkeep.client.decode import Loaded, Stored
from chatkeep.client.errors import ServerUnreachableError
from chatkeep.client.requests import Call, build, finish
from chatkeep.client.transport import client_options
from chatkeep.core.models import (
    JSON,
    UNSET,
    Message,
    NewMessage,
    Persistence,
    Session,
    SessionLock,
    SessionUpdate,
    Unset,
)
from chatkeep.core.query import SearchHit, SessionFilter, SessionPage
from chatkeep.stores.base import ImportReport, MergeStrategy

T = TypeVar("T")


class AsyncClient:
    """``async with AsyncClient("http://127.0.0.1:8000", token=...) as api:``.

    Results are the library's records (:class:`chatkeep.Session`, :class:`chatkeep.Message`);
    error answers are raised as the library's exceptions (see :mod:`chatkeep.client.errors`).
    ``transport`` (an ``httpx`` transport, such as ``httpx.ASGITransport(app)``) replaces
    the network.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            **client_options(base_url, token, timeout), transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, call: Call[T]) -> T:
        """Send one call of :mod:`chatkeep.client.calls` and read its answer."""
        try:
            response = await self._http.send(build(self._http, call))
        except httpx.TransportError as exc:
            raise ServerUnreachableError(f"{call.method} {call.path}: {exc}") from exc
        return finish(call, response)

    async def list_sessions(
        self,
        flt: SessionFilter | None = None,
        *,
        sort: str = "-lastActivity",
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        return await self.call(calls.list_sessions(flt, sort, limit, cursor))

    async def create_session(
        self,
        *,
        id: str | None = None,
        owner: str | None = None,
        device_id: str | None = None,
        persistence: Persistence | None = None,
        ttl: timedelta | float | Unset | None = UNSET,
        max_messages: int | None = None,
        metadata: Mapping[str, JSON] | None = None,
        tags: Sequence[str] | None = None,
    ) -> Session:
        return await self.call(
            calls.create_session(
                id=id,
                owner=owner,
                device_id=device_id,
                persistence=persistence,
                ttl=ttl,
                max_messages=max_messages,
                metadata=metadata,
                tags=tags,
            )
        )

    async def get_session(self, session_id: str) -> Session:
        return await self.call(calls.get_session(session_id))

    async def update_session(
        self, session_id: str, update: SessionUpdate, *, expected_version: int | None = None
    ) -> Session:
        return await self.call(calls.update_session(session_id, update, expected_version))

    async def delete_session(self, session_id: str) -> bool:
        return await self.call(calls.delete_session(session_id))

    async def load(self, session_id: str) -> Loaded:
        return await self.call(calls.load(session_id))

    async def history(self, session_id: str) -> list[Message]:
        return await self.call(calls.history(session_id))

    async def get_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        last: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        return await self.call(
            calls.get_messages(
                session_id, after_seq=after_seq, before_seq=before_seq, last=last, limit=limit
            )
        )

    async def append(self, session_id: str, messages: NewMessage | Sequence[NewMessage]) -> Stored:
        return await self.call(calls.append(session_id, messages))

    async def search(
        self,
        query: str,
        *,
        owner: str | None = None,
        limit: int = 20,
        include_expired: bool = False,
    ) -> list[SearchHit]:
        return await self.call(calls.search(query, owner, limit, include_expired))

    async def get_default_persistence(self) -> Persistence:
        return await self.call(calls.get_default_persistence())

    async def set_default_persistence(self, mode: Persistence) -> Persistence:
        return await self.call(calls.set_default_persistence(mode))

    async def get_lock(self, session_id: str) -> SessionLock | None:
        return await self.call(calls.get_lock(session_id))

    async def set_lock(
        self, session_id: str, agent: str, ttl: timedelta | float | Unset | None = UNSET
    ) -> SessionLock:
        return await self.call(calls.set_lock(session_id, agent, ttl))

    async def clear_lock(self, session_id: str) -> bool:
        return await self.call(calls.clear_lock(session_id))

    async def device_session(self, device_id: str) -> Session:
        return await self.call(calls.device_session(device_id))

    async def bulk_update(self, flt: SessionFilter, update: SessionUpdate) -> int:
        return await self.call(calls.bulk_update(flt, update))

    async def backup(self) -> str:
        return await self.call(calls.backup())

    async def restore(
        self,
        jsonl: str,
        *,
        strategy: MergeStrategy = MergeStrategy.SKIP_EXISTING,
        dry_run: bool = False,
    ) -> ImportReport:
        return await self.call(calls.restore(jsonl, strategy, dry_run))

    async def stats(self) -> dict[str, JSON]:
        return await self.call(calls.stats())

    async def health(self) -> str:
        return await self.call(calls.health())

    async def ready(self) -> dict[str, JSON]:
        return await self.call(calls.ready())
