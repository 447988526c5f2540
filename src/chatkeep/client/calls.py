"""The calls of the REST API, built once for both clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from chatkeep.client import decode
from chatkeep.client.requests import (
    Call,
    changes_body,
    filter_body,
    filter_params,
    flag,
    message_body,
    seconds,
    session_path,
)
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


def _page_messages(data: Any) -> list[Message]:
    return decode.messages(data["messages"])


def _history(data: Any) -> list[Message]:
    return decode.messages(data["history"])


def _flag_of(name: str) -> Any:
    return lambda data: bool(data[name])


def list_sessions(
    flt: SessionFilter | None, sort: str, limit: int, cursor: str | None
) -> Call[SessionPage]:
    params = filter_params(flt or SessionFilter())
    params += [("sort", sort), ("limit", str(limit))]
    if cursor is not None:
        params.append(("cursor", cursor))
    return Call("GET", "/api/sessions", decode.page, params=params)


def create_session(
    *,
    id: str | None = None,
    owner: str | None = None,
    device_id: str | None = None,
    persistence: Persistence | None = None,
    ttl: timedelta | float | Unset | None = UNSET,
    max_messages: int | None = None,
    metadata: Mapping[str, JSON] | None = None,
    tags: Sequence[str] | None = None,
) -> Call[Session]:
    body: dict[str, Any] = {
        "id": id,
        "owner": owner,
        "deviceId": device_id,
        "persistence": None if persistence is None else Persistence(persistence).value,
        "maxMessages": max_messages,
        "metadata": None if metadata is None else dict(metadata),
        "tags": None if tags is None else sorted(tags),
    }
    body = {name: value for name, value in body.items() if value is not None}
    if not isinstance(ttl, Unset):
        body["ttl"] = seconds(ttl)
    return Call("POST", "/api/sessions", decode.session, json=body)


def get_session(session_id: str) -> Call[Session]:
    return Call("GET", session_path(session_id), decode.session, session_id=session_id)


def update_session(
    session_id: str, update: SessionUpdate, expected_version: int | None
) -> Call[Session]:
    body = changes_body(update)
    if expected_version is not None:
        body["expectedVersion"] = expected_version
    path = session_path(session_id)
    return Call("PATCH", path, decode.session, json=body, session_id=session_id)


def delete_session(session_id: str) -> Call[bool]:
    path = session_path(session_id)
    return Call("DELETE", path, _flag_of("deleted"), session_id=session_id)


def load(session_id: str) -> Call[decode.Loaded]:
    path = session_path(session_id, "/load")
    return Call("POST", path, decode.loaded, session_id=session_id)


def history(session_id: str) -> Call[list[Message]]:
    path = session_path(session_id, "/history")
    return Call("GET", path, _history, session_id=session_id)


def get_messages(
    session_id: str,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    last: int | None = None,
    limit: int | None = None,
) -> Call[list[Message]]:
    given = {"afterSeq": after_seq, "beforeSeq": before_seq, "last": last, "limit": limit}
    params = [(name, str(value)) for name, value in given.items() if value is not None]
    path = session_path(session_id, "/messages")
    return Call("GET", path, _page_messages, params=params, session_id=session_id)


def append(session_id: str, messages: NewMessage | Sequence[NewMessage]) -> Call[decode.Stored]:
    sent = [messages] if isinstance(messages, NewMessage) else list(messages)
    body = [message_body(m) for m in sent]
    path = session_path(session_id, "/messages")
    return Call("POST", path, decode.stored, json=body, session_id=session_id)


def search(
    query: str, owner: str | None, limit: int, include_expired: bool
) -> Call[list[SearchHit]]:
    params = [("q", query), ("limit", str(limit)), ("includeExpired", flag(include_expired))]
    if owner is not None:
        params.append(("owner", owner))
    return Call("GET", "/api/search", decode.hits, params=params)


def _default_mode(data: Any) -> Persistence:
    return Persistence(data["defaultPersistence"])


def get_default_persistence() -> Call[Persistence]:
    return Call("GET", "/api/settings", _default_mode)


def set_default_persistence(mode: Persistence) -> Call[Persistence]:
    body = {"defaultPersistence": Persistence(mode).value}
    return Call("PUT", "/api/settings", _default_mode, json=body)


def get_lock(session_id: str) -> Call[SessionLock | None]:
    path = session_path(session_id, "/lock")
    return Call("GET", path, decode.lock, session_id=session_id)


def _lock(data: Any) -> SessionLock:
    found = decode.lock(data)
    if found is None:
        raise ValueError("the server answered a lock without one")
    return found


def set_lock(
    session_id: str, agent: str, ttl: timedelta | float | Unset | None = UNSET
) -> Call[SessionLock]:
    body: dict[str, Any] = {"agent": agent}
    if not isinstance(ttl, Unset):
        body["ttl"] = seconds(ttl)
    path = session_path(session_id, "/lock")
    return Call("PUT", path, _lock, json=body, session_id=session_id)


def clear_lock(session_id: str) -> Call[bool]:
    path = session_path(session_id, "/lock")
    return Call("DELETE", path, _flag_of("cleared"), session_id=session_id)


def device_session(device_id: str) -> Call[Session]:
    path = f"/api/devices/{device_id}/session"
    return Call("GET", path, decode.session, headers={"X-Device-ID": device_id})


def bulk_update(flt: SessionFilter, update: SessionUpdate) -> Call[int]:
    body = {"filter": filter_body(flt), "changes": changes_body(update)}
    return Call("POST", "/api/sessions/bulk-update", _updated_count, json=body)


def _updated_count(data: Any) -> int:
    return int(data["updatedCount"])


def _text(text: Any) -> str:
    return str(text)


def backup() -> Call[str]:
    return Call("POST", "/api/backup", _text, raw=True)


def restore(jsonl: str, strategy: MergeStrategy, dry_run: bool) -> Call[ImportReport]:
    params = [("strategy", MergeStrategy(strategy).value), ("dryRun", flag(dry_run))]
    headers = {"Content-Type": "application/x-ndjson"}
    return Call(
        "POST", "/api/restore", decode.import_report, params=params, content=jsonl, headers=headers
    )


def _json(data: Any) -> dict[str, JSON]:
    return dict(data)


def stats() -> Call[dict[str, JSON]]:
    return Call("GET", "/api/stats", _json)


def _status(data: Any) -> str:
    return str(data["status"])


def health() -> Call[str]:
    return Call("GET", "/healthz", _status)


def ready() -> Call[dict[str, JSON]]:
    return Call("GET", "/readyz", _json)
