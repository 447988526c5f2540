"""``Client``: the REST API of a chatkeep server, synchronous, on ``httpx.Client``."""

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


class Client:
    """``with Client("http://127.0.0.1:8000", token=...) as api:``.

    Results are the library's records (:class:`chatkeep.Session`, :class:`chatkeep.Message`);
    error answers are raised as the library's exceptions (see :mod:`chatkeep.client.errors`).
    ``transport`` (an ``httpx`` transport) replaces the network.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(**client_options(base_url, token, timeout), transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, call: Call[T]) -> T:
        """Send one call of :mod:`chatkeep.client.calls` and read its answer."""
        try:
            response = self._http.send(build(self._http, call))
        except httpx.TransportError as exc:
            raise ServerUnreachableError(f"{call.method} {call.path}: {exc}") from exc
        return finish(call, response)

    def list_sessions(
        self,
        flt: SessionFilter | None = None,
        *,
        sort: str = "-lastActivity",
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        return self.call(calls.list_sessions(flt, sort, limit, cursor))

    def create_session(
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
        return self.call(
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

    def get_session(self, session_id: str) -> Session:
        return self.call(calls.get_session(session_id))

    def update_session(
        self, session_id: str, update: SessionUpdate, *, expected_version: int | None = None
    ) -> Session:
        return self.call(calls.update_session(session_id, update, expected_version))

    def delete_session(self, session_id: str) -> bool:
        return self.call(calls.delete_session(session_id))

    def load(self, session_id: str) -> Loaded:
        return self.call(calls.load(session_id))

    def history(self, session_id: str) -> list[Message]:
        return self.call(calls.history(session_id))

    def get_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        last: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        return self.call(
            calls.get_messages(
                session_id, after_seq=after_seq, before_seq=before_seq, last=last, limit=limit
            )
        )

    def append(self, session_id: str, messages: NewMessage | Sequence[NewMessage]) -> Stored:
        return self.call(calls.append(session_id, messages))

    def search(
        self,
        query: str,
        *,
        owner: str | None = None,
        limit: int = 20,
        include_expired: bool = False,
    ) -> list[SearchHit]:
        return self.call(calls.search(query, owner, limit, include_expired))

    def get_default_persistence(self) -> Persistence:
        return self.call(calls.get_default_persistence())

    def set_default_persistence(self, mode: Persistence) -> Persistence:
        return self.call(calls.set_default_persistence(mode))

    def get_lock(self, session_id: str) -> SessionLock | None:
        return self.call(calls.get_lock(session_id))

    def set_lock(
        self, session_id: str, agent: str, ttl: timedelta | float | Unset | None = UNSET
    ) -> SessionLock:
        return self.call(calls.set_lock(session_id, agent, ttl))

    def clear_lock(self, session_id: str) -> bool:
        return self.call(calls.clear_lock(session_id))

    def device_session(self, device_id: str) -> Session:
        return self.call(calls.device_session(device_id))

    def bulk_update(self, flt: SessionFilter, update: SessionUpdate) -> int:
        return self.call(calls.bulk_update(flt, update))

    def backup(self) -> str:
        return self.call(calls.backup())

    def restore(
        self,
        jsonl: str,
        *,
        strategy: MergeStrategy = MergeStrategy.SKIP_EXISTING,
        dry_run: bool = False,
    ) -> ImportReport:
        return self.call(calls.restore(jsonl, strategy, dry_run))

    def stats(self) -> dict[str, JSON]:
        return self.call(calls.stats())

    def health(self) -> str:
        return self.call(calls.health())

    def ready(self) -> dict[str, JSON]:
        return self.call(calls.ready())
